package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// harness runs a Monitor whose probes and clock the test drives: each
// probe of a check waits for step, returns what step scripted, and step
// returns once the monitor has recorded it. No test waits on time.
type harness struct {
	t   *testing.T
	m   *Monitor
	log *syncBuffer

	mu     sync.Mutex
	ticks  map[*checker]chan probeFunc
	record chan string
}

func newHarness(t *testing.T, checks ...Check) *harness {
	t.Helper()
	h := &harness{t: t, log: &syncBuffer{}, ticks: map[*checker]chan probeFunc{}, record: make(chan string, 100)}
	m, err := NewMonitor(checks, fakeDP{}, fakeSessions{}, slog.New(slog.NewTextHandler(h.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	// A probe's result is what step sent with its tick: wait, on the
	// check's goroutine, makes it the check's next probe.
	m.probeFor = func(Check) probeFunc { return nil }
	m.wait = func(ctx context.Context, c *checker, _ time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case f := <-h.tick(c):
			c.probe = f
			return true
		}
	}
	m.recorded = func(name string) { h.record <- name }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func (h *harness) tick(c *checker) chan probeFunc {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.ticks[c]
	if ch == nil {
		ch = make(chan probeFunc)
		h.ticks[c] = ch
	}
	return ch
}

// step makes check name probe once with result f and waits until the
// monitor has recorded it.
func (h *harness) step(name string, f probeFunc) {
	h.t.Helper()
	h.m.mu.Lock()
	var c *checker
	for _, x := range h.m.checks {
		if x.def.Name == name {
			c = x
		}
	}
	h.m.mu.Unlock()
	if c == nil {
		h.t.Fatalf("no check %q", name)
	}
	timeout := time.After(5 * time.Second)
	select {
	case h.tick(c) <- f:
	case <-timeout:
		h.t.Fatalf("check %q never waited for its next probe", name)
	}
	select {
	case got := <-h.record:
		if got != name {
			h.t.Fatalf("recorded a probe of %q, want %q", got, name)
		}
	case <-timeout:
		h.t.Fatalf("the probe of %q was never recorded", name)
	}
}

func pass(context.Context) error { return nil }

func fail(msg string) probeFunc {
	return func(context.Context) error { return errors.New(msg) }
}

func (h *harness) status(name string) Status {
	h.t.Helper()
	for _, s := range h.m.Status() {
		if s.Name == name {
			return s
		}
	}
	h.t.Fatalf("no status for %q", name)
	return Status{}
}

// changed reports whether a change notification is pending, consuming it.
// The monitor notifies before it records, so after step it is there.
func (h *harness) changed() bool {
	select {
	case <-h.m.Changes():
		return true
	default:
		return false
	}
}

func (h *harness) wantHealthy(v4, v6 bool) {
	h.t.Helper()
	if g4, g6 := h.m.Healthy(); g4 != v4 || g6 != v6 {
		h.t.Fatalf("Healthy() = %v, %v; want %v, %v", g4, g6, v4, v6)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeDP struct{}

func (fakeDP) Probe(context.Context) error { return nil }

type fakeSessions map[netip.Addr]bool

func (f fakeSessions) Established(a netip.Addr) bool { return f[a] }

func dpCheck(name string, rise, fall int, side Side) Check {
	return Check{Name: name, Kind: DataPlane, Interval: time.Second, Timeout: 500 * time.Millisecond,
		Rise: rise, Fall: fall, Withdraws: side}
}

// TestRiseFall: a check starts down, is up after exactly Rise passes,
// survives Fall-1 failures in a row (no flap on one lost probe), and goes
// down on the Fall-th, each transition notified, logged with its cause,
// and visible in Status.
func TestRiseFall(t *testing.T) {
	h := newHarness(t, dpCheck("dp", 3, 2, Both))
	h.wantHealthy(false, false)
	if s := h.status("dp"); s.Up || s.Kind != "dataplane" || s.Withdraws != "all" {
		t.Fatalf("at start: %+v", s)
	}
	h.step("dp", pass)
	h.step("dp", pass)
	if h.changed() || h.status("dp").Up {
		t.Fatal("up after 2 passes; rise is 3")
	}
	h.step("dp", pass)
	if !h.changed() {
		t.Fatal("no change notified on the 3rd pass")
	}
	h.wantHealthy(true, true)
	if s := h.status("dp"); !s.Up || s.Passes != 3 || s.Checked != 3 {
		t.Fatalf("after 3 passes: %+v", s)
	}

	h.step("dp", fail("lost one"))
	if h.changed() || !h.status("dp").Up {
		t.Fatal("one failure took the check down; fall is 2")
	}
	if s := h.status("dp"); s.LastError != "lost one" || s.Failures != 1 {
		t.Fatalf("after one failure: %+v", s)
	}
	h.step("dp", pass) // the streak is broken
	h.step("dp", fail("again"))
	if !h.status("dp").Up {
		t.Fatal("two failures with a pass between took the check down")
	}
	h.step("dp", fail("device gone"))
	if !h.changed() {
		t.Fatal("no change notified on the 2nd failure in a row")
	}
	h.wantHealthy(false, false)
	s := h.status("dp")
	if s.Up || s.Failures != 2 || s.LastError != "device gone" || s.Checked != 7 {
		t.Fatalf("after 2 failures in a row: %+v", s)
	}
	if log := h.log.String(); !strings.Contains(log, `msg="check down" component=health check=dp`) ||
		!strings.Contains(log, `err="device gone"`) || !strings.Contains(log, `msg="check up" component=health check=dp`) {
		t.Fatalf("transitions not logged with their cause:\n%s", log)
	}
	// Rise counts from zero again.
	h.step("dp", pass)
	h.step("dp", pass)
	if h.status("dp").Up {
		t.Fatal("up after 2 passes following a fall")
	}
}

// TestTransitionsCounted: a check that goes down and up again between two
// looks at it (a 200 ms flap between two scrapes) is up at both, but its
// Falls and Rises say it flapped; a reload that redefines it keeps them,
// so the metrics' counters do not go back.
func TestTransitionsCounted(t *testing.T) {
	c := dpCheck("dp", 1, 1, Both)
	h := newHarness(t, c)
	h.step("dp", pass)
	before := h.status("dp")
	h.step("dp", fail("a short outage"))
	h.step("dp", pass)
	after := h.status("dp")
	if !before.Up || !after.Up || before.Rises != 1 || before.Falls != 0 || after.Rises != 2 || after.Falls != 1 {
		t.Fatalf("before the flap %+v, after %+v: want up at both, rises 1 then 2, falls 0 then 1", before, after)
	}
	c.Timeout = 200 * time.Millisecond
	if err := h.m.Update([]Check{c}); err != nil {
		t.Fatal(err)
	}
	if s := h.status("dp"); s.Checked != 0 || s.Rises != 2 || s.Falls != 1 {
		t.Fatalf("redefined: %+v; want its counts restarted but rises 2, falls 1 kept", s)
	}
}

// TestHealthySides: a check that is down withdraws its side only.
func TestHealthySides(t *testing.T) {
	h := newHarness(t, dpCheck("v4", 1, 1, IPv4Side), dpCheck("v6", 1, 1, IPv6Side), dpCheck("all", 1, 1, Both))
	for _, n := range []string{"v4", "v6"} {
		h.step(n, pass)
	}
	h.wantHealthy(false, false) // "all" is still down
	h.step("all", pass)
	h.wantHealthy(true, true)
	h.step("v4", fail("x"))
	h.wantHealthy(false, true)
	h.step("v4", pass)
	h.step("v6", fail("x"))
	h.wantHealthy(true, false)
	h.step("v4", fail("x"))
	h.wantHealthy(false, false)
	h.step("v4", pass)
	h.step("v6", pass)
	h.step("all", fail("x"))
	h.wantHealthy(false, false)
}

// TestProbeTimeout: a probe that ends well but after its timeout fails.
func TestProbeTimeout(t *testing.T) {
	c := dpCheck("slow", 1, 1, Both)
	c.Timeout = 20 * time.Millisecond
	h := newHarness(t, c)
	h.step("slow", func(ctx context.Context) error { <-ctx.Done(); return nil })
	if s := h.status("slow"); s.Up || !strings.Contains(s.LastError, "over the timeout 20ms") {
		t.Fatalf("%+v", s)
	}
}

// TestUpdate: an unchanged check keeps everything, a redefined one keeps
// its state but restarts its counts, a new one starts down, a removed one
// leaves the status; a refused update changes nothing.
func TestUpdate(t *testing.T) {
	a, b := dpCheck("a", 1, 1, Both), dpCheck("b", 1, 1, Both)
	h := newHarness(t, a, b)
	h.step("a", pass)
	h.step("a", pass)
	h.step("b", pass)
	h.wantHealthy(true, true)
	h.changed()

	bad := []Check{a, a}
	if err := h.m.Update(bad); err == nil || !strings.Contains(err.Error(), `name "a" used twice`) {
		t.Fatalf("Update with a name twice: %v", err)
	}
	b2 := b
	b2.Timeout = 200 * time.Millisecond
	c := dpCheck("c", 1, 1, IPv6Side)
	if err := h.m.Update([]Check{a, b2, c}); err != nil {
		t.Fatal(err)
	}
	if !h.changed() {
		t.Error("Update notified no change")
	}
	if s := h.status("a"); !s.Up || s.Checked != 2 {
		t.Errorf("unchanged a: %+v", s)
	}
	if s := h.status("b"); !s.Up || s.Checked != 0 {
		t.Errorf("redefined b: %+v", s)
	}
	if s := h.status("c"); s.Up || s.Withdraws != "ipv6" {
		t.Errorf("new c: %+v", s)
	}
	h.wantHealthy(true, false)
	h.step("a", pass) // a's goroutine is the one it had
	if s := h.status("a"); s.Checked != 3 {
		t.Errorf("a after one more probe: %+v", s)
	}
	h.step("b", fail("new b fails"))
	h.wantHealthy(false, false)
	if err := h.m.Update([]Check{a}); err != nil {
		t.Fatal(err)
	}
	h.wantHealthy(true, true)
	if st := h.m.Status(); len(st) != 1 || st[0].Name != "a" {
		t.Errorf("status after removing b and c: %+v", st)
	}
}

// TestValidate: checks the monitor cannot run are refused, by name.
func TestValidate(t *testing.T) {
	ok := dpCheck("dp", 1, 1, Both)
	for _, tc := range []struct {
		name   string
		checks []Check
		dp     Prober
		bgp    Sessions
		want   string
	}{
		{"timeout over interval", []Check{func() Check { c := ok; c.Timeout = 2 * time.Second; return c }()}, fakeDP{}, nil,
			"dp: timeout 2s must be shorter than the interval 1s"},
		{"rise zero", []Check{func() Check { c := ok; c.Rise = 0; return c }()}, fakeDP{}, nil, "rise 0 and fall 1 must be at least 1"},
		{"no data plane", []Check{ok}, nil, nil, `check "dp": a dataplane check needs the data plane`},
		{"no speaker", []Check{{Name: "b", Kind: BGP, Neighbors: []netip.Addr{netip.MustParseAddr("2001:db8::1")},
			Interval: time.Second, Timeout: time.Millisecond, Rise: 1, Fall: 1}}, nil, nil, `check "b": a bgp check needs the BGP speaker`},
		{"icmp6 to IPv4", []Check{{Name: "i", Kind: ICMPv6, Addr: netip.MustParseAddr("192.0.2.1"),
			Interval: time.Second, Timeout: time.Millisecond, Rise: 1, Fall: 1}}, nil, nil, "icmp6 target 192.0.2.1 is not an IPv6 address"},
		{"http without scheme", []Check{{Name: "h", Kind: HTTP, URL: "[2001:db8::1]/x",
			Interval: time.Second, Timeout: time.Millisecond, Rise: 1, Fall: 1}}, nil, nil, `http target "[2001:db8::1]/x" is not an http or https URL`},
		{"tcp without port", []Check{{Name: "t", Kind: TCP,
			Interval: time.Second, Timeout: time.Millisecond, Rise: 1, Fall: 1}}, nil, nil, "tcp target invalid AddrPort is not an address and port"},
	} {
		_, err := NewMonitor(tc.checks, tc.dp, tc.bgp, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestRunRealClock: with real timers and probes, a check rises, then falls
// Fall intervals after its target fails (not on the first failure), with
// Changes notified each time.
func TestRunRealClock(t *testing.T) {
	var failing atomic.Bool
	dp := proberFunc(func(context.Context) error {
		if failing.Load() {
			return errors.New("probe lost")
		}
		return nil
	})
	const interval = 10 * time.Millisecond
	log := &syncBuffer{}
	m, err := NewMonitor([]Check{{Name: "dp", Kind: DataPlane, Interval: interval, Timeout: 5 * time.Millisecond,
		Rise: 2, Fall: 3}}, dp, nil, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(up bool) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case <-m.Changes():
				if m.Status()[0].Up == up {
					return
				}
			case <-timeout:
				t.Fatalf("no transition to up=%v within 5 s: %+v", up, m.Status()[0])
			}
		}
	}
	wait(true)
	failing.Store(true)
	wait(false)
	// The transition came with exactly Fall failures in a row.
	if l := log.String(); !strings.Contains(l, `msg="check down" component=health check=dp kind=dataplane target="" failures=3 withdraws=all err="probe lost"`) {
		t.Errorf("the transition's log line:\n%s", l)
	}
}

type proberFunc func(context.Context) error

func (f proberFunc) Probe(ctx context.Context) error { return f(ctx) }
