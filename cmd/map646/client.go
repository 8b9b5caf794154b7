package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/config/etcdsource"
)

// ctlTimeout bounds status, undrain and reload calls; a drain is bounded by
// the daemon's drain_timeout and linger instead.
const ctlTimeout = 5 * time.Minute

const socketHelp = "the daemon's control `PATH` ([control] socket)"

const statusUsage = `Usage: map646 status [-v | -json] [-socket PATH]
       map646 status -cluster [-json] [-socket PATH]

Show what the running map646 is doing, asked over its control socket: one
line per part, as 'birdc show protocols' does (Name, Type, State, Since,
Info):
  node           type map646: starting, serving, draining, drained or
                 failed; since when, why, how many prefixes it announces;
  each check     type check: up or down, since when, what it withdraws
                 (and the last error while down);
  each neighbor  type bgp: the session state, since when, prefixes sent
                 and received, BFD (and the last error while not
                 established);
  traffic        type dataplane: packets read, forwarded and dropped, per
                 direction;
  mappings       type file or etcd: where the mapping table comes from.
                 For etcd: synced (following etcd), stale (etcd not
                 reached since the time shown: the table as it was is
                 served, nothing withdrawn), from cache (started while
                 etcd was unreachable: the table cached in [node]
                 state_dir is served) or no table (neither etcd nor a
                 cache: the node announces nothing and stays starting);
                 the etcd revision served, the mappings and the keys
                 refused (bad entries, listed with -v).
-v adds the detail (as 'birdc show protocols all' does): the probes and
last errors of the checks, each announced prefix with its MED and
communities (65535:0 is GRACEFUL_SHUTDOWN), every traffic counter.
-json prints it all as one JSON object (the Status type of
cmd/map646/control/status.go: fields are added, never renamed).

-cluster (etcd source only) shows every node that follows the same etcd
prefix, read from the records they keep there under a lease (a node
stopped or cut off from etcd for longer than [mappings.etcd] lease_ttl
is gone from the list): its name ([bgp] router_id, else its host name),
its state (serving, drained...), its table's (synced, stale...), the
revision it serves and its lag behind etcd's revision (the other nodes'
record updates count as revisions too: a lag of a few is in step). Exit
0 with an answer, 3 without.

Exit codes, those of a monitoring plugin (Nagios, Icinga, Sensu), whatever
the view:
  0  OK        serving, every BGP neighbor established, [node] state_dir
               writable;
  1  WARNING   serving with a neighbor not established, state_dir not
               writable (a drain would be refused) or the etcd mapping
               source stale or from cache (etcd not reached: the table may
               lag); or starting (the checks are rising, or no mapping
               table yet); or draining or drained (out of service on
               purpose);
  2  CRITICAL  failed: a health check withdrew one side or both, or the
               data plane is down;
  3  UNKNOWN   no map646 answers (not running, permission denied, a
               garbled answer), or a usage error.

The control socket is the daemon user's (mode 0600: root, or map646
under the packaged unit). A monitoring user asks the
read-only [control] status_socket instead (mode 0660, its status_group),
which answers status (and -cluster), lookup and mappings only: map646
status -socket /run/map646-status.sock.

Example:
  map646 status
  map646 status -v
  map646 status -json | jq .node.state
  map646 status -cluster
`

const drainUsage = `Usage: map646 drain [-force] [-socket PATH]

Take the node out of service without losing a packet (make before break):
  1. refuse, changing nothing, unless every prefix this node announces is
     also announced by an established partner node ([[bgp.neighbor]] with
     role = "partner") without GRACEFUL_SHUTDOWN: the refusal names the
     prefixes that would be left with no node. -force drains anyway;
  2. record the drained state in [node] state_dir (it survives a restart
     and a reboot; a failure to write it refuses the drain);
  3. re-announce every prefix with GRACEFUL_SHUTDOWN (65535:0, RFC 8326)
     and [bgp] drain_med, so routers move the traffic to the other nodes;
  4. wait until the traffic through the device (the node's own data-plane
     probes left out) falls to [node] drain_idle_pps packets/s, but at
     least 1 s, or [node] drain_timeout passes. Every 100 ms of the wait
     the partners are checked again, as two partners drained at the same
     moment both pass step 1: when a partner's routes now carry
     GRACEFUL_SHUTDOWN where no other partner covers this node, both
     nodes settle it alike: the one with the lower [bgp] router_id drains
     (and withdraws only once the other announces without
     GRACEFUL_SHUTDOWN again); the higher backs off: it announces as
     before, removes the flag, serves again and refuses the drain naming
     the partner (exit 1). An equal or unknown partner router id backs
     off too, and so does a node whose partners' routes are gone (a
     partner drained, stopped or lost its session meanwhile), and the
     lower one when drain_timeout passes while the other still drains
     (forced, or a map646 that does not back off). A -force drain never
     backs off;
  5. withdraw everything and keep translating for [node] linger while the
     routers converge; then drained. The data plane still translates what
     reaches it.
Progress is printed as it happens. On a drained node drain says so and
changes nothing. 'map646 undrain' serves again.

Example:
  map646 drain && systemctl stop map646      # maintenance
`

const undrainUsage = `Usage: map646 undrain [-socket PATH]

Put a drained node back in service: remove the drained flag from
[node] state_dir and announce again (serving; or failed if health
checks are down, which the answer says). On a node that is not drained it
says so and changes nothing; during a drain it refuses (undrain once it
has ended).

Example:
  map646 undrain && map646 status
`

const reloadUsage = `Usage: map646 reload [-socket PATH]

Reload the configuration, as SIGHUP does, and print the result: re-read
and check the file; if valid, apply the mappings (table swap and kernel
routes), the ICMP error rate, [tun] busy_poll, the BGP neighbors, the
health checks and the announcements; if not, keep the running
configuration and print its problems (exit 1). A valid file of which a part
could not be applied (a [bgp] change the speaker refuses, a route the
kernel refuses) also exits 1, naming what was not applied; so does a file
that changes keys only a restart applies: the rest of it is applied, and
the message names them ("restart map646 to apply [tun] mtu, [metrics]
listen"). Those keys are the rest of [tun] but busy_poll, [metrics],
[log], [control], [node] state_dir, adding or removing [bgp], [bgp]
local_as, router_id, listen_port, listen_addresses and grpc_socket (which
keep the whole [bgp] change from being applied), [mappings] source and
[mappings.etcd]. With the etcd source, the reload keeps etcd's table.

Example:
  map646 check -config /etc/map646/map646.toml && map646 reload
`

// ctlFlags parses the flags every control command has; done as parseFlags.
func ctlFlags(name, usage string, args []string, stdout, stderr io.Writer, extra func(fsAdd func(*bool, string, string))) (socket string, code int, done bool) {
	fs := newFlagSet(name)
	s := fs.String("socket", config.DefaultControlSocket, socketHelp)
	if extra != nil {
		extra(func(p *bool, n, u string) { fs.BoolVar(p, n, false, u) })
	}
	code, done = parseFlags(fs, usage, args, stdout, stderr)
	return *s, code, done
}

// Exit codes of map646 status: those of a monitoring plugin (statusUsage).
const (
	statusOK       = 0
	statusWarning  = 1
	statusCritical = 2
	statusUnknown  = 3
)

func runStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON, verbose, cluster bool
	socket, code, done := ctlFlags("status", statusUsage, args, stdout, stderr, func(add func(*bool, string, string)) {
		add(&asJSON, "json", "print the status as JSON")
		add(&verbose, "v", "print every detail: probes, last errors, announced prefixes, every counter")
		add(&cluster, "cluster", "show every node of the etcd source's cluster")
	})
	if done {
		if code == exitUsage {
			return statusUnknown
		}
		return code
	}
	if asJSON && verbose || cluster && verbose {
		usageError(stderr, "status", "-json, -v and -cluster are views; choose one (-cluster takes -json)")
		return statusUnknown
	}
	if cluster {
		return runCluster(socket, asJSON, stdout, stderr)
	}
	r, err := control.Call(socket, control.Request{Command: "status"}, ctlTimeout, func(string) {})
	if err == nil && !*r.OK {
		err = fmt.Errorf("%s", r.Error)
	}
	if err == nil && r.Status == nil {
		err = fmt.Errorf("map646 at %s answered without a status", socket)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 status: %v\n", err)
		return statusUnknown
	}
	switch {
	case asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r.Status)
	case verbose:
		err = writeStatusText(stdout, *r.Status, time.Now())
	default:
		err = writeStatusBrief(stdout, *r.Status)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 status: %v\n", err)
		return statusUnknown
	}
	return statusExit(*r.Status)
}

// statusExit is map646 status's exit code for s (statusUsage).
func statusExit(s control.Status) int {
	switch s.Node.State {
	case "serving":
	case "failed":
		return statusCritical
	default: // starting, draining, drained
		return statusWarning
	}
	for _, nb := range s.Neighbors {
		if !nb.Established {
			return statusWarning
		}
	}
	if s.Node.StateDir != "" && s.Node.StateDir != "ok" {
		return statusWarning
	}
	if m := s.Mappings; m != nil && (m.State == "stale" || m.State == "from cache") {
		return statusWarning
	}
	return statusOK
}

func runDrain(args []string, stdout, stderr io.Writer) int {
	var force bool
	socket, code, done := ctlFlags("drain", drainUsage, args, stdout, stderr, func(add func(*bool, string, string)) {
		add(&force, "force", "drain even when no partner node announces the prefixes (the last node)")
	})
	if done {
		return code
	}
	return ctlCommand("drain", socket, control.Request{Command: "drain", Force: force}, 0, stdout, stderr)
}

func runUndrain(args []string, stdout, stderr io.Writer) int {
	socket, code, done := ctlFlags("undrain", undrainUsage, args, stdout, stderr, nil)
	if done {
		return code
	}
	return ctlCommand("undrain", socket, control.Request{Command: "undrain"}, ctlTimeout, stdout, stderr)
}

func runReload(args []string, stdout, stderr io.Writer) int {
	socket, code, done := ctlFlags("reload", reloadUsage, args, stdout, stderr, nil)
	if done {
		return code
	}
	return ctlCommand("reload", socket, control.Request{Command: "reload"}, ctlTimeout, stdout, stderr)
}

// ctlCommand sends req, prints the progress and the final message on
// stdout, an error on stderr (exit 1).
func ctlCommand(name, socket string, req control.Request, timeout time.Duration, stdout, stderr io.Writer) int {
	r, err := control.Call(socket, req, timeout, func(p string) { fmt.Fprintln(stdout, p) })
	if err == nil && !*r.OK {
		err = fmt.Errorf("%s", r.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 %s: %v\n", name, err)
		return exitError
	}
	if r.Message != "" {
		fmt.Fprintln(stdout, r.Message)
	}
	return exitOK
}

// ago is a duration for people: since t, rounded to the second.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

// briefTime is when a part's state began, as birdc prints it (timeformat
// iso long), in the daemon's time zone.
func briefTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02 15:04:05")
}

// writeStatusBrief prints s one line per part, as 'birdc show protocols'
// does: name, type, state, since, and a word on it.
func writeStatusBrief(w io.Writer, s control.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, typ, state, since, info string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, typ, state, since, info)
	}
	row("Name", "Type", "State", "Since", "Info")
	n := s.Node
	info := n.Cause
	if n.BGP {
		noun := "prefixes"
		if len(s.Announced) == 1 {
			noun = "prefix"
		}
		info += fmt.Sprintf("; %d %s announced", len(s.Announced), noun)
	}
	if n.Drain != "" {
		info += "; drain: " + n.Drain
	}
	if n.StateDir != "" && n.StateDir != "ok" {
		info += "; state_dir " + n.StateDir
	}
	row("node", "map646", n.State, briefTime(n.Since), info)
	for _, c := range s.Health {
		up := "down"
		if c.Up {
			up = "up"
		}
		info := c.Kind
		if c.Target != "" {
			info += " " + c.Target
		}
		info += "; withdraws " + c.Withdraws
		if !c.Up && c.LastError != "" {
			info += "; " + c.LastError
		}
		row(c.Name, "check", up, briefTime(c.Since), info)
	}
	for _, nb := range s.Neighbors {
		info := fmt.Sprintf("AS%d %s", nb.PeerAS, nb.Role)
		if nb.Description != "" {
			info += " " + strconv.Quote(nb.Description)
		}
		info += fmt.Sprintf("; sent %d, received %d; bfd %s", nb.Sent, nb.Received, nb.BFD)
		if !nb.Established && nb.LastError != "" {
			info += "; " + nb.LastError
		}
		row(nb.Address, "bgp", nb.State, briefTime(nb.Since), info)
	}
	var parts []string
	for _, dir := range []string{"4to6", "6to4"} {
		d := s.Traffic.Directions[dir]
		parts = append(parts, fmt.Sprintf("%s read %d, forwarded %d, dropped %d", dir, d.Packets, d.Forwarded, d.Dropped))
	}
	row("traffic", "dataplane", "-", "-", strings.Join(parts, "; "))
	if m := s.Mappings; m != nil {
		since := "-"
		if m.Source != "file" {
			since = briefTime(m.Since)
		}
		row("mappings", m.Source, m.State, since, m.Summary)
	}
	return tw.Flush()
}

// writeStatusText prints s for people, every detail (status -v).
func writeStatusText(w io.Writer, s control.Status, now time.Time) error {
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
	if m := s.Mappings; m != nil {
		p("\nmappings\n")
		p("  source\t%s\n", m.Source)
		p("  state\t%s\n", m.Summary)
		if m.Source != "file" {
			p("  since\t%s (%s)\n", m.Since.Format(time.RFC3339), ago(now, m.Since))
			p("  revision\t%d served, etcd at %d when last reached\n", m.Revision, m.EtcdRevision)
			if m.StaleSince != nil {
				p("  stale since\t%s (%s)\n", m.StaleSince.Format(time.RFC3339), ago(now, *m.StaleSince))
			}
			p("  bad entries\t%d\n", m.BadCount)
			for _, b := range m.BadEntries {
				p("    %s\t%q\t%s\n", b.Key, b.Value, b.Reason)
			}
			if m.BadCount > len(m.BadEntries) {
				p("    ... and %d more\n", m.BadCount-len(m.BadEntries))
			}
		}
	}
	return tw.Flush()
}

// runCluster prints every node of the etcd source's cluster (status
// -cluster), asked of the daemon, which holds the etcd client.
func runCluster(socket string, asJSON bool, stdout, stderr io.Writer) int {
	r, err := control.Call(socket, control.Request{Command: "cluster"}, ctlTimeout, func(string) {})
	if err == nil && !*r.OK {
		err = fmt.Errorf("%s", r.Error)
	}
	if err == nil && r.Cluster == nil {
		err = fmt.Errorf("map646 at %s answered without the cluster", socket)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 status -cluster: %v\n", err)
		return statusUnknown
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r.Cluster)
	} else {
		var nodes []etcdsource.NodeStatus
		for _, n := range r.Cluster.Nodes {
			nodes = append(nodes, etcdsource.NodeStatus{NodeRecord: etcdsource.NodeRecord{Node: n.Node, NodeState: n.State, State: n.Table,
				Since: n.Since, Revision: n.Revision, Mappings: n.Mappings, BadEntries: n.BadEntries, Version: n.Version}, Lag: n.Lag})
		}
		err = etcdsource.WriteCluster(stdout, nodes, r.Cluster.EtcdRevision)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 status -cluster: %v\n", err)
		return statusUnknown
	}
	return statusOK
}
