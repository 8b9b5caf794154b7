package dataplane

// Issue 13: the path MTU signals have an ICMP error budget of their own
// (point 5), and no packet is translated toward the node itself (point 1).

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
	"github.com/map646/map646/translator/tun"
)

// tooBig4 is a client's DF packet of 1520 bytes: 1540 as IPv6, over the
// test configuration's IPv6 MTU (1520): it earns Fragmentation Needed.
var tooBig4 = pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
	pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK, Window: 65535}, make([]byte, 1520-40))

// ttlFlood4 is a client's packet with TTL 1: it earns Time Exceeded.
var ttlFlood4 = pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 33434, make([]byte, 32))

// TestPMTUSignalsSurviveTTLFlood: a flood of TTL-1 packets uses up the ICMP
// error bucket; the Fragmentation Needed messages that come after it are
// still sent, from the path MTU signals' own bucket. With one bucket for
// all (before issue 13) every one of them was held back.
func TestPMTUSignalsSurviveTTLFlood(t *testing.T) {
	cfg := newConfig(t, "", "")
	cfg.Translator.ICMPErrorRate, cfg.Translator.ICMPErrorBurst = 1, 10
	cfg.Translator.ICMPPMTUErrorRate, cfg.Translator.ICMPPMTUErrorBurst = 1, 5
	var batch []tun.Packet
	for range 50 {
		batch = append(batch, pkt(ttlFlood4))
	}
	for range 5 {
		batch = append(batch, pkt(tooBig4))
	}
	dev, written := oneBatch(batch)
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)

	s := d.Stats()
	if s.PMTUErrorsSent != 5 || s.PMTUErrorsSuppressed != 0 {
		t.Errorf("path MTU signals: %d sent, %d suppressed; want 5, 0", s.PMTUErrorsSent, s.PMTUErrorsSuppressed)
	}
	if s.ICMPErrorsSent != 10+5 || s.ICMPErrorsSuppressed != 40 {
		t.Errorf("ICMP errors: %d sent, %d suppressed; want 15 (10 Time Exceeded, the burst, and 5), 40", s.ICMPErrorsSent, s.ICMPErrorsSuppressed)
	}
	var fragNeeded, timeExceeded int
	for _, b := range written() {
		p, err := pt.Check(b)
		if err != nil {
			t.Fatalf("a written packet is malformed: %v", err)
		}
		switch {
		case p.ICMP == nil:
			t.Errorf("a written packet is not an ICMP error: %+v", p)
		case p.ICMP.Type == 3 && p.ICMP.Code == 4 && binary.BigEndian.Uint16(p.ICMP.Rest[2:]) == 1500:
			fragNeeded++
		case p.ICMP.Type == 11:
			timeExceeded++
		}
	}
	if fragNeeded != 5 || timeExceeded != 10 {
		t.Errorf("written: %d Fragmentation Needed (MTU 1500), %d Time Exceeded; want 5, 10", fragNeeded, timeExceeded)
	}
}

// TestPMTULimit: the path MTU signals' bucket limits them too, and
// SetPMTULimit changes it without touching the other bucket.
func TestPMTULimit(t *testing.T) {
	cfg := newConfig(t, "", "")
	cfg.Translator.ICMPPMTUErrorRate, cfg.Translator.ICMPPMTUErrorBurst = 1, 3
	var batch []tun.Packet
	for range 20 {
		batch = append(batch, pkt(tooBig4))
	}
	dev, _ := oneBatch(batch)
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)
	if s := d.Stats(); s.PMTUErrorsSent != 3 || s.PMTUErrorsSuppressed != 17 || s.ICMPErrorsSuppressed != 17 {
		t.Errorf("sent %d, suppressed %d (of all errors: %d); want 3, 17, 17", s.PMTUErrorsSent, s.PMTUErrorsSuppressed, s.ICMPErrorsSuppressed)
	}
	d.SetPMTULimit(1, 1)
	if !d.pmtuLimiter.allowAt(1e15) || d.pmtuLimiter.allowAt(1e15) {
		t.Error("after SetPMTULimit(1, 1): not a burst of one")
	}
	if !d.limiter.allowAt(1e15) || !d.limiter.allowAt(1e15) {
		t.Error("SetPMTULimit changed the other bucket")
	}
}

// TestPMTUDefaultsToICMPLimit: Options without a path MTU limit give the
// path MTU signals a bucket of the general limit's size, not of one token.
func TestPMTUDefaultsToICMPLimit(t *testing.T) {
	d := New(newTranslatorFor(t), newFakeDevice(1, nil, nil), Options{ICMPErrorRate: 10, ICMPErrorBurst: 4})
	defer d.Close()
	n := 0
	for d.pmtuLimiter.allowAt(0) {
		n++
	}
	if n != 4 {
		t.Errorf("path MTU bucket holds %d tokens, want 4 (ICMPErrorBurst)", n)
	}
}

func newTranslatorFor(t *testing.T) *translator.Translator {
	tr, err := newConfig(t, "", "").NewTranslator()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestICMPErrorMetricsByKind: the suppressed and sent errors by kind, and
// the totals as before.
func TestICMPErrorMetricsByKind(t *testing.T) {
	cfg := newConfig(t, "", "")
	cfg.Translator.ICMPErrorRate, cfg.Translator.ICMPErrorBurst = 1, 2
	cfg.Translator.ICMPPMTUErrorRate, cfg.Translator.ICMPPMTUErrorBurst = 1, 1
	batch := []tun.Packet{pkt(ttlFlood4), pkt(ttlFlood4), pkt(ttlFlood4), pkt(tooBig4), pkt(tooBig4)}
	dev, _ := oneBatch(batch)
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(d.Collector(0)); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP map646_icmp_errors_sent_by_kind_total map646_icmp_errors_sent_total by kind: pmtu (Fragmentation Needed, Packet Too Big), other.
# TYPE map646_icmp_errors_sent_by_kind_total counter
map646_icmp_errors_sent_by_kind_total{kind="other"} 2
map646_icmp_errors_sent_by_kind_total{kind="pmtu"} 1
# HELP map646_icmp_errors_suppressed_by_kind_total map646_icmp_errors_suppressed_total by kind: pmtu (held back by icmp_pmtu_error_rate, icmp_pmtu_error_burst), other (by icmp_error_rate, icmp_error_burst).
# TYPE map646_icmp_errors_suppressed_by_kind_total counter
map646_icmp_errors_suppressed_by_kind_total{kind="other"} 1
map646_icmp_errors_suppressed_by_kind_total{kind="pmtu"} 1
# HELP map646_icmp_errors_suppressed_total ICMP errors the translator generated and the rate limits (translator.icmp_error_rate, icmp_error_burst; icmp_pmtu_error_rate, icmp_pmtu_error_burst) held back.
# TYPE map646_icmp_errors_suppressed_total counter
map646_icmp_errors_suppressed_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "map646_icmp_errors_sent_by_kind_total",
		"map646_icmp_errors_suppressed_by_kind_total", "map646_icmp_errors_suppressed_total"); err != nil {
		t.Error(err)
	}
}

// TestLocalDestinationCounted: packets toward the node are dropped with
// their own reason, counted, and nothing is written; the node's addresses
// can change under the running data plane.
func TestLocalDestinationCounted(t *testing.T) {
	cfg := newConfig(t, "", "")
	node4 := netip.MustParseAddr("192.0.2.50")
	local := translator.NewLocalAddrs(netip.PrefixFrom(node4, 32))
	cfg.Translator.LocalAddrs = local
	toNode := pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("64:ff9b::192.0.2.50")},
		pt.TCP{Sport: 40000, Dport: 179, Flags: pt.SYN, Window: 65535}, nil)
	toOwn := pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("64:ff9b::192.0.2.1")}, 128, 0, pt.Rest16(1, 1), nil)
	batches := [][]tun.Packet{{pkt(toNode), pkt(toOwn), pkt(toNode)}, {pkt(toNode)}}
	var next atomic.Int32
	var mu sync.Mutex
	var written int
	step := make(chan struct{})
	dev := newFakeDevice(1, func(int) []tun.Packet {
		i := int(next.Add(1)) - 1
		if i == 1 {
			<-step // the second batch once the node's address went
		}
		if i < len(batches) {
			return batches[i]
		}
		return nil
	}, func(_ int, _, w []tun.Packet) { mu.Lock(); written += len(w); mu.Unlock() })
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)
	s := d.Stats()
	if n := s.Packets[Dir6to4][translator.Drop][translator.ReasonLocalDestination]; n != 3 {
		t.Errorf("local-destination drops: %d, want 3", n)
	}
	local.Set(nil) // the node's address went; the translator's own stays refused
	close(step)
	waitBatches(t, d, 2)
	s = d.Stats()
	if n := s.Packets[Dir6to4][translator.Drop][translator.ReasonLocalDestination]; n != 3 {
		t.Errorf("local-destination drops after the address went: %d, want still 3", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if s.Verdicts(Dir6to4, translator.Forward) != 1 || written != 1 {
		t.Errorf("after the address went: %d forwarded, %d written; want 1, 1", s.Verdicts(Dir6to4, translator.Forward), written)
	}
}
