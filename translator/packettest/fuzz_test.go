package packettest

import (
	"bytes"
	"testing"
)

// FuzzCheck proves that Check and Format never panic on any input, and that
// what Format writes for an accepted packet reads back as the same bytes.
func FuzzCheck(f *testing.F) {
	inner := UDP4(IPv4{TTL: 3, Src: dst4, Dst: src4}, 1000, 2000, data)
	body, n := Extended(inner, 4, ExtObject(2, 1, []byte{0, 0, 0, 7}))
	inner6 := TCP6(IPv6{Hop: 3, Src: dst6, Dst: src6, Ext: []Ext{Fragment(0, false, 9)}}, tcpHdr, data)
	for _, p := range [][]byte{
		UDP4(ip4, 1, 2, data),
		TCP4(IPv4{TTL: 1, Src: src4, Dst: dst4, Options: SourceRoute(true, 4, hop4)}, tcpHdr, data),
		ICMP4(ip4, 11, 0, [4]byte{0, n}, body),
		ICMP4(ip4, 3, 4, Rest16(0, 1400), inner[:28]),
		UDP6(IPv6{Hop: 1, Src: src6, Dst: hop6, Ext: []Ext{HopByHop(nil), Routing(0, 1, dst6), DestOpts(nil)}}, 1, 2, data),
		ICMP6(ip6, 2, 0, Rest32(1280), inner6),
		Fragment6(UDP6(ip6, 1, 2, payload(100)), 100, 1)[0],
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out := Format(pkt)
		p, err := Check(pkt)
		if err != nil {
			return
		}
		if got := Hex(out); !bytes.Equal(got, pkt) {
			t.Fatalf("Format does not round-trip:\n%s", out)
		}
		if p.TotalLen != len(pkt) || p.HeaderLen > len(pkt) {
			t.Fatalf("accepted with TotalLen %d HeaderLen %d for %d bytes", p.TotalLen, p.HeaderLen, len(pkt))
		}
	})
}
