package translator_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
	"github.com/map646/map646/translator/tun"
)

// The super-packet path is an optimisation, never a second semantics:
// for a super-packet sp with segment size gso,
//
//	Segment(TranslateGSOInPlace(sp), gso) == Translate(each of Segment(sp, gso))
//
// segment by segment, where Segment is tun.Segment, the software twin of the
// kernel's segmentation (what the kernel does to a super-packet written to
// the tun device, and what the data plane does to one the translator
// declines). The segment size is kept (TranslateGSO returns it unchanged),
// so both sides cut the payload at the same places and the comparison is
// byte for byte, with one exception the kernel forces: it numbers the
// segments of an IPv4 super-packet from its Identification up, where
// Translate gives each segment from IPv6 the Identification 0. Both have DF
// set and are not fragments, atomic datagrams whose Identification carries
// no meaning (RFC 6864 §4.1); the check demands exactly ID = i, DF set, and
// the header checksum that follows, and every other byte equal.
//
// A super-packet the translator declines has nothing to compare: the data
// plane segments it and translates each segment, the right side itself.
// A drop must be what Translate says of every segment.

// gsoOutcome says what the super-packet path did with one input.
type gsoOutcome int

const (
	gsoDeclined gsoOutcome = iota
	gsoDropped
	gsoWhole
	gsoNotSegmentable // tun.Segment refused the input: no per-packet reference
)

// outs are the two Outs checkGSO uses, allocated once per test or fuzz
// worker (an Out holds 200 KB).
type outs struct{ whole, per *translator.Out }

func newOuts() outs { return outs{translator.NewOut(), translator.NewOut()} }

// checkGSO checks the equivalence above for sp (its transport checksum
// partial, as the device hands it over) and reports what the super-packet
// path did.
func checkGSO(t testing.TB, tr *translator.Translator, bufs outs, sp []byte, gso int) gsoOutcome {
	t.Helper()
	// The copy and the in-place form must agree, and the in-place one
	// must keep the payload where it was.
	o := bufs.whole
	res, seg, ok := tr.TranslateGSO(bytes.Clone(sp), gso, o)
	buf := make([]byte, translator.GSOHeadroom+len(sp))
	copy(buf[translator.GSOHeadroom:], sp)
	ires, off, n, iseg, iok := tr.TranslateGSOInPlace(buf, translator.GSOHeadroom, len(sp), gso)
	if !ok {
		if len(o.Pkts) != 0 {
			t.Fatalf("declined with %d packets in Out", len(o.Pkts))
		}
	}
	if iok && ires.Verdict == translator.Forward {
		if !ok || ires != res || iseg != seg || !bytes.Equal(buf[off:off+n], o.Pkts[0]) || off+n != len(buf) {
			t.Fatalf("in place (ok %v %+v seg %d, ends at %d of %d) differs from the copy (ok %v %+v seg %d)",
				iok, ires, iseg, off+n, len(buf), ok, res, seg)
		}
	} else if iok && (!ok || ires != res) {
		t.Fatalf("in place: ok %v %+v; copy: ok %v %+v", iok, ires, ok, res)
	}
	if ok && !iok && ipEnd(sp) == len(sp) {
		// Only bytes after the packet keep the in-place form from doing
		// what the copy does.
		t.Fatalf("the copy took the super-packet (%+v), in place declined", res)
	}

	segs, err := segment(sp, gso)
	if err != nil {
		// Not a super-packet the kernel would hand over (or one with an
		// extension header tun.Segment does not walk): there is no
		// per-packet reference to compare with.
		return gsoNotSegmentable
	}
	if !ok {
		return gsoDeclined
	}
	per := bufs.per
	switch res.Verdict {
	case translator.Drop:
		for i, s := range segs {
			if r := tr.Translate(s, per); r != res {
				t.Fatalf("super-packet dropped (%+v), segment %d of %d: %+v", res, i, len(segs), r)
			}
		}
		return gsoDropped
	case translator.Forward:
	default:
		t.Fatalf("super-packet path answered %+v", res)
	}
	if seg != gso {
		t.Fatalf("segment size %d, want %d kept", seg, gso)
	}
	out := o.Pkts[0]
	if err := partialSumOK(out); err != nil {
		t.Fatalf("translated super-packet: %v", err)
	}
	got, err := segment(out, seg)
	if err != nil {
		t.Fatalf("translated super-packet does not segment: %v", err)
	}
	if len(got) != len(segs) {
		t.Fatalf("%d segments after translation, %d before", len(got), len(segs))
	}
	for i, s := range segs {
		r := tr.Translate(s, per)
		if r != res || len(per.Pkts) != 1 {
			t.Fatalf("segment %d of %d: Translate says %+v with %d packets, the super-packet path %+v with one",
				i, len(segs), r, len(per.Pkts), res)
		}
		want := per.Pkts[0]
		if want[0]>>4 == 4 {
			want = kernelID(t, want, uint16(i))
		}
		if !bytes.Equal(got[i], want) {
			t.Fatalf("segment %d of %d (gso %d) differs\nsuper-packet path % x\nper packet        % x",
				i, len(segs), gso, got[i][:min(len(got[i]), 80)], want[:min(len(want), 80)])
		}
	}
	return gsoWhole
}

// kernelID returns Translate's IPv4 output as the kernel's segmentation
// numbers it: Identification i instead of 0, with the header checksum that
// follows. Only atomic datagrams may differ so: DF set, ID 0, no fragment.
func kernelID(t testing.TB, p []byte, i uint16) []byte {
	t.Helper()
	if binary.BigEndian.Uint16(p[4:]) != 0 || binary.BigEndian.Uint16(p[6:]) != 0x4000 {
		t.Fatalf("per-packet IPv4 segment has ID %#x, flags/offset %#x: not an atomic datagram",
			binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]))
	}
	p = bytes.Clone(p)
	binary.BigEndian.PutUint16(p[4:], i)
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], ^fold(sum(p[:20], 0)))
	return p
}

// segment splits a super-packet as tun.Segment does, into fresh buffers.
func segment(sp []byte, gso int) ([][]byte, error) {
	n := len(sp)/gso + 1
	// Room for the headers, which are part of sp, and a segment's payload.
	per := min(len(sp), 40+8*256+60) + gso
	mem := make([]byte, n*per)
	out := make([][]byte, n)
	for i := range out {
		out[i] = mem[i*per : i*per : (i+1)*per]
	}
	k, err := tun.Segment(tun.Packet{Buf: sp, Len: len(sp), GSOSize: gso, Partial: true}, out)
	return out[:k], err
}

// transportAt returns where the TCP or UDP header of pkt starts, its
// protocol, and where its checksum field is within it; ok false if pkt is
// not TCP or UDP right after the IP header.
func transportAt(pkt []byte) (l4 int, proto uint8, at int, ok bool) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		l4, proto = int(pkt[0]&0xf)*4, pkt[9]
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		l4, proto = 40, pkt[6]
	default:
		return 0, 0, 0, false
	}
	switch proto {
	case pt.ProtoTCP:
		at = 16
	case pt.ProtoUDP:
		at = 6
	default:
		return 0, 0, 0, false
	}
	return l4, proto, at, l4 >= 20 && l4+at+2 <= len(pkt)
}

// ipEnd returns where pkt ends according to its IP header.
func ipEnd(pkt []byte) int {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(pkt[2:]))
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		return 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	}
	return len(pkt)
}

// pseudoSum is the folded pseudo-header sum of the transport part of pkt
// (up to the end its IP header gives, not the end of the bytes present):
// what a CHECKSUM_PARTIAL packet holds in its checksum field.
func pseudoSum(pkt []byte, l4 int, proto uint8) uint16 {
	n := uint64(max(min(ipEnd(pkt), len(pkt))-l4, 0))
	if pkt[0]>>4 == 4 {
		return fold(sum(pkt[12:20], 0) + uint64(proto) + n)
	}
	return fold(sum(pkt[8:40], 0) + uint64(proto) + n)
}

// makePartial writes the pseudo-header sum into the transport checksum
// field, as the kernel leaves it in a super-packet.
func makePartial(pkt []byte) []byte {
	l4, proto, at, ok := transportAt(pkt)
	if !ok {
		return pkt
	}
	binary.BigEndian.PutUint16(pkt[l4+at:], pseudoSum(pkt, l4, proto))
	return pkt
}

// partialSumOK checks that the translated super-packet's checksum field
// holds its own pseudo-header sum, which the kernel completes per segment.
func partialSumOK(pkt []byte) error {
	l4, proto, at, ok := transportAt(pkt)
	if !ok {
		return fmt.Errorf("no TCP or UDP header")
	}
	if got, want := binary.BigEndian.Uint16(pkt[l4+at:]), pseudoSum(pkt, l4, proto); got != want {
		return fmt.Errorf("checksum field %#04x, want the pseudo-header sum %#04x", got, want)
	}
	return nil
}

// gsoConfigs are the configurations the equivalence is checked under: the
// default, the smallest MTUs allowed, jumbo frames, a lowest IPv6 MTU equal
// to the IPv6 MTU, unequal sides, generated IPv4 Identifications, general
// SIIT without hairpinning.
var gsoConfigs = []struct {
	name   string
	change func(*translator.Config)
}{
	{"default", nil},
	// (With an IPv4 MTU of 1260 no super-packet from IPv6 could be taken
	// whole: Translate sets DF only above 1260 bytes.)
	{"small-mtus", func(c *translator.Config) { c.IPv6MTU, c.IPv4MTU, c.LowestIPv6MTU = 1280, 1280, 1280 }},
	{"jumbo", func(c *translator.Config) { c.IPv6MTU, c.IPv4MTU = 9000, 9000 }},
	{"lowest-is-mtu", func(c *translator.Config) { c.LowestIPv6MTU = 1500 }},
	{"v6-1400-v4-1500", func(c *translator.Config) { c.IPv6MTU = 1400 }},
	{"generate-id", func(c *translator.Config) { c.GenerateIPv4ID, c.ZeroTrafficClass = true, true }},
	{"siit", func(c *translator.Config) {
		c.Policy, c.Hairpin, c.IPv6MTU, c.IPv4MTU = translator.PolicySIIT, translator.HairpinOff, 1500, 1400
	}},
}

// randomSuperPacket builds a partial-checksum TCP or UDP super-packet from
// either side, its size and segment size drawn around the thresholds that
// matter (1260, 1280, the MTUs), with DF set or clear, IP options, TCP
// options and flags, and now and then an address that is unmapped,
// spoofed or hairpinned. It has at most maxSegs whole segments and a rest.
func randomSuperPacket(r *rand.Rand, cfg translator.Config, maxSegs int) (sp []byte, gso int) {
	v4 := r.IntN(2) == 0
	tcp := r.IntN(3) != 0
	hl := 8
	var topts []byte
	if tcp {
		topts = bytes.Repeat([]byte{1}, 4*r.IntN(11)) // NOPs: up to 40 bytes of options
		hl = 20 + len(topts)
	}
	ip := 40
	if v4 {
		ip = 20
	}
	// The segment size: anything, or so that a segment lands at or next
	// to one of the sizes where the rules change, on either side.
	thresholds := []int{1260, 1280, cfg.LowestIPv6MTU, cfg.IPv6MTU, cfg.IPv4MTU}
	switch r.IntN(3) {
	case 0:
		gso = 64 + r.IntN(9000)
	default:
		size := thresholds[r.IntN(len(thresholds))] + r.IntN(5) - 2
		if v4 == (r.IntN(2) == 0) { // the size after translation or before
			size += 20
		}
		gso = max(size-ip-hl, 64)
	}
	// The payload: whole segments and a rest, within 64 KB.
	most := 65535 - 60 - hl
	k := r.IntN(min(maxSegs, most/gso) + 1)
	n := k * gso
	if r.IntN(3) != 0 && n+gso <= most {
		n += r.IntN(gso)
	}
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	ttl := []uint8{1, 2, 64, 64, 64, 64, 64, 255}[r.IntN(8)]
	th := pt.TCP{Sport: 40000, Dport: 443, Seq: r.Uint32(), Ack: r.Uint32(), Window: 512,
		Flags: pt.ACK | uint8(r.IntN(256))&(pt.PSH|pt.FIN|pt.CWR|pt.ECE|pt.URG), Options: topts}
	if v4 {
		src, dst := client4, server4
		switch r.IntN(12) {
		case 0:
			dst = netip.MustParseAddr("203.0.113.99") // unmapped
		case 1:
			src = server4b // one of our own: spoofed
		}
		h := pt.IPv4{TOS: uint8(r.IntN(256)), ID: uint16(r.Uint32()), DF: r.IntN(2) == 0, TTL: ttl, Src: src, Dst: dst}
		if r.IntN(8) == 0 {
			h.Options = []byte{1, 1, 1, 0} // NOPs and End of Options
		}
		if tcp {
			sp = pt.TCP4(h, th, payload)
		} else {
			sp = pt.UDP4(h, 40000, 443, payload)
		}
	} else {
		src, dst := server6, client6
		switch r.IntN(12) {
		case 0:
			src = router6 // unmapped
		case 1:
			src = client6 // inside the pseudo prefix: spoofed
		case 2:
			dst = netip.MustParseAddr("64:ff9b::198.51.100.11") // hairpinned
		}
		h := pt.IPv6{TC: uint8(r.IntN(256)), Flow: r.Uint32() & 0xfffff, Hop: ttl, Src: src, Dst: dst}
		if tcp {
			sp = pt.TCP6(h, th, payload)
		} else {
			sp = pt.UDP6(h, 443, 40000, payload)
		}
	}
	return makePartial(sp), gso
}

// TestTranslateGSOMatchesSegments is the differential property test: for
// random super-packets under several real configurations, translating whole
// and then segmenting equals segmenting and then translating (see the top
// of this file). It also proves that it is not vacuous: each direction must
// have been translated whole, declined and dropped.
func TestTranslateGSOMatchesSegments(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 646))
	for _, c := range gsoConfigs {
		t.Run(c.name, func(t *testing.T) {
			tr := newTranslator(t, c.change, nil)
			var seen [2][4]int
			bufs := newOuts()
			for range 400 {
				sp, gso := randomSuperPacket(r, tr.Config(), 45)
				v := 0
				if sp[0]>>4 == 6 {
					v = 1
				}
				seen[v][checkGSO(t, tr, bufs, sp, gso)]++
			}
			for v, name := range []string{"4->6", "6->4"} {
				// General SIIT has no spoofed sources: nothing to drop whole.
				drops := seen[v][gsoDropped] > 0 || tr.Config().Policy == translator.PolicySIIT
				if seen[v][gsoWhole] == 0 || seen[v][gsoDeclined] == 0 || !drops {
					t.Errorf("%s: %d whole, %d declined, %d dropped: every outcome must be exercised",
						name, seen[v][gsoWhole], seen[v][gsoDeclined], seen[v][gsoDropped])
				}
			}
			for v, name := range []string{"4->6", "6->4"} {
				t.Logf("%s: %d whole, %d declined, %d dropped, %d not segmentable",
					name, seen[v][gsoWhole], seen[v][gsoDeclined], seen[v][gsoDropped], seen[v][gsoNotSegmentable])
			}
		})
	}
}

// FuzzTranslateGSO: TranslateGSO and TranslateGSOInPlace never panic, agree
// with each other, and whatever they translate whole is what Translate makes
// of its segments (checkGSO). cfg picks the configuration from gsoConfigs;
// sel steers fix4 and fix6 as in FuzzTranslate4/6 (addresses, lengths,
// header checksum), and the transport checksum is always made partial, as
// the device hands super-packets over.
func FuzzTranslateGSO(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 11))
	base := newTranslator(f, nil, nil)
	for range 24 {
		sp, gso := randomSuperPacket(r, base.Config(), 3)
		// Addresses kept (0x40) or client -> server (0xc4).
		f.Add(sp, uint16(gso), uint8(r.IntN(len(gsoConfigs))), []uint8{0x40, 0xc4}[r.IntN(2)])
	}
	trs := make([]*translator.Translator, len(gsoConfigs))
	for i, c := range gsoConfigs {
		trs[i] = newTranslator(f, c.change, nil)
	}
	bufs := newOuts() // one per worker process: the fuzz function runs serially
	f.Fuzz(func(t *testing.T, pkt []byte, gso uint16, cfg, sel uint8) {
		tr := trs[int(cfg)%len(trs)]
		if len(pkt) > 0 && pkt[0]>>4 == 6 {
			pkt = makePartial(fix6(pkt, sel))
		} else {
			pkt = makePartial(fix4(pkt, sel))
		}
		// At most 64 segments, as many as the kernel makes of a 64 KB
		// packet with the smallest MSS it uses for TSO; thousands would
		// only slow the fuzzer down.
		checkGSO(t, tr, bufs, pkt, max(int(gso), 1+len(pkt)/64))
	})
}
