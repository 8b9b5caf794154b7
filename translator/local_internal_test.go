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
		s := newAddrSet(hostPrefixes(addrs))
		check := func(a netip.Addr) {
			var got bool
			if a.Is4() {
				b := a.As4()
				v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
				got = s.has4(v, fold4(v))
			} else {
				b := a.As16()
				got = s.has6(&b, fold6(&b))
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

// TestAddrSetPrefixesRandom: with prefixes of every length, nested,
// overlapping and apart, an address is in the set exactly when a prefix
// put in contains it (checked against every prefix, one by one).
func TestAddrSetPrefixesRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	has := func(s *addrSet, a netip.Addr) bool {
		if a.Is4() {
			b := a.As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			return s.has4(v, fold4(v))
		}
		b := a.As16()
		return s.has6(&b, fold6(&b))
	}
	// Addresses with few distinct bits, so that prefixes and probes meet.
	addr := func(v6 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			if r.IntN(3) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = byte(r.IntN(2)) * 0x80
			}
		}
		if v6 {
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	for _, n := range []int{1, 2, 5, 30, 200} {
		var prefixes []netip.Prefix
		for range n {
			a := addr(r.IntN(2) == 0)
			prefixes = append(prefixes, netip.PrefixFrom(a, r.IntN(a.BitLen()+1)))
		}
		s := newAddrSet(prefixes)
		for range 20000 {
			var a netip.Addr
			if p := prefixes[r.IntN(n)]; r.IntN(2) == 0 {
				// Often an end of a prefix, or next to it.
				switch a = p.Masked().Addr(); r.IntN(4) {
				case 1:
					a = a.Prev()
				case 2, 3:
					a = lastAddr(p)
					if r.IntN(2) == 0 {
						a = a.Next()
					}
				}
			} else {
				a = addr(r.IntN(2) == 0)
			}
			if !a.IsValid() {
				continue
			}
			want := false
			for _, p := range prefixes {
				want = want || p.Masked().Contains(a)
			}
			if got := has(s, a); got != want {
				t.Fatalf("set of %d prefixes %v: has %v = %v, want %v", n, s.prefixes, a, got, want)
			}
		}
	}
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// BenchmarkToNode measures the look-up every packet pays: a destination
// that is not the node's (the common case), with the translator's own
// addresses only, with 32 node addresses of each family, and with these
// and local prefixes (lo's 127.0.0.0/8, AnyIP ranges; the IPv6 one shares
// the destination's first byte, so that its bisection runs).
func BenchmarkToNode(b *testing.B) {
	var node []netip.Addr
	for i := range 32 {
		node = append(node, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}),
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, byte(i), 15: 1}))
	}
	dst4 := [4]byte{192, 0, 2, 7}
	dst6 := netip.MustParseAddr("2001:db8:1::10").As16()
	for _, c := range []struct {
		name  string
		local *LocalAddrs
	}{{"own", nil}, {"own+32", NewLocalAddrs(hostPrefixes(node)...)},
		{"own+32+wide", NewLocalAddrs(append(hostPrefixes(node), netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:77::/64"))...)}} {
		tr, err := New(Config{PseudoPrefix: netip.MustParsePrefix("64:ff9b::/96"),
			IPv4Addr: netip.MustParseAddr("192.0.2.1"), IPv6Addr: netip.MustParseAddr("2001:db8:64::1"),
			LowestIPv6MTU: 1280, IPv6MTU: 1500, IPv4MTU: 1500, LocalAddrs: c.local}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/4", func(b *testing.B) {
			for b.Loop() {
				if tr.toNode4(dst4) {
					b.Fatal("found")
				}
			}
		})
		b.Run(c.name+"/6", func(b *testing.B) {
			for b.Loop() {
				if tr.toNode6(&dst6) {
					b.Fatal("found")
				}
			}
		})
	}
}
