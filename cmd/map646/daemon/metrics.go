package daemon

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/map646/map646/translator/tun"
)

// reloadMetrics are the reloads' metrics: how many by result, and when the
// last one was tried and the last one applied everything, so that a
// reload that failed shows until one succeeds. The start counts as the
// first successful load (Prometheus's own config_last_reload_* do the
// same).
type reloadMetrics struct {
	results     *prometheus.CounterVec
	lastAttempt prometheus.Gauge
	lastSuccess prometheus.Gauge
}

// Reload results (map646_reloads_total's result label).
const (
	reloadOK      = "ok"      // every change applied
	reloadInvalid = "invalid" // configuration refused, the running one kept
	reloadFailed  = "failed"  // not every change applied
)

func newReloadMetrics(start time.Time) *reloadMetrics {
	m := &reloadMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "map646_reloads_total",
			Help: "Reloads (SIGHUP or map646 reload) by result: ok, invalid (configuration refused, the running one kept), failed (not every change applied).",
		}, []string{"result"}),
		lastAttempt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "map646_reload_last_attempt_timestamp_seconds",
			Help: "When the configuration was last loaded or a reload tried (Unix time; the start counts).",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "map646_reload_last_success_timestamp_seconds",
			Help: "When the configuration was last applied whole (Unix time; the start counts): below map646_reload_last_attempt_timestamp_seconds while the last reload failed.",
		}),
	}
	for _, r := range []string{reloadOK, reloadInvalid, reloadFailed} {
		m.results.WithLabelValues(r)
	}
	m.lastAttempt.Set(float64(start.UnixNano()) / 1e9)
	m.lastSuccess.Set(float64(start.UnixNano()) / 1e9)
	return m
}

// record counts a reload that ended at `at` with result.
func (m *reloadMetrics) record(result string, at time.Time) {
	m.results.WithLabelValues(result).Inc()
	ts := float64(at.UnixNano()) / 1e9
	m.lastAttempt.Set(ts)
	if result == reloadOK {
		m.lastSuccess.Set(ts)
	}
}

// newOffloadSelfTestMetric returns map646_tun_offload_selftest_failed, set
// by each offload self-test (selfTestOffloads): at start and whenever the
// data plane's recovery creates the device anew.
func newOffloadSelfTestMetric() *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "map646_tun_offload_selftest_failed",
		Help: "1 if the last offload self-test of the tun device (at start, or when the device was re-created) found the offload broken and switched it off (map646_tun_offload_enabled is then 0), 0 if not or not tested (the plain device has none).",
	}, []string{"offload"})
	for _, name := range tun.OffloadNames {
		g.WithLabelValues(name)
	}
	return g
}

// collectors returns every collector /metrics serves but the BGP speaker's,
// which is registered once the speaker runs (start): the data plane's
// counters, the node's state, checks and sessions, the reloads, the offload
// self-test, the build, and the Go runtime and process.
func (d *daemon) collectors() []prometheus.Collector {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "map646_build_info",
		Help: "Always 1: the map646 version and the Go version that built it.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(d.version, runtime.Version()).Set(1)
	return []prometheus.Collector{d.dp.Collector(d.cfg.Metrics.MappingSeries), nodeCollector{d.lc},
		d.reloads.results, d.reloads.lastAttempt, d.reloads.lastSuccess, d.offloadSelfTest, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
}
