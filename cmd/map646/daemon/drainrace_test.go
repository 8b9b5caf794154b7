package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/map646/map646/routing"
)

// partnerA is the partner of partnersFor.
var partnerA = netip.MustParseAddr("192.0.2.3")

// drainsAlong makes the fake partner drain at the same moment as the node:
// it announces every prefix with GRACEFUL_SHUTDOWN once the node does.
// Before, it covers every prefix, so the node's drain passes startDrain.
func drainsAlong(c *testCtl, partnerID string) {
	c.sp.partners = partnersFor(false)
	c.sp.ids = map[netip.Addr]netip.Addr{partnerA: netip.MustParseAddr(partnerID)}
	c.sp.onAnnounce = func(want []routing.Announcement) {
		if len(want) > 0 && slices.Contains(want[0].Communities, routing.GracefulShutdown) {
			c.sp.partners = partnersFor(true)
		}
	}
}

// TestConcurrentDrainBacksOff: the node and its partner drain at the same
// moment, and the partner's router id is lower (or equal: a
// misconfiguration; or unknown): the node backs off, serves again with its
// serving attributes and no flag, and its client hears why.
func TestConcurrentDrainBacksOff(t *testing.T) {
	for _, tc := range []struct {
		name, partnerID, who string
	}{
		{"lower partner", "192.0.2.3", "router id 192.0.2.3"},
		{"equal router ids", "192.0.2.9", "router id 192.0.2.9"},
		{"unknown router id", "", "router id unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := newTestCtl(t, dir)
			c.do(func() { c.routerID = netip.MustParseAddr("192.0.2.9") })
			c.sp.mu.Lock()
			drainsAlong(c, "192.0.2.3")
			switch tc.partnerID {
			case "":
				c.sp.ids = nil
			default:
				c.sp.ids[partnerA] = netip.MustParseAddr(tc.partnerID)
			}
			c.sp.mu.Unlock()
			msg, err := c.Drain(context.Background(), false, func(string) {})
			want := "refusing to drain: partner 192.0.2.3 (" + tc.who + ") drains at the same time, and draining both would leave 198.51.100.0/28, 203.0.113.0/24, 64:ff9b::/96 with no node; of two such drains the lower router id goes on, and this node (router id 192.0.2.9) backs off; GRACEFUL_SHUTDOWN withdrawn, the node is serving again"
			if err == nil || err.Error() != want {
				t.Fatalf("Drain = %q, %v\nwant the error %s", msg, err, want)
			}
			if c.state() != Serving {
				t.Errorf("state %s after backing off, want serving", c.state())
			}
			last := c.sp.Announced()
			if len(last) != 3 {
				t.Fatalf("after backing off: %v announced, want every prefix", last)
			}
			for _, a := range last {
				if a.MED != testPlan.MED || slices.Contains(a.Communities, routing.GracefulShutdown) {
					t.Errorf("after backing off: %v; want MED %d without GRACEFUL_SHUTDOWN", a, testPlan.MED)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, drainFlagName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the drained flag is still there after backing off: %v", err)
			}
			for _, call := range c.sp.history() {
				if len(call) == 0 {
					t.Errorf("the node withdrew while backing off: %v", c.sp.history())
				}
			}
			if !strings.Contains(c.log.buf.String(), `"msg":"drain backed off"`) {
				t.Errorf("no \"drain backed off\" in the log:\n%s", c.log.buf.String())
			}
		})
	}
}

// TestConcurrentDrainGoesOn: the node and its partner drain at the same
// moment and the node's router id is the lower: it goes on, but withdraws
// only once the partner announces without GRACEFUL_SHUTDOWN again (the
// partner backed off), even though the traffic fell long before.
func TestConcurrentDrainGoesOn(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.do(func() { c.routerID = netip.MustParseAddr("192.0.2.1") })
	var partnerBack atomic.Bool
	var withdrawnEarly atomic.Bool
	c.sp.mu.Lock()
	drainsAlong(c, "192.0.2.3")
	gshut := c.sp.onAnnounce
	c.sp.onAnnounce = func(want []routing.Announcement) {
		if len(want) == 0 && !partnerBack.Load() {
			withdrawnEarly.Store(true)
		}
		gshut(want)
	}
	c.sp.mu.Unlock()
	var progress []string
	msg, err := c.Drain(context.Background(), false, func(p string) {
		progress = append(progress, p)
		if strings.HasPrefix(p, "partner 192.0.2.3 drains at the same time") {
			// The partner backs off 50 samples later: without the hold,
			// the idle node would have withdrawn after 3.
			go func() {
				time.Sleep(50 * time.Millisecond)
				c.sp.mu.Lock()
				c.sp.partners = partnersFor(false)
				partnerBack.Store(true)
				c.sp.mu.Unlock()
			}()
		}
	})
	if err != nil || !strings.HasPrefix(msg, "drained:") {
		t.Fatalf("Drain = %q, %v", msg, err)
	}
	if withdrawnEarly.Load() {
		t.Error("the node withdrew while the partner still announced with GRACEFUL_SHUTDOWN")
	}
	for _, want := range []string{
		"partner 192.0.2.3 drains at the same time; this node has the lower router id (192.0.2.1) and goes on: it withdraws once the partner has backed off",
		"partner 192.0.2.3 backed off: it announces without GRACEFUL_SHUTDOWN again",
	} {
		if !slices.Contains(progress, want) {
			t.Errorf("no progress %q in %q", want, progress)
		}
	}
	if c.state() != Drained {
		t.Errorf("state %s, want drained", c.state())
	}
}

// TestConcurrentForcedDrain: a forced drain never backs off: its operator
// accepted leaving prefixes with no node.
func TestConcurrentForcedDrain(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.do(func() { c.routerID = netip.MustParseAddr("192.0.2.9") })
	c.sp.mu.Lock()
	drainsAlong(c, "192.0.2.3")
	c.sp.mu.Unlock()
	msg, err := c.Drain(context.Background(), true, func(string) {})
	if err != nil || !strings.HasPrefix(msg, "drained:") || c.state() != Drained {
		t.Errorf("forced Drain = %q, %v; state %s", msg, err, c.state())
	}
}

// TestDrainPartnerGone: the partner covered every prefix when the drain
// began, and its routes are gone before the withdrawal (it drained,
// stopped or lost its session): the node is the last one and backs off.
func TestDrainPartnerGone(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.sp.mu.Lock()
	c.sp.partners = partnersFor(false)
	c.sp.onAnnounce = func(want []routing.Announcement) {
		if len(want) > 0 && slices.Contains(want[0].Communities, routing.GracefulShutdown) {
			c.sp.partners = nil
		}
	}
	c.sp.mu.Unlock()
	_, err := c.Drain(context.Background(), false, func(string) {})
	want := "refusing to drain: no established partner node announces 198.51.100.0/28, 203.0.113.0/24, 64:ff9b::/96 any more (a partner drained, stopped or lost its session since this drain began), so a withdrawal would leave them with no node; GRACEFUL_SHUTDOWN withdrawn, the node is serving again"
	if err == nil || err.Error() != want {
		t.Fatalf("Drain: %v\nwant the error %s", err, want)
	}
	if c.state() != Serving {
		t.Errorf("state %s, want serving", c.state())
	}
	for _, call := range c.sp.history() {
		if len(call) == 0 {
			t.Errorf("the node withdrew: %v", c.sp.history())
		}
	}
}

// TestDrainSettle: a node whose traffic is idle at once still keeps its
// GRACEFUL_SHUTDOWN announcement for Settle before it withdraws, so that
// a partner drained at the same moment can show.
func TestDrainSettle(t *testing.T) {
	const settle = 200 * time.Millisecond
	c := newTestCtl(t, t.TempDir())
	c.do(func() { c.tm.Settle = settle })
	var gshutAt, withdrawnAt time.Time
	c.sp.mu.Lock()
	c.sp.partners = partnersFor(false)
	c.sp.onAnnounce = func(want []routing.Announcement) {
		switch {
		case len(want) == 0:
			withdrawnAt = time.Now()
		case slices.Contains(want[0].Communities, routing.GracefulShutdown):
			gshutAt = time.Now()
		}
	}
	c.sp.mu.Unlock()
	if msg, err := c.Drain(context.Background(), false, func(string) {}); err != nil || !strings.HasPrefix(msg, "drained:") {
		t.Fatalf("Drain = %q, %v", msg, err)
	}
	c.sp.mu.Lock()
	held := withdrawnAt.Sub(gshutAt)
	c.sp.mu.Unlock()
	t.Logf("GRACEFUL_SHUTDOWN held %v before the withdrawal (idle traffic)", held.Round(time.Millisecond))
	if held < settle {
		t.Errorf("withdrawn %v after the GRACEFUL_SHUTDOWN, want at least %v", held, settle)
	}
}

// TestConcurrentDrainRivalStays: the node has the lower router id, and its
// partner drains at the same moment but never backs off (a forced drain,
// or a map646 without the tie-break). At drain_timeout the node must not
// withdraw as well: it backs off, serves again, and its client hears which
// partner still drains.
func TestConcurrentDrainRivalStays(t *testing.T) {
	dir := t.TempDir()
	c := newTestCtl(t, dir)
	c.do(func() {
		c.routerID = netip.MustParseAddr("192.0.2.1")
		c.tm.Timeout = 50 * time.Millisecond
	})
	c.sp.mu.Lock()
	drainsAlong(c, "192.0.2.3")
	c.sp.mu.Unlock()
	msg, err := c.Drain(context.Background(), false, func(string) {})
	want := "refusing to drain: drain_timeout 50ms passed while partner 192.0.2.3 still drains (it announces 198.51.100.0/28, 203.0.113.0/24, 64:ff9b::/96 with GRACEFUL_SHUTDOWN: a forced drain, or a map646 that does not back off), and withdrawing both would leave them with no node; GRACEFUL_SHUTDOWN withdrawn, the node is serving again"
	if err == nil || err.Error() != want {
		t.Fatalf("Drain = %q, %v\nwant the error %s", msg, err, want)
	}
	if c.state() != Serving {
		t.Errorf("state %s after backing off, want serving", c.state())
	}
	for _, call := range c.sp.history() {
		if len(call) == 0 {
			t.Errorf("the node withdrew while its partner still drained: %v", c.sp.history())
		}
	}
	for _, a := range c.sp.Announced() {
		if slices.Contains(a.Communities, routing.GracefulShutdown) {
			t.Errorf("after backing off: %v still carries GRACEFUL_SHUTDOWN", a)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, drainFlagName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the drained flag is still there after backing off: %v", err)
	}
}
