package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/routing"
)

// speaker is what the controller needs of the BGP speaker
// (*routing.Speaker, adapted in wiring.go; a fake in tests).
type speaker interface {
	Announce(ctx context.Context, want []routing.Announcement) error
	Announced() []routing.Announcement
	// PartnerRoutes: the prefixes Established partner nodes announce to us.
	PartnerRoutes() []routing.PartnerRoute
	Neighbors() []control.NeighborStatus
}

// monitor is what the controller needs of the health monitor
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
}

// quietSamples is how many consecutive samples must be under IdlePPS: one
// quiet 100 ms can be a gap between bursts of a live flow.
const quietSamples = 3

// controller joins the node state machine to the speaker, the health
// monitor, the data plane's counters and the drained flag. Its methods are
// safe for concurrent use: the daemon loop, the control socket's clients
// and a running drain call them.
type controller struct {
	mu   sync.Mutex // guards what follows; held across Announce so the last state wins
	node *Node
	plan Plan
	bgp  speaker // nil without [bgp]
	hm   monitor
	flag drainFlag
	tm   drainTiming

	draining  bool   // a drain procedure runs
	drainNote string // its last progress line
	stopping  bool   // shutdown has withdrawn everything: announce nothing more
	retry     bool   // the last Announce failed
	// stateDirErr says why the last check found [node] state_dir not
	// writable ("" when it was): a drain would be refused.
	stateDirErr string

	packets func() uint64                // packets read by the data plane so far, its own probes left out (packetsRead)
	traffic func() control.TrafficStatus // the data plane's counters
	log     *slog.Logger
	now     func() time.Time
	version string // the build's, for the status
}

// healthCause names the checks that are down, for logs and status.
func (c *controller) healthCause() string {
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

// refreshLocked feeds the monitor's verdict to the node.
func (c *controller) refreshLocked() {
	h4, h6 := c.hm.Healthy()
	c.node.Health(h4, h6, c.healthCause())
}

// announceLocked gives the speaker the node's desired set.
func (c *controller) announceLocked(ctx context.Context) error {
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

// Reconcile re-reads health and announces what the state calls for. The
// daemon calls it on every health or session change and again after a
// failed Announce (a reload goes through SetPlan).
func (c *controller) Reconcile(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshLocked()
	return c.announceLocked(ctx)
}

// NeedsRetry says whether the last Announce failed.
func (c *controller) NeedsRetry() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retry
}

// Ready records that the data plane runs and its routes are in, and what
// to announce at full health.
func (c *controller) Ready(ctx context.Context, p Plan) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plan = p
	c.refreshLocked()
	c.node.Ready("data plane ready")
	return c.announceLocked(ctx)
}

// DataPlaneDown withdraws everything at once: the data plane stopped (its
// device was deleted) and the node cannot translate until it is re-created.
func (c *controller) DataPlaneDown(ctx context.Context, cause string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.node.DataPlaneDown(cause)
	return c.announceLocked(ctx)
}

// SetStateDir records the result of the last check of [node] state_dir
// (nil: writable), logging each change. A state_dir that cannot be written
// does not withdraw the node (translation does not need it); it makes a
// drain impossible, and status says so.
func (c *controller) SetStateDir(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
}

// SetPlan replaces what is announced at full health and the drain timings
// (a reload), and announces accordingly.
func (c *controller) SetPlan(ctx context.Context, p Plan, tm drainTiming, flag drainFlag) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plan, c.tm, c.flag = p, tm, flag
	c.refreshLocked()
	return c.announceLocked(ctx)
}

// Plan returns what is announced at full health.
func (c *controller) Plan() Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plan
}

// SetSpeaker attaches the speaker once it runs.
func (c *controller) SetSpeaker(s speaker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bgp = s
}

// SetMonitor attaches the health monitor once it runs.
func (c *controller) SetMonitor(m monitor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hm = m
}

// WithdrawAll withdraws everything for good: the process is stopping.
func (c *controller) WithdrawAll(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	return c.announceLocked(ctx)
}

// Status returns the node's status.
func (c *controller) Status() control.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, since, cause := c.node.State()
	s := control.Status{
		Version: c.version,
		Node: control.NodeStatus{State: st.String(), Since: since, Cause: cause,
			Drain: c.drainNote, BGP: c.bgp != nil, StateDir: "ok"},
		Health:    c.hm.Status(),
		Neighbors: []control.NeighborStatus{},
		Announced: []control.AnnouncedStatus{},
	}
	if c.stateDirErr != "" {
		s.Node.StateDir = "not writable: " + c.stateDirErr
	}
	if s.Health == nil {
		s.Health = []control.CheckStatus{}
	}
	if c.bgp != nil {
		s.Neighbors = append(s.Neighbors, c.bgp.Neighbors()...)
		for _, a := range c.bgp.Announced() {
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
	return s
}

// errDrainBusy answers a drain or undrain while a drain runs.
var errDrainBusy = errors.New("a drain is in progress")

// uncovered returns the prefixes of announced that no Established partner
// announces without GRACEFUL_SHUTDOWN: those a drain would leave with no
// node.
func uncovered(announced []routing.Announcement, partners []routing.PartnerRoute) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range announced {
		if !slices.ContainsFunc(partners, func(p routing.PartnerRoute) bool {
			return p.Prefix == a.Prefix && !p.GracefulShutdown
		}) {
			out = append(out, a.Prefix)
		}
	}
	return out
}

// Drain runs the drain procedure (drainUsage in client.go), reporting each step to
// progress (called without the lock held; it may block on a slow client).
// It returns a message for the operator, or why it refused or failed. A
// refusal changes nothing.
func (c *controller) Drain(ctx context.Context, force bool, progress func(string)) (string, error) {
	c.mu.Lock()
	st, since, _ := c.node.State()
	switch {
	case c.draining || st == Draining:
		c.mu.Unlock()
		return "", fmt.Errorf("%w (since %s)", errDrainBusy, since.Format(time.RFC3339))
	case st == Drained:
		c.mu.Unlock()
		return fmt.Sprintf("already drained since %s; nothing changed", since.Format(time.RFC3339)), nil
	}
	var announced []routing.Announcement
	if c.bgp != nil {
		announced = c.bgp.Announced()
	}
	if len(announced) > 0 {
		if lone := uncovered(announced, c.bgp.PartnerRoutes()); len(lone) > 0 {
			if !force {
				c.mu.Unlock()
				return "", fmt.Errorf("refusing to drain: no established partner node announces %s (without GRACEFUL_SHUTDOWN), so a drain would leave them with no node; nothing changed; map646 drain -force drains anyway",
					joinPrefixes(lone))
			}
			c.log.Warn("drain forced: these prefixes are left with no node", "prefixes", joinPrefixes(lone))
		}
	}
	// The flag is written before anything is announced: a drain the node
	// cannot remember across a restart is refused whole.
	if err := c.flag.Save(c.now()); err != nil {
		c.mu.Unlock()
		return "", fmt.Errorf("refusing to drain: cannot record the drained state in [node] state_dir %s: %v; nothing changed", c.flag.dir, err)
	}
	cause := "drain requested by an operator"
	if force {
		cause += " (forced)"
	}
	if err := c.node.StartDrain(cause); err != nil { // not reached: checked above
		c.mu.Unlock()
		return "", err
	}
	c.draining = true
	tm := c.tm
	if len(announced) == 0 {
		// Nothing announced (no [bgp], starting, or every side withdrawn by
		// health): there is nothing for routers to move away from.
		c.node.DrainDone("drain requested by an operator; nothing was announced")
		c.draining = false
		c.mu.Unlock()
		return "drained: nothing was announced; the node announces nothing until map646 undrain", nil
	}
	aerr := c.announceLocked(ctx)
	c.drainNote = fmt.Sprintf("announced %d prefixes with GRACEFUL_SHUTDOWN and MED %d", len(announced), c.plan.DrainMED)
	note := c.drainNote
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		c.draining, c.drainNote = false, ""
		c.mu.Unlock()
	}()
	report := func(msg string) {
		c.mu.Lock()
		c.drainNote = msg
		c.mu.Unlock()
		c.log.Info("drain", "progress", msg)
		progress(msg)
	}
	if aerr != nil {
		report("the GRACEFUL_SHUTDOWN announcement failed (" + aerr.Error() + "); the drain goes on to the withdrawal")
	} else {
		report(note)
	}

	why, err := c.waitIdle(ctx, tm, report)
	if err != nil {
		return "", fmt.Errorf("drain interrupted while waiting for the traffic to fall: %w; the drained flag stays: the node restarts drained", err)
	}
	report(why)

	c.mu.Lock()
	c.node.DrainWithdrawn()
	aerr = c.announceLocked(ctx)
	c.mu.Unlock()
	if aerr != nil {
		report("the withdrawal failed (" + aerr.Error() + "); it is retried")
	}
	report(fmt.Sprintf("withdrawn; translating for %s while routers converge", tm.Linger))
	select {
	case <-time.After(tm.Linger):
	case <-ctx.Done():
		return "", fmt.Errorf("drain interrupted during the linger: %w; everything is withdrawn and the node restarts drained", ctx.Err())
	}
	c.mu.Lock()
	c.node.DrainDone("drain complete")
	c.mu.Unlock()
	return "drained: nothing announced; the node still translates late packets; map646 undrain to serve", nil
}

// waitIdle samples the packets read (the data plane's own probes left
// out: packetsRead) every tm.Sample until the rate has been under
// tm.IdlePPS for quietSamples samples, or tm.Timeout passes. It says which.
func (c *controller) waitIdle(ctx context.Context, tm drainTiming, report func(string)) (string, error) {
	tick := time.NewTicker(tm.Sample)
	defer tick.Stop()
	timeout := time.NewTimer(tm.Timeout)
	defer timeout.Stop()
	start := time.Now()
	last, lastAt := c.packets(), time.Now()
	quiet, lastReport := 0, time.Now()
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-timeout.C:
			return fmt.Sprintf("drain_timeout %s passed with traffic still flowing; withdrawing", tm.Timeout), nil
		case now := <-tick.C:
			// The count leaves out the data plane's probes and may step
			// back by a few of them (packetsRead): no traffic then.
			n := max(c.packets(), last)
			pps := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			if pps <= float64(tm.IdlePPS) {
				quiet++
			} else {
				quiet = 0
			}
			if quiet >= quietSamples {
				return fmt.Sprintf("traffic fell to %.0f packets/s (at or under drain_idle_pps %d) after %s; withdrawing",
					pps, tm.IdlePPS, now.Sub(start).Round(time.Millisecond)), nil
			}
			if now.Sub(lastReport) >= time.Second {
				lastReport = now
				report(fmt.Sprintf("traffic %.0f packets/s, waiting for %d or less (%s left)",
					pps, tm.IdlePPS, (tm.Timeout - now.Sub(start)).Round(time.Second)))
			}
		}
	}
}

// Undrain reverses a drain: the flag goes, the node announces again.
func (c *controller) Undrain(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, since, _ := c.node.State()
	switch {
	case c.draining || st == Draining:
		return "", fmt.Errorf("%w (since %s); undrain when it has ended", errDrainBusy, since.Format(time.RFC3339))
	case st != Drained:
		return fmt.Sprintf("not drained: the node is %s since %s; nothing changed", st, since.Format(time.RFC3339)), nil
	}
	if err := c.flag.Remove(); err != nil {
		return "", fmt.Errorf("cannot undrain: %v (in [node] state_dir %s); nothing changed", err, c.flag.dir)
	}
	c.refreshLocked()
	_ = c.node.Undrain("undrained by an operator") // cannot fail: Drained was checked above
	err := c.announceLocked(ctx)
	st, _, cause := c.node.State()
	msg := fmt.Sprintf("undrained: %s (%s)", st, cause)
	if err != nil {
		msg += "; the announcement failed and is retried: " + err.Error()
	}
	return msg, nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
