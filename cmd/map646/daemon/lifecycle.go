package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/routing"
)

// speaker is what the lifecycle needs of the BGP speaker
// (*routing.Speaker, adapted in wiring.go; a fake in tests).
type speaker interface {
	Announce(ctx context.Context, want []routing.Announcement) error
	Announced() []routing.Announcement
	// PartnerRoutes: the prefixes Established partner nodes announce to us.
	PartnerRoutes() []routing.PartnerRoute
	// PartnerRouterIDs: the router ids of the Established partners, by
	// neighbor address (the tie-break of two drains, drain.go).
	PartnerRouterIDs() map[netip.Addr]netip.Addr
	Neighbors() []control.NeighborStatus
}

// monitor is what the lifecycle needs of the health monitor
// (*health.Monitor, adapted; allHealthy without checks).
type monitor interface {
	Healthy() (ipv4, ipv6 bool)
	Status() []control.CheckStatus
}

// allHealthy is the monitor of a node without checks.
type allHealthy struct{}

func (allHealthy) Healthy() (bool, bool)         { return true, true }
func (allHealthy) Status() []control.CheckStatus { return nil }

// drainTiming is the drain's part of [node].
type drainTiming struct {
	Timeout time.Duration // longest wait for the traffic to fall
	IdlePPS int           // the traffic rate (packets read per second) at or under which the node is idle
	Linger  time.Duration // translating on after the withdrawal
	Sample  time.Duration // traffic sampling period (100 ms)
	// Settle is the least time between the GRACEFUL_SHUTDOWN and the
	// withdrawal (1 s): long enough for a partner's drain requested at the
	// same moment to show in its routes (drain.go, contest).
	Settle time.Duration
}

// quietSamples is how many consecutive samples must be under IdlePPS: one
// quiet 100 ms can be a gap between bursts of a live flow.
const quietSamples = 3

// lifecycle joins the node state machine to the speaker, the health
// monitor, the data plane's counters and the drained flag, and runs the
// drain (drain.go). The daemon loop owns it: every method but Status runs
// on the loop's goroutine, one event at a time, so nothing here takes a
// lock; Status, which the control socket and the metrics scrapes call from
// their own goroutines, reads the view the loop publishes after each
// change.
type lifecycle struct {
	node *Node
	plan Plan
	bgp  speaker // nil without [bgp]
	// routerID is this node's [bgp] router_id, set with bgp: of two
	// partners draining at once, the lower one drains (drain.go).
	routerID netip.Addr
	hm       monitor
	flag     drainFlag
	tm       drainTiming

	drain    *drain // the drain in progress; nil when none runs
	stopping bool   // shutdown has withdrawn everything: announce nothing more
	retry    bool   // the last Announce failed
	// stateDirErr says why the last check found [node] state_dir not
	// writable ("" when it was): a drain would be refused.
	stateDirErr string

	view atomic.Pointer[view] // what Status shows (publish)

	packets func() uint64                // packets read by the data plane so far, its own probes left out (packetsRead)
	traffic func() control.TrafficStatus // the data plane's counters; safe from any goroutine
	// mappings says where the table comes from and how it stands (nil
	// until the table is served); safe from any goroutine.
	mappings func() *control.MappingsStatus
	log      *slog.Logger
	now      func() time.Time
	version  string // the build's, for the status
}

// view is the part of the status the loop owns, as it was after the last
// change.
type view struct {
	state       State
	since       time.Time
	cause       string
	drainNote   string // the running drain's last progress line
	stateDirErr string
	bgp         speaker
	hm          monitor
}

// publish makes the loop's state visible to Status. Every change the
// other goroutines may see is followed by a publish.
func (c *lifecycle) publish() {
	st, since, cause := c.node.State()
	v := &view{state: st, since: since, cause: cause, stateDirErr: c.stateDirErr, bgp: c.bgp, hm: c.hm}
	if c.drain != nil {
		v.drainNote = c.drain.note
	}
	c.view.Store(v)
}

// healthCause names the checks that are down, for logs and status.
func (c *lifecycle) healthCause() string {
	var down []string
	for _, s := range c.hm.Status() {
		if !s.Up {
			d := "check " + s.Name + " (" + s.Kind + ") down"
			if s.LastError != "" {
				d += ": " + s.LastError
			}
			down = append(down, d)
		}
	}
	if len(down) == 0 {
		return "every check up"
	}
	return strings.Join(down, "; ")
}

// refresh feeds the monitor's verdict to the node.
func (c *lifecycle) refresh() {
	h4, h6 := c.hm.Healthy()
	c.node.Health(h4, h6, c.healthCause())
}

// announce publishes the node's state and gives the speaker the node's
// desired set.
func (c *lifecycle) announce(ctx context.Context) error {
	c.publish()
	if c.bgp == nil {
		return nil
	}
	var want []routing.Announcement
	if !c.stopping {
		want = c.node.Desired(c.plan)
	}
	err := c.bgp.Announce(ctx, want)
	c.retry = err != nil
	if err != nil {
		c.log.Error("announce", "err", err, "prefixes", len(want))
	}
	return err
}

// reconcile re-reads health and announces what the state calls for. The
// loop calls it on every health or session change and again after a
// failed Announce (a reload goes through setPlan).
func (c *lifecycle) reconcile(ctx context.Context) error {
	c.refresh()
	return c.announce(ctx)
}

// needsRetry says whether the last Announce failed.
func (c *lifecycle) needsRetry() bool { return c.retry }

// restoreDrained puts a node that starts drained (the flag in state_dir)
// in Drained.
func (c *lifecycle) restoreDrained(at time.Time) {
	c.node.RestoreDrained(at)
	c.publish()
}

// ready records that the data plane runs and its routes are in, and what
// to announce at full health.
func (c *lifecycle) ready(ctx context.Context, p Plan) error {
	c.plan = p
	c.refresh()
	c.node.Ready("data plane ready")
	return c.announce(ctx)
}

// waitTable records that the node has no mapping table yet, and why: it
// announces nothing until tableReady (a node with the etcd source, before
// etcd's table or the cached one is applied).
func (c *lifecycle) waitTable(cause string) {
	c.node.NoTable(cause)
	c.publish()
}

// tableReady records that the first mapping table is applied, and
// announces what the node's state now calls for.
func (c *lifecycle) tableReady(ctx context.Context) error {
	c.node.TableReady("mapping table applied")
	return c.reconcile(ctx)
}

// dataPlaneDown withdraws everything at once: the data plane stopped (its
// device was deleted) and the node cannot translate until it is re-created.
func (c *lifecycle) dataPlaneDown(ctx context.Context, cause string) error {
	c.node.DataPlaneDown(cause)
	return c.announce(ctx)
}

// setStateDir records the result of the last check of [node] state_dir
// (nil: writable), logging each change. A state_dir that cannot be written
// does not withdraw the node (translation does not need it); it makes a
// drain impossible, and status says so.
func (c *lifecycle) setStateDir(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == c.stateDirErr {
		return
	}
	if msg != "" {
		c.log.Error("[node] state_dir is not writable: a drain would be refused until it is; the node keeps serving", "dir", c.flag.dir, "err", msg)
	} else {
		c.log.Info("[node] state_dir is writable again", "dir", c.flag.dir)
	}
	c.stateDirErr = msg
	c.publish()
}

// setPlan replaces what is announced at full health and the drain timings
// (a reload; a running drain keeps the timings it started with), and
// announces accordingly.
func (c *lifecycle) setPlan(ctx context.Context, p Plan, tm drainTiming, flag drainFlag) error {
	c.plan, c.tm, c.flag = p, tm, flag
	c.refresh()
	return c.announce(ctx)
}

// setIPv4 replaces the IPv4 prefixes announced at full health (a change
// of the mapping table) and announces accordingly: the speaker changes
// only the paths that differ.
func (c *lifecycle) setIPv4(ctx context.Context, ipv4 []netip.Prefix) error {
	c.plan.IPv4 = ipv4
	return c.announce(ctx)
}

// changer is a speaker that changes some announcements without being
// given the whole set (*routing.Speaker's Change).
type changer interface {
	Change(ctx context.Context, add []routing.Announcement, del []netip.Prefix) error
}

// changeIPv4 is setIPv4 for a change of a few prefixes, added and
// removed from the plan's IPv4 list to give ipv4: it hands the speaker
// those prefixes only, with the attributes Desired would give them, so a
// change of one mapping does not cost a pass over a million announced
// prefixes (building Desired alone took 0.6 s at a million). It falls back
// to the whole set when the speaker cannot change a part, the last
// announcement failed, or the node is stopping.
func (c *lifecycle) changeIPv4(ctx context.Context, ipv4, add, del []netip.Prefix) error {
	ch, ok := c.bgp.(changer)
	if !ok || c.retry || c.stopping {
		return c.setIPv4(ctx, ipv4)
	}
	c.plan.IPv4 = ipv4
	c.publish()
	med, comms, announcing := c.node.IPv4Attributes(c.plan)
	if !announcing || len(add)+len(del) == 0 {
		return nil // no IPv4 prefix is announced: nothing to change
	}
	var as []routing.Announcement
	for _, p := range add {
		as = append(as, routing.Announcement{Prefix: p, MED: med, Communities: slices.Clone(comms)})
	}
	err := ch.Change(ctx, as, del)
	c.retry = err != nil
	if err != nil {
		c.log.Error("announce", "err", err, "added", len(add), "withdrawn", len(del))
	}
	return err
}

// setSpeaker attaches the speaker, which runs as routerID, once it runs.
func (c *lifecycle) setSpeaker(s speaker, routerID netip.Addr) {
	c.bgp, c.routerID = s, routerID
	c.publish()
}

// setMonitor attaches the health monitor once it runs.
func (c *lifecycle) setMonitor(m monitor) {
	c.hm = m
	c.publish()
}

// withdrawAll withdraws everything for good: the process is stopping.
func (c *lifecycle) withdrawAll(ctx context.Context) error {
	c.stopping = true
	return c.announce(ctx)
}

// stateName is the node's state as last published ("serving"): the
// node's record in etcd, every second. Not Status, which lists every
// announced prefix (a million of them). Safe from any goroutine.
func (c *lifecycle) stateName() string { return c.view.Load().state.String() }

// Status returns the node's status: the loop's part as last published,
// the checks, sessions, announcements and counters as they are now. Safe
// from any goroutine.
func (c *lifecycle) Status() control.Status {
	v := c.view.Load()
	s := control.Status{
		Version: c.version,
		Node: control.NodeStatus{State: v.state.String(), Since: v.since, Cause: v.cause,
			Drain: v.drainNote, BGP: v.bgp != nil, StateDir: "ok"},
		Health:    v.hm.Status(),
		Neighbors: []control.NeighborStatus{},
		Announced: []control.AnnouncedStatus{},
	}
	if v.stateDirErr != "" {
		s.Node.StateDir = "not writable: " + v.stateDirErr
	}
	if s.Health == nil {
		s.Health = []control.CheckStatus{}
	}
	if v.bgp != nil {
		s.Neighbors = append(s.Neighbors, v.bgp.Neighbors()...)
		for _, a := range v.bgp.Announced() {
			as := control.AnnouncedStatus{Prefix: a.Prefix.String(), MED: a.MED}
			for _, cm := range a.Communities {
				as.Communities = append(as.Communities, control.Community(cm))
			}
			s.Announced = append(s.Announced, as)
		}
	}
	if c.traffic != nil {
		s.Traffic = c.traffic()
	}
	if c.mappings != nil {
		s.Mappings = c.mappings()
	}
	return s
}
