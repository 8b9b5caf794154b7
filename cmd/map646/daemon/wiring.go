package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/health"
	"github.com/map646/map646/routing"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
)

// bgpSpeaker adapts *routing.Speaker to the lifecycle's speaker.
type bgpSpeaker struct{ *routing.Speaker }

func (s bgpSpeaker) Neighbors() []control.NeighborStatus {
	var out []control.NeighborStatus
	for _, n := range s.Speaker.Neighbors() {
		role := "router"
		if n.Role == routing.Partner {
			role = "partner"
		}
		fams := []string{}
		for _, f := range n.Families {
			fams = append(fams, f.String())
		}
		out = append(out, control.NeighborStatus{
			Address: n.Address.String(), PeerAS: n.PeerAS, Description: n.Description, Role: role,
			Families: fams, State: n.State, Established: n.Established, Since: n.Since,
			Sent: n.PrefixesSent, Received: n.PrefixesReceived, LastError: n.LastError, BFD: n.BFD,
		})
	}
	return out
}

// healthMonitor adapts *health.Monitor to the lifecycle's monitor.
type healthMonitor struct{ *health.Monitor }

func (m healthMonitor) Status() []control.CheckStatus {
	var out []control.CheckStatus
	for _, s := range m.Monitor.Status() {
		out = append(out, control.CheckStatus{
			Name: s.Name, Kind: s.Kind, Target: s.Target, Withdraws: s.Withdraws, Up: s.Up, Since: s.Since,
			LastError: s.LastError, LastDurationMS: float64(s.LastDuration.Microseconds()) / 1000,
			Passes: s.Passes, Failures: s.Failures, Checked: s.Checked, Rises: s.Rises, Falls: s.Falls,
		})
	}
	return out
}

// planOf is what the node announces at full health under cfg with the
// translator tr (whose table may be newer than cfg's during a reload).
func planOf(cfg *config.Config, tr *translator.Translator) Plan {
	return Plan{
		IPv4:        ipv4Announced(dataplane.Prefixes(tr), cfg.BGP.Aggregates),
		Pseudo:      tr.Config().PseudoPrefix,
		MED:         cfg.BGP.MED,
		DrainMED:    cfg.BGP.DrainMED,
		Communities: cfg.BGP.Communities,
	}
}

// timingOf is the drain's part of [node].
func timingOf(n config.Node) drainTiming {
	return drainTiming{Timeout: n.DrainTimeout, IdlePPS: n.DrainIdlePPS, Linger: n.Linger, Sample: 100 * time.Millisecond, Settle: time.Second}
}

// nodeCollector exports the node's state, checks and sessions, read from
// the lifecycle at each scrape.
type nodeCollector struct{ c *lifecycle }

var (
	nodeStateDesc = prometheus.NewDesc("map646_node_state",
		"1 for the node's current state (starting, serving, draining, drained, failed), 0 for the others.", []string{"state"}, nil)
	checkUpDesc = prometheus.NewDesc("map646_health_check_up",
		"1 while the health check is up.", []string{"check"}, nil)
	neighborUpDesc = prometheus.NewDesc("map646_bgp_neighbor_established",
		"1 while the BGP session with the neighbor is established.", []string{"neighbor"}, nil)
	announcedDesc = prometheus.NewDesc("map646_announced_prefixes",
		"Prefixes the speaker announces now.", nil, nil)
	// The transitions are counters so that a state left again between two
	// scrapes (a check down for 200 ms) still shows: the gauges above
	// only say where the node is at the scrape.
	stateTransitionsDesc = prometheus.NewDesc("map646_node_state_transitions_total",
		"Transitions of the node into each state (to: starting, serving, draining, drained, failed) since the process started.", []string{"to"}, nil)
	checkTransitionsDesc = prometheus.NewDesc("map646_health_check_transitions_total",
		"Transitions of the health check (to: up, down) since it was added (its first rise counts: every check starts down); a check redefined by a reload keeps its counts.", []string{"check", "to"}, nil)
)

func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodeStateDesc
	ch <- checkUpDesc
	ch <- neighborUpDesc
	ch <- announcedDesc
	ch <- stateTransitionsDesc
	ch <- checkTransitionsDesc
}

func (n nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := n.c.Status()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, st := range States {
		ch <- prometheus.MustNewConstMetric(nodeStateDesc, prometheus.GaugeValue, b(s.Node.State == st.String()), st.String())
		ch <- prometheus.MustNewConstMetric(stateTransitionsDesc, prometheus.CounterValue, float64(n.c.node.Entered(st)), st.String())
	}
	for _, c := range s.Health {
		ch <- prometheus.MustNewConstMetric(checkUpDesc, prometheus.GaugeValue, b(c.Up), c.Name)
		ch <- prometheus.MustNewConstMetric(checkTransitionsDesc, prometheus.CounterValue, float64(c.Rises), c.Name, "up")
		ch <- prometheus.MustNewConstMetric(checkTransitionsDesc, prometheus.CounterValue, float64(c.Falls), c.Name, "down")
	}
	for _, nb := range s.Neighbors {
		ch <- prometheus.MustNewConstMetric(neighborUpDesc, prometheus.GaugeValue, b(nb.Established), nb.Address)
	}
	ch <- prometheus.MustNewConstMetric(announcedDesc, prometheus.GaugeValue, float64(len(s.Announced)))
}
