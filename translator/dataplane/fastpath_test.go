package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/translator"
)

// sendUDP sends n datagrams with TTL 64 from the node to dst (a mapped
// address, routed into the device).
func sendUDP(t *testing.T, dst netip.Addr, n int) {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 64) })
		return serr
	}}
	c, err := dialer.Dial("udp4", netip.AddrPortFrom(dst, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		if _, err := c.Write([]byte("fast path")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFastPath: the data plane attaches the fast path at the egress of its
// real tun device, and then: the datagrams it translates never reach a
// worker but are counted as forwarded in Stats (so a drain and the status
// see them); a Swap replaces the program without losing the counts; the
// node's local addresses follow (LocalAddrsChanged); Probe checks it, and a
// program that no longer sees the packets is detached by its check while
// Probe passes (the node keeps serving on the tun path); detached, the
// workers carry the datagrams again.
func TestFastPath(t *testing.T) {
	inNetns(t, func() {
		n := newAttachedNode(t)
		d := n.d
		st := d.FastPathStatus()
		if !st.Attached || st.ProgramID == 0 || st.Disabled != "" {
			t.Fatalf("status after attaching: %+v", st)
		}
		// Probe checks the program. The kernel answers the check's
		// datagram (hop limit 1 once translated) with an ICMPv6 error,
		// which the workers read and count apart, as not traffic. (First
		// thing: the kernel rate-limits its ICMPv6 errors per destination,
		// and the datagrams below earn some too.)
		if err := probe(d, 2*time.Second); err != nil {
			t.Fatalf("probe: %v", err)
		}
		if !d.FastPathStatus().Attached {
			t.Fatalf("the fast path was detached by a probe it should pass: %+v", d.FastPathStatus())
		}
		if s := waitStats(t, d, func(s Stats) bool { return s.ProbeEchoes == 1 }); s.ProbeEchoes != 1 || s.FastPath[Dir4to6] != 1 {
			t.Errorf("after one fast path check: Stats.ProbeEchoes = %d, the fast path translated %d; want 1 each", s.ProbeEchoes, s.FastPath[Dir4to6])
		}
		probed := uint64(1)

		server := netip.MustParseAddr("198.51.100.10")
		const sent = 20
		sendUDP(t, server, sent)
		s := waitStats(t, d, func(s Stats) bool { return s.FastPath[Dir4to6] == probed+sent })
		if s.FastPath[Dir4to6] != probed+sent {
			t.Fatalf("the fast path translated %d datagrams, want %d", s.FastPath[Dir4to6], probed+sent)
		}
		// The workers read the tun path's probe (4to6, ttl-expired), and may
		// read the kernel's ICMPv6 errors about the datagrams (6to4).
		if s.Packets[Dir4to6][translator.Forward][translator.ReasonNone] != probed+sent || s.SentPackets[Dir4to6] != probed+sent+s.Probes || s.In(Dir4to6) != probed+sent+s.Probes {
			t.Errorf("Stats: 4to6 %d read, %d forwarded, %d sent; want %d each (the workers read none)",
				s.In(Dir4to6), s.Packets[Dir4to6][translator.Forward][translator.ReasonNone], s.SentPackets[Dir4to6], probed+sent)
		}

		// Per mapping too: the datagrams and the check's are all to
		// 198.51.100.10, the first mapping.
		wantMapping := func(when string, packets uint64) {
			t.Helper()
			d.Mappings(1, func(_ int, m translator.Mapping, c MappingCounts) bool {
				if c.Packets4to6 != packets || c.Bytes4to6 < packets*28 {
					t.Errorf("%s: mapping %v counts %+v, want %d packets 4to6 (and their bytes)", when, m, c, packets)
				}
				return true
			})
		}
		wantMapping("attached", probed+sent)

		reg := prometheus.NewPedanticRegistry()
		if err := reg.Register(d.Collector(0)); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`
# HELP map646_fastpath_attached %s
# TYPE map646_fastpath_attached gauge
map646_fastpath_attached 1
# HELP map646_fastpath_internal_errors_total %s
# TYPE map646_fastpath_internal_errors_total counter
map646_fastpath_internal_errors_total 0
`, help(t, reg, "map646_fastpath_attached"), help(t, reg, "map646_fastpath_internal_errors_total"))
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "map646_fastpath_attached", "map646_fastpath_internal_errors_total"); err != nil {
			t.Error(err)
		}
		if got := testutil.ToFloat64(gauge(t, reg, "map646_fastpath_packets_total", "4to6")); got != float64(probed+sent) {
			t.Errorf("map646_fastpath_packets_total{direction=4to6} = %v, want %d", got, probed+sent)
		}

		// A reload: a new program, the counts go on.
		tr, err := newConfig(t, "", "").NewTranslator()
		if err != nil {
			t.Fatal(err)
		}
		d.Swap(tr)
		st2 := d.FastPathStatus()
		if !st2.Attached || st2.ProgramID == st.ProgramID {
			t.Fatalf("after Swap: %+v, want attached with a new program (was %d)", st2, st.ProgramID)
		}
		wantMapping("after Swap, carried over", probed+sent)
		sendUDP(t, server, 1)
		if s := waitStats(t, d, func(s Stats) bool { return s.FastPath[Dir4to6] == probed+sent+1 }); s.FastPath[Dir4to6] != probed+sent+1 {
			t.Fatalf("after Swap: %d translated, want %d", s.FastPath[Dir4to6], probed+sent+1)
		}
		wantMapping("after Swap", probed+sent+1)

		// The server's address becomes the node's: the program refuses it.
		local := translator.NewLocalAddrs()
		cfg := newConfig(t, "", "")
		cfg.Translator.LocalAddrs = local
		tr, err = cfg.NewTranslator()
		if err != nil {
			t.Fatal(err)
		}
		d.Swap(tr)
		local.Set([]netip.Prefix{netip.MustParsePrefix("2001:db8:1::10/128")})
		d.LocalAddrsChanged()
		sendUDP(t, server, 1)
		if !poll.Until(5*time.Second, time.Millisecond, func() bool {
			return d.FastPathStatus().Counters["punt-local-destination"] == 1
		}) {
			t.Fatalf("toward a local address: counters %v, want one punt-local-destination", d.FastPathStatus().Counters)
		}
		local.Set(nil)
		d.LocalAddrsChanged()

		// A table delta: the mapping removed in place (the hook of the
		// table's delta path), its datagrams then punted as misses.
		c0 := d.FastPathStatus().Counters
		d.ApplyFastPathDelta(tr, []translator.Mapping{tr.Table().Mapping(0)}, nil)
		sendUDP(t, server, 1)
		if !poll.Until(5*time.Second, time.Millisecond, func() bool {
			return d.FastPathStatus().Counters["punt-no-mapping"] > c0["punt-no-mapping"]
		}) || d.FastPathStatus().Counters["translated-4to6"] != c0["translated-4to6"] {
			t.Fatalf("after the delta removed %v: counters %v (before %v), want a punt-no-mapping more and nothing translated",
				tr.Table().Mapping(0), d.FastPathStatus().Counters, c0)
		}
		d.Swap(tr) // the full table again

		// A program that no longer sees the packets (its link closed
		// behind the data plane's back) fails the check and is detached,
		// while Probe passes.
		d.fast.mu.Lock()
		d.fast.link.Close()
		d.fast.lastCheck = time.Time{}
		d.fast.mu.Unlock()
		if err := probe(d, 2*time.Second); err != nil {
			t.Fatalf("probe with the fast path broken: %v; want it to pass (the tun path works)", err)
		}
		st = d.FastPathStatus()
		if st.Attached || st.Why == "" {
			t.Fatalf("a broken fast path is still attached after the check: %+v", st)
		}
		t.Logf("detached: %s", st.Why)

		// Detached: the workers carry the datagrams, the counts stay.
		var mappingBefore MappingCounts
		d.Mappings(1, func(_ int, _ translator.Mapping, c MappingCounts) bool { mappingBefore = c; return true })
		before := d.Stats()
		sendUDP(t, server, 3)
		s = waitStats(t, d, func(s Stats) bool {
			return s.Batches > before.Batches && s.SentPackets[Dir4to6] >= before.SentPackets[Dir4to6]+3
		})
		if s.FastPath[Dir4to6] != before.FastPath[Dir4to6] || s.SentPackets[Dir4to6] < before.SentPackets[Dir4to6]+3 {
			t.Errorf("detached: fast path %d -> %d, sent %d -> %d; want the workers to carry the 3 datagrams",
				before.FastPath[Dir4to6], s.FastPath[Dir4to6], before.SentPackets[Dir4to6], s.SentPackets[Dir4to6])
		}
		wantMapping("detached, the workers carrying", mappingBefore.Packets4to6+3)
	})
}

// help returns the help text of the metric name gathered from reg.
func help(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetHelp()
		}
	}
	t.Fatalf("no metric %s", name)
	return ""
}

// gauge returns the value of the series of name whose one label is value,
// as a collector for testutil.ToFloat64.
func gauge(t *testing.T, reg *prometheus.Registry, name, value string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, m.GetCounter().GetValue)
			}
		}
	}
	t.Fatalf("no series %s{%s}", name, value)
	return nil
}

// TestFastPathFollowsDelta: a mapping added by a table delta (Apply, as
// `map646 mapping add` and etcd make one) is translated by the attached
// program at once, counted under the id the table gave it; deleted, the
// program no longer translates it (the workers refuse it).
func TestFastPathFollowsDelta(t *testing.T) {
	inNetns(t, func() {
		n := newAttachedNode(t)
		d := n.d
		m := translator.Mapping{IPv4: netip.MustParsePrefix("203.0.113.50/32"), IPv6: netip.MustParsePrefix("2001:db8:7::50/128")}
		apply := func(op translator.ChangeOp) {
			t.Helper()
			changes := []translator.MappingChange{{Op: op, Mapping: m}}
			tr, err := d.Translator().Apply(changes)
			if err != nil {
				t.Fatal(err)
			}
			d.Apply(tr, changes)
		}
		apply(translator.Add)
		if err := n.routes.Add([]netip.Prefix{m.IPv4}); err != nil {
			t.Fatal(err)
		}
		id, ok := d.Translator().Table().Lookup4(m.IPv4.Addr())
		if !ok {
			t.Fatal("the added mapping is not in the table")
		}

		before := d.Stats()
		const sent = 7
		sendUDP(t, m.IPv4.Addr(), sent)
		s := waitStats(t, d, func(s Stats) bool { return s.FastPath[Dir4to6] >= before.FastPath[Dir4to6]+sent })
		if got := s.FastPath[Dir4to6] - before.FastPath[Dir4to6]; got != sent {
			t.Fatalf("the fast path translated %d datagrams to the mapping added by a delta, want %d", got, sent)
		}
		if c := d.Counts(id); c.Packets4to6 != sent {
			t.Errorf("mapping %d (added by the delta) counts %d packets 4to6, want %d (the program's, by id)", id, c.Packets4to6, sent)
		}

		apply(translator.Del)
		before = d.Stats()
		// Unconnected: the ICMP errors the workers answer the refused
		// datagrams with must not fail the next write.
		pc, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		for range sent {
			if _, err := pc.WriteTo([]byte("fast path"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(m.IPv4.Addr(), 9))); err != nil {
				t.Fatal(err)
			}
		}
		// Refused with an ICMP error (Destination Unreachable) or, past
		// the error rate limit, dropped: no-mapping-dst either way.
		refused := func(s Stats) uint64 {
			return s.Packets[Dir4to6][translator.Drop][translator.ReasonNoMappingDst] + s.Packets[Dir4to6][translator.ICMPError][translator.ReasonNoMappingDst]
		}
		s = waitStats(t, d, func(s Stats) bool { return refused(s) >= refused(before)+sent })
		if s.FastPath[Dir4to6] != before.FastPath[Dir4to6] {
			t.Errorf("after the delete the fast path still translated %d datagrams", s.FastPath[Dir4to6]-before.FastPath[Dir4to6])
		}
		if got := refused(s) - refused(before); got != sent {
			t.Errorf("after the delete the workers refused %d datagrams as no-mapping-dst, want %d", got, sent)
		}
	})
}

// newAttachedNode is a probe node forwarding IPv6 with the fast path
// attached to its device.
func newAttachedNode(t *testing.T) *probeNode {
	t.Helper()
	n := newProbeNode(t, "", nodeAddr, true, nil)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := n.d.AttachFastPath(); err != nil {
		t.Fatalf("AttachFastPath: %v", err)
	}
	return n
}
