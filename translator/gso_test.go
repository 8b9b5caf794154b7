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
// the segments keep their size. (TestTranslateGSOMatchesSegments compares
// segment by segment under real MTUs; this test checks the whole packet,
// headers included, against a translator whose MTUs keep it one packet.)
func TestTranslateGSO(t *testing.T) {
	tcp := pt.TCP{Sport: 40000, Dport: 80, Seq: 1, Ack: 1, Flags: pt.ACK, Window: 65535}
	payload := func(gso int) []byte { return bytes.Repeat([]byte("segment!"), 3*gso/8+1)[:3*gso] }
	cases := []struct {
		name      string
		pkt       []byte
		l4, at    int
		gso       int
		wantL4Out int
	}{
		// DF and 1500 bytes as IPv6: the IPv6 MTU.
		{"tcp-4to6", pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, tcp, payload(1440)), 20, 16, 1440, 40},
		// No DF, 1060 bytes as IPv6: below the lowest IPv6 MTU, no Fragment header.
		{"tcp-4to6-small-segments", pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, tcp, payload(1000)), 20, 16, 1000, 40},
		{"udp-4to6", pt.UDP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, 40000, 53, payload(1452)), 20, 6, 1452, 40},
		// 1480 bytes as IPv4: DF, as Translate sets it above 1260 bytes.
		{"tcp-6to4", pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, tcp, payload(1440)), 40, 16, 1440, 20},
		{"udp-6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 40000, payload(1452)), 40, 6, 1452, 20},
	}
	tr := newTranslator(t, nil, nil)
	// The reference: the whole packet translated the ordinary way, with
	// MTUs large enough that it stays one packet. Its DF and ID are those
	// of any packet larger than 1280 bytes, as are those of the segments.
	ref := newTranslator(t, func(cfg *translator.Config) {
		cfg.IPv6MTU, cfg.IPv4MTU, cfg.LowestIPv6MTU = translator.MaxMTU, translator.MaxMTU, translator.MaxMTU
	}, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := translator.NewOut()
			res, seg, ok := tr.TranslateGSO(partialize(c.pkt, c.l4, c.at), c.gso, o)
			if !ok || res.Verdict != translator.Forward || len(o.Pkts) != 1 {
				t.Fatalf("TranslateGSO: ok %v, %v %q, %d packets", ok, res.Verdict, res.Reason, len(o.Pkts))
			}
			if seg != c.gso {
				t.Errorf("segment size %d, want %d", seg, c.gso)
			}
			got := complete(o.Pkts[0], c.wantL4Out, c.at)
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
			if !bytes.Equal(got, want) {
				t.Fatalf("super-packet translation differs from the ordinary one\ngot  % x\nwant % x", got[:64], want[:64])
			}
			if _, err := pt.Check(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTranslateGSOFallsBack: what the super-packet path cannot translate
// exactly as Translate would translate each segment is left to per-segment
// translation, with Out untouched. The sizes are those of the default
// configuration: lowest IPv6 MTU 1280, both MTUs 1500.
func TestTranslateGSOFallsBack(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	genID := newTranslator(t, func(c *translator.Config) { c.GenerateIPv4ID = true }, nil)
	tcp := pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}
	v4 := func(df bool, ttl uint8) pt.IPv4 { return pt.IPv4{TTL: ttl, DF: df, Src: client4, Dst: server4} }
	v6 := pt.IPv6{Hop: 64, Src: server6, Dst: client6}
	cases := []struct {
		name string
		tr   *translator.Translator
		pkt  []byte
		gso  int
	}{
		{"ttl-expiring", tr, pt.TCP4(v4(true, 1), tcp, make([]byte, 3000)), 1000},
		{"unmapped-dst", tr, pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: netip.MustParseAddr("198.51.100.99")}, tcp, make([]byte, 3000)), 1000},
		{"hairpin", tr, pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("64:ff9b::198.51.100.11")}, tcp, make([]byte, 3000)), 1000},
		{"icmp", tr, pt.ICMP4(v4(true, 64), 8, 0, [4]byte{}, make([]byte, 3000)), 1000},
		// RFC 7915 §4: without DF, above the lowest IPv6 MTU, each segment
		// is fragmented: 1440 bytes of payload make 1280 + 236.
		{"4to6-no-df-fragmented", tr, pt.TCP4(v4(false, 64), tcp, make([]byte, 3*1440)), 1440},
		{"4to6-udp-no-df-fragmented", tr, pt.UDP4(v4(false, 64), 40000, 53, make([]byte, 3*1300)), 1300},
		// DF and above the IPv6 MTU once translated: Fragmentation Needed
		// per segment (not segments shrunk behind the sender's back).
		{"4to6-df-too-big", tr, pt.TCP4(v4(true, 64), tcp, make([]byte, 3*1460)), 1460},
		{"4to6-udp-df-too-big", tr, pt.UDP4(v4(true, 64), 40000, 53, make([]byte, 3*1472)), 1472},
		// RFC 7915 §5.1: no DF on packets of at most 1260 bytes.
		{"6to4-small-segments", tr, pt.TCP6(v6, tcp, make([]byte, 3*1000)), 1000},
		{"6to4-short-last-segment", tr, pt.TCP6(v6, tcp, make([]byte, 2*1440+100)), 1440},
		// Above the IPv4 MTU: Packet Too Big per segment.
		{"6to4-too-big", tr, pt.UDP6(v6, 53, 40000, make([]byte, 3*1480)), 1480},
		// Generated Identifications for packets of up to 1280 bytes (1270 here).
		{"6to4-generated-id", genID, pt.TCP6(v6, tcp, make([]byte, 3*1230)), 1230},
	}
	for _, c := range cases {
		o := translator.NewOut()
		if _, _, ok := c.tr.TranslateGSO(c.pkt, c.gso, o); ok || len(o.Pkts) != 0 {
			t.Errorf("%s: ok %v with %d packets, want a fallback", c.name, ok, len(o.Pkts))
		}
	}
	spoofed := pt.TCP6(pt.IPv6{Hop: 64, Src: client6, Dst: client6}, tcp, make([]byte, 3000))
	if res, _, ok := tr.TranslateGSO(spoofed, 1440, translator.NewOut()); !ok || res.Reason != translator.ReasonSpoofedPseudo {
		t.Errorf("spoofed super-packet: ok %v reason %q, want a drop for spoofed-pseudo-source", ok, res.Reason)
	}
}

func TestTranslateGSOZeroAllocs(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	o := translator.NewOut()
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 60000)), 20, 16)
	if res, _, ok := tr.TranslateGSO(pkt, 1440, o); !ok || res.Verdict != translator.Forward {
		t.Fatalf("TranslateGSO: ok %v %+v, want it translated whole", ok, res)
	}
	if n := testing.AllocsPerRun(100, func() { tr.TranslateGSO(pkt, 1440, o) }); n != 0 {
		t.Errorf("%v allocations per super-packet, want 0", n)
	}
}

// BenchmarkTranslateGSO: a 64 KB TCP super-packet translated whole, its
// segments of 1440 bytes filling the IPv6 MTU of 1500.
func BenchmarkTranslateGSO(b *testing.B) {
	tr := newTranslator(b, nil, nil)
	o := translator.NewOut()
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 65535-40)), 20, 16)
	if _, _, ok := tr.TranslateGSO(pkt, 1440, o); !ok {
		b.Fatal("declined: the benchmark would measure the wrong path")
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		tr.TranslateGSO(pkt, 1440, o)
	}
}

// TestTranslateGSOInPlaceNeedsHeadroom: without room for the longer header
// the in-place path declines rather than write outside the buffer.
func TestTranslateGSOInPlaceNeedsHeadroom(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 3000)), 20, 16)
	buf := append(make([]byte, translator.GSOHeadroom-1), pkt...)
	if _, _, _, _, ok := tr.TranslateGSOInPlace(buf, translator.GSOHeadroom-1, len(pkt), 1440); ok {
		t.Fatal("translated in place with too little headroom")
	}
	// One byte more and the same super-packet is taken: the headroom was
	// the reason.
	buf = append(make([]byte, translator.GSOHeadroom), pkt...)
	if _, _, _, _, ok := tr.TranslateGSOInPlace(buf, translator.GSOHeadroom, len(pkt), 1440); !ok {
		t.Fatal("declined with enough headroom")
	}
}

func BenchmarkTranslateGSOInPlace(b *testing.B) {
	tr := newTranslator(b, nil, nil)
	pkt := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 65535-40)), 20, 16)
	buf := make([]byte, 64+len(pkt))
	copy(buf[64:], pkt)
	if _, _, _, _, ok := tr.TranslateGSOInPlace(buf, 64, len(pkt), 1440); !ok {
		b.Fatal("declined: the benchmark would measure the wrong path")
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		// Restore the header the previous round overwrote: 40 bytes, not 64 KB.
		copy(buf[64:64+40], pkt[:40])
		tr.TranslateGSOInPlace(buf, 64, len(pkt), 1440)
	}
}
