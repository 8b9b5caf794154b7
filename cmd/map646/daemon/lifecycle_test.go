package daemon

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/routing"
)

// fakeSpeaker records the announcements; Announced is the last set given.
type fakeSpeaker struct {
	mu       sync.Mutex
	current  []routing.Announcement
	calls    [][]routing.Announcement
	partners []routing.PartnerRoute
	ids      map[netip.Addr]netip.Addr // PartnerRouterIDs
	// onAnnounce, when set, sees each announced set, with mu held: a
	// partner reacting to what this node announces.
	onAnnounce func(want []routing.Announcement)
	fail       error
	// block, when set, holds Announce until it is closed, after a send on
	// entered (concurrency tests).
	block, entered chan struct{}
	changes        int // calls of Change
}

func (f *fakeSpeaker) Announce(ctx context.Context, want []routing.Announcement) error {
	if f.block != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, want)
	if f.onAnnounce != nil {
		f.onAnnounce(want)
	}
	if f.fail != nil {
		return f.fail
	}
	f.current = want
	return nil
}

// Change changes current as routing.Speaker.Change does, recording the
// announced set that results as a call.
func (f *fakeSpeaker) Change(ctx context.Context, add []routing.Announcement, del []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	next := slices.DeleteFunc(slices.Clone(f.current), func(a routing.Announcement) bool {
		return slices.Contains(del, a.Prefix) || slices.ContainsFunc(add, func(b routing.Announcement) bool { return b.Prefix == a.Prefix })
	})
	next = append(next, add...)
	slices.SortFunc(next, func(a, b routing.Announcement) int { return a.Prefix.Compare(b.Prefix) })
	f.current = next
	f.calls = append(f.calls, next)
	f.changes++
	return nil
}

func (f *fakeSpeaker) Announced() []routing.Announcement {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.current)
}

func (f *fakeSpeaker) PartnerRoutes() []routing.PartnerRoute {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.partners)
}

func (f *fakeSpeaker) PartnerRouterIDs() map[netip.Addr]netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.ids)
}

func (f *fakeSpeaker) Neighbors() []control.NeighborStatus {
	return []control.NeighborStatus{{Address: "192.0.2.254", PeerAS: 65000, Role: "router", State: "established", Established: true, BFD: "off"}}
}

func (f *fakeSpeaker) history() [][]routing.Announcement {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeMonitor is a settable health monitor.
type fakeMonitor struct {
	mu     sync.Mutex
	h4, h6 bool
}

func (m *fakeMonitor) Healthy() (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.h4, m.h6
}

func (m *fakeMonitor) set(h4, h6 bool) {
	m.mu.Lock()
	m.h4, m.h6 = h4, h6
	m.mu.Unlock()
}

func (m *fakeMonitor) Status() []control.CheckStatus {
	h4, h6 := m.Healthy()
	return []control.CheckStatus{{Name: "dp", Kind: "dataplane", Up: h4 && h6, LastError: "probe lost"}}
}

// testCtl is a lifecycle served by a loop of its own, as the daemon loop
// serves it: the commands go through requests, the drain's timers are
// served, and the test's own calls (do) run on the loop's goroutine.
type testCtl struct {
	*lifecycle
	sp      *fakeSpeaker
	hm      *fakeMonitor
	pkts    atomic.Uint64
	log     logRecorder
	handler controlHandler
	calls   chan func()
	stopped chan struct{} // closed when the loop has returned
}

// newTestCtl returns a serving lifecycle whose drain samples every
// millisecond, with no linger.
func newTestCtl(t *testing.T, stateDir string) *testCtl {
	t.Helper()
	tc := &testCtl{sp: &fakeSpeaker{}, hm: &fakeMonitor{h4: true, h6: true}, calls: make(chan func())}
	log := tc.log.logger()
	now := func() time.Time { return t0 }
	tc.lifecycle = &lifecycle{
		node: NewNode(log, now), plan: testPlan, bgp: tc.sp, hm: tc.hm,
		flag:    drainFlag{dir: stateDir},
		tm:      drainTiming{Timeout: 10 * time.Second, IdlePPS: 10, Sample: time.Millisecond},
		packets: func() uint64 { return tc.pkts.Load() },
		log:     log, now: now,
	}
	tc.publish()
	tc.handler = controlHandler{tc.lifecycle, make(requests), nil}
	ctx, cancel := context.WithCancel(context.Background())
	tc.stopped = make(chan struct{})
	go tc.serve(ctx)
	t.Cleanup(func() { cancel(); <-tc.stopped })
	if err := tc.Ready(context.Background(), testPlan); err != nil {
		t.Fatal(err)
	}
	if st := tc.state(); st != Serving {
		t.Fatalf("not serving after Ready: %s", st)
	}
	return tc
}

// serve is the daemon loop's part that concerns the lifecycle.
func (tc *testCtl) serve(ctx context.Context) {
	defer close(tc.stopped)
	for {
		select {
		case r := <-tc.handler.q:
			tc.handle(ctx, r)
		case now := <-tc.drainTick():
			tc.drainSample(ctx, now)
		case <-tc.drainTimer():
			tc.drainTimerFired(ctx)
		case f := <-tc.calls:
			f()
		case <-ctx.Done():
			return
		}
	}
}

// do runs f on the loop's goroutine and waits for it; once the loop has
// returned (the test ends), it does nothing.
func (tc *testCtl) do(f func()) {
	ran := make(chan struct{})
	select {
	case tc.calls <- func() { f(); close(ran) }:
		<-ran
	case <-tc.stopped:
	}
}

// The commands, as the control socket hands them to the loop.

func (tc *testCtl) Drain(ctx context.Context, force bool, progress func(string)) (string, error) {
	return tc.handler.Drain(ctx, force, progress)
}

func (tc *testCtl) Undrain(ctx context.Context) (string, error) { return tc.handler.Undrain(ctx) }

// The daemon's own calls, on the loop.

func (tc *testCtl) Reconcile(ctx context.Context) (err error) {
	tc.do(func() { err = tc.reconcile(ctx) })
	return err
}

func (tc *testCtl) Ready(ctx context.Context, p Plan) (err error) {
	tc.do(func() { err = tc.ready(ctx, p) })
	return err
}

func (tc *testCtl) DataPlaneDown(ctx context.Context, cause string) (err error) {
	tc.do(func() { err = tc.dataPlaneDown(ctx, cause) })
	return err
}

func (tc *testCtl) WithdrawAll(ctx context.Context) (err error) {
	tc.do(func() { err = tc.withdrawAll(ctx) })
	return err
}

func (tc *testCtl) NeedsRetry() (retry bool) {
	tc.do(func() { retry = tc.needsRetry() })
	return retry
}

func (tc *testCtl) SetStateDir(err error) { tc.do(func() { tc.setStateDir(err) }) }

func (tc *testCtl) SetMonitor(m monitor) { tc.do(func() { tc.setMonitor(m) }) }

func (tc *testCtl) Plan() (p Plan) {
	tc.do(func() { p = tc.plan })
	return p
}

// state is the node's state as the status shows it.
func (tc *testCtl) state() State { return tc.view.Load().state }

// partnersFor makes a partner announce every prefix of the plan.
func partnersFor(gshut bool, except ...string) []routing.PartnerRoute {
	var out []routing.PartnerRoute
	for _, p := range append(slices.Clone(testPlan.IPv4), testPlan.Pseudo) {
		if !slices.Contains(except, p.String()) {
			out = append(out, routing.PartnerRoute{Partner: netip.MustParseAddr("192.0.2.3"), Prefix: p, GracefulShutdown: gshut})
		}
	}
	return out
}

func TestDrainRefusedWithoutPartner(t *testing.T) {
	for _, tc := range []struct {
		name     string
		partners []routing.PartnerRoute
		want     string
	}{
		{"no partner", nil, "198.51.100.0/28, 203.0.113.0/24, 64:ff9b::/96"},
		{"partner misses one", partnersFor(false, "203.0.113.0/24"), "announces 203.0.113.0/24 (without"},
		{"partner drains too", partnersFor(true), "198.51.100.0/28, 203.0.113.0/24, 64:ff9b::/96"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := newTestCtl(t, dir)
			c.sp.partners = tc.partners
			before := len(c.sp.history())
			msg, err := c.Drain(context.Background(), false, func(string) {})
			if err == nil || !strings.Contains(err.Error(), "refusing to drain") || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "-force") {
				t.Fatalf("Drain = %q, %v; want a refusal naming %s", msg, err, tc.want)
			}
			if c.state() != Serving || len(c.sp.history()) != before {
				t.Errorf("a refusal changed something: state %s, %d announcements", c.state(), len(c.sp.history())-before)
			}
			if _, err := os.Stat(filepath.Join(dir, drainFlagName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refusal wrote the drained flag: %v", err)
			}
		})
	}
}

// TestDrainProcedure: with a partner covering every prefix, a drain writes
// the flag, re-announces with GRACEFUL_SHUTDOWN and DrainMED, waits for the
// traffic, withdraws, and ends drained; a restart finds it drained.
func TestDrainProcedure(t *testing.T) {
	dir := t.TempDir()
	c := newTestCtl(t, dir)
	c.sp.partners = partnersFor(false)
	start := len(c.sp.history())
	var progress []string
	msg, err := c.Drain(context.Background(), false, func(p string) { progress = append(progress, p) })
	if err != nil || !strings.HasPrefix(msg, "drained:") {
		t.Fatalf("Drain = %q, %v", msg, err)
	}
	calls := c.sp.history()[start:]
	if len(calls) != 2 {
		t.Fatalf("%d announcements during the drain, want 2 (GSHUT, withdraw): %v", len(calls), calls)
	}
	if got := prefixesOf(calls[0]); len(got) != 3 {
		t.Errorf("GSHUT announcement of %q, want every prefix", got)
	}
	for _, a := range calls[0] {
		if a.MED != testPlan.DrainMED || !slices.Contains(a.Communities, routing.GracefulShutdown) {
			t.Errorf("GSHUT announcement %v: want MED %d and 65535:0", a, testPlan.DrainMED)
		}
	}
	if len(calls[1]) != 0 {
		t.Errorf("the drain ended with %v announced, want nothing", calls[1])
	}
	if c.state() != Drained {
		t.Errorf("state %s after the drain", c.state())
	}
	for _, want := range []string{"GRACEFUL_SHUTDOWN and MED 1000", "traffic fell to 0 packets/s", "withdrawn; translating for"} {
		if !slices.ContainsFunc(progress, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("no progress %q in %q", want, progress)
		}
	}
	if st := c.Status(); st.Node.State != "drained" || st.Node.Drain != "" {
		t.Errorf("status after the drain: %+v", st.Node)
	}

	// Drain again: a clear answer, nothing changed.
	n := len(c.sp.history())
	msg, err = c.Drain(context.Background(), false, func(string) {})
	if err != nil || !strings.HasPrefix(msg, "already drained since 2026-05-04T12:00:00Z") || len(c.sp.history()) != n {
		t.Errorf("second drain: %q, %v, %d announcements", msg, err, len(c.sp.history())-n)
	}

	// A restart: the flag puts the node in drained, and it announces nothing.
	at, drained, err := drainFlag{dir}.Load()
	if err != nil || !drained || !at.Equal(t0) {
		t.Fatalf("flag after the drain: %v %v %v", at, drained, err)
	}
	var rec logRecorder
	n2 := NewNode(rec.logger(), time.Now)
	n2.RestoreDrained(at)
	n2.Ready("x")
	n2.Health(true, true, "")
	if st, _, cause := n2.State(); st != Drained || len(n2.Desired(testPlan)) != 0 ||
		cause != "drained by an operator at 2026-05-04T12:00:00Z; map646 undrain to serve" {
		t.Errorf("restarted node: %s (%s), announces %v", st, cause, n2.Desired(testPlan))
	}

	// Undrain: the flag goes, everything is announced with the serving MED.
	msg, err = c.Undrain(context.Background())
	if err != nil || !strings.HasPrefix(msg, "undrained: serving") {
		t.Fatalf("Undrain = %q, %v", msg, err)
	}
	if _, drained, _ := (drainFlag{dir}).Load(); drained {
		t.Error("the flag survived the undrain")
	}
	last := c.sp.Announced()
	if len(last) != 3 || last[0].MED != testPlan.MED || slices.Contains(last[0].Communities, routing.GracefulShutdown) {
		t.Errorf("after undrain: %v", last)
	}
	msg, err = c.Undrain(context.Background())
	if err != nil || !strings.HasPrefix(msg, "not drained: the node is serving") {
		t.Errorf("second undrain: %q, %v", msg, err)
	}
}

// TestDrainTimeout: traffic that never falls is withdrawn after the timeout.
func TestDrainTimeout(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.tm.Timeout = 30 * time.Millisecond
	var n atomic.Uint64
	c.lifecycle.packets = func() uint64 { return n.Add(1000) } // 1000 packets a millisecond: never idle
	msg, err := c.Drain(context.Background(), true, func(string) {})
	if err != nil || !strings.HasPrefix(msg, "drained:") {
		t.Fatalf("Drain = %q, %v", msg, err)
	}
	if !strings.Contains(c.log.buf.String(), "drain_timeout 30ms passed with traffic still flowing") {
		t.Errorf("no timeout in the log:\n%s", c.log.buf.String())
	}
}

// TestDrainForced: -force drains the last node, with a warning.
func TestDrainForced(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	if _, err := c.Drain(context.Background(), true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if c.state() != Drained || !strings.Contains(c.log.buf.String(), "drain forced: these prefixes are left with no node") {
		t.Errorf("state %s, log:\n%s", c.state(), c.log.buf.String())
	}
}

// TestDrainFlagWriteFails: a drain whose flag cannot be written is refused
// and changes nothing.
func TestDrainFlagWriteFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newTestCtl(t, filepath.Join(file, "state")) // a directory under a file: cannot be created, even by root
	before := len(c.sp.history())
	_, err := c.Drain(context.Background(), true, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "cannot record the drained state in [node] state_dir") ||
		!strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("Drain: %v", err)
	}
	if c.state() != Serving || len(c.sp.history()) != before {
		t.Errorf("a refused drain changed something: %s, %d announcements", c.state(), len(c.sp.history())-before)
	}
}

// TestDrainConcurrent: a second drain or an undrain during a drain is
// refused; the first one completes.
func TestDrainConcurrent(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.sp.block, c.sp.entered = make(chan struct{}), make(chan struct{}, 1)
	var busy atomic.Bool
	busy.Store(true)
	var n atomic.Uint64
	c.lifecycle.packets = func() uint64 { // traffic flows until the test says so
		if busy.Load() {
			return n.Add(1000)
		}
		return n.Load()
	}
	done := make(chan error)
	go func() {
		_, err := c.Drain(context.Background(), true, func(string) {})
		done <- err
	}()
	<-c.sp.entered    // the first drain has begun (its GSHUT Announce)
	close(c.sp.block) // let it go on: it now waits for the traffic
	if _, err := c.Drain(context.Background(), true, func(string) {}); !errors.Is(err, errDrainBusy) {
		t.Errorf("second drain: %v", err)
	}
	if _, err := c.Undrain(context.Background()); !errors.Is(err, errDrainBusy) {
		t.Errorf("undrain during a drain: %v", err)
	}
	busy.Store(false)
	if err := <-done; err != nil {
		t.Errorf("first drain: %v", err)
	}
	if c.state() != Drained {
		t.Errorf("state %s", c.state())
	}
}

// TestHealthWithdrawsSide: a failing check withdraws its side; recovery
// re-announces.
func TestHealthWithdrawsSide(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.hm.set(false, true)
	if err := c.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := prefixesOf(c.sp.Announced()); !reflect.DeepEqual(got, []string{"64:ff9b::/96"}) || c.state() != Failed {
		t.Errorf("ipv4 side down: %s, announced %q", c.state(), got)
	}
	if !strings.Contains(c.Status().Node.Cause, "check dp (dataplane) down: probe lost") {
		t.Errorf("cause %q", c.Status().Node.Cause)
	}
	c.hm.set(true, true)
	c.Reconcile(context.Background())
	if got := prefixesOf(c.sp.Announced()); len(got) != 3 || c.state() != Serving {
		t.Errorf("recovered: %s, announced %q", c.state(), got)
	}
	// Shutdown withdraws everything, and later changes announce nothing.
	c.WithdrawAll(context.Background())
	c.Reconcile(context.Background())
	if got := c.sp.Announced(); len(got) != 0 {
		t.Errorf("after WithdrawAll: %v", got)
	}
}

// TestAnnounceFailureRetried: a failed Announce is flagged for a retry.
func TestAnnounceFailureRetried(t *testing.T) {
	c := newTestCtl(t, t.TempDir())
	c.sp.fail = errors.New("boom")
	if err := c.Reconcile(context.Background()); err == nil || !c.NeedsRetry() {
		t.Fatalf("Reconcile: %v, retry %v", err, c.NeedsRetry())
	}
	c.sp.fail = nil
	if err := c.Reconcile(context.Background()); err != nil || c.NeedsRetry() {
		t.Errorf("Reconcile: %v, retry %v", err, c.NeedsRetry())
	}
}

func TestDrainFlagStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	f := drainFlag{dir}
	if _, drained, err := f.Load(); drained || err != nil {
		t.Fatalf("missing dir: %v %v", drained, err)
	}
	if err := f.Save(t0); err != nil {
		t.Fatal(err)
	}
	if at, drained, err := f.Load(); !drained || err != nil || !at.Equal(t0) {
		t.Fatalf("after Save: %v %v %v", at, drained, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A damaged flag still counts as drained.
	os.WriteFile(f.path(), []byte("garbage"), 0o644)
	if _, drained, err := f.Load(); !drained || err != nil {
		t.Errorf("damaged flag: %v %v", drained, err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, drained, _ := f.Load(); drained {
		t.Error("drained after Remove")
	}
}

// TestDrainInterrupted: a drain the daemon's shutdown ends early tells
// its client where it stopped; the node stays draining and the flag stays,
// so it restarts drained. Both places a drain waits: for the traffic to
// fall, and in the linger.
func TestDrainInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		idle    bool   // the traffic has fallen: the drain reaches its linger
		waitFor string // the progress line after which the daemon stops
		want    string
	}{
		{"waiting for the traffic", false, "GRACEFUL_SHUTDOWN",
			"drain interrupted while waiting for the traffic to fall: context canceled; the drained flag stays: the node restarts drained"},
		{"lingering", true, "withdrawn; translating for 1m0s",
			"drain interrupted during the linger: context canceled; everything is withdrawn and the node restarts drained"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := newTestCtl(t, dir)
			c.tm.Linger = time.Minute
			var n atomic.Uint64
			c.lifecycle.packets = func() uint64 {
				if tc.idle {
					return n.Load()
				}
				return n.Add(1000)
			}
			reached := make(chan struct{})
			var once sync.Once
			type result struct {
				msg string
				err error
			}
			done := make(chan result, 1)
			go func() {
				msg, err := c.Drain(context.Background(), true, func(p string) {
					if strings.Contains(p, tc.waitFor) {
						once.Do(func() { close(reached) })
					}
				})
				done <- result{msg, err}
			}()
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
				t.Fatalf("no progress %q after 10 s", tc.waitFor)
			}
			c.do(func() { c.interruptDrain(context.Canceled) })
			r := <-done
			if r.err == nil || r.err.Error() != tc.want {
				t.Errorf("Drain = %q, %v; want the error %q", r.msg, r.err, tc.want)
			}
			if st := c.Status(); st.Node.State != "draining" || st.Node.Drain != "" {
				t.Errorf("status after the interruption: %+v; want draining with no drain running", st.Node)
			}
			if _, drained, err := (drainFlag{dir}).Load(); !drained || err != nil {
				t.Errorf("drained flag after the interruption: %v, %v", drained, err)
			}
			// No drain runs: a new one is refused as the node is draining,
			// and nothing of the old one is left to fire.
			if _, err := c.Drain(context.Background(), true, func(string) {}); !errors.Is(err, errDrainBusy) {
				t.Errorf("drain after the interruption: %v", err)
			}
		})
	}
}

// TestAskStopping: a command the loop does not take before the control
// server closes gets "map646 is stopping"; one it answered as the server
// closed gets its answer, with every progress line first.
func TestAskStopping(t *testing.T) {
	q := make(requests) // no loop reads it
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.ask(ctx, newRequest("reload", false), func(string) {}); !errors.Is(err, errStopping) {
		t.Errorf("ask with no loop: %v", err)
	}

	q = make(requests) // the loop takes it, answers, and the server closes
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		r := <-q
		r.progress("one")
		r.progress("two")
		r.answer("drained", nil)
		cancel()
	}()
	r := newRequest("drain", false)
	var lines []string
	msg, err := q.ask(ctx, r, func(p string) { lines = append(lines, p) })
	if msg != "drained" || err != nil || !reflect.DeepEqual(lines, []string{"one", "two"}) {
		t.Errorf("ask answered as the server closed: %q, %v, progress %q", msg, err, lines)
	}
}
