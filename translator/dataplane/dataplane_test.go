package dataplane

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
	"github.com/map646/map646/translator/tun"
)

var (
	client4  = netip.MustParseAddr("192.0.2.7")
	client6  = netip.MustParseAddr("64:ff9b::192.0.2.7")
	server4  = netip.MustParseAddr("198.51.100.10")
	server6  = netip.MustParseAddr("2001:db8:1::10")
	server4b = netip.MustParseAddr("198.51.100.11")
	server6b = netip.MustParseAddr("2001:db8:1::11")
)

// mixed is one packet of each path the workers take, with the direction,
// verdict and reason the translator gives it.
type mixedPacket struct {
	name    string
	pkt     []byte
	dir     Direction
	verdict translator.Verdict
	reason  translator.Reason
}

func mixed() []mixedPacket {
	return []mixedPacket{
		{"udp 4to6", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, make([]byte, 100)),
			Dir4to6, translator.Forward, translator.ReasonNone},
		{"udp 6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 40000, make([]byte, 100)),
			Dir6to4, translator.Forward, translator.ReasonNone},
		{"fragmented 4to6", pt.UDP4(pt.IPv4{TTL: 64, ID: 7, Src: client4, Dst: server4}, 40000, 53, make([]byte, 3000)),
			Dir4to6, translator.Forward, translator.ReasonNone},
		{"ttl expired", pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 53, make([]byte, 10)),
			Dir4to6, translator.ICMPError, translator.ReasonTTLExpired},
		{"no mapping", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: netip.MustParseAddr("198.51.100.99")}, 40000, 53, nil),
			Dir4to6, translator.ICMPError, translator.ReasonNoMappingDst},
		{"hairpin", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("64:ff9b::198.51.100.11")}, 1000, 2000, make([]byte, 20)),
			Dir6to4, translator.Forward, translator.ReasonNone},
		{"spoofed", pt.UDP6(pt.IPv6{Hop: 64, Src: client6, Dst: client6}, 1, 2, nil),
			Dir6to4, translator.Drop, translator.ReasonSpoofedPseudo},
		{"bad version", append([]byte{0x50}, make([]byte, 39)...),
			DirOther, translator.Drop, translator.ReasonBadVersion},
		{"tcp 6to4", pt.TCP6(pt.IPv6{Hop: 64, Src: server6b, Dst: client6}, pt.TCP{Sport: 80, Dport: 40000, Flags: pt.ACK}, make([]byte, 1400)),
			Dir6to4, translator.Forward, translator.ReasonNone},
	}
}

// waitBatches waits until the data plane has published n batches.
func waitBatches(t *testing.T, d *DataPlane, n uint64) {
	t.Helper()
	if got := waitStats(t, d, func(s Stats) bool { return s.Batches >= n }).Batches; got < n {
		t.Fatalf("%d of %d batches after 5 s", got, n)
	}
}

// run runs d until the test ends, failing it if Run fails.
func run(t *testing.T, d *DataPlane) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestBatch: a batch of every kind of packet comes out exactly as the
// translator makes it, in order, each output well formed, and the counters
// add up: every packet read has one verdict.
func TestBatch(t *testing.T) {
	cfg := newConfig(t, "", "")
	ms := mixed()
	var batch []tun.Packet
	for _, m := range ms {
		batch = append(batch, pkt(m.pkt))
	}
	dev, written := oneBatch(batch)
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)

	// What the translator emits for each, on its own.
	tr, _ := cfg.NewTranslator()
	o := translator.NewOut()
	var want [][]byte
	var wantStats Stats
	var inBytes, outBytes [NumDirections]uint64
	for _, m := range ms {
		res := tr.Translate(m.pkt, o)
		if res.Verdict != m.verdict || res.Reason != m.reason {
			t.Fatalf("%s: the translator says %v %q, the test %v %q", m.name, res.Verdict, res.Reason, m.verdict, m.reason)
		}
		wantStats.Packets[m.dir][m.verdict][m.reason]++
		inBytes[m.dir] += uint64(len(m.pkt))
		for _, p := range o.Pkts {
			want = append(want, bytes.Clone(p))
			outBytes[m.dir] += uint64(len(p))
			wantStats.SentPackets[m.dir]++
		}
	}
	got := written()
	if len(got) != len(want) {
		t.Fatalf("%d packets written, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("output %d differs from the translator's:\n got %x\nwant %x", i, got[i], want[i])
		}
		if _, err := pt.Check(got[i]); err != nil {
			t.Errorf("output %d: %v", i, err)
		}
	}

	s := d.Stats()
	if s.Packets != wantStats.Packets {
		t.Errorf("verdict counters\n got %v\nwant %v", s.Packets, wantStats.Packets)
	}
	var in uint64
	for dir := range NumDirections {
		in += s.In(dir)
		if s.Bytes[dir] != inBytes[dir] || s.SentBytes[dir] != outBytes[dir] || s.SentPackets[dir] != wantStats.SentPackets[dir] {
			t.Errorf("%v: bytes in %d out %d, packets out %d; want %d, %d, %d", dir,
				s.Bytes[dir], s.SentBytes[dir], s.SentPackets[dir], inBytes[dir], outBytes[dir], wantStats.SentPackets[dir])
		}
		fwd, drop, icmp := s.Verdicts(dir, translator.Forward), s.Verdicts(dir, translator.Drop), s.Verdicts(dir, translator.ICMPError)
		if s.In(dir) != fwd+drop+icmp {
			t.Errorf("%v: in %d != forward %d + drop %d + icmp-error %d", dir, s.In(dir), fwd, drop, icmp)
		}
	}
	if in != uint64(len(ms)) {
		t.Errorf("%d packets counted in, %d read", in, len(ms))
	}
	if s.ICMPErrorsSent != 2 || s.ICMPErrorsSuppressed != 0 || s.Batches != 1 || s.WriteErrors != 0 {
		t.Errorf("ICMP errors sent %d suppressed %d, batches %d, write errors %d; want 2, 0, 1, 0",
			s.ICMPErrorsSent, s.ICMPErrorsSuppressed, s.Batches, s.WriteErrors)
	}

	// Per mapping: 198.51.100.10 got the UDP and the fragmented packet
	// and sent a UDP packet and the hairpinned one; 198.51.100.11 sent the
	// TCP packet.
	counts := map[netip.Prefix]MappingCounts{}
	d.Mappings(-1, func(_ int, m translator.Mapping, c MappingCounts) bool { counts[m.IPv4] = c; return true })
	wantCounts := map[netip.Prefix]MappingCounts{
		netip.PrefixFrom(server4, 32):  {2, uint64(len(ms[0].pkt) + len(ms[2].pkt)), 2, uint64(len(ms[1].pkt) + len(ms[5].pkt))},
		netip.PrefixFrom(server4b, 32): {0, 0, 1, uint64(len(ms[8].pkt))},
	}
	if !mapsEqual(counts, wantCounts) {
		t.Errorf("per-mapping counts %v, want %v", counts, wantCounts)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// partial replaces the transport checksum of a TCP or UDP packet by the
// folded pseudo-header sum, as a device with checksum offload hands it over.
func partial(pkt []byte) []byte {
	pkt = bytes.Clone(pkt)
	var ph []byte
	var l4 int
	var proto byte
	if pkt[0]>>4 == 4 {
		l4, proto = int(pkt[0]&0xf)*4, pkt[9]
		ph = append(ph, pkt[12:20]...)
	} else {
		l4, proto = 40, pkt[6]
		ph = append(ph, pkt[8:40]...)
	}
	ph = append(ph, 0, proto)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(pkt)-l4))
	var acc uint32
	for i := 0; i < len(ph); i += 2 {
		acc += uint32(ph[i])<<8 | uint32(ph[i+1])
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	at := l4 + 16
	if proto == pt.ProtoUDP {
		at = l4 + 6
	}
	binary.BigEndian.PutUint16(pkt[at:], uint16(acc))
	return pkt
}

// TestSuperPackets: a TCP super-packet is translated whole and written as
// one, with its segment size; one the translator declines (TTL 1) is split,
// and each segment gets its own verdict.
func TestSuperPackets(t *testing.T) {
	cfg := newConfig(t, "", "")
	const seg = 1000
	whole := partial(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Seq: 1, Flags: pt.ACK | pt.PSH, Window: 1000}, make([]byte, 3*seg+10)))
	expiring := partial(pt.TCP4(pt.IPv4{TTL: 1, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Seq: 1, Flags: pt.ACK, Window: 1000}, make([]byte, 3*seg)))
	batch := []tun.Packet{
		{Buf: whole, Len: len(whole), GSOSize: seg, Partial: true},
		{Buf: expiring, Len: len(expiring), GSOSize: seg, Partial: true},
	}
	var served atomic.Bool
	var mu sync.Mutex
	var wrote []tun.Packet
	dev := newFakeDevice(1, func(int) []tun.Packet {
		if served.Swap(true) {
			return nil
		}
		return batch
	}, func(_ int, _, w []tun.Packet) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range w {
			p.Buf = bytes.Clone(p.Bytes())
			p.Off = 0
			wrote = append(wrote, p)
		}
	})
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)

	mu.Lock()
	defer mu.Unlock()
	// The super-packet, then three Time Exceeded errors.
	if len(wrote) != 4 {
		t.Fatalf("%d packets written, want 4", len(wrote))
	}
	sp := wrote[0]
	if sp.Bytes()[0]>>4 != 6 || sp.GSOSize != seg || !sp.Partial || sp.Len != len(whole)+20 {
		t.Fatalf("super-packet written as version %d, %d bytes, GSO %d, partial %v", sp.Bytes()[0]>>4, sp.Len, sp.GSOSize, sp.Partial)
	}
	segs := make([][]byte, 8)
	for i := range segs {
		segs[i] = make([]byte, 0, 2000)
	}
	n, err := tun.Segment(sp, segs)
	if err != nil || n != 4 {
		t.Fatalf("the written super-packet splits into %d segments (%v), want 4", n, err)
	}
	for i, s := range segs[:n] {
		p, err := pt.Check(s)
		if err != nil {
			t.Errorf("segment %d: %v", i, err)
			continue
		}
		if p.Src != client6 || p.Dst != server6 || !p.ChecksumChecked {
			t.Errorf("segment %d: %v -> %v, checksum checked %v", i, p.Src, p.Dst, p.ChecksumChecked)
		}
	}
	for i, w := range wrote[1:] {
		p, err := pt.Check(w.Bytes())
		if err != nil {
			t.Errorf("error %d: %v", i, err)
			continue
		}
		if p.ICMP == nil || p.ICMP.Type != 11 || w.GSOSize != 0 || w.Partial {
			t.Errorf("error %d: ICMP %+v, GSO %d, partial %v; want a Time Exceeded", i, p.ICMP, w.GSOSize, w.Partial)
		}
	}

	s := d.Stats()
	if s.GSOWhole != 1 || s.GSOSegmented != 1 || s.GSOSegments != 3 {
		t.Errorf("GSO whole %d, segmented %d into %d; want 1, 1 into 3", s.GSOWhole, s.GSOSegmented, s.GSOSegments)
	}
	// Two read, counted as 1 + 3: packets read + segments - super-packets split.
	if in := s.In(Dir4to6); in != 2+s.GSOSegments-s.GSOSegmented {
		t.Errorf("%d packets counted in, want %d", in, 2+s.GSOSegments-s.GSOSegmented)
	}
	if f, e := s.Packets[Dir4to6][translator.Forward][0], s.Packets[Dir4to6][translator.ICMPError][translator.ReasonTTLExpired]; f != 1 || e != 3 {
		t.Errorf("forward %d, ttl-expired %d; want 1, 3", f, e)
	}
	sentBytes := 0
	for _, w := range wrote {
		sentBytes += w.Len
	}
	if s.SentPackets[Dir4to6] != 4 || s.SentBytes[Dir4to6] != uint64(sentBytes) {
		t.Errorf("sent %d packets, %d bytes; want 4, %d", s.SentPackets[Dir4to6], s.SentBytes[Dir4to6], sentBytes)
	}
}

// TestInexactSuperPacketSegmented: a super-packet whose segments Translate
// would not turn into one packet each (here: no DF and 1500 bytes as IPv6,
// above the lowest IPv6 MTU of 1280) is not written whole with its segment
// size: it is split, and each segment is fragmented as RFC 7915 §4 says,
// exactly as if the segments had come one by one.
func TestInexactSuperPacketSegmented(t *testing.T) {
	cfg := newConfig(t, "", "")
	const seg = 1440
	sp := partial(pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Seq: 1, Flags: pt.ACK, Window: 1000}, make([]byte, 3*seg)))
	var served atomic.Bool
	var mu sync.Mutex
	var wrote []tun.Packet
	dev := newFakeDevice(1, func(int) []tun.Packet {
		if served.Swap(true) {
			return nil
		}
		return []tun.Packet{{Buf: sp, Len: len(sp), GSOSize: seg, Partial: true}}
	}, func(_ int, _, w []tun.Packet) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range w {
			p.Buf = bytes.Clone(p.Bytes())
			p.Off = 0
			wrote = append(wrote, p)
		}
	})
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)

	mu.Lock()
	defer mu.Unlock()
	// Each segment of 1460 transport bytes: fragments of 1232 and 228.
	if len(wrote) != 6 {
		t.Fatalf("%d packets written, want 6 fragments", len(wrote))
	}
	for i, w := range wrote {
		p, err := pt.Check(w.Bytes())
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		wantLen := []int{1280, 40 + 8 + 228}[i%2]
		if p.Version != 6 || p.Frag == nil || p.TotalLen != wantLen || w.GSOSize != 0 || w.Partial {
			t.Errorf("packet %d: version %d, fragment %+v, %d bytes, GSO %d; want an IPv6 fragment of %d bytes",
				i, p.Version, p.Frag, p.TotalLen, w.GSOSize, wantLen)
		}
	}
	s := d.Stats()
	if s.GSOWhole != 0 || s.GSOSegmented != 1 || s.GSOSegments != 3 || s.Verdicts(Dir4to6, translator.Forward) != 3 {
		t.Errorf("GSO whole %d, segmented %d into %d, %d forwarded; want 0, 1 into 3, 3",
			s.GSOWhole, s.GSOSegmented, s.GSOSegments, s.Verdicts(Dir4to6, translator.Forward))
	}
}

// TestICMPRateLimit: the errors the translator generates beyond the burst
// are counted, not sent.
func TestICMPRateLimit(t *testing.T) {
	cfg := newConfig(t, "", "")
	cfg.Translator.ICMPErrorRate, cfg.Translator.ICMPErrorBurst = 1, 5
	expired := pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 53, nil)
	var batch []tun.Packet
	for range 20 {
		batch = append(batch, pkt(expired))
	}
	var served atomic.Bool
	var written atomic.Int64
	dev := newFakeDevice(1, func(int) []tun.Packet {
		if served.Swap(true) {
			return nil
		}
		return batch
	}, func(_ int, _, w []tun.Packet) { written.Add(int64(len(w))) })
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	waitBatches(t, d, 1)
	s := d.Stats()
	if s.ICMPErrorsSent != 5 || s.ICMPErrorsSuppressed != 15 || written.Load() != 5 {
		t.Errorf("sent %d, suppressed %d, written %d; want 5, 15, 5", s.ICMPErrorsSent, s.ICMPErrorsSuppressed, written.Load())
	}
	if e := s.Packets[Dir4to6][translator.ICMPError][translator.ReasonTTLExpired]; e != 20 {
		t.Errorf("%d icmp-error verdicts, want 20", e)
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(10, 3) // a token every 100 ms, 3 at most
	ms := int64(time.Millisecond)
	for i, tc := range []struct {
		at   int64
		want bool
	}{
		{0, true}, {0, true}, {0, true}, {0, false}, // the burst
		{50 * ms, false}, {100 * ms, true}, {150 * ms, false}, // then one per 100 ms
		{200 * ms, true}, {200 * ms, false},
		{10000 * ms, true}, {10000 * ms, true}, {10000 * ms, true}, {10000 * ms, false}, // refilled, not beyond the burst
	} {
		if got := l.allowAt(tc.at); got != tc.want {
			t.Errorf("step %d at %d ms: allow %v, want %v", i, tc.at/ms, got, tc.want)
		}
	}
	l.set(1000, 1)
	if !l.allowAt(20000*ms) || l.allowAt(20000*ms) || !l.allowAt(20001*ms) {
		t.Error("after set(1000, 1): not one per millisecond")
	}
}

// TestLimiterConcurrent: workers racing for tokens take exactly the burst.
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(1, 100)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if l.allowAt(0) {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got.Load() != 100 {
		t.Errorf("%d tokens taken, want 100", got.Load())
	}
}

// TestZeroAllocs: a worker handling a batch of every kind of packet,
// super-packets included, does not allocate.
func TestZeroAllocs(t *testing.T) {
	cfg := newConfig(t, "", "")
	var inputs []tun.Packet
	for _, m := range mixed() {
		inputs = append(inputs, pkt(m.pkt))
	}
	whole := partial(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 20000)))
	split := partial(pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, make([]byte, 5000)))
	split[8] = 1 // TTL 1: declined, split, answered with errors
	split[10], split[11] = 0, 0
	binary.BigEndian.PutUint16(split[10:], ipv4HeaderChecksum(split[:20]))
	inputs = append(inputs,
		tun.Packet{Buf: whole, Len: len(whole), GSOSize: 1400, Partial: true},
		tun.Packet{Buf: split, Len: len(split), GSOSize: 1000, Partial: true})

	var writes int
	dev := newFakeDevice(1, nil, func(_ int, _, w []tun.Packet) { writes += len(w) })
	d := newDataPlane(t, cfg, dev)
	w := d.workers[0]
	fill := func() []tun.Packet {
		for i, p := range inputs {
			in := &w.in[i]
			in.Len = copy(in.Buf[in.Off:], p.Bytes())
			in.GSOSize, in.Partial = p.GSOSize, p.Partial
		}
		return w.in[:len(inputs)]
	}
	w.batch(fill()) // warm up
	s := d.Stats()
	if s.GSOWhole != 1 || s.GSOSegmented != 1 || s.ICMPErrorsSent == 0 || s.Verdicts(Dir6to4, translator.Forward) == 0 {
		t.Fatalf("the batch does not take every path: %+v", s)
	}
	allocs := testing.AllocsPerRun(100, func() { w.batch(fill()) })
	if allocs != 0 {
		t.Errorf("%v allocations per batch of %d packets, want 0", allocs, len(inputs))
	}
	if writes == 0 {
		t.Error("nothing written")
	}
}

func ipv4HeaderChecksum(h []byte) uint16 {
	var acc uint32
	for i := 0; i < len(h); i += 2 {
		if i != 10 {
			acc += uint32(h[i])<<8 | uint32(h[i+1])
		}
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return ^uint16(acc)
}

// TestCarryOver: a swap keeps the counts of the mappings that remain, by
// their IPv4 side, wherever they are in the new table, and drops the others.
func TestCarryOver(t *testing.T) {
	cfg := newConfig(t, "", "")
	d := newDataPlane(t, cfg, newFakeDevice(1, nil, nil))
	st := d.state.Load()
	copy(st.entries.of(0), []uint64{1, 2, 3, 4}) // 198.51.100.10
	copy(st.entries.of(1), []uint64{5, 6, 7, 8}) // 198.51.100.11

	next := newConfig(t, "", `
[[mapping]]
ipv4 = "198.51.100.0/30"
ipv6 = "2001:db8:2::/126"
`)
	// .11 now first, mapped elsewhere; .10 gone; a new prefix.
	next2, err := replaceMappings(next, "198.51.100.11", "2001:db8:9::11", "198.51.100.0/30", "2001:db8:2::/126")
	if err != nil {
		t.Fatal(err)
	}
	d.Swap(next2)
	got := map[string]MappingCounts{}
	d.Mappings(-1, func(_ int, m translator.Mapping, c MappingCounts) bool { got[m.IPv4.String()] = c; return true })
	want := map[string]MappingCounts{
		"198.51.100.11/32": {5, 6, 7, 8},
		"198.51.100.0/30":  {},
	}
	if !mapsEqual(got, want) {
		t.Errorf("after the swap %v, want %v", got, want)
	}
}

// replaceMappings returns a translator with cfg's settings and the given
// mappings (IPv4, IPv6 pairs).
func replaceMappings(cfg interface {
	NewTranslator() (*translator.Translator, error)
}, pairs ...string) (*translator.Translator, error) {
	tr, err := cfg.NewTranslator()
	if err != nil {
		return nil, err
	}
	var ms []translator.Mapping
	for i := 0; i < len(pairs); i += 2 {
		ms = append(ms, translator.Mapping{IPv4: prefix(pairs[i]), IPv6: prefix(pairs[i+1])})
	}
	table, err := translator.NewTable(ms)
	if err != nil {
		return nil, err
	}
	return translator.New(tr.Config(), table)
}

func prefix(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

// TestReloadUnderLoad: while two workers translate a stream, a goroutine
// swaps between two tables 100 times. Every packet read comes out (or is
// dropped) exactly as one of the two tables says, and every batch entirely
// as one of them: a reload loses and mistranslates nothing.
func TestReloadUnderLoad(t *testing.T) {
	// Table A maps 198.51.100.20 to 2001:db8:1::20; table B maps it to
	// 2001:db8:2::20 and does not know 2001:db8:1::20 as a source. ICMP
	// errors are off, so a packet B cannot translate is a plain drop.
	cfg := newConfig(t, "icmp_errors = false", `
[[mapping]]
ipv4 = "198.51.100.20"
ipv6 = "2001:db8:1::20"
`)
	trA, err := cfg.NewTranslator()
	if err != nil {
		t.Fatal(err)
	}
	trB, err := replaceMappings(cfg, "198.51.100.10", "2001:db8:1::10", "198.51.100.11", "2001:db8:1::11", "198.51.100.20", "2001:db8:2::20")
	if err != nil {
		t.Fatal(err)
	}
	changed4 := netip.MustParseAddr("198.51.100.20")
	changed6 := netip.MustParseAddr("2001:db8:1::20")
	stream := [][]byte{
		pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, make([]byte, 64)),
		pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: changed4}, 40001, 53, make([]byte, 64)),
		pt.TCP6(pt.IPv6{Hop: 64, Src: server6b, Dst: client6}, pt.TCP{Sport: 80, Dport: 40000, Flags: pt.ACK}, make([]byte, 500)),
		pt.UDP6(pt.IPv6{Hop: 64, Src: changed6, Dst: client6}, 53, 40001, make([]byte, 64)),
		pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: changed4}, 40002, 53, make([]byte, 2000)), // fragmented
	}
	// What each table makes of each packet.
	expect := func(tr *translator.Translator) [][][]byte {
		o := translator.NewOut()
		out := make([][][]byte, len(stream))
		for i, p := range stream {
			tr.Translate(p, o)
			for _, q := range o.Pkts {
				out[i] = append(out[i], bytes.Clone(q))
			}
		}
		return out
	}
	wantA, wantB := expect(trA), expect(trB)
	for i := range stream {
		if i%2 == 1 && slices.EqualFunc(wantA[i], wantB[i], bytes.Equal) {
			t.Fatalf("packet %d comes out the same from both tables: the test would prove nothing", i)
		}
	}

	// Batches of 1 to 16 packets from the stream, deterministic per queue.
	const queues, batchesPerQueue = 2, 3000
	var stop atomic.Bool
	served := make([]int, queues)
	var inTotal atomic.Int64
	next := func(q int) []tun.Packet {
		if stop.Load() && served[q] >= batchesPerQueue {
			return nil
		}
		k := served[q]
		served[q]++
		n := 1 + (k*7+q)%16
		batch := make([]tun.Packet, n)
		for i := range batch {
			batch[i] = pkt(stream[(k+i*3)%len(stream)])
		}
		inTotal.Add(int64(n))
		return batch
	}
	var mu sync.Mutex
	var problems []string
	var fromA, fromB, both int
	outTotal := 0
	written := func(q int, read, wrote []tun.Packet) {
		var wa, wb [][]byte
		for _, r := range read {
			i := slices.IndexFunc(stream, func(s []byte) bool { return bytes.Equal(s, r.Bytes()) })
			wa = append(wa, wantA[i]...)
			wb = append(wb, wantB[i]...)
		}
		got := make([][]byte, len(wrote))
		for i, w := range wrote {
			got[i] = w.Bytes()
		}
		isA, isB := slices.EqualFunc(got, wa, bytes.Equal), slices.EqualFunc(got, wb, bytes.Equal)
		mu.Lock()
		defer mu.Unlock()
		outTotal += len(wrote)
		switch {
		case isA && isB:
			both++
		case isA:
			fromA++
		case isB:
			fromB++
		default:
			if len(problems) < 5 {
				problems = append(problems, "a batch of "+strconv.Itoa(len(read))+" packets came out as neither table makes it")
			}
		}
		for _, g := range got {
			if _, err := pt.Check(g); err != nil && len(problems) < 10 {
				problems = append(problems, err.Error())
			}
		}
	}
	d := newDataPlane(t, cfg, newFakeDevice(queues, next, written))
	// The fake's next and written run on the worker of their queue only,
	// so served[q] needs no lock. Every batch produces output (packet 0 is
	// always forwarded), so every batch is checked.
	run(t, d)
	for i := range 100 {
		time.Sleep(200 * time.Microsecond)
		if i%2 == 0 {
			d.Swap(trB)
		} else {
			d.Swap(trA)
		}
	}
	stop.Store(true)
	// Wait for every batch to be published.
	var in uint64
	published := poll.Until(20*time.Second, time.Millisecond, func() bool {
		s := d.Stats()
		in = 0
		for dir := range NumDirections {
			in += s.In(dir)
		}
		return in == uint64(inTotal.Load()) && s.Batches >= queues*batchesPerQueue
	})
	if !published {
		t.Fatalf("%d packets counted of %d read", in, inTotal.Load())
	}

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if fromA == 0 || fromB == 0 {
		t.Errorf("batches from table A only %d, from B only %d: the swaps did not interleave with the traffic", fromA, fromB)
	}
	s := d.Stats()
	var fwd, drop, sent uint64
	for dir := range NumDirections {
		fwd += s.Verdicts(dir, translator.Forward)
		drop += s.Verdicts(dir, translator.Drop)
		sent += s.SentPackets[dir]
	}
	if fwd+drop != uint64(inTotal.Load()) || sent != uint64(outTotal) {
		t.Errorf("forward %d + drop %d != %d read, or %d sent != %d written", fwd, drop, inTotal.Load(), sent, outTotal)
	}
	t.Logf("%d packets in %d batches: %d batches as table A, %d as B, %d the same in both; %d forwarded, %d dropped",
		inTotal.Load(), s.Batches, fromA, fromB, both, fwd, drop)
}

// TestAlive: Alive fails before Run and after the workers stop, naming the
// queues, and holds while they run.
func TestAlive(t *testing.T) {
	dev := newFakeDevice(2, nil, nil)
	d := newDataPlane(t, newConfig(t, "", ""), dev)
	notRunning := "dataplane probe: the worker of queue 0 is not running; the worker of queue 1 is not running"
	if err := d.Alive(); err == nil || err.Error() != notRunning {
		t.Fatalf("before Run: %v, want %q", err, notRunning)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { return d.Alive() == nil }) {
		t.Fatalf("running: %v", d.Alive())
	}
	cancel()
	<-done
	if err := d.Alive(); err == nil || err.Error() != notRunning {
		t.Fatalf("after Run: %v, want %q", err, notRunning)
	}
}
