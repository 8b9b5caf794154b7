package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/map646/map646/routing"
)

// A drain (drainUsage in cmd/map646/client.go) is a state of the
// lifecycle, not a procedure: startDrain checks, records the flag and
// re-announces with GRACEFUL_SHUTDOWN; then the loop drives it with its two
// timers, sampling the traffic on every tick until it is idle or
// drain_timeout passes (drainTimerFired), withdrawing, and lingering on the
// timer again until drained. Each step is a progress line for the client
// that asked, who gets the answer when the drain ends.
//
// Two partners drained at the same moment both pass startDrain's check:
// each still sees the other's routes without GRACEFUL_SHUTDOWN. So every
// tick of the wait looks again (contest), and the withdrawal waits at
// least tm.Settle after the GRACEFUL_SHUTDOWN for the other drain to show:
// a partner whose routes now carry GRACEFUL_SHUTDOWN where no other
// partner covers ours drains too. Both nodes see the same two router ids
// and decide alike: the lower one drains, and holds its withdrawal until
// the other's routes are back without GRACEFUL_SHUTDOWN; the higher one
// backs off (backOff): its drain is cancelled, it serves again and its
// client hears why. A node whose partners' routes are gone meanwhile is
// the last one, and backs off too. If drain_timeout passes while the
// other still drains (it was forced, or does not know the tie-break),
// the lower one backs off as well: the other withdraws regardless, and a
// drain its operator did not force must not leave the prefixes with no
// node.

// errDrainBusy answers a drain or undrain while a drain runs.
var errDrainBusy = errors.New("a drain is in progress")

// drain is a drain in progress.
type drain struct {
	req  *request    // answered when the drain ends
	tm   drainTiming // as they were when it started: a reload does not change them
	note string      // the last progress line, for the status

	// withdrawn: the traffic fell or drain_timeout passed, everything is
	// withdrawn, and timer is the linger's. Before, tick samples the
	// traffic and timer is drain_timeout's.
	withdrawn bool
	tick      *time.Ticker
	timer     *time.Timer

	// The traffic sampling (waiting for the traffic to fall).
	start      time.Time
	last       uint64 // packets read at lastAt
	lastAt     time.Time
	quiet      int // samples in a row at or under IdlePPS
	lastReport time.Time
	// rivals: the partners seen draining at the same time at the last
	// tick, which back off for this node (contest).
	rivals      []netip.Addr
	nextContest time.Time // the next tick that looks at the partners (drainSample)
}

// drainTick is the running drain's sampling tick; nil (never ready)
// when no drain samples the traffic.
func (c *lifecycle) drainTick() <-chan time.Time {
	if c.drain == nil || c.drain.tick == nil {
		return nil
	}
	return c.drain.tick.C
}

// drainTimer is the running drain's timer (drain_timeout, then the
// linger); nil when no drain runs.
func (c *lifecycle) drainTimer() <-chan time.Time {
	if c.drain == nil {
		return nil
	}
	return c.drain.timer.C
}

// uncovered returns the prefixes of announced that no Established partner
// announces without GRACEFUL_SHUTDOWN: those a drain would leave with no
// node.
func uncovered(announced []routing.Announcement, partners []routing.PartnerRoute) []netip.Prefix {
	// A set, not a search per prefix: a partner may announce a large table,
	// and a drain looks again on every tick (contest).
	covered := make(map[netip.Prefix]bool, len(partners))
	for _, p := range partners {
		if !p.GracefulShutdown {
			covered[p.Prefix] = true
		}
	}
	var out []netip.Prefix
	for _, a := range announced {
		if !covered[a.Prefix] {
			out = append(out, a.Prefix)
		}
	}
	return out
}

// rivals sorts out lone, the prefixes this node announces that no partner
// announces without GRACEFUL_SHUTDOWN: the partners announcing one of them
// with GRACEFUL_SHUTDOWN, which drain at the same time as this node, and
// the prefixes no partner announces at all any more.
func rivals(lone []netip.Prefix, partners []routing.PartnerRoute) (rs []netip.Addr, gone []netip.Prefix) {
	draining := make(map[netip.Prefix]bool)
	for _, p := range partners {
		if p.GracefulShutdown && slices.Contains(lone, p.Prefix) {
			draining[p.Prefix] = true
			if !slices.Contains(rs, p.Partner) {
				rs = append(rs, p.Partner)
			}
		}
	}
	for _, p := range lone {
		if !draining[p] {
			gone = append(gone, p)
		}
	}
	return rs, gone
}

// contest looks at the partners again while the drain waits to withdraw,
// and reports whether the drain goes on: false when this node backed off
// (the drain has ended, the node serves). What startDrain checked may
// have changed since: a partner drained at the same moment (its routes
// now carry GRACEFUL_SHUTDOWN: the tie-break), or drained, stopped or lost
// its session (its routes are gone: this node is the last, and backs
// off). A forced drain never backs off: its operator accepted leaving
// prefixes with no node.
func (c *lifecycle) contest(ctx context.Context) bool {
	d := c.drain
	if d.req.force {
		return true
	}
	start := time.Now()
	partners := c.bgp.PartnerRoutes()
	lone := uncovered(c.bgp.Announced(), partners)
	rs, gone := rivals(lone, partners)
	d.nextContest = start.Add(10 * time.Since(start))
	if len(gone) > 0 {
		c.backOff(ctx, fmt.Sprintf("no established partner node announces %s any more (a partner drained, stopped or lost its session since this drain began), so a withdrawal would leave them with no node",
			joinPrefixes(gone)))
		return false
	}
	if len(rs) > 0 {
		ids := c.bgp.PartnerRouterIDs()
		for _, r := range rs {
			// The lower router id drains. An id equal to ours (a
			// misconfiguration) or unknown: back off, the safe side.
			if id, ok := ids[r]; !ok || id.Compare(c.routerID) <= 0 {
				who := "router id unknown"
				if ok {
					who = "router id " + id.String()
				}
				c.backOff(ctx, fmt.Sprintf("partner %s (%s) drains at the same time, and draining both would leave %s with no node; of two such drains the lower router id goes on, and this node (router id %s) backs off",
					r, who, joinPrefixes(lone), c.routerID))
				return false
			}
		}
	}
	if slices.Equal(rs, d.rivals) {
		return true
	}
	if len(rs) > 0 {
		c.report(fmt.Sprintf("partner %s drains at the same time; this node has the lower router id (%s) and goes on: it withdraws once the partner has backed off",
			joinAddrs(rs), c.routerID))
	} else {
		c.report(fmt.Sprintf("partner %s backed off: it announces without GRACEFUL_SHUTDOWN again", joinAddrs(d.rivals)))
	}
	d.rivals = rs
	return true
}

// backOff cancels the drain before its withdrawal, for the reason why: the
// node serves again and the client is told.
func (c *lifecycle) backOff(ctx context.Context, why string) {
	c.log.Warn("drain backed off", "why", why)
	flagNote := ""
	if err := c.flag.Remove(); err != nil {
		flagNote = fmt.Sprintf("; the drained flag could not be removed (%v): remove it from [node] state_dir %s, or the node restarts drained", err, c.flag.dir)
	}
	c.refresh()
	_ = c.node.CancelDrain("drain backed off: " + why) // cannot fail: the drain has not withdrawn
	announceNote := ""
	if err := c.announce(ctx); err != nil {
		announceNote = "; the announcement failed and is retried: " + err.Error()
	}
	st, _, _ := c.node.State()
	c.endDrain("", fmt.Errorf("refusing to drain: %s; GRACEFUL_SHUTDOWN withdrawn, the node is %s again%s%s", why, st, flagNote, announceNote))
}

// startDrain begins the drain r asks for, or answers it at once: a
// refusal (which changes nothing), a node already drained, or a node that
// announces nothing (drained at once).
func (c *lifecycle) startDrain(ctx context.Context, r *request) {
	st, since, _ := c.node.State()
	switch {
	case c.drain != nil || st == Draining:
		r.answer("", fmt.Errorf("%w (since %s)", errDrainBusy, since.Format(time.RFC3339)))
		return
	case st == Drained:
		r.answer(fmt.Sprintf("already drained since %s; nothing changed", since.Format(time.RFC3339)), nil)
		return
	}
	var announced []routing.Announcement
	if c.bgp != nil {
		announced = c.bgp.Announced()
	}
	if len(announced) > 0 {
		if lone := uncovered(announced, c.bgp.PartnerRoutes()); len(lone) > 0 {
			if !r.force {
				r.answer("", fmt.Errorf("refusing to drain: no established partner node announces %s (without GRACEFUL_SHUTDOWN), so a drain would leave them with no node; nothing changed; map646 drain -force drains anyway",
					joinPrefixes(lone)))
				return
			}
			c.log.Warn("drain forced: these prefixes are left with no node", "prefixes", joinPrefixes(lone))
		}
	}
	// The flag is written before anything is announced: a drain the node
	// cannot remember across a restart is refused whole.
	if err := c.flag.Save(c.now()); err != nil {
		r.answer("", fmt.Errorf("refusing to drain: cannot record the drained state in [node] state_dir %s: %v; nothing changed", c.flag.dir, err))
		return
	}
	cause := "drain requested by an operator"
	if r.force {
		cause += " (forced)"
	}
	if err := c.node.StartDrain(cause); err != nil { // not reached: checked above
		r.answer("", err)
		return
	}
	if len(announced) == 0 {
		// Nothing announced (no [bgp], starting, or every side withdrawn by
		// health): there is nothing for routers to move away from.
		c.node.DrainDone("drain requested by an operator; nothing was announced")
		c.publish()
		r.answer("drained: nothing was announced; the node announces nothing until map646 undrain", nil)
		return
	}
	c.drain = &drain{req: r, tm: c.tm,
		note: fmt.Sprintf("announced %d prefixes with GRACEFUL_SHUTDOWN and MED %d", len(announced), c.plan.DrainMED)}
	if aerr := c.announce(ctx); aerr != nil {
		c.report("the GRACEFUL_SHUTDOWN announcement failed (" + aerr.Error() + "); the drain goes on to the withdrawal")
	} else {
		c.report(c.drain.note)
	}
	// Wait for the traffic to fall: sample the packets read (the data
	// plane's own probes left out: packetsRead) every tm.Sample until the
	// rate has been under tm.IdlePPS for quietSamples samples, or
	// tm.Timeout passes.
	d := c.drain
	d.tick = time.NewTicker(d.tm.Sample)
	d.timer = time.NewTimer(d.tm.Timeout)
	d.start = time.Now()
	d.last, d.lastAt = c.packets(), time.Now()
	d.lastReport = time.Now()
}

// report makes msg the drain's progress: in the status, the log, and a
// line to the client.
func (c *lifecycle) report(msg string) {
	c.drain.note = msg
	c.publish()
	c.log.Info("drain", "progress", msg)
	c.drain.req.progress(msg)
}

// drainSample is a tick of the traffic sampling.
func (c *lifecycle) drainSample(ctx context.Context, now time.Time) {
	d := c.drain
	// The count leaves out the data plane's probes and may step back by a
	// few of them (packetsRead): no traffic then.
	n := max(c.packets(), d.last)
	pps := float64(n-d.last) / now.Sub(d.lastAt).Seconds()
	d.last, d.lastAt = n, now
	if pps <= float64(d.tm.IdlePPS) {
		d.quiet++
	} else {
		d.quiet = 0
	}
	// The partners are looked at again on every tick, unless the last
	// look took long (partners announcing large tables): then at most a
	// tenth of the loop's time goes to it. Always before a withdrawal.
	if d.quiet >= quietSamples || !now.Before(d.nextContest) {
		if !c.contest(ctx) {
			return
		}
	}
	if len(d.rivals) > 0 {
		// A partner drains too and backs off for this node: its routes
		// must be back without GRACEFUL_SHUTDOWN before this node goes.
		d.quiet = 0
	}
	// Not before tm.Settle has passed since the GRACEFUL_SHUTDOWN: a
	// partner's drain requested at the same moment needs that long to show
	// (contest) when this node's traffic falls at once.
	if d.quiet >= quietSamples && now.Sub(d.start) >= d.tm.Settle {
		c.drainWithdraw(ctx, fmt.Sprintf("traffic fell to %.0f packets/s (at or under drain_idle_pps %d) after %s; withdrawing",
			pps, d.tm.IdlePPS, now.Sub(d.start).Round(time.Millisecond)))
		return
	}
	if now.Sub(d.lastReport) >= time.Second {
		d.lastReport = now
		c.report(fmt.Sprintf("traffic %.0f packets/s, waiting for %d or less (%s left)",
			pps, d.tm.IdlePPS, (d.tm.Timeout - now.Sub(d.start)).Round(time.Second)))
	}
}

// drainTimerFired is drain_timeout passing (withdraw with the traffic
// still flowing) or the end of the linger (drained).
func (c *lifecycle) drainTimerFired(ctx context.Context) {
	d := c.drain
	if !d.withdrawn {
		if !c.contest(ctx) {
			return
		}
		if len(d.rivals) > 0 {
			// The rival did not back off for this node: a forced drain, or
			// a map646 without the tie-break. It withdraws; so this node,
			// whose operator did not force, must not.
			c.backOff(ctx, fmt.Sprintf("drain_timeout %s passed while partner %s still drains (it announces %s with GRACEFUL_SHUTDOWN: a forced drain, or a map646 that does not back off), and withdrawing both would leave them with no node",
				d.tm.Timeout, joinAddrs(d.rivals), joinPrefixes(uncovered(c.bgp.Announced(), c.bgp.PartnerRoutes()))))
			return
		}
		c.drainWithdraw(ctx, fmt.Sprintf("drain_timeout %s passed with traffic still flowing; withdrawing", d.tm.Timeout))
		return
	}
	c.node.DrainDone("drain complete")
	c.endDrain("drained: nothing announced; the node still translates late packets; map646 undrain to serve", nil)
}

// drainWithdraw withdraws everything (why says what ended the wait) and
// starts the linger.
func (c *lifecycle) drainWithdraw(ctx context.Context, why string) {
	d := c.drain
	d.tick.Stop()
	d.tick = nil
	d.timer.Stop()
	c.report(why)
	c.node.DrainWithdrawn()
	if aerr := c.announce(ctx); aerr != nil {
		c.report("the withdrawal failed (" + aerr.Error() + "); it is retried")
	}
	c.report(fmt.Sprintf("withdrawn; translating for %s while routers converge", d.tm.Linger))
	d.withdrawn = true
	d.timer = time.NewTimer(d.tm.Linger)
}

// interruptDrain ends a running drain before its end (the daemon stops):
// the node stays draining, the drained flag stays, and the client is told
// where it stopped and why.
func (c *lifecycle) interruptDrain(why error) {
	if c.drain == nil {
		return
	}
	if c.drain.withdrawn {
		c.endDrain("", fmt.Errorf("drain interrupted during the linger: %w; everything is withdrawn and the node restarts drained", why))
		return
	}
	c.endDrain("", fmt.Errorf("drain interrupted while waiting for the traffic to fall: %w; the drained flag stays: the node restarts drained", why))
}

// endDrain stops the drain's timers, clears it from the status and
// answers its client.
func (c *lifecycle) endDrain(msg string, err error) {
	d := c.drain
	if d.tick != nil {
		d.tick.Stop()
	}
	d.timer.Stop()
	c.drain = nil
	c.publish()
	d.req.answer(msg, err)
}

// undrain reverses a drain: the flag goes, the node announces again.
func (c *lifecycle) undrain(ctx context.Context) (string, error) {
	st, since, _ := c.node.State()
	switch {
	case c.drain != nil || st == Draining:
		return "", fmt.Errorf("%w (since %s); undrain when it has ended", errDrainBusy, since.Format(time.RFC3339))
	case st != Drained:
		return fmt.Sprintf("not drained: the node is %s since %s; nothing changed", st, since.Format(time.RFC3339)), nil
	}
	if err := c.flag.Remove(); err != nil {
		return "", fmt.Errorf("cannot undrain: %v (in [node] state_dir %s); nothing changed", err, c.flag.dir)
	}
	c.refresh()
	_ = c.node.Undrain("undrained by an operator") // cannot fail: Drained was checked above
	err := c.announce(ctx)
	st, _, cause := c.node.State()
	msg := fmt.Sprintf("undrained: %s (%s)", st, cause)
	if err != nil {
		msg += "; the announcement failed and is retried: " + err.Error()
	}
	return msg, nil
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
