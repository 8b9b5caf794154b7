package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
)

// Status is the answer to the control command "status", printed by
// `map646 status -json`. It is a stable interface: fields are added, never
// renamed or removed. Times are RFC 3339, durations milliseconds.
type Status struct {
	Version string     `json:"version"`
	Node    NodeStatus `json:"node"`
	// Health: each configured check, in configuration order.
	Health []CheckStatus `json:"health"`
	// Neighbors: each BGP neighbor, in configuration order (none without
	// [bgp]).
	Neighbors []NeighborStatus `json:"neighbors"`
	// Announced: what the speaker announces now, sorted by prefix.
	Announced []AnnouncedStatus `json:"announced"`
	Traffic   TrafficStatus     `json:"traffic"`
}

// NodeStatus is the node's state machine.
type NodeStatus struct {
	// State: starting, serving, draining, drained or failed.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Cause string    `json:"cause"`
	// Drain is the last progress line of a running drain; "" otherwise.
	Drain string `json:"drain,omitempty"`
	// BGP says whether a speaker runs ([bgp] configured).
	BGP bool `json:"bgp"`
	// StateDir: "ok" when [node] state_dir took a test write at the last
	// check (every 2 s), else "not writable: " and why (a full disk:
	// "no space left on device"): a drain would be refused.
	StateDir string `json:"state_dir"`
}

// CheckStatus is one health check (health.Status).
type CheckStatus struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
	// Withdraws is what the node withdraws while the check is down: all,
	// ipv4 or ipv6.
	Withdraws string    `json:"withdraws"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`
	// LastError is the error of the last failed probe ("" if none failed).
	LastError      string  `json:"last_error,omitempty"`
	LastDurationMS float64 `json:"last_duration_ms"`
	// Passes and Failures are consecutive; Checked counts every probe.
	Passes   int `json:"passes"`
	Failures int `json:"failures"`
	Checked  int `json:"checked"`
}

// NeighborStatus is one BGP neighbor (routing.NeighborStatus).
type NeighborStatus struct {
	Address     string   `json:"address"`
	PeerAS      uint32   `json:"peer_as"`
	Description string   `json:"description,omitempty"`
	Role        string   `json:"role"` // router or partner
	Families    []string `json:"families"`
	// State is GoBGP's: idle, connect, active, opensent, openconfirm,
	// established.
	State       string    `json:"state"`
	Established bool      `json:"established"`
	Since       time.Time `json:"since"`
	Sent        int       `json:"prefixes_sent"`
	Received    int       `json:"prefixes_received"`
	LastError   string    `json:"last_error,omitempty"`
	BFD         string    `json:"bfd"` // off, down, init, up
}

// AnnouncedStatus is one announced prefix with its attributes.
type AnnouncedStatus struct {
	Prefix string `json:"prefix"`
	MED    uint32 `json:"med"`
	// Communities as ASN:value; 65535:0 is GRACEFUL_SHUTDOWN.
	Communities []string `json:"communities,omitempty"`
}

// TrafficStatus is the data plane's counters since the start.
type TrafficStatus struct {
	// Directions "4to6" and "6to4", by the version of the packet read.
	Directions map[string]DirectionStatus `json:"directions"`
	// Other counts packets read that were neither IPv4 nor IPv6.
	Other                uint64 `json:"other_packets"`
	ICMPErrorsSent       uint64 `json:"icmp_errors_sent"`
	ICMPErrorsSuppressed uint64 `json:"icmp_errors_suppressed"`
	WriteErrors          uint64 `json:"write_errors"`
	DeviceDropped        uint64 `json:"device_dropped"`
	// ProbePackets counts the data plane's own health-check probes read
	// (4to6, also in Directions["4to6"]): not traffic, and not waited for
	// by a drain.
	ProbePackets uint64 `json:"probe_packets"`
}

// DirectionStatus counts one direction.
type DirectionStatus struct {
	Packets     uint64 `json:"packets"` // read
	Bytes       uint64 `json:"bytes"`   // read
	Forwarded   uint64 `json:"forwarded"`
	Dropped     uint64 `json:"dropped"`
	ICMPErrors  uint64 `json:"icmp_errors"` // answered with an ICMP error
	SentPackets uint64 `json:"sent_packets"`
	SentBytes   uint64 `json:"sent_bytes"`
}

// trafficOf turns the data plane's counters into a TrafficStatus.
func trafficOf(s dataplane.Stats) TrafficStatus {
	t := TrafficStatus{
		Directions:           map[string]DirectionStatus{},
		Other:                s.In(dataplane.DirOther),
		ICMPErrorsSent:       s.ICMPErrorsSent,
		ICMPErrorsSuppressed: s.ICMPErrorsSuppressed,
		WriteErrors:          s.WriteErrors,
		DeviceDropped:        s.DeviceDropped,
		ProbePackets:         s.Probes,
	}
	for _, d := range []dataplane.Direction{dataplane.Dir4to6, dataplane.Dir6to4} {
		t.Directions[d.String()] = DirectionStatus{
			Packets:     s.In(d),
			Bytes:       s.Bytes[d],
			Forwarded:   s.Verdicts(d, translator.Forward),
			Dropped:     s.Verdicts(d, translator.Drop),
			ICMPErrors:  s.Verdicts(d, translator.ICMPError),
			SentPackets: s.SentPackets[d],
			SentBytes:   s.SentBytes[d],
		}
	}
	return t
}

// packetsRead is the number of packets the data plane has read, less its
// own health-check probes: the measure of the traffic a drain waits to
// fall. The probes are not traffic, and a dataplane check every 100 ms
// alone is 10 packets/s, the default drain_idle_pps: counted, they would
// keep an idle node waiting for the whole drain_timeout.
//
// A snapshot never holds more probes than packets read (the data plane
// publishes probes after their verdicts and reads them first), but the
// difference may step back by the probes of a batch between two snapshots:
// waitIdle allows for it. The guard keeps a broken promise from wrapping
// around to a count that would end every drain at once.
func packetsRead(s dataplane.Stats) uint64 {
	in := s.In(dataplane.Dir4to6) + s.In(dataplane.Dir6to4) + s.In(dataplane.DirOther)
	if s.Probes > in {
		return 0
	}
	return in - s.Probes
}

func community(c uint32) string { return fmt.Sprintf("%d:%d", c>>16, c&0xffff) }

// ago is a duration for people: since t, rounded to the second.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

// writeStatusText prints s for people.
func writeStatusText(w io.Writer, s Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	n := s.Node
	p("node\t%s for %s (since %s)\n", n.State, ago(now, n.Since), n.Since.Format(time.RFC3339))
	p("  cause\t%s\n", n.Cause)
	if n.Drain != "" {
		p("  drain\t%s\n", n.Drain)
	}
	if n.StateDir != "" && n.StateDir != "ok" {
		p("  state_dir\t%s\n", n.StateDir)
	}
	p("\nhealth checks\n")
	if len(s.Health) == 0 {
		p("  (none configured)\n")
	}
	for _, c := range s.Health {
		up := "down"
		if c.Up {
			up = "up"
		}
		p("  %s\t%s %s\t%s for %s\twithdraws %s\tprobes %d", c.Name, c.Kind, c.Target, up, ago(now, c.Since), c.Withdraws, c.Checked)
		if c.LastError != "" {
			p("\tlast error: %s", c.LastError)
		}
		p("\n")
	}
	p("\nbgp neighbors\n")
	switch {
	case !n.BGP:
		p("  (no [bgp] section: nothing is announced)\n")
	case len(s.Neighbors) == 0:
		p("  (none configured)\n")
	}
	for _, nb := range s.Neighbors {
		name := nb.Address
		if nb.Description != "" {
			name += " (" + nb.Description + ")"
		}
		p("  %s\tAS%d %s\t%s for %s\tsent %d received %d\tbfd %s", name, nb.PeerAS, nb.Role,
			nb.State, ago(now, nb.Since), nb.Sent, nb.Received, nb.BFD)
		if nb.LastError != "" {
			p("\tlast error: %s", nb.LastError)
		}
		p("\n")
	}
	p("\nannounced\n")
	if len(s.Announced) == 0 {
		p("  (nothing)\n")
	}
	for _, a := range s.Announced {
		p("  %s\tmed %d", a.Prefix, a.MED)
		if len(a.Communities) > 0 {
			p("\tcommunities %s", strings.Join(a.Communities, " "))
		}
		p("\n")
	}
	p("\ntraffic\n")
	for _, dir := range []string{"4to6", "6to4"} {
		d := s.Traffic.Directions[dir]
		p("  %s\tread %d packets %d bytes\tforwarded %d\tdropped %d\ticmp errors %d\tsent %d packets %d bytes\n",
			dir, d.Packets, d.Bytes, d.Forwarded, d.Dropped, d.ICMPErrors, d.SentPackets, d.SentBytes)
	}
	t := s.Traffic
	p("  other\tread %d packets\ticmp errors sent %d, suppressed %d\twrite errors %d\tdevice dropped %d\n",
		t.Other, t.ICMPErrorsSent, t.ICMPErrorsSuppressed, t.WriteErrors, t.DeviceDropped)
	p("  probes\tread %d packets (the data plane check's own, counted in 4to6; a drain leaves them out)\n", t.ProbePackets)
	return tw.Flush()
}
