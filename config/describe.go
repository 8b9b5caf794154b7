package config

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/map646/map646/health"
	"github.com/map646/map646/routing"
	"github.com/map646/map646/translator"
)

// describeMappings is how many mappings Describe lists.
const describeMappings = 10

// Describe writes what the configuration makes the translator do: what
// `map646 check` prints for a valid configuration.
func (c *Config) Describe(w io.Writer) {
	t := &c.Translator
	line := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-20s %s\n", name, fmt.Sprintf(format, args...))
	}
	onOff := func(b bool, on, off string) string {
		if b {
			return on
		}
		return off
	}

	fmt.Fprintf(w, "%s: valid\n\ntranslator\n", c.File)
	switch t.Policy {
	case translator.PolicySIIT:
		line("policy", "siit (RFC 7915 with RFC 7757: unmapped addresses go through the pseudo prefix both ways)")
	default:
		line("policy", "datacenter (RFC 7755 SIIT-DC: IPv4 clients reach mapped addresses only)")
	}
	line("pseudo prefix", "%s (IPv4 clients appear as %s)", t.PseudoPrefix, embedExample(t.PseudoPrefix))
	line("own addresses", "%s, %s (sources of the ICMP errors the translator sends)", t.IPv4Addr, t.IPv6Addr)
	if len(t.RFC6791Pool) == 0 {
		line("RFC 6791 pool", "empty: ICMPv6 errors from untranslatable sources come from %s", t.IPv4Addr)
	} else {
		line("RFC 6791 pool", "%s", addrList(t.RFC6791Pool, 4))
	}
	line("MTUs", "IPv6 %d, IPv4 %d; IPv4 packets without DF are fragmented to %d", t.IPv6MTU, t.IPv4MTU, t.LowestIPv6MTU)
	line("hairpinning", "%s", t.Hairpin)
	line("UDP zero checksum", "%s", onOff(t.DropUDPZeroChecksum, "drop", "compute"))
	line("traffic class", "%s", onOff(t.ZeroTrafficClass, "zero", "copy"))
	line("IPv4 identification", "%s", onOff(t.GenerateIPv4ID, "generate", "zero"))
	if t.ICMPErrors {
		line("ICMP errors", "on, at most %d per second per node, bursts of %d; path MTU signals apart: %d per second, bursts of %d",
			t.ICMPErrorRate, t.ICMPErrorBurst, t.ICMPPMTUErrorRate, t.ICMPPMTUErrorBurst)
	} else {
		line("ICMP errors", "off (untranslatable packets are dropped silently)")
	}
	line("local destinations", "%s", onOff(t.AllowLocalDestinations,
		"allowed (packets to the node's own addresses are translated)",
		"refused (no packet is translated toward the translator's or the node's own addresses)"))
	if t.MappingFile != "" {
		line("mapping file", "%s", t.MappingFile)
	}
	if e := c.Mappings.Etcd; c.Mappings.Source == SourceEtcd {
		tls := "no TLS"
		switch {
		case e.CertFile != "":
			tls = "TLS with client certificate " + e.CertFile
		case strings.HasPrefix(e.Endpoints[0], "https://"):
			tls = "TLS without a client certificate"
		}
		line("mapping source", "etcd %s, keys %s/mappings/, %s; cached in %s (the table below is empty: it is read at run time)",
			strings.Join(e.Endpoints, " "), e.Prefix, tls, c.Node.StateDir)
	}

	fmt.Fprintf(w, "\nmap646 run\n")
	c.describeDaemon(line)
	c.describeFastPath(line)
	c.describeLifeCycle(w, line)

	n := c.table.Len()
	var singles int
	var covered uint64
	for i := range n {
		m := c.table.Mapping(i)
		if m.IPv4.IsSingleIP() && m.IPv6.IsSingleIP() {
			singles++
		}
		covered += 1 << (32 - m.IPv4.Bits())
	}
	fmt.Fprintf(w, "\nmappings: %d (%s, %s), %s covered\n",
		n, plural(singles, "single address", "single addresses"),
		plural(n-singles, "prefix pair", "prefix pairs"),
		plural(int(covered), "IPv4 address", "IPv4 addresses"))
	for i := range min(n, describeMappings) {
		m := c.table.Mapping(i)
		fmt.Fprintf(w, "  %-20s <-> %-30s %s\n", single(m.IPv4), single(m.IPv6), c.MappingSource(i))
	}
	if n > describeMappings {
		fmt.Fprintf(w, "  ... and %d more\n", n-describeMappings)
	}
}

// embedExample shows where an IPv4 address goes in the pseudo prefix.
func embedExample(p netip.Prefix) string {
	if p.Bits() == 96 {
		// The last 32 bits are zero: the text ends in "::" or ":0:0".
		s := p.Addr().String()
		if strings.HasSuffix(s, "::") {
			return s + "a.b.c.d"
		}
		return strings.TrimSuffix(s, "0:0") + "a.b.c.d"
	}
	return "addresses of " + p.String()
}

// addrList writes up to max addresses and the count.
func addrList(as []netip.Addr, max int) string {
	parts := make([]string, 0, max+1)
	for i, a := range as {
		if i == max {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, a.String())
	}
	s := strings.Join(parts, ", ")
	if len(as) > 1 {
		s += fmt.Sprintf(" (%d addresses)", len(as))
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// describeDaemon writes the [tun], [metrics] and [log] sections.
func (c *Config) describeDaemon(line func(name, format string, args ...any)) {
	t := &c.Tun
	line("tun device", "%s, MTU %d, txqueuelen %d", t.Name, t.MTU, t.TxQueueLen)
	switch {
	case !t.Offload:
		line("offload", "off: one queue, no super-packets (the plain device)")
	case t.Queues == 0:
		line("offload", "on: checksum and segmentation offload, one queue per CPU")
	default:
		line("offload", "on: checksum and segmentation offload, %s", plural(t.Queues, "queue", "queues"))
	}
	if t.BusyPoll > 0 {
		line("busy poll", "%s after the last packet (a CPU per queue while packets keep coming)", fmtDuration(t.BusyPoll))
	}
	m := &c.Metrics
	if m.Listen == "" {
		line("metrics", "off")
	} else {
		series := "no per-mapping series"
		if m.MappingSeries > 0 {
			series = "per-mapping series for the first " + plural(m.MappingSeries, "mapping", "mappings")
		}
		line("metrics", "http://%s/metrics, %s", m.Listen, series)
	}
	format := "text"
	if c.Log.JSON {
		format = "json"
	}
	line("log", "%s, level %s", format, strings.ToLower(c.Log.Level.String()))
}

// describeLifeCycle writes the [node], [control], [bgp] and [health]
// sections. Passwords are never written.
func (c *Config) describeLifeCycle(w io.Writer, line func(name, format string, args ...any)) {
	n := &c.Node
	line("state directory", "%s (the drained flag survives restarts there)", n.StateDir)
	line("drain", "withdraw when tun traffic is at or under %d packets/s, or after %s; then translate on for %s",
		n.DrainIdlePPS, fmtDuration(n.DrainTimeout), fmtDuration(n.Linger))
	line("control socket", "%s (mode 0600: status, drain, undrain, reload)", c.Control.Socket)
	if c.Control.StatusSocket != "" {
		group := "the daemon's group"
		if c.Control.StatusGroup != "" {
			group = "group " + c.Control.StatusGroup
		}
		line("status socket", "%s (mode 0660, %s: status only)", c.Control.StatusSocket, group)
	}

	b := &c.BGP
	if !b.Enabled {
		fmt.Fprintf(w, "\nbgp: off (no [bgp] section: nothing is announced)\n")
	} else {
		listen := "no listener (connects out only)"
		if b.ListenPort != -1 {
			listen = fmt.Sprintf("listening on %s port %d", joinStrings(b.ListenAddresses), b.ListenPort)
		}
		fmt.Fprintf(w, "\nbgp: AS %d, router id %s, %s\n", b.LocalAS, b.RouterID, listen)
		if ListensEverywhere(b.Config) {
			fmt.Fprintf(w, "  WARNING: port %d is open on every address of this node: set bgp.listen_addresses to the addresses the neighbors reach\n", b.ListenPort)
		}
		comms := "no communities"
		if len(b.Communities) > 0 {
			comms = "communities " + communityList(b.Communities)
		}
		line("announcements", "MED %d, %s; draining: MED %d and GRACEFUL_SHUTDOWN", b.MED, comms, b.DrainMED)
		if len(b.Aggregates) == 0 {
			line("aggregates", "none: each mapped IPv4 prefix as it is")
		} else {
			line("aggregates", "%s", joinStrings(b.Aggregates))
		}
		if b.GRPCSocket == "" {
			line("gRPC API", "off")
		} else {
			line("gRPC API", "unix socket %s (gobgp --target %s ...)", b.GRPCSocket, routing.CLITarget(b.GRPCSocket))
		}
		for _, nb := range b.Neighbors {
			line("neighbor", "%s", describeNeighbor(nb, b.LocalAS))
		}
	}

	fmt.Fprintf(w, "\nhealth: %s\n", plural(len(c.Health.Checks), "check", "checks"))
	for _, ch := range c.Health.Checks {
		target := ch.Target()
		if ch.Kind == health.BGP {
			target = strings.ReplaceAll(target, ",", ", ") + " (fails when none is established)"
		}
		if target != "" {
			target = " " + target
		}
		line(ch.Name, "%s%s every %s, timeout %s, up after %d, down after %d; withdraws %s",
			ch.Kind, target, fmtDuration(ch.Interval), fmtDuration(ch.Timeout), ch.Rise, ch.Fall, ch.Withdraws)
	}
}

func describeNeighbor(n routing.Neighbor, localAS uint32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s AS %d", n.Address, n.PeerAS)
	if n.Port != 0 && n.Port != DefaultBGPPort {
		fmt.Fprintf(&b, " port %d", n.Port)
	}
	if n.PeerAS == localAS {
		b.WriteString(" (iBGP)")
	}
	if n.Role == routing.Partner {
		b.WriteString(" partner")
	} else {
		b.WriteString(" router")
	}
	if n.Description != "" {
		fmt.Fprintf(&b, " %q", n.Description)
	}
	fams := make([]string, len(n.Families))
	for i, f := range n.Families {
		fams[i] = f.String()
		switch {
		case f == routing.IPv4Unicast && n.NextHopIPv4.IsValid():
			fams[i] += " (next hop " + n.NextHopIPv4.String() + ")"
		case f == routing.IPv6Unicast && n.NextHopIPv6.IsValid():
			fams[i] += " (next hop " + n.NextHopIPv6.String() + ")"
		}
	}
	fmt.Fprintf(&b, ": %s; hold %ds, keepalive %ds", strings.Join(fams, ", "), n.HoldTime/time.Second, n.KeepaliveTime/time.Second)
	if n.Password != "" {
		b.WriteString("; TCP-MD5")
	}
	if n.BFD.Enabled {
		fmt.Fprintf(&b, "; BFD %s x %d", fmtDuration(n.BFD.Interval), n.BFD.Multiplier)
	}
	if n.Passive {
		b.WriteString("; passive")
	}
	if n.MultihopTTL > 0 {
		fmt.Fprintf(&b, "; multihop TTL %d", n.MultihopTTL)
	}
	if n.TTLSecurity {
		b.WriteString("; GTSM (TTL 255)")
	}
	if n.MaxPrefixes > 0 {
		fmt.Fprintf(&b, "; at most %d prefixes per family", n.MaxPrefixes)
	} else {
		b.WriteString("; no prefix limit")
	}
	return b.String()
}

func communityList(cs []uint32) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%d:%d", c>>16, c&0xFFFF)
	}
	return strings.Join(parts, ", ")
}

func joinStrings[T fmt.Stringer](list []T) string {
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = v.String()
	}
	return strings.Join(parts, ", ")
}
