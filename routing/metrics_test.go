package routing

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestCollectors: GoBGP's own collectors, registered as the daemon does,
// show the session with a router as established with the prefix the
// speaker advertises to it, and the timings of GoBGP's main loop; once the speaker
// is closed a scrape gets an error at once, not a hang.
func TestCollectors(t *testing.T) {
	port := freePort(t)
	n4 := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	n4.NextHopIPv4 = nh4
	s := newTestSpeaker(t, addrS, 65001, port, n4)
	r4 := newTestRouter(t, addrR4, 65000, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR4)
	if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4, MED: 10}}); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("IPv4 route", func() bool { return r4.route(pfx4) != nil })

	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	var established, advertised bool
	for _, m := range byName["bgp_peer_state"].GetMetric() {
		established = established || label(m, "peer") == addrR4.String() && label(m, "session_state") == "SESSION_STATE_ESTABLISHED"
	}
	for _, m := range byName["bgp_routes_advertised"].GetMetric() {
		advertised = advertised || label(m, "peer") == addrR4.String() && m.GetGauge().GetValue() == 1
	}
	if !established || !advertised {
		t.Errorf("bgp_peer_state %v, bgp_routes_advertised %v: want %s established with 1 route advertised",
			byName["bgp_peer_state"].GetMetric(), byName["bgp_routes_advertised"].GetMetric(), addrR4)
	}
	if h := byName["fsm_loop_mgmt_op_timing_sec"].GetMetric(); len(h) != 1 || h[0].GetHistogram().GetSampleCount() == 0 {
		t.Errorf("fsm_loop_mgmt_op_timing_sec %v: want the management operations so far (adding the neighbor, announcing)", h)
	}

	s.Close(context.Background())
	done := make(chan error, 1)
	go func() { _, err := reg.Gather(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a scrape of a closed speaker: no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a scrape of a closed speaker hangs")
	}
}
