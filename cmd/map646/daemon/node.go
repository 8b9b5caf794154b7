package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/map646/map646/routing"
)

// State is the node's life-cycle state.
type State uint8

const (
	// Starting: the data plane is not ready yet or the checks have not all
	// risen; nothing is announced.
	Starting State = iota
	// Serving: every side announced with the serving attributes.
	Serving
	// Draining: an operator's drain runs (GRACEFUL_SHUTDOWN and the drain
	// MED, then the withdrawal and the linger).
	Draining
	// Drained: nothing announced until `map646 undrain`; the data plane
	// still translates whatever reaches it (late packets).
	Drained
	// Failed: a health check withdrew one side or both.
	Failed
)

// numStates is the number of states; States lists them.
const numStates = int(Failed) + 1

// States lists every state, in their order.
var States = [numStates]State{Starting, Serving, Draining, Drained, Failed}

func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Serving:
		return "serving"
	case Draining:
		return "draining"
	case Drained:
		return "drained"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// drainPhase is where a drain is: first the GRACEFUL_SHUTDOWN
// re-announcement, then the withdrawal while the routers converge.
type drainPhase uint8

const (
	phaseShutdown  drainPhase = iota // announced with GRACEFUL_SHUTDOWN and DrainMED
	phaseWithdrawn                   // withdrawn; lingering before drained
)

// Node is the node state machine. It is pure: it does no I/O and keeps no
// lock (the caller serializes; only Entered may be called concurrently), it logs each transition once, and Desired
// turns its state into the announcements the speaker is to make.
type Node struct {
	state State
	since time.Time
	cause string

	ready bool // the data plane runs and its routes are in
	// noTable says why there is no mapping table to serve yet ("" when
	// there is one): a node with the etcd source starts without one and
	// announces nothing until the first table (etcd's or the cached one)
	// is applied. A table once there stays: a stale one is served.
	noTable            string
	healthy4, healthy6 bool // Monitor.Healthy
	healthCause        string
	phase              drainPhase

	// entered counts the transitions into each state, for the metrics:
	// a state left again between two scrapes shows there, not in the
	// state itself. Read from any goroutine (Entered).
	entered [numStates]atomic.Uint64

	log *slog.Logger
	now func() time.Time
}

// NewNode returns a node in Starting.
func NewNode(log *slog.Logger, now func() time.Time) *Node {
	n := &Node{state: Starting, since: now(), cause: "process started", log: log, now: now}
	log.Info("node state", "state", Starting.String(), "from", "", "cause", n.cause)
	return n
}

// State returns the state, when it was entered and why.
func (n *Node) State() (State, time.Time, string) { return n.state, n.since, n.cause }

// set moves the node to s, logging the transition once; a move to the
// state it is in changes nothing.
func (n *Node) set(s State, cause string) {
	if s == n.state {
		return
	}
	n.log.Info("node state", "state", s.String(), "from", n.state.String(), "cause", cause)
	n.state, n.since, n.cause = s, n.now(), cause
	n.entered[s].Add(1)
}

// Entered returns how many times the node entered s (its start in Starting
// not counted). Safe from any goroutine.
func (n *Node) Entered(s State) uint64 { return n.entered[s].Load() }

// Ready records that the data plane runs and its kernel routes are in.
func (n *Node) Ready(cause string) {
	n.ready = true
	n.settle(cause)
}

// NoTable records that the node has no mapping table to serve yet, and
// why: it stays starting (or becomes so when it serves again) and
// announces nothing until TableReady.
func (n *Node) NoTable(cause string) {
	n.noTable = cause
	if n.state == Starting && n.cause != cause {
		n.log.Info("node state", "state", n.state.String(), "from", n.state.String(), "cause", cause)
		n.cause = cause
	}
}

// TableReady records that the first mapping table is applied.
func (n *Node) TableReady(cause string) {
	if n.noTable == "" {
		return
	}
	n.noTable = ""
	n.settle(cause)
}

// canServe says whether the node can carry traffic: its data plane runs
// with its routes, and it has a mapping table.
func (n *Node) canServe() bool { return n.ready && n.noTable == "" }

// DataPlaneDown records that the data plane stopped under the node (its
// device deleted): nothing is announced until Ready again; a serving node
// is failed, with cause.
func (n *Node) DataPlaneDown(cause string) {
	n.ready = false
	switch n.state {
	case Serving:
		n.set(Failed, cause)
	case Failed:
		n.log.Info("node state", "state", n.state.String(), "from", n.state.String(), "cause", cause)
		n.cause = cause
	}
}

// Health records the health of each side (Monitor.Healthy); cause names the
// checks that are down, for the log.
func (n *Node) Health(ipv4, ipv6 bool, cause string) {
	n.healthy4, n.healthy6, n.healthCause = ipv4, ipv6, cause
	n.settle(cause)
}

func (n *Node) healthy() bool { return n.healthy4 && n.healthy6 }

// settle applies the readiness and health to the states they govern:
// starting, serving and failed. A draining or drained node stays so (its
// announcements still follow health, see Desired).
func (n *Node) settle(cause string) {
	switch n.state {
	case Starting:
		if n.canServe() && n.healthy() {
			n.set(Serving, "data plane ready and every check up")
		}
	case Serving:
		if !n.healthy() {
			n.set(Failed, cause)
		}
	case Failed:
		// Not while the data plane is down (DataPlaneDown): its Ready
		// brings the node back.
		if n.canServe() && n.healthy() {
			n.set(Serving, "every check up again")
		}
	}
}

// RestoreDrained puts a node that starts drained (the flag in state_dir)
// in Drained.
func (n *Node) RestoreDrained(at time.Time) {
	n.set(Drained, fmt.Sprintf("drained by an operator at %s; map646 undrain to serve", at.Format(time.RFC3339)))
}

// StartDrain begins a drain: the announcements get GRACEFUL_SHUTDOWN and
// the drain MED.
func (n *Node) StartDrain(cause string) error {
	switch n.state {
	case Draining:
		return fmt.Errorf("a drain is in progress since %s", n.since.Format(time.RFC3339))
	case Drained:
		return fmt.Errorf("already drained since %s", n.since.Format(time.RFC3339))
	}
	n.phase = phaseShutdown
	n.set(Draining, cause)
	return nil
}

// DrainWithdrawn records that a drain withdrew everything and now lingers.
func (n *Node) DrainWithdrawn() {
	if n.state == Draining {
		n.phase = phaseWithdrawn
		n.log.Info("drain: withdrawn", "state", n.state.String())
	}
}

// DrainDone ends a drain: drained.
func (n *Node) DrainDone(cause string) {
	if n.state == Draining {
		n.set(Drained, cause)
	}
}

// CancelDrain ends a drain that has not withdrawn yet and puts the node
// back where Undrain would: the node backs off in favour of a partner
// draining at the same time (drain.go).
func (n *Node) CancelDrain(cause string) error {
	if n.state != Draining || n.phase != phaseShutdown {
		return fmt.Errorf("no drain to cancel: %s since %s", n.state, n.since.Format(time.RFC3339))
	}
	n.serveAgain(cause)
	return nil
}

// Undrain leaves Drained: serving when the data plane is ready and every
// check is up, failed when a check is down, starting when not ready yet.
func (n *Node) Undrain(cause string) error {
	if n.state != Drained {
		return fmt.Errorf("not drained: %s since %s", n.state, n.since.Format(time.RFC3339))
	}
	n.serveAgain(cause)
	return nil
}

// serveAgain leaves Draining or Drained: serving when the data plane is
// ready and every check is up, failed when a check is down, starting when
// not ready yet.
func (n *Node) serveAgain(cause string) {
	switch {
	case !n.ready:
		n.set(Starting, cause+"; waiting for the data plane")
	case n.noTable != "":
		n.set(Starting, cause+"; "+n.noTable)
	case n.healthy():
		n.set(Serving, cause)
	default:
		n.set(Failed, cause+"; but checks are down: "+n.healthCause)
	}
}

// Plan is what the node would announce at full health: the IPv4 prefixes
// (mapped, or the aggregates covering them), the pseudo prefix and the
// attributes.
type Plan struct {
	IPv4        []netip.Prefix
	Pseudo      netip.Prefix
	MED         uint32
	DrainMED    uint32
	Communities []uint32
}

// attributes returns the MED and communities of what the node's state
// announces, and false when it announces nothing (Desired).
func (n *Node) attributes(p Plan) (med uint32, comms []uint32, ok bool) {
	if !n.canServe() {
		return 0, nil, false
	}
	med, comms = p.MED, slices.Clone(p.Communities)
	switch n.state {
	case Starting, Drained:
		return 0, nil, false
	case Draining:
		if n.phase == phaseWithdrawn {
			return 0, nil, false
		}
		med = p.DrainMED
		if !slices.Contains(comms, routing.GracefulShutdown) {
			comms = append(comms, routing.GracefulShutdown)
		}
	}
	return med, comms, true
}

// IPv4Attributes returns what Desired gives each of p's IPv4 prefixes,
// and false when it announces none of them: a change of p.IPv4 then
// changes the announcements by the prefixes that changed only.
func (n *Node) IPv4Attributes(p Plan) (med uint32, comms []uint32, ok bool) {
	med, comms, ok = n.attributes(p)
	return med, comms, ok && n.healthy4
}

// Desired returns the announcements the node's state calls for, sorted by
// prefix: nothing while starting, drained or withdrawn by a drain; each
// side only while its health holds; GRACEFUL_SHUTDOWN and DrainMED while a
// drain has not withdrawn yet.
func (n *Node) Desired(p Plan) []routing.Announcement {
	med, comms, ok := n.attributes(p)
	if !ok {
		return nil
	}
	var out []routing.Announcement
	add := func(pfx netip.Prefix) {
		out = append(out, routing.Announcement{Prefix: pfx, MED: med, Communities: slices.Clone(comms)})
	}
	if n.healthy4 {
		for _, pfx := range p.IPv4 {
			add(pfx)
		}
	}
	if n.healthy6 && p.Pseudo.IsValid() {
		add(p.Pseudo)
	}
	slices.SortFunc(out, func(a, b routing.Announcement) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

// ipv4Announced returns the IPv4 prefixes to announce for the mapped ones
// (dataplane.Prefixes, IPv6 ones ignored): each aggregate that contains a
// mapped prefix, in place of the mapped prefixes it contains; the others as
// they are. An aggregate that contains no mapping is not announced (it
// would attract traffic the node drops).
func ipv4Announced(mapped, aggregates []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	used := make([]bool, len(aggregates))
	for _, m := range mapped {
		if !m.Addr().Is4() {
			continue
		}
		covered := false
		for i, a := range aggregates {
			if a.Bits() <= m.Bits() && a.Contains(m.Addr()) {
				used[i], covered = true, true
			}
		}
		if !covered {
			out = append(out, m)
		}
	}
	for i, a := range aggregates {
		if used[i] {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out)
}
