package translator

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestAddrSetRandom: every address put in a set is found, through the
// filter and the bisection, and addresses not put in are not, with sets of
// 1 to 4096 addresses of each family.
func TestAddrSetRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 64, 300, 4096} {
		in := map[netip.Addr]bool{}
		var addrs []netip.Addr
		for range n {
			var b4 [4]byte
			var b16 [16]byte
			for i := range b4 {
				b4[i] = byte(r.IntN(4)) // few values: neighbours and equal bytes
			}
			for i := range b16 {
				b16[i] = byte(r.IntN(4))
			}
			b16[0] = 0x20
			for _, a := range []netip.Addr{netip.AddrFrom4(b4), netip.AddrFrom16(b16)} {
				in[a] = true
				addrs = append(addrs, a)
			}
		}
		s := newAddrSet(addrs)
		check := func(a netip.Addr) {
			var got bool
			if a.Is4() {
				got = s.has4(a.As4())
			} else {
				b := a.As16()
				got = s.has6(&b)
			}
			if got != in[a] {
				t.Fatalf("set of %d: has %v = %v, want %v", n, a, got, in[a])
			}
		}
		for a := range in {
			check(a)
		}
		for range 5000 {
			var b4 [4]byte
			var b16 [16]byte
			for i := range b4 {
				b4[i] = byte(r.IntN(4))
			}
			for i := range b16 {
				b16[i] = byte(r.IntN(4))
			}
			b16[0] = 0x20
			check(netip.AddrFrom4(b4))
			check(netip.AddrFrom16(b16))
		}
	}
}
