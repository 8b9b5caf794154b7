package translator_test

import (
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

// hotPath is one packet per translation path the data plane takes.
type hotPath struct {
	name string
	pkt  []byte
	want translator.Verdict
}

func hotPaths() []hotPath {
	router4 := netip.MustParseAddr("203.0.113.5")
	// Client to server and back: the common case, 64-byte and full-size.
	udp64to6 := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, make([]byte, 64-28))
	udp64to4 := pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 40000, make([]byte, 64-48))
	tcp1500to6 := pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK, Window: 65535}, make([]byte, 1500-40))
	tcp1500to4 := pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6},
		pt.TCP{Sport: 80, Dport: 40000, Flags: pt.ACK, Window: 65535}, make([]byte, 1500-60))
	// An IPv4 router's Time Exceeded about a server's packet, and a
	// datacenter router's Packet Too Big about a client's packet.
	quoted4 := pt.UDP4(pt.IPv4{TTL: 1, Src: server4, Dst: client4}, 53, 40000, make([]byte, 100))
	icmp4to6 := pt.ICMP4(pt.IPv4{TTL: 60, Src: router4, Dst: server4}, 11, 0, [4]byte{}, quoted4)
	quoted6 := pt.TCP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, pt.TCP{Sport: 40000, Dport: 80, Flags: pt.ACK}, make([]byte, 1400))
	icmp6to4 := pt.ICMP6(pt.IPv6{Hop: 64, Src: router6, Dst: client6}, 2, 0, pt.Rest32(1400), quoted6[:1280-48])
	// Paths that emit more than one packet or a generated error.
	frag := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, make([]byte, 3000))
	hairpin := pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("64:ff9b::198.51.100.11")}, 40000, 53, make([]byte, 100))
	ttl := pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 53, make([]byte, 100))
	return []hotPath{
		{"udp64-4to6", udp64to6, translator.Forward},
		{"udp64-6to4", udp64to4, translator.Forward},
		{"tcp1500-4to6", tcp1500to6, translator.Forward},
		{"tcp1500-6to4", tcp1500to4, translator.Forward},
		{"icmperror-4to6", icmp4to6, translator.Forward},
		{"icmperror-6to4", icmp6to4, translator.Forward},
		{"fragment-4to6", frag, translator.Forward},
		{"hairpin-6to6", hairpin, translator.Forward},
		{"ttl-expired-error", ttl, translator.ICMPError},
	}
}

// dcMTU is the configuration RFC 7755 §5 recommends for a datacenter: an
// IPv6 MTU 20 bytes larger than the IPv4 one, so that full-size IPv4
// packets cross without fragmentation or Packet Too Big.
func dcMTU(c *translator.Config) { c.IPv6MTU = 1520 }

// TestZeroAllocs proves that no translation path allocates.
func TestZeroAllocs(t *testing.T) {
	tr := newTranslator(t, dcMTU, nil)
	o := translator.NewOut()
	for _, p := range hotPaths() {
		if res := tr.Translate(p.pkt, o); res.Verdict != p.want {
			t.Fatalf("%s: verdict %v (%q), want %v", p.name, res.Verdict, res.Reason, p.want)
		}
		if n := testing.AllocsPerRun(100, func() { tr.Translate(p.pkt, o) }); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", p.name, n)
		}
	}
}

// BenchmarkTranslate measures each path; bytes/s are input bytes.
func BenchmarkTranslate(b *testing.B) {
	tr := newTranslator(b, dcMTU, nil)
	o := translator.NewOut()
	for _, p := range hotPaths() {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.pkt)))
			for b.Loop() {
				tr.Translate(p.pkt, o)
			}
		})
	}
}
