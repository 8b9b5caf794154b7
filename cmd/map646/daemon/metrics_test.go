package daemon

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
