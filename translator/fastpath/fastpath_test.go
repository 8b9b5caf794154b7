package fastpath_test

// The program's counters and its settings, packet by packet. The proof
// that it translates as translator.Translate does is the differential
// test in translator/fastpath_test.go, next to the golden cases it runs.

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
	"github.com/map646/map646/translator/fastpath/fastpathtest"
	pt "github.com/map646/map646/translator/packettest"
)

var (
	client4 = netip.MustParseAddr("192.0.2.7")
	client6 = netip.MustParseAddr("64:ff9b::c000:207")
	server4 = netip.MustParseAddr("198.51.100.10")
	server6 = netip.MustParseAddr("2001:db8:1::10")
	node4   = netip.MustParseAddr("198.51.100.99") // a mapped address that is the node's
	node6   = netip.MustParseAddr("2001:db8:1::99")
)

func testConfig() translator.Config {
	return translator.Config{
		PseudoPrefix:  translator.WellKnownPrefix,
		IPv4Addr:      netip.MustParseAddr("192.0.2.1"),
		IPv6Addr:      netip.MustParseAddr("2001:db8:64::1"),
		LowestIPv6MTU: 1280,
		IPv6MTU:       1500,
		IPv4MTU:       1500,
		LocalAddrs:    translator.NewLocalAddrs(netip.PrefixFrom(node6, 128)),
	}
}

func testTable(t testing.TB) *translator.Table {
	t.Helper()
	table, err := translator.NewTable([]translator.Mapping{
		{IPv4: netip.PrefixFrom(server4, 32), IPv6: netip.PrefixFrom(server6, 128)},
		{IPv4: netip.PrefixFrom(node4, 32), IPv6: netip.PrefixFrom(node6, 128)},
		{IPv4: netip.MustParsePrefix("203.0.113.0/24"), IPv6: netip.MustParsePrefix("2001:db8:3::/120")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func newRunner(t *testing.T) *fastpathtest.Runner {
	t.Helper()
	labreq.Root(t, "load eBPF programs")
	r, err := fastpathtest.NewRunner()
	if err != nil {
		labreq.Unavailable(t, "a tun device in a network namespace for the test runs: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

func load(t *testing.T, cfg translator.Config, table *translator.Table) (*fastpath.FastPath, *translator.Translator) {
	t.Helper()
	tr, err := translator.New(cfg, table)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fastpath.Load(cfg, table, fastpath.LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.Close() })
	return fp, tr
}

// TestCounters sends one packet per counter and checks that it moved that
// counter, and no other, by one; and that the program agrees with
// Translate on each.
func TestCounters(t *testing.T) {
	r := newRunner(t)
	fp, tr := load(t, testConfig(), testTable(t))
	data := []byte("fast path")
	in4 := pt.IPv4{TTL: 64, Src: client4, Dst: server4}
	in6 := pt.IPv6{Hop: 64, Src: server6, Dst: client6}
	tcp := pt.TCP{Sport: 40000, Dport: 443, Seq: 1, Flags: pt.ACK, Window: 512}
	with4 := func(f func(*pt.IPv4)) pt.IPv4 { h := in4; f(&h); return h }
	with6 := func(f func(*pt.IPv6)) pt.IPv6 { h := in6; f(&h); return h }
	cases := []struct {
		counter string
		pkt     []byte
	}{
		{"translated-4to6", pt.UDP4(in4, 40000, 53, data)},
		{"translated-4to6", pt.TCP4(in4, tcp, data)},
		{"translated-4to6", pt.ICMP4(in4, 8, 0, pt.Rest16(1, 2), data)},
		{"translated-4to6", pt.UDP4(with4(func(h *pt.IPv4) { h.Dst = netip.MustParseAddr("203.0.113.77") }), 1, 2, data)},
		{"translated-6to4", pt.UDP6(in6, 53, 40000, data)},
		{"translated-6to4", pt.TCP6(in6, tcp, data)},
		{"translated-6to4", pt.ICMP6(in6, 129, 0, pt.Rest16(1, 2), data)},
		{"translated-6to4", pt.UDP6(with6(func(h *pt.IPv6) { h.Src = netip.MustParseAddr("2001:db8:3::4d") }), 1, 2, data)},
		{"punt-malformed", pt.UDP4(with4(func(h *pt.IPv4) { h.BadChecksum = true }), 1, 2, data)},
		{"punt-ipv4-options", pt.UDP4(with4(func(h *pt.IPv4) { h.Options = []byte{1, 1, 1, 0} }), 1, 2, data)},
		{"punt-fragment", pt.UDP4(with4(func(h *pt.IPv4) { h.MF = true }), 1, 2, data)},
		{"punt-protocol", pt.Raw4(in4, 47, data)},
		{"punt-protocol", pt.UDP6(with6(func(h *pt.IPv6) { h.Ext = []pt.Ext{pt.DestOpts(nil)} }), 1, 2, data)},
		{"punt-icmp", pt.ICMP4(in4, 3, 1, pt.Rest16(0, 0), pt.UDP6(in6, 1, 2, data)[:28])},
		{"punt-icmp", pt.ICMP6(in6, 135, 0, pt.Rest16(0, 0), data)},
		{"punt-martian", pt.UDP4(with4(func(h *pt.IPv4) { h.Src = netip.MustParseAddr("127.0.0.1") }), 1, 2, data)},
		{"punt-no-mapping", pt.UDP4(with4(func(h *pt.IPv4) { h.Dst = netip.MustParseAddr("198.51.100.11") }), 1, 2, data)},
		{"punt-no-mapping", pt.UDP6(with6(func(h *pt.IPv6) { h.Src = netip.MustParseAddr("2001:db8:1::11") }), 1, 2, data)},
		{"punt-mapped-source", pt.UDP4(with4(func(h *pt.IPv4) { h.Src = server4 }), 1, 2, data)},
		{"punt-hairpin", pt.UDP6(with6(func(h *pt.IPv6) { h.Dst = netip.MustParseAddr("64:ff9b::c633:640a") }), 1, 2, data)},
		{"punt-local-destination", pt.UDP4(with4(func(h *pt.IPv4) { h.Dst = node4 }), 1, 2, data)},
		{"punt-local-destination", pt.UDP6(with6(func(h *pt.IPv6) { h.Dst = netip.MustParseAddr("64:ff9b::c000:201") }), 1, 2, data)},
		{"punt-non-global-wkp", pt.UDP4(with4(func(h *pt.IPv4) { h.Src = netip.MustParseAddr("10.1.2.3") }), 1, 2, data)},
		{"punt-ttl", pt.UDP4(with4(func(h *pt.IPv4) { h.TTL = 1 }), 1, 2, data)},
		{"punt-ttl", pt.UDP6(with6(func(h *pt.IPv6) { h.Hop = 1 }), 1, 2, data)},
		{"punt-bad-transport", pt.Raw4(in4, pt.ProtoUDP, []byte{0, 1, 0, 2, 0, 99, 0, 0})},
		{"punt-udp-zero-checksum", pt.UDP4NoChecksum(in4, 1, 2, data)},
		{"punt-udp-zero-checksum", pt.UDP6NoChecksum(in6, 1, 2, data)},
		{"punt-too-big", pt.UDP4(in4, 1, 2, make([]byte, 1300))}, // no DF: fragmented to 1280
		{"punt-too-big", pt.UDP6(in6, 1, 2, make([]byte, 1500))},
	}
	for _, c := range cases {
		before, err := fp.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Compare(fp.Program(), tr, c.pkt); err != nil {
			t.Errorf("%s: %v", c.counter, err)
			continue
		}
		after, err := fp.Counters()
		if err != nil {
			t.Fatal(err)
		}
		for name, n := range after {
			want := before[name]
			if name == c.counter {
				want++
			}
			if n != want {
				t.Errorf("packet for %s: counter %s went from %d to %d", c.counter, name, before[name], n)
			}
		}
	}
}

// TestDisabled: a table the program does not cover, with more than
// MaxLengths prefix lengths on a side, makes it punt every packet, counted
// as punt-disabled.
func TestDisabled(t *testing.T) {
	r := newRunner(t)
	var ms []translator.Mapping
	for l := 32; l > 32-fastpath.MaxLengths-1; l-- {
		ms = append(ms, translator.Mapping{
			IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(100 + 32 - l), 0}), l).Masked(),
			IPv6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(32 - l)}), 96+l),
		})
	}
	ms[0].IPv4 = netip.PrefixFrom(server4, 32)
	table, err := translator.NewTable(ms)
	if err != nil {
		t.Fatal(err)
	}
	fp, tr := load(t, testConfig(), table)
	if fp.Disabled() == "" {
		t.Fatalf("%d prefix lengths are not reported as disabling the fast path", len(ms))
	}
	t.Log(fp.Disabled())
	pkt := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 1, 2, []byte("x"))
	oc, err := r.Compare(fp.Program(), tr, pkt)
	if err != nil || oc.Taken {
		t.Fatalf("taken %v, %v: want punted", oc.Taken, err)
	}
	c, err := fp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["punt-disabled"] != 1 {
		t.Errorf("punt-disabled %d, want 1", c["punt-disabled"])
	}
}

// TestGenerateID: with generated IPv4 Identifications, IPv6 packets that
// would get one are punted, the others translated.
func TestGenerateID(t *testing.T) {
	r := newRunner(t)
	cfg := testConfig()
	cfg.GenerateIPv4ID = true
	fp, tr := load(t, cfg, testTable(t))
	in6 := pt.IPv6{Hop: 64, Src: server6, Dst: client6}
	for _, c := range []struct {
		payload int
		taken   bool
	}{{10, true}, {100, false}, {1252, false}, {1253, true}} {
		oc, err := r.Compare(fp.Program(), tr, pt.UDP6(in6, 1, 2, make([]byte, c.payload)))
		if err != nil {
			t.Fatalf("UDP payload %d: %v", c.payload, err)
		}
		if oc.Taken != c.taken {
			t.Errorf("UDP payload %d: taken %v, want %v", c.payload, oc.Taken, c.taken)
		}
	}
}

// TestSetLocalAddrs: the node's addresses change, in the translator's
// LocalAddrs and in the program alike, and the program follows.
func TestSetLocalAddrs(t *testing.T) {
	r := newRunner(t)
	cfg := testConfig()
	fp, tr := load(t, cfg, testTable(t))
	to := func(dst netip.Addr) []byte {
		return pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: dst}, 1, 2, []byte("local?"))
	}
	for _, step := range []struct {
		local         []netip.Prefix
		toNode, toSrv bool // taken
	}{
		{nil, true, true},
		{[]netip.Prefix{netip.PrefixFrom(server6, 128)}, true, false},
		{[]netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64")}, false, false},
		{[]netip.Prefix{netip.PrefixFrom(node6, 128)}, false, true},
	} {
		cfg.LocalAddrs.Set(step.local)
		if err := fp.SetLocalAddrs(step.local); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			dst   netip.Addr
			taken bool
		}{{node4, step.toNode}, {server4, step.toSrv}} {
			oc, err := r.Compare(fp.Program(), tr, to(c.dst))
			if err != nil {
				t.Fatalf("local %v, to %v: %v", step.local, c.dst, err)
			}
			if oc.Taken != c.taken {
				t.Errorf("local %v, to %v: taken %v, want %v", step.local, c.dst, oc.Taken, c.taken)
			}
		}
	}
}

// TestApplyDelta changes the loaded program's table in place: a removed
// mapping is punted from then on, an added one (of new prefix lengths on
// both sides) is translated as Translate does with the changed table, and
// the room for additions runs out with ErrNoRoom.
func TestApplyDelta(t *testing.T) {
	r := newRunner(t)
	cfg := testConfig()
	table := testTable(t)
	fp, _ := load(t, cfg, table)
	gone := table.Mapping(0)
	added := translator.Mapping{IPv4: netip.MustParsePrefix("198.51.100.64/28"), IPv6: netip.MustParsePrefix("2001:db8:5::/124")}
	var ms []translator.Mapping
	for i := 1; i < table.Len(); i++ {
		ms = append(ms, table.Mapping(i))
	}
	changed, err := translator.NewTable(append(ms, added))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := translator.New(cfg, changed)
	if err != nil {
		t.Fatal(err)
	}
	if err := fp.ApplyDelta([]translator.Mapping{gone}, []fastpath.Entry{{Mapping: added, Index: int32(table.Len())}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dst   netip.Addr
		taken bool
	}{{gone.IPv4.Addr(), false}, {netip.MustParseAddr("198.51.100.70"), true}, {netip.MustParseAddr("203.0.113.9"), true}} {
		oc, err := r.Compare(fp.Program(), tr, pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: c.dst}, 1, 2, []byte("delta")))
		if err != nil {
			t.Fatalf("to %v: %v", c.dst, err)
		}
		if oc.Taken != c.taken {
			t.Errorf("to %v: taken %v, want %v", c.dst, oc.Taken, c.taken)
		}
	}
	// The hashes hold the table loaded plus DeltaRoom: one mapping was
	// removed and one added, so DeltaRoom more fit, and not one more.
	var more []fastpath.Entry
	for i := range fastpath.DeltaRoom + 1 {
		a4 := netip.AddrFrom4([4]byte{10, 64, byte(i >> 8), byte(i)})
		a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 9, 14: byte(i >> 8), 15: byte(i)})
		more = append(more, fastpath.Entry{Mapping: translator.Mapping{IPv4: netip.PrefixFrom(a4, 32), IPv6: netip.PrefixFrom(a6, 128)}, Index: int32(100 + i)})
	}
	if err := fp.ApplyDelta(nil, more[:fastpath.DeltaRoom]); err != nil {
		t.Fatalf("%d additions within the room: %v", fastpath.DeltaRoom, err)
	}
	if err := fp.ApplyDelta(nil, more[fastpath.DeltaRoom:]); !errors.Is(err, fastpath.ErrNoRoom) {
		t.Errorf("one addition past the room: %v, want ErrNoRoom", err)
	}
}

// TestEntryCounts: the program counts each translated packet and its
// bytes under its mapping's entry, each way, as the tun path counts them;
// punted packets are not counted.
func TestEntryCounts(t *testing.T) {
	r := newRunner(t)
	table := testTable(t)
	fp, tr := load(t, testConfig(), table)
	to := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: netip.MustParseAddr("203.0.113.9")}, 1, 2, []byte("to the /24"))
	from := pt.UDP6(pt.IPv6{Hop: 64, Src: netip.MustParseAddr("2001:db8:3::9"), Dst: client6}, 2, 1, []byte("from it, longer"))
	punted := pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 1, 2, []byte("ttl 1"))
	for _, pkt := range [][]byte{to, to, from, punted} {
		if _, err := r.Compare(fp.Program(), tr, pkt); err != nil {
			t.Fatal(err)
		}
	}
	got, err := fp.EntryCounts(table.Len() + 5)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]fastpath.EntryCounts, table.Len()+fastpath.DeltaRoom)[:table.Len()+5]
	want[2] = fastpath.EntryCounts{Packets4to6: 2, Bytes4to6: 2 * uint64(len(to)), Packets6to4: 1, Bytes6to4: uint64(len(from))}
	if !slices.Equal(got, want) {
		t.Errorf("EntryCounts = %+v, want %+v", got, want)
	}
}
