package dataplane

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/map646/map646/translator/tun"
)

// TestMetrics: the counters come out as Prometheus metrics, the registry
// accepts them (names, help, label consistency), and per-mapping series
// are limited to the first mappings.
func TestMetrics(t *testing.T) {
	cfg := newConfig(t, "", `
[[mapping]]
ipv4 = "198.51.100.16/28"
ipv6 = "2001:db8:2::/124"
`)
	var batch []tun.Packet
	for _, m := range mixed() {
		batch = append(batch, pkt(m.pkt))
	}
	var served atomic.Bool
	dev := newFakeDevice(1, func(int) []tun.Packet {
		if served.Swap(true) {
			return nil
		}
		return batch
	}, nil)
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(d.Collector(2)); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP map646_mapping_packets_total Packets translated for one mapping (entry: its IPv4 side), toward its server (4to6) or from it (6to4). Exported for the first metrics.mapping_series mappings only.
# TYPE map646_mapping_packets_total counter
map646_mapping_packets_total{direction="4to6",entry="198.51.100.10"} 2
map646_mapping_packets_total{direction="4to6",entry="198.51.100.11"} 0
map646_mapping_packets_total{direction="6to4",entry="198.51.100.10"} 2
map646_mapping_packets_total{direction="6to4",entry="198.51.100.11"} 1
# HELP map646_icmp_errors_sent_total ICMP errors the translator generated and sent.
# TYPE map646_icmp_errors_sent_total counter
map646_icmp_errors_sent_total 2
# HELP map646_mappings Mappings in the table in use.
# TYPE map646_mappings gauge
map646_mappings 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"map646_mapping_packets_total", "map646_icmp_errors_sent_total", "map646_mappings"); err != nil {
		t.Error(err)
	}

	// Every verdict of the batch, with its labels.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() != "map646_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			var k []string
			for _, l := range m.GetLabel() {
				k = append(k, l.GetName()+"="+l.GetValue())
			}
			if v := m.GetCounter().GetValue(); v != 0 {
				got[strings.Join(k, ",")] = v
			}
		}
	}
	wantPackets := map[string]float64{
		"direction=4to6,reason=,verdict=forward":                   2,
		"direction=4to6,reason=ttl-expired,verdict=icmp-error":     1,
		"direction=4to6,reason=no-mapping-dst,verdict=icmp-error":  1,
		"direction=6to4,reason=,verdict=forward":                   3,
		"direction=6to4,reason=spoofed-pseudo-source,verdict=drop": 1,
		"direction=other,reason=bad-version,verdict=drop":          1,
	}
	if !mapsEqual(got, wantPackets) {
		t.Errorf("map646_packets_total:\n got %v\nwant %v", got, wantPackets)
	}
	// Every series that can count is there from the start: in both
	// directions forward, drop for each reason, icmp-error for each of the
	// translator's reasons; and two drops of packets of neither version.
	if want := 2*(1+(NumReasons-1)+(NumReasons-2)) + 2; series != want {
		t.Errorf("%d map646_packets_total series, want %d", series, want)
	}
}
