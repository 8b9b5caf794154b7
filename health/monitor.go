package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Prober is the data plane's self-check (translator/dataplane.DataPlane).
type Prober interface {
	Probe(ctx context.Context) error
}

// Sessions tells whether a BGP neighbor is established (routing.Speaker).
type Sessions interface {
	Established(netip.Addr) bool
}

// Status is one check's state, for `map646 status`.
type Status struct {
	Name      string
	Kind      string // Kind.String()
	Target    string // what it probes (empty for the data plane)
	Withdraws string // Side.String(): what the node withdraws while it is down
	Up        bool
	// Since is the last transition (the monitor's start for a check that
	// never changed).
	Since time.Time
	// LastError is the last probe's error, empty when it passed.
	LastError    string
	LastDuration time.Duration
	// Passes and Failures are consecutive (one of them is zero after the
	// first probe); Checked counts every probe.
	Passes, Failures int
	Checked          int
	// Rises and Falls count the transitions up and down since the check
	// was added (a redefinition keeps them): a check that went down and
	// up again between two looks at Up shows here.
	Rises, Falls uint64
}

// Monitor runs the checks. Build it with NewMonitor, run it with Run.
type Monitor struct {
	dp      Prober
	bgp     Sessions
	log     *slog.Logger
	changes chan struct{}

	mu      sync.Mutex
	checks  []*checker // config order
	ctx     context.Context
	running bool
	wg      sync.WaitGroup

	// Tests replace how checks probe and wait; nil: the real ones.
	probeFor func(Check) probeFunc
	wait     func(ctx context.Context, c *checker, d time.Duration) bool
	recorded func(name string)
}

type probeFunc func(ctx context.Context) error

// checker is one check and its state. st is guarded by Monitor.mu.
type checker struct {
	def   Check
	probe probeFunc
	st    Status
	stop  context.CancelFunc // ends its goroutine; nil before Run
}

// NewMonitor checks the checks and returns a monitor for them, every check
// down. dp and bgp may be nil when no check needs them.
func NewMonitor(checks []Check, dp Prober, bgp Sessions, log *slog.Logger) (*Monitor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{dp: dp, bgp: bgp, log: log.With("component", "health"), changes: make(chan struct{}, 1)}
	if err := m.validate(checks); err != nil {
		return nil, err
	}
	now := time.Now()
	for _, c := range checks {
		m.checks = append(m.checks, m.newChecker(c, false, now))
	}
	return m, nil
}

func (m *Monitor) newChecker(c Check, up bool, since time.Time) *checker {
	c.Neighbors = slices.Clone(c.Neighbors)
	ck := &checker{def: c, st: Status{
		Name: c.Name, Kind: c.Kind.String(), Target: c.Target(), Withdraws: c.Withdraws.String(),
		Up: up, Since: since,
	}}
	return ck
}

// validate refuses checks the monitor cannot run (package config gives
// the operator the precise message first).
func (m *Monitor) validate(checks []Check) error {
	seen := map[string]bool{}
	var errs []error
	for i, c := range checks {
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("health: check %d: %w", i+1, err))
			continue
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("health: check %d: name %q used twice", i+1, c.Name))
		}
		seen[c.Name] = true
		if c.Kind == DataPlane && m.dp == nil {
			errs = append(errs, fmt.Errorf("health: check %q: a dataplane check needs the data plane", c.Name))
		}
		if c.Kind == BGP && m.bgp == nil {
			errs = append(errs, fmt.Errorf("health: check %q: a bgp check needs the BGP speaker", c.Name))
		}
	}
	return errors.Join(errs...)
}

// Run probes every check on its own interval until ctx ends, then returns
// nil once every probe has stopped. Run may be called once.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("health: Run called twice")
	}
	m.running, m.ctx = true, ctx
	for _, c := range m.checks {
		m.start(c)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.wg.Wait()
	return nil
}

// start starts c's goroutine. Called with mu held, while running.
func (m *Monitor) start(c *checker) {
	ctx, cancel := context.WithCancel(m.ctx)
	c.stop = cancel
	if m.probeFor != nil {
		c.probe = m.probeFor(c.def)
	} else {
		c.probe = m.prober(c.def)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.loop(ctx, c)
	}()
}

// loop probes c every Interval (from the start of one probe to the start
// of the next) until ctx ends.
func (m *Monitor) loop(ctx context.Context, c *checker) {
	next := time.Duration(0) // the first probe at once
	for {
		if !m.sleep(ctx, c, next) {
			return
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, c.def.Timeout)
		err := c.probe(pctx)
		cancel()
		took := time.Since(start)
		if ctx.Err() != nil {
			return // stopped (shutdown or reload): not the target's fault
		}
		if err == nil && took > c.def.Timeout {
			err = fmt.Errorf("answered after %v, over the timeout %v", took.Round(time.Millisecond), c.def.Timeout)
		}
		m.record(c, err, took)
		next = max(c.def.Interval-took, 0)
	}
}

func (m *Monitor) sleep(ctx context.Context, c *checker, d time.Duration) bool {
	if m.wait != nil {
		return m.wait(ctx, c, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// record counts one probe's result and makes the transition it completes.
func (m *Monitor) record(c *checker, err error, took time.Duration) {
	m.mu.Lock()
	s := &c.st
	s.Checked++
	s.LastDuration = took
	changed := false
	if err == nil {
		s.Passes++
		s.Failures = 0
		s.LastError = ""
		if !s.Up && s.Passes >= c.def.Rise {
			s.Up, s.Since, changed = true, time.Now(), true
			s.Rises++
			m.log.Info("check up", "check", s.Name, "kind", s.Kind, "target", s.Target,
				"passes", s.Passes, "withdraws", s.Withdraws)
		}
	} else {
		s.Failures++
		s.Passes = 0
		s.LastError = err.Error()
		switch {
		case s.Up && s.Failures >= c.def.Fall:
			s.Up, s.Since, changed = false, time.Now(), true
			s.Falls++
			m.log.Warn("check down", "check", s.Name, "kind", s.Kind, "target", s.Target,
				"failures", s.Failures, "withdraws", s.Withdraws, "err", s.LastError)
		case s.Failures == 1:
			// The first failure of a streak, so that a check that stays
			// down, or one lost probe, leaves a trace too.
			m.log.Info("probe failed", "check", s.Name, "kind", s.Kind, "target", s.Target,
				"up", s.Up, "fall", c.def.Fall, "err", s.LastError)
		}
	}
	m.mu.Unlock()
	if changed {
		m.notify()
	}
	if m.recorded != nil {
		m.recorded(c.def.Name)
	}
}

func (m *Monitor) notify() {
	select {
	case m.changes <- struct{}{}:
	default: // a notification is pending already
	}
}

// Changes is notified (buffer 1) after every transition of a check, and
// after an Update.
func (m *Monitor) Changes() <-chan struct{} { return m.changes }

// Healthy reports whether each side may be announced: false for a side
// that a check that is down withdraws.
func (m *Monitor) Healthy() (ipv4, ipv6 bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ipv4, ipv6 = true, true
	for _, c := range m.checks {
		if c.st.Up {
			continue
		}
		switch c.def.Withdraws {
		case IPv4Side:
			ipv4 = false
		case IPv6Side:
			ipv6 = false
		default:
			ipv4, ipv6 = false, false
		}
	}
	return ipv4, ipv6
}

// Status returns every check's state, in configuration order.
func (m *Monitor) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, len(m.checks))
	for i, c := range m.checks {
		out[i] = c.st
	}
	return out
}

// Update replaces the checks (a reload); see the package documentation for
// what each check keeps. On an error nothing changes.
func (m *Monitor) Update(checks []Check) error {
	if err := m.validate(checks); err != nil {
		return err
	}
	m.mu.Lock()
	old := map[string]*checker{}
	for _, c := range m.checks {
		old[c.def.Name] = c
	}
	now := time.Now()
	next := make([]*checker, 0, len(checks))
	for _, def := range checks {
		o := old[def.Name]
		if o != nil && o.def.Equal(def) {
			next = append(next, o)
			delete(old, def.Name)
			continue
		}
		var c *checker
		if o != nil {
			c = m.newChecker(def, o.st.Up, o.st.Since)
			c.st.Rises, c.st.Falls = o.st.Rises, o.st.Falls
			m.log.Info("check redefined", "check", def.Name, "kind", def.Kind, "target", def.Target(), "up", o.st.Up)
		} else {
			c = m.newChecker(def, false, now)
			m.log.Info("check added", "check", def.Name, "kind", def.Kind, "target", def.Target(), "up", false)
		}
		next = append(next, c)
		if m.running {
			m.start(c)
		}
	}
	// What is left in old was redefined or removed: its goroutine ends
	// (a probe under way is cut short and not counted).
	for _, c := range old {
		if c.stop != nil {
			c.stop()
		}
		if !slices.ContainsFunc(checks, func(d Check) bool { return d.Name == c.def.Name }) {
			m.log.Info("check removed", "check", c.def.Name)
		}
	}
	m.checks = next
	m.mu.Unlock()
	m.notify() // Healthy may have changed: a down check gone, a new one down
	return nil
}
