package translator_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

// partialize turns a packet with a complete transport checksum into what a
// device with checksum offload hands over: the field holds the folded
// pseudo-header sum (CHECKSUM_PARTIAL). l4 is the offset of the transport
// header, at the offset of the checksum field within it.
func partialize(pkt []byte, l4, at int) []byte {
	pkt = bytes.Clone(pkt)
	var pseudo uint64
	n := len(pkt) - l4
	if pkt[0]>>4 == 4 {
		pseudo = sum(pkt[12:20], 0) + uint64(pkt[9]) + uint64(n)
	} else {
		pseudo = sum(pkt[8:40], 0) + uint64(pkt[6]) + uint64(n)
	}
	binary.BigEndian.PutUint16(pkt[l4+at:], fold(pseudo))
	return pkt
}

// complete does what the kernel does with a partial checksum.
func complete(pkt []byte, l4, at int) []byte {
	pkt = bytes.Clone(pkt)
	c := ^fold(sum(pkt[l4:], 0))
	if c == 0 && at == 6 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[l4+at:], c)
	return pkt
}

// TestTranslateGSO: a super-packet translated whole equals the same packet
// translated without offload, once the kernel has completed its checksum;
// segments shrink to fit the other side's MTU.
func TestTranslateGSO(t *testing.T) {
	payload := bytes.Repeat([]byte("segment!"), 3*1448/8)
	tcp := pt.TCP{Sport: 40000, Dport: 80, Seq: 1, Ack: 1, Flags: pt.ACK, Window: 65535}
	cases := []struct {
		name      string
		pkt       []byte
		l4, at    int
		gso       int
		wantGSO   int
		wantL4Out int
	}{
		{"tcp-4to6", pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, tcp, payload), 20, 16, 1448, 1440, 40},
		{"tcp-4to6-small-segments", pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, tcp, payload), 20, 16, 1000, 1000, 40},
		{"udp-4to6", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, payload), 20, 6, 1472, 1452, 40},
		{"tcp-6to4", pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, tcp, payload), 40, 16, 1440, 1440, 20},
		{"udp-6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 40000, payload), 40, 6, 1452, 1452, 20},
	}
	tr := newTranslator(t, nil, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := translator.NewOut()
			res, seg, ok := tr.TranslateGSO(partialize(c.pkt, c.l4, c.at), c.gso, o)
			if !ok || res.Verdict != translator.Forward || len(o.Pkts) != 1 {
				t.Fatalf("TranslateGSO: ok %v, %v %q, %d packets", ok, res.Verdict, res.Reason, len(o.Pkts))
			}
			if seg != c.wantGSO {
				t.Errorf("segment size %d, want %d", seg, c.wantGSO)
			}
			got := complete(o.Pkts[0], c.wantL4Out, c.at)
			// The reference: the whole packet translated the ordinary way,
			// with MTUs large enough that it stays one packet.
			ref := newTranslator(t, func(cfg *translator.Config) {
				cfg.IPv6MTU, cfg.IPv4MTU, cfg.LowestIPv6MTU = translator.MaxMTU, translator.MaxMTU, translator.MaxMTU
			}, nil)
			ro := translator.NewOut()
			if r := ref.Translate(c.pkt, ro); r.Verdict != translator.Forward || len(ro.Pkts) != 1 {
				t.Fatalf("reference translation: %v %q", r.Verdict, r.Reason)
			}
			want := ro.Pkts[0]
			// In place: the same bytes, written over the input buffer.
			buf := make([]byte, 64+len(c.pkt))
			copy(buf[64:], partialize(c.pkt, c.l4, c.at))
			ires, off, n, iseg, iok := tr.TranslateGSOInPlace(buf, 64, len(c.pkt), c.gso)
			if !iok || ires != res || iseg != seg || !bytes.Equal(buf[off:off+n], o.Pkts[0]) {
				t.Errorf("in place: ok %v, %+v, seg %d, differs from the copy: %v", iok, ires, iseg, !bytes.Equal(buf[off:off+n], o.Pkts[0]))
			}
			if off+n != 64+len(c.pkt) {
				t.Errorf("in place: payload moved (ends at %d, want %d)", off+n, 64+len(c.pkt))
			}
			if got[0]>>4 == 4 {
				// The offload path always sets DF: the kernel's segments are
				// each larger than 1260 bytes.
				want = bytes.Clone(want)
				copy(want[6:8], got[6:8])
				copy(want[10:12], got[10:12])
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("super-packet translation differs from the ordinary one\ngot  % x\nwant % x", got[:64], want[:64])
			}
			if _, err := pt.Check(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTranslateGSOFallsBack: what the super-packet path does not handle is
// left to per-segment translation, with Out untouched.
func TestTranslateGSOFallsBack(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	payload := make([]byte, 3000)
	tcp := pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}
	for name, pkt := range map[string][]byte{
		"ttl-expiring": pt.TCP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, tcp, payload),
		"unmapped-dst": pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: netip.MustParseAddr("198.51.100.99")}, tcp, payload),
		"hairpin":      pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("64:ff9b::198.51.100.11")}, tcp, payload),
		"icmp":         pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 8, 0, [4]byte{}, payload),
	} {
		o := translator.NewOut()
		if _, _, ok := tr.TranslateGSO(pkt, 1448, o); ok || len(o.Pkts) != 0 {
			t.Errorf("%s: ok %v with %d packets, want a fallback", name, ok, len(o.Pkts))
		}
	}
	spoofed := pt.TCP6(pt.IPv6{Hop: 64, Src: client6, Dst: client6}, tcp, payload)
	if res, _, ok := tr.TranslateGSO(spoofed, 1440, translator.NewOut()); !ok || res.Reason != translator.ReasonSpoofedPseudo {
		t.Errorf("spoofed super-packet: ok %v reason %q, want a drop for spoofed-pseudo-source", ok, res.Reason)
	}
}

func TestTranslateGSOZeroAllocs(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	o := translator.NewOut()
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 60000)), 20, 16)
	if n := testing.AllocsPerRun(100, func() { tr.TranslateGSO(pkt, 1448, o) }); n != 0 {
		t.Errorf("%v allocations per super-packet, want 0", n)
	}
}

// BenchmarkTranslateGSO: a 64 KB TCP super-packet translated whole.
func BenchmarkTranslateGSO(b *testing.B) {
	tr := newTranslator(b, nil, nil)
	o := translator.NewOut()
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 65535-40)), 20, 16)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		tr.TranslateGSO(pkt, 1448, o)
	}
}

// TestTranslateGSOInPlaceNeedsHeadroom: without room for the longer header
// the in-place path declines rather than write outside the buffer.
func TestTranslateGSOInPlaceNeedsHeadroom(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 3000)), 20, 16)
	buf := append(make([]byte, translator.GSOHeadroom-1), pkt...)
	if _, _, _, _, ok := tr.TranslateGSOInPlace(buf, translator.GSOHeadroom-1, len(pkt), 1448); ok {
		t.Fatal("translated in place with too little headroom")
	}
}

func BenchmarkTranslateGSOInPlace(b *testing.B) {
	tr := newTranslator(b, nil, nil)
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 65535-40)), 20, 16)
	buf := make([]byte, 64+len(pkt))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		// Restore the header the previous round overwrote: 40 bytes, not 64 KB.
		copy(buf[64:64+40], pkt[:40])
		tr.TranslateGSOInPlace(buf, 64, len(pkt), 1448)
	}
}
