package translator_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/packettest"
)

// The fuzz targets check three properties on every input:
//   - Translate never panics, and its verdict matches what it emitted;
//   - when the input is a well-formed packet (packettest.Check accepts it),
//     every packet emitted is well formed with correct checksums;
//   - a TCP, UDP or ICMP echo packet translated and translated back (with a
//     general SIIT translator, where that round trip is defined) comes back
//     with the same addresses, ports, payload and transport checksum.
//
// Raw mutations would rarely get past the IPv4 header checksum or reach a
// mapped address, so each input first goes through fix4/fix6, steered by
// sel: addresses from the test configuration, lengths, and checksums set
// right, so that the fuzzer explores the translation itself.

func FuzzTranslate4(f *testing.F) {
	seed(f, 4)
	dc := newTranslator(f, nil, nil)
	siit := newTranslator(f, roundTripConfig, nil)
	f.Fuzz(func(t *testing.T, pkt []byte, sel uint8) {
		pkt = fix4(pkt, sel)
		checkTranslation(t, dc, pkt)
		checkTranslation(t, siit, pkt)
		checkRoundTrip(t, siit, pkt)
	})
}

func FuzzTranslate6(f *testing.F) {
	seed(f, 6)
	dc := newTranslator(f, nil, nil)
	siit := newTranslator(f, roundTripConfig, nil)
	f.Fuzz(func(t *testing.T, pkt []byte, sel uint8) {
		pkt = fix6(pkt, sel)
		checkTranslation(t, dc, pkt)
		checkTranslation(t, siit, pkt)
		checkRoundTrip(t, siit, pkt)
	})
}

// roundTripConfig is general SIIT without hairpinning: every address the
// fuzz harness uses then translates both ways.
// MTUs are at their largest so that neither direction fragments or answers
// Packet Too Big.
func roundTripConfig(c *translator.Config) {
	c.Policy = translator.PolicySIIT
	c.Hairpin = translator.HairpinOff
	c.IPv6MTU, c.IPv4MTU, c.LowestIPv6MTU = translator.MaxMTU, translator.MaxMTU, translator.MaxMTU
}

// seed adds the inputs of the golden tests of one IP version, plus the
// selector values that leave them unchanged (0) and that rewrite them.
func seed(f *testing.F, version byte) {
	n := 0
	for _, cases := range conformanceCases {
		for _, c := range cases {
			if len(c.in) > 0 && c.in[0]>>4 == version {
				f.Add(c.in, uint8(0))
				f.Add(c.in, uint8(0xff))
				n++
			}
		}
	}
	if n == 0 {
		f.Fatalf("no IPv%d seeds: the golden cases are missing", version)
	}
}

func checkTranslation(t *testing.T, tr *translator.Translator, pkt []byte) {
	t.Helper()
	in := bytes.Clone(pkt)
	o := translator.NewOut()
	res := tr.Translate(pkt, o)
	if !bytes.Equal(in, pkt) {
		t.Fatal("Translate modified its input")
	}
	switch res.Verdict {
	case translator.Drop:
		if len(o.Pkts) != 0 || res.Reason == translator.ReasonNone {
			t.Fatalf("drop with reason %q emitted %d packets", res.Reason, len(o.Pkts))
		}
		return
	case translator.Forward:
		if res.Reason != translator.ReasonNone {
			t.Fatalf("forward with reason %q", res.Reason)
		}
	case translator.ICMPError:
		if len(o.Pkts) != 1 || res.Reason == translator.ReasonNone {
			t.Fatalf("icmp-error with reason %q emitted %d packets", res.Reason, len(o.Pkts))
		}
	}
	if len(o.Pkts) == 0 {
		t.Fatalf("verdict %v emitted nothing", res.Verdict)
	}
	if in, err := packettest.Check(pkt); err != nil || in.TinyFragment {
		// A malformed input may come out malformed (J2: checksums are not
		// repaired), and so may an IPv4 first fragment whose transport
		// header does not parse: the translator does not parse TCP options.
		return
	}
	for i, b := range o.Pkts {
		if _, err := packettest.Check(b); err != nil {
			t.Fatalf("verdict %v: output %d malformed: %v\nin  % x\nout % x", res.Verdict, i, err, pkt, b)
		}
	}
}

func checkRoundTrip(t *testing.T, tr *translator.Translator, pkt []byte) {
	t.Helper()
	in, err := packettest.Check(pkt)
	if err != nil || in.IsFragment() || !roundTrips(in) || !canonical(tr, in.Src) || !canonical(tr, in.Dst) {
		return
	}
	o := translator.NewOut()
	if res := tr.Translate(pkt, o); res.Verdict != translator.Forward || len(o.Pkts) != 1 {
		return // fragmented on the way, or not translatable: not a round trip
	}
	mid := bytes.Clone(o.Pkts[0])
	res := tr.Translate(mid, o)
	if res.Verdict != translator.Forward || len(o.Pkts) != 1 {
		t.Fatalf("translated one way but not back: %v %q\nin  % x\nmid % x", res.Verdict, res.Reason, pkt, mid)
	}
	back, err := packettest.Check(o.Pkts[0])
	if err != nil {
		t.Fatalf("round trip malformed: %v", err)
	}
	switch {
	case back.Src != in.Src || back.Dst != in.Dst:
		t.Fatalf("round trip addresses %v -> %v, want %v -> %v", back.Src, back.Dst, in.Src, in.Dst)
	case back.Proto != in.Proto || back.Sport != in.Sport || back.Dport != in.Dport:
		t.Fatalf("round trip transport %d %d>%d, want %d %d>%d", back.Proto, back.Sport, back.Dport, in.Proto, in.Sport, in.Dport)
	case !bytes.Equal(back.L4, in.L4):
		t.Fatalf("round trip changed the transport header or payload\nin  % x\nout % x", in.L4, back.L4)
	case back.TTL != in.TTL-2:
		t.Fatalf("round trip TTL %d, want %d", back.TTL, in.TTL-2)
	}
}

// canonical reports whether an IPv6 address is the form the translator
// itself produces for its IPv4 counterpart: the pseudo-prefix form of a
// mapped IPv4 address is not (the table wins, RFC 7757 §3), so it cannot
// come back unchanged.
func canonical(tr *translator.Translator, a netip.Addr) bool {
	if !a.Is6() || !pseudo.Contains(a) {
		return true
	}
	b := a.As16()
	_, _, mapped := tr.Table().Map4([4]byte(b[12:]))
	return !mapped
}

// roundTrips reports packets whose transport bytes must survive 4->6->4 or
// 6->4->6 unchanged: TCP, UDP with a checksum, and ICMP echo without
// extension headers (which the translator removes).
func roundTrips(p *packettest.Packet) bool {
	if len(p.Ext) > 0 || len(p.Options) > 0 || p.TTL < 3 {
		return false
	}
	switch p.Proto {
	case packettest.ProtoTCP:
		return true
	case packettest.ProtoUDP:
		return p.Checksum != 0
	case packettest.ProtoICMP, 58:
		return p.ICMP != nil && !p.ICMP.Error
	}
	return false
}

// Addresses the harness writes into inputs, indexed by selector bits: a mix
// of mapped, pseudo-prefix and unmapped addresses.
var (
	fuzzAddrs4 = [4][4]byte{client4.As4(), server4.As4(), server4b.As4(), {198, 51, 100, 20}}
	fuzzAddrs6 = [4][16]byte{server6.As16(), client6.As16(), router6.As16(), server6b.As16()}
)

// fix4 makes pkt an IPv4 packet that gets past the header checks: with
// sel&0x80, source and destination from fuzzAddrs4 (sel bits 0-1 and 2-3),
// with sel&0x40 the total length of the bytes present, and always a correct
// header checksum and, for an unfragmented TCP, UDP or ICMP packet, a
// correct transport checksum.
func fix4(pkt []byte, sel uint8) []byte {
	if len(pkt) < 20 {
		return pkt
	}
	pkt = bytes.Clone(pkt)
	pkt[0] = 0x40 | pkt[0]&0xf
	hlen := int(pkt[0]&0xf) * 4
	if hlen < 20 || hlen > len(pkt) {
		return pkt
	}
	if sel&0x80 != 0 {
		copy(pkt[12:16], fuzzAddrs4[sel&3][:])
		copy(pkt[16:20], fuzzAddrs4[sel>>2&3][:])
	}
	if sel&0x40 != 0 && len(pkt) <= 0xffff {
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	}
	tlen := int(binary.BigEndian.Uint16(pkt[2:]))
	pkt[10], pkt[11] = 0, 0
	binary.BigEndian.PutUint16(pkt[10:], ^fold(sum(pkt[:hlen], 0)))
	fragmented := binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0
	if tlen < hlen || tlen > len(pkt) || fragmented {
		return pkt
	}
	l4 := pkt[hlen:tlen]
	var pseudo uint64
	for _, w := range [2][]byte{pkt[12:16], pkt[16:20]} {
		pseudo += uint64(binary.BigEndian.Uint16(w)) + uint64(binary.BigEndian.Uint16(w[2:]))
	}
	pseudo += uint64(pkt[9]) + uint64(len(l4))
	switch pkt[9] {
	case packettest.ProtoTCP:
		setChecksum(l4, 16, pseudo)
	case packettest.ProtoUDP:
		if len(l4) >= 8 && binary.BigEndian.Uint16(l4[6:]) != 0 {
			setChecksum(l4, 6, pseudo)
		}
	case packettest.ProtoICMP:
		setChecksum(l4, 2, 0)
	}
	return pkt
}

// fix6 is fix4 for IPv6: addresses from fuzzAddrs6, the payload length of
// the bytes present, and a correct transport checksum when the transport
// header follows the IPv6 header directly.
func fix6(pkt []byte, sel uint8) []byte {
	if len(pkt) < 40 {
		return pkt
	}
	pkt = bytes.Clone(pkt)
	pkt[0] = 0x60 | pkt[0]&0xf
	if sel&0x80 != 0 {
		copy(pkt[8:24], fuzzAddrs6[sel&3][:])
		copy(pkt[24:40], fuzzAddrs6[sel>>2&3][:])
	}
	if sel&0x40 != 0 && len(pkt)-40 <= 0xffff {
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
	}
	end := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	if end > len(pkt) {
		return pkt
	}
	l4 := pkt[40:end]
	pseudo := sum(pkt[8:40], 0) + uint64(pkt[6]) + uint64(len(l4))
	switch pkt[6] {
	case packettest.ProtoTCP:
		setChecksum(l4, 16, pseudo)
	case packettest.ProtoUDP:
		setChecksum(l4, 6, pseudo)
	case 58:
		setChecksum(l4, 2, pseudo)
	}
	return pkt
}

func setChecksum(l4 []byte, at int, pseudo uint64) {
	if len(l4) < at+2 {
		return
	}
	l4[at], l4[at+1] = 0, 0
	c := ^fold(sum(l4, pseudo))
	if c == 0 && at == 6 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], c)
}

func sum(b []byte, acc uint64) uint64 {
	for ; len(b) >= 2; b = b[2:] {
		acc += uint64(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
