package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/map646/map646/health"
	"github.com/map646/map646/lab/poll"
)

// TestReloadMetrics: a reload that fails leaves the last attempt after the
// last success until one succeeds, and each is counted by result.
func TestReloadMetrics(t *testing.T) {
	t1 := time.Unix(1_800_000_000, 0)
	m := newReloadMetrics(t1)
	check := func(when string, attempt, success time.Time, ok, invalid, failed float64) {
		t.Helper()
		if a, s := testutil.ToFloat64(m.lastAttempt), testutil.ToFloat64(m.lastSuccess); a != float64(attempt.Unix()) || s != float64(success.Unix()) {
			t.Errorf("%s: last attempt %v, last success %v; want %v, %v", when, a, s, attempt.Unix(), success.Unix())
		}
		for r, want := range map[string]float64{reloadOK: ok, reloadInvalid: invalid, reloadFailed: failed} {
			if got := testutil.ToFloat64(m.results.WithLabelValues(r)); got != want {
				t.Errorf("%s: map646_reloads_total{result=%q} = %v, want %v", when, r, got, want)
			}
		}
	}
	check("at start", t1, t1, 0, 0, 0)
	t2, t3, t4 := t1.Add(time.Minute), t1.Add(2*time.Minute), t1.Add(3*time.Minute)
	m.record(reloadInvalid, t2)
	check("after an invalid configuration", t2, t1, 0, 1, 0)
	m.record(reloadFailed, t3)
	check("after a partial reload", t3, t1, 0, 1, 1)
	m.record(reloadOK, t4)
	check("after a good reload", t4, t4, 1, 1, 1)
}

// switchProber is a data plane whose self-check fails while failing is set.
type switchProber struct{ failing atomic.Bool }

func (p *switchProber) Probe(context.Context) error {
	if p.failing.Load() {
		return errors.New("probe lost")
	}
	return nil
}

// TestFlapBetweenScrapes: a data plane check that fails for a moment
// between two scrapes (down and up again, the node failed and serving
// again) leaves the state and check gauges as they were, but the
// transition counters show it. The real health monitor drives the real
// lifecycle as the daemon loop does (its Changes -> reconcile).
func TestFlapBetweenScrapes(t *testing.T) {
	pr := &switchProber{}
	hm, err := health.NewMonitor([]health.Check{{Name: "dataplane", Kind: health.DataPlane,
		Interval: 10 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 1, Fall: 1, Withdraws: health.Both}}, pr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	lc := &lifecycle{node: NewNode(log, time.Now), hm: healthMonitor{hm}, log: log, now: time.Now}
	lc.publish()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); hm.Run(ctx) }()
	go func() { // the daemon loop's part
		defer wg.Done()
		lc.ready(ctx, Plan{})
		for {
			select {
			case <-hm.Changes():
				lc.reconcile(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	reg := prometheus.NewRegistry()
	reg.MustRegister(nodeCollector{lc})
	scrape := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += " " + l.GetName() + "=" + l.GetValue()
				}
				out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		return out
	}
	const serving, checkUp = "map646_node_state state=serving", "map646_health_check_up check=dataplane"
	const toFailed, toServing = "map646_node_state_transitions_total to=failed", "map646_node_state_transitions_total to=serving"
	const checkDown, checkRose = "map646_health_check_transitions_total check=dataplane to=down", "map646_health_check_transitions_total check=dataplane to=up"
	var before, after map[string]float64
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { before = scrape(); return before[serving] == 1 }) {
		t.Fatalf("not serving: %v", before)
	}
	pr.failing.Store(true)
	poll.Until(5*time.Second, time.Millisecond, func() bool { return lc.Status().Node.State == "failed" })
	pr.failing.Store(false)
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { after = scrape(); return after[serving] == 1 && after[toFailed] == 1 }) {
		t.Fatalf("not serving again after the flap: %v", after)
	}
	for _, k := range []string{serving, checkUp} {
		if before[k] != 1 || after[k] != 1 {
			t.Errorf("%s: %v before the flap, %v after; want 1 at both", k, before[k], after[k])
		}
	}
	for k, want := range map[string][2]float64{toFailed: {0, 1}, toServing: {1, 2}, checkDown: {0, 1}, checkRose: {1, 2}} {
		if before[k] != want[0] || after[k] != want[1] {
			t.Errorf("%s: %v before the flap, %v after; want %v, %v", k, before[k], after[k], want[0], want[1])
		}
	}
}
