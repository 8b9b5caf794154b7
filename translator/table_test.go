package translator

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func mp(v4, v6 string) Mapping {
	return Mapping{IPv4: netip.MustParsePrefix(v4), IPv6: netip.MustParsePrefix(v6)}
}

// TestTableMap checks the bit placement of RFC 7757 §3.2 on hand-computed
// addresses, each mapping alone in its table: a hit both ways, and the
// misses just outside the prefixes.
func TestTableMap(t *testing.T) {
	type pair struct{ v4, v6 string }
	tests := []struct {
		name string
		m    Mapping
		both []pair   // v4 <-> v6
		in6  []pair   // v6 -> v4 only: low bits the way out leaves zero
		miss []string // addresses of either family outside the mapping
	}{{
		name: "/32 <-> /128",
		m:    mp("198.51.100.10/32", "2001:db8:1::10/128"),
		both: []pair{{"198.51.100.10", "2001:db8:1::10"}},
		miss: []string{"198.51.100.11", "198.51.100.9", "2001:db8:1::11", "2001:db8:1::"},
	}, {
		name: "/28 <-> /124",
		m:    mp("198.51.100.0/28", "2001:db8:2::/124"),
		both: []pair{{"198.51.100.5", "2001:db8:2::5"}, {"198.51.100.0", "2001:db8:2::"}, {"198.51.100.15", "2001:db8:2::f"}},
		miss: []string{"198.51.100.16", "198.51.99.255", "2001:db8:2::10", "2001:db8:2:0:1::5"},
	}, {
		name: "/24 <-> /120",
		m:    mp("192.0.2.0/24", "2001:db8:100::/120"),
		both: []pair{{"192.0.2.1", "2001:db8:100::1"}, {"192.0.2.255", "2001:db8:100::ff"}},
		miss: []string{"192.0.3.1", "2001:db8:100::100", "2001:db8:101::1"},
	}, {
		// The IPv6 suffix is longer than needed: the IPv4 suffix fills its
		// top bits, the low 8 are zero on the way out and ignored on the
		// way in.
		name: "/24 <-> /112",
		m:    mp("192.0.2.0/24", "2001:db8:200::/112"),
		both: []pair{{"192.0.2.5", "2001:db8:200::500"}, {"192.0.2.255", "2001:db8:200::ff00"}},
		in6:  []pair{{"192.0.2.5", "2001:db8:200::5ff"}, {"192.0.2.0", "2001:db8:200::1"}},
		miss: []string{"192.0.3.5", "2001:db8:200::1:500"},
	}, {
		name: "/32 <-> /64: no suffix to carry",
		m:    mp("192.0.2.7/32", "2001:db8:7::/64"),
		both: []pair{{"192.0.2.7", "2001:db8:7::"}},
		in6:  []pair{{"192.0.2.7", "2001:db8:7::abcd"}, {"192.0.2.7", "2001:db8:7:0:ffff:ffff:ffff:ffff"}},
		miss: []string{"192.0.2.6", "2001:db8:7:1::"},
	}, {
		name: "suffix ends at bit 64",
		m:    mp("10.0.0.0/8", "2001:db8::/40"),
		both: []pair{{"10.1.2.3", "2001:db8:1:203::"}, {"10.255.255.255", "2001:db8:ff:ffff::"}},
		in6:  []pair{{"10.1.2.3", "2001:db8:1:203::1"}},
		miss: []string{"11.1.2.3", "2001:db8:100::"},
	}, {
		name: "suffix across bit 64",
		m:    mp("10.0.0.0/8", "2001:db8:0:ff00::/56"),
		both: []pair{{"10.1.2.3", "2001:db8:0:ff01:203::"}, {"10.255.0.255", "2001:db8:0:ffff:ff::"}},
		in6:  []pair{{"10.1.2.3", "2001:db8:0:ff01:203:4:5:6"}},
		miss: []string{"9.1.2.3", "2001:db8:0:fe01:203::"},
	}, {
		name: "suffix starts at bit 64",
		m:    mp("10.0.0.0/8", "2001:db8:0:ff::/64"),
		both: []pair{{"10.1.2.3", "2001:db8:0:ff:102:300::"}},
		miss: []string{"2001:db8:0:fe:102:300::"},
	}, {
		name: "/1 <-> /97",
		m:    mp("128.0.0.0/1", "2001:db8::/97"),
		both: []pair{{"255.255.255.255", "2001:db8::7fff:ffff"}, {"128.0.0.1", "2001:db8::1"}},
		miss: []string{"127.255.255.255", "2001:db8::8000:0"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable([]Mapping{tt.m})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.both {
				a4, a6 := netip.MustParseAddr(p.v4), netip.MustParseAddr(p.v6)
				v6, e, ok := tab.Map4(a4.As4())
				if got := netip.AddrFrom16(v6); !ok || e != 0 || got != a6 {
					t.Errorf("Map4(%v) = %v, %d, %v; want %v, 0, true", a4, got, e, ok, a6)
				}
			}
			for _, p := range append(tt.both, tt.in6...) {
				a4, a6 := netip.MustParseAddr(p.v4), netip.MustParseAddr(p.v6)
				v4, e, ok := tab.Map6(a6.As16())
				if got := netip.AddrFrom4(v4); !ok || e != 0 || got != a4 {
					t.Errorf("Map6(%v) = %v, %d, %v; want %v, 0, true", a6, got, e, ok, a4)
				}
			}
			for _, s := range tt.miss {
				a := netip.MustParseAddr(s)
				if a.Is4() {
					if v6, e, ok := tab.Map4(a.As4()); ok || e != -1 || v6 != [16]byte{} {
						t.Errorf("Map4(%v) = %v, %d, %v; want a miss", a, netip.AddrFrom16(v6), e, ok)
					}
				} else if v4, e, ok := tab.Map6(a.As16()); ok || e != -1 || v4 != [4]byte{} {
					t.Errorf("Map6(%v) = %v, %d, %v; want a miss", a, netip.AddrFrom4(v4), e, ok)
				}
			}
		})
	}
}

// TestTableEntries checks, on a table mixing prefix lengths, that every
// lookup reports the right entry and that Mapping returns each entry as
// given.
func TestTableEntries(t *testing.T) {
	ms := []Mapping{
		mp("192.0.2.0/24", "2001:db8:100::/120"),
		mp("198.51.100.10/32", "2001:db8:1::10/128"),
		mp("198.51.100.16/28", "2001:db8:2::/124"),
		mp("203.0.113.0/24", "2001:db8:300::/112"),
		mp("198.51.100.11/32", "2001:db8:1::11/128"),
		mp("10.0.0.0/8", "2001:db8:1000::/40"),
	}
	tab, err := NewTable(ms)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != len(ms) {
		t.Fatalf("Len() = %d, want %d", tab.Len(), len(ms))
	}
	for i, m := range ms {
		if got := tab.Mapping(i); got != m {
			t.Errorf("Mapping(%d) = %v, want %v", i, got, m)
		}
		// The last address of each IPv4 prefix, and back.
		a4 := m.IPv4.Addr().As4()
		for j := m.IPv4.Bits(); j < 32; j++ {
			a4[j/8] |= 0x80 >> (j % 8)
		}
		v6, e, ok := tab.Map4(a4)
		if !ok || e != int32(i) || !m.IPv6.Contains(netip.AddrFrom16(v6)) {
			t.Errorf("Map4(%v) = %v, %d, %v; want entry %d", netip.AddrFrom4(a4), netip.AddrFrom16(v6), e, ok, i)
		}
		v4, e, ok := tab.Map6(v6)
		if !ok || e != int32(i) || v4 != a4 {
			t.Errorf("Map6(%v) = %v, %d, %v; want %v, entry %d", netip.AddrFrom16(v6), netip.AddrFrom4(v4), e, ok, netip.AddrFrom4(a4), i)
		}
	}
}

// refMap4 and refMap6 are the RFC 7757 algorithm written the plain way, bit
// by bit over every entry, as Jool does: an independent check of the table.
func refMap4(ms []Mapping, a netip.Addr) (netip.Addr, int, bool) {
	best := -1
	for i, m := range ms {
		if m.IPv4.Contains(a) && (best < 0 || m.IPv4.Bits() > ms[best].IPv4.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return netip.Addr{}, -1, false
	}
	m := ms[best]
	b4, b6 := a.As4(), m.IPv6.Addr().As16()
	for i := range 32 - m.IPv4.Bits() {
		copyBit(b6[:], m.IPv6.Bits()+i, b4[:], m.IPv4.Bits()+i)
	}
	return netip.AddrFrom16(b6), best, true
}

func refMap6(ms []Mapping, a netip.Addr) (netip.Addr, int, bool) {
	best := -1
	for i, m := range ms {
		if m.IPv6.Contains(a) && (best < 0 || m.IPv6.Bits() > ms[best].IPv6.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return netip.Addr{}, -1, false
	}
	m := ms[best]
	b4, b6 := m.IPv4.Addr().As4(), a.As16()
	for i := range 32 - m.IPv4.Bits() {
		copyBit(b4[:], m.IPv4.Bits()+i, b6[:], m.IPv6.Bits()+i)
	}
	return netip.AddrFrom4(b4), best, true
}

// copyBit copies bit j of src (counted from the top) to bit i of dst.
func copyBit(dst []byte, i int, src []byte, j int) {
	dst[i/8] &^= 0x80 >> (i % 8)
	if src[j/8]&(0x80>>(j%8)) != 0 {
		dst[i/8] |= 0x80 >> (i % 8)
	}
}

func randPrefix(rng *rand.Rand, six bool, bits int) netip.Prefix {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if six {
		return netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), bits).Masked()
}

func randAddrIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	a := p.Addr().AsSlice()
	for i := p.Bits(); i < p.Addr().BitLen(); i++ {
		copyBit(a, i, b[:], i)
	}
	r, _ := netip.AddrFromSlice(a)
	return r
}

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// nextBlock returns the first address of the /bits block after a's.
func nextBlock(a netip.Addr, bits int) netip.Addr {
	b := a.AsSlice()
	for i := bits - 1; i >= 0; i-- { // add 1 at bit bits-1, carrying up
		b[i/8] ^= 0x80 >> (i % 8)
		if b[i/8]&(0x80>>(i%8)) != 0 {
			break
		}
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}

// TestTableRandom compares Map4 and Map6 with the bit-by-bit reference on
// random tables of random shapes, at addresses inside every entry and at
// random addresses, and checks that each hit maps back to where it came
// from.
func TestTableRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 100 {
		// Odd rounds keep the IPv6 prefixes at /64 or longer, as a
		// datacenter's are, so that Map6's filter works on /64 blocks
		// rather than on the few top bits of the shortest random prefix.
		long6 := round%2 == 1
		var ms []Mapping
		for len(ms) < 200 {
			l4 := 1 + rng.IntN(32)
			if rng.IntN(2) == 0 {
				l4 = 32 - rng.IntN(4) // mostly long ones, like a real table
			}
			l6 := 1 + rng.IntN(96+l4) // 128-l6 >= 32-l4
			if long6 {
				l6 = 64 + rng.IntN(33+l4)
			}
			m := Mapping{IPv4: randPrefix(rng, false, l4), IPv6: randPrefix(rng, true, l6)}
			ok := true
			for _, o := range ms {
				if overlaps(o.IPv4, m.IPv4) || overlaps(o.IPv6, m.IPv6) {
					ok = false
					break
				}
			}
			if ok {
				ms = append(ms, m)
			}
		}
		tab, err := NewTable(ms)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Addresses inside every entry, random ones, and ones just outside:
		// in the same /24 and /16 (or /64) blocks as an entry, which the
		// filters let through, or in the next block.
		var q4, q6 []netip.Addr
		for _, m := range ms {
			q4 = append(q4, randAddrIn(rng, m.IPv4), randPrefix(rng, false, 32).Addr(),
				randAddrIn(rng, netip.PrefixFrom(m.IPv4.Addr(), min(m.IPv4.Bits(), 24)).Masked()),
				randAddrIn(rng, netip.PrefixFrom(m.IPv4.Addr(), min(m.IPv4.Bits(), 16)).Masked()),
				nextBlock(m.IPv4.Masked().Addr(), 24))
			q6 = append(q6, randAddrIn(rng, m.IPv6), randPrefix(rng, true, 128).Addr(),
				randAddrIn(rng, netip.PrefixFrom(m.IPv6.Addr(), min(m.IPv6.Bits(), 64)).Masked()),
				nextBlock(m.IPv6.Masked().Addr(), 64))
		}
		for _, a := range q4 {
			want, wi, wok := refMap4(ms, a)
			v6, e, ok := tab.Map4(a.As4())
			if ok != wok || int(e) != wi || ok && netip.AddrFrom16(v6) != want {
				t.Fatalf("round %d: Map4(%v) = %v, %d, %v; want %v, %d, %v", round, a, netip.AddrFrom16(v6), e, ok, want, wi, wok)
			}
			if !ok {
				continue
			}
			if v4, e2, ok := tab.Map6(v6); !ok || e2 != e || netip.AddrFrom4(v4) != a {
				t.Fatalf("round %d: Map6(Map4(%v)) = %v, %d, %v", round, a, netip.AddrFrom4(v4), e2, ok)
			}
		}
		for _, a := range q6 {
			want, wi, wok := refMap6(ms, a)
			v4, e, ok := tab.Map6(a.As16())
			if ok != wok || int(e) != wi || ok && netip.AddrFrom4(v4) != want {
				t.Fatalf("round %d: Map6(%v) = %v, %d, %v; want %v, %d, %v", round, a, netip.AddrFrom4(v4), e, ok, want, wi, wok)
			}
		}
	}
}

// TestNewTableOverlapsRandom checks the O(n log n) overlap search against
// the plain pairwise one, on small random tables crowded into a few
// addresses so that overlaps and duplicates are common: NewTable fails
// exactly when some pair conflicts, every pair it reports conflicts (later
// entry first), and every entry in a conflict is named.
func TestNewTableOverlapsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	base4, base6 := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/120")
	for round := range 500 {
		ms := make([]Mapping, 1+rng.IntN(40))
		for i := range ms {
			l4 := 24 + rng.IntN(9)
			a4 := randAddrIn(rng, base4)
			a6 := randAddrIn(rng, base6)
			ms[i] = Mapping{
				IPv4: netip.PrefixFrom(a4, l4).Masked(),
				IPv6: netip.PrefixFrom(a6, 96+l4).Masked(),
			}
		}
		involved := map[int]bool{}
		for i := range ms {
			for j := range i {
				if overlaps(ms[i].IPv4, ms[j].IPv4) || overlaps(ms[i].IPv6, ms[j].IPv6) {
					involved[i], involved[j] = true, true
				}
			}
		}
		_, err := NewTable(ms)
		if (err != nil) != (len(involved) > 0) {
			t.Fatalf("round %d: NewTable(%v) error %v; want one: %v", round, ms, err, len(involved) > 0)
		}
		if err == nil {
			continue
		}
		var te *TableError
		if !errors.As(err, &te) || te.More != 0 {
			t.Fatalf("round %d: %#v", round, err)
		}
		named := map[int]bool{}
		for _, p := range te.Problems {
			i, j := p.Index, p.Other
			if j < 0 || j >= i || !overlaps(ms[i].IPv4, ms[j].IPv4) && !overlaps(ms[i].IPv6, ms[j].IPv6) {
				t.Fatalf("round %d: reported %v for %v and %v", round, p.Error(), ms[i], ms[j])
			}
			named[i], named[j] = true, true
		}
		for i := range involved {
			if !named[i] {
				t.Fatalf("round %d: mapping %d (%v) conflicts but is not named in\n%v", round, i, ms[i], err)
			}
		}
	}
}

// TestNewTableErrors checks each rejection and its exact message.
func TestNewTableErrors(t *testing.T) {
	good := []Mapping{
		mp("192.0.2.0/24", "2001:db8:100::/120"),
		mp("198.51.100.4/32", "2001:db8:1::4/128"),
		mp("203.0.113.1/32", "2001:db8:1::5/128"),
	}
	with := func(ms ...Mapping) []Mapping { return append(append([]Mapping{}, good...), ms...) }
	tests := []struct {
		name string
		ms   []Mapping
		want []string
	}{{
		name: "IPv4 side is IPv6",
		ms:   []Mapping{mp("2001:db8::/96", "2001:db8::/96")},
		want: []string{"mapping 0: IPv4 side 2001:db8::/96 is not an IPv4 prefix"},
	}, {
		name: "IPv4 side is IPv4-mapped IPv6",
		ms:   []Mapping{mp("::ffff:192.0.2.0/120", "2001:db8::/120")},
		want: []string{"mapping 0: IPv4 side ::ffff:192.0.2.0/120 is not an IPv4 prefix"},
	}, {
		name: "IPv6 side is IPv4",
		ms:   []Mapping{mp("192.0.2.0/24", "192.0.2.0/24")},
		want: []string{"mapping 0: IPv6 side 192.0.2.0/24 is not an IPv6 prefix"},
	}, {
		name: "IPv6 side is IPv4-mapped",
		ms:   []Mapping{mp("192.0.2.0/24", "::ffff:192.0.2.0/120")},
		want: []string{"mapping 0: IPv6 side ::ffff:192.0.2.0/120 is an IPv4-mapped prefix, not an IPv6 one"},
	}, {
		name: "missing prefixes",
		ms:   []Mapping{{IPv6: netip.MustParsePrefix("2001:db8::/96")}, {}},
		want: []string{
			"mapping 0: IPv4 prefix missing",
			"mapping 1: IPv4 prefix missing",
			"mapping 1: IPv6 prefix missing",
		},
	}, {
		name: "IPv4 host bits",
		ms:   []Mapping{mp("192.0.2.1/24", "2001:db8::/120")},
		want: []string{"mapping 0: 192.0.2.1/24 has host bits set; the prefix is 192.0.2.0/24"},
	}, {
		name: "IPv6 host bits",
		ms:   []Mapping{mp("192.0.2.0/24", "2001:db8::1/120")},
		want: []string{"mapping 0: 2001:db8::1/120 has host bits set; the prefix is 2001:db8::/120"},
	}, {
		name: "IPv4 /0",
		ms:   []Mapping{mp("0.0.0.0/0", "2001:db8::/96")},
		want: []string{"mapping 0: 0.0.0.0/0 would map every IPv4 address; map specific prefixes and leave the rest to the pseudo prefix"},
	}, {
		name: "IPv6 /0",
		ms:   []Mapping{mp("192.0.2.1/32", "::/0")},
		want: []string{"mapping 0: ::/0 would map every IPv6 address; map specific prefixes and leave the rest to the pseudo prefix"},
	}, {
		name: "IPv6 suffix too short",
		ms:   []Mapping{mp("198.51.0.0/16", "2001:db8::/120")},
		want: []string{"mapping 0: 198.51.0.0/16 has 16 suffix bits, more than the 8 of 2001:db8::/120; use an IPv6 prefix of /112 or shorter (RFC 7757 §3.2)"},
	}, {
		name: "whole entry duplicated",
		ms:   with(mp("198.51.100.4/32", "2001:db8:1::4/128")),
		want: []string{"mapping 3: duplicates mapping 1 (198.51.100.4/32, 2001:db8:1::4/128)"},
	}, {
		name: "IPv4 duplicate",
		ms:   with(mp("198.51.100.4/32", "2001:db8:1::6/128")),
		want: []string{"mapping 3: 198.51.100.4/32 duplicates mapping 1"},
	}, {
		name: "IPv6 duplicate",
		ms:   with(mp("198.51.100.6/32", "2001:db8:1::5/128")),
		want: []string{"mapping 3: 2001:db8:1::5/128 duplicates mapping 2"},
	}, {
		name: "IPv4 overlap, container later",
		ms:   with(mp("198.51.100.0/28", "2001:db8:2::/124")),
		want: []string{"mapping 3: 198.51.100.0/28 overlaps mapping 1 (198.51.100.4/32)"},
	}, {
		name: "IPv4 overlap, container earlier",
		ms:   with(mp("192.0.2.128/32", "2001:db8:3::/128")),
		want: []string{"mapping 3: 192.0.2.128/32 overlaps mapping 0 (192.0.2.0/24)"},
	}, {
		name: "IPv6 overlap",
		ms:   with(mp("198.51.100.7/32", "2001:db8:100::80/128")),
		want: []string{"mapping 3: 2001:db8:100::80/128 overlaps mapping 0 (2001:db8:100::/120)"},
	}, {
		name: "every problem, in entry order",
		ms: with(
			mp("198.51.100.0/28", "2001:db8:1::/124"), // 3: overlaps 1 on both sides
			mp("192.0.2.1/24", "::ffff:0.0.0.0/96"),   // 4: two problems
			mp("203.0.113.1/32", "2001:db8:1::5/128"), // 5: duplicates 2
		),
		want: []string{
			"mapping 3: 198.51.100.0/28 overlaps mapping 1 (198.51.100.4/32)",
			"mapping 3: 2001:db8:1::/124 overlaps mapping 1 (2001:db8:1::4/128)",
			"mapping 3: 2001:db8:1::/124 overlaps mapping 2 (2001:db8:1::5/128)",
			"mapping 4: 192.0.2.1/24 has host bits set; the prefix is 192.0.2.0/24",
			"mapping 4: IPv6 side ::ffff:0.0.0.0/96 is an IPv4-mapped prefix, not an IPv6 one",
			"mapping 5: duplicates mapping 2 (203.0.113.1/32, 2001:db8:1::5/128)",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(tt.ms)
			if tab != nil {
				t.Errorf("NewTable returned a table with its error")
			}
			var te *TableError
			if !errors.As(err, &te) {
				t.Fatalf("NewTable error = %#v, want a *TableError", err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			if te.More != 0 || len(te.Problems) != len(tt.want) {
				t.Errorf("%d problems, %d more; want %d, 0", len(te.Problems), te.More, len(tt.want))
			}
		})
	}
}

// TestNewTableErrorFields checks that MappingError names both entries of a
// conflict, and -1 for problems of one entry.
func TestNewTableErrorFields(t *testing.T) {
	_, err := NewTable([]Mapping{
		mp("198.51.100.4/32", "2001:db8:1::4/128"),
		mp("192.0.2.1/24", "2001:db8::/120"),
		mp("198.51.100.0/28", "2001:db8:2::/124"),
	})
	var te *TableError
	if !errors.As(err, &te) {
		t.Fatalf("error = %#v, want a *TableError", err)
	}
	want := []MappingError{
		{Index: 1, Other: -1, Msg: "192.0.2.1/24 has host bits set; the prefix is 192.0.2.0/24"},
		{Index: 2, Other: 0, Msg: "198.51.100.0/28 overlaps mapping 0 (198.51.100.4/32)"},
	}
	if len(te.Problems) != len(want) {
		t.Fatalf("problems %v, want %v", te.Problems, want)
	}
	for i := range want {
		if te.Problems[i] != want[i] {
			t.Errorf("problem %d = %+v, want %+v", i, te.Problems[i], want[i])
		}
	}
}

// TestNewTableErrorCap checks that a table with many bad entries reports the
// first hundred, one per line, and counts the rest.
func TestNewTableErrorCap(t *testing.T) {
	ms := make([]Mapping, 250)
	for i := range ms {
		ms[i] = mp("192.0.2.1/24", "2001:db8::/120") // host bits set
	}
	_, err := NewTable(ms)
	var te *TableError
	if !errors.As(err, &te) {
		t.Fatalf("error = %#v, want a *TableError", err)
	}
	if len(te.Problems) != maxProblems || te.More != 250-maxProblems {
		t.Fatalf("%d problems, %d more; want %d, %d", len(te.Problems), te.More, maxProblems, 250-maxProblems)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxProblems+1 || lines[99] != "mapping 99: 192.0.2.1/24 has host bits set; the prefix is 192.0.2.0/24" ||
		lines[100] != "... and 150 more problems" {
		t.Errorf("error has %d lines, ending %q", len(lines), lines[len(lines)-2:])
	}
}

// TestTableEmpty checks that an empty table is valid and maps nothing.
func TestTableEmpty(t *testing.T) {
	for _, ms := range [][]Mapping{nil, {}} {
		tab, err := NewTable(ms)
		if err != nil {
			t.Fatal(err)
		}
		if tab.Len() != 0 {
			t.Errorf("Len() = %d", tab.Len())
		}
		if v6, e, ok := tab.Map4([4]byte{192, 0, 2, 1}); ok || e != -1 || v6 != [16]byte{} {
			t.Errorf("Map4 = %v, %d, %v on an empty table", v6, e, ok)
		}
		if v4, e, ok := tab.Map6(netip.MustParseAddr("2001:db8::1").As16()); ok || e != -1 || v4 != [4]byte{} {
			t.Errorf("Map6 = %v, %d, %v on an empty table", v4, e, ok)
		}
	}
}

// TestTableFilterExact checks filter4 where its /24 bitmap has 2^24 bits
// (at least 2^19 /24s covered, here by a /5) and its hash is a bijection:
// for every /16 and every /24, the filter says "may cover" exactly when a
// prefix covers part of it. A wrong hash or fold shows as a block missed
// (which would turn mapped addresses away) or one too many.
func TestTableFilterExact(t *testing.T) {
	ms := []Mapping{
		mp("8.0.0.0/5", "2001:db8::/96"),
		mp("198.51.100.7/32", "2001:db8:1::7/128"),
		mp("203.0.113.16/28", "2001:db8:2::/124"),
		mp("100.64.0.0/10", "2001:db8:3::/106"),
		mp("255.255.255.255/32", "2001:db8:4::/128"),
		mp("0.0.0.0/32", "2001:db8:5::/128"),
	}
	tab, err := NewTable(ms)
	if err != nil {
		t.Fatal(err)
	}
	if tab.f4.shift != 8 {
		t.Fatalf("/24 bitmap of 2^%d bits, want 2^24", 32-tab.f4.shift)
	}
	c16, c24 := coveredBlocks(ms)
	for x := range uint32(1 << 16) {
		if got, want := tab.f4.mayCover16(x<<16), c16[x]; got != want {
			t.Fatalf("/16 %d: mayCover16 %v, want %v", x, got, want)
		}
	}
	for x := range uint32(1 << 24) {
		if got, want := tab.f4.mayCover24(x<<8), c24[x]; got != want {
			t.Fatalf("/24 %d: mayCover24 %v, want %v", x, got, want)
		}
	}
}

// coveredBlocks returns the /16s and /24s that the IPv4 side of ms covers
// in part, computed the plain way.
func coveredBlocks(ms []Mapping) (c16, c24 []bool) {
	c16, c24 = make([]bool, 1<<16), make([]bool, 1<<24)
	for _, m := range ms {
		a := m.IPv4.Addr().As4()
		first := binary.BigEndian.Uint32(a[:])
		last := first | (1<<(32-m.IPv4.Bits()) - 1)
		for x := first >> 8; x <= last>>8; x++ {
			c24[x] = true
			c16[x>>8] = true
		}
	}
	return c16, c24
}

// TestTableFilter checks that the filters turn away the addresses a
// datacenter's table sees most and maps none of (a filter that lets
// everything through would pass every other test), at the sizes where they
// are hashed, and never turn away a mapped address.
func TestTableFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, tt := range []struct {
		name string
		ms   []Mapping
	}{
		{"datacenter-10k", dcMappings(10_000, rng)},
		{"contiguous-100k", contiguousMappings(100_000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(tt.ms)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range tt.ms {
				first := m.IPv4.Addr()
				last := m.IPv4.Addr().As4()
				for j := m.IPv4.Bits(); j < 32; j++ {
					last[j/8] |= 0x80 >> (j % 8)
				}
				for _, a := range [][4]byte{first.As4(), last} {
					k := binary.BigEndian.Uint32(a[:])
					if !tab.f4.mayCover16(k) || !tab.f4.mayCover24(k) {
						t.Fatalf("entry %d (%v): filter4 turns away %v", i, m, netip.AddrFrom4(a))
					}
				}
				a6 := m.IPv6.Addr().As16()
				if !tab.f6.mayCover(binary.BigEndian.Uint64(a6[:8])) {
					t.Fatalf("entry %d (%v): filter6 turns away %v", i, m, m.IPv6.Addr())
				}
			}
			// Clients from the whole unicast space: few may share a /16
			// with the table.
			const n = 100_000
			pass16, pass24, in16 := 0, 0, 0
			for range n {
				k := rng.Uint32N(223<<24) + 1<<24
				if tab.f4.mayCover16(k) {
					pass16++
				}
			}
			// Addresses in the /16s of entries but in a /24 no entry
			// covers: the /24 bitmap is hashed at these sizes and should
			// let about 3% through.
			_, c24 := coveredBlocks(tt.ms)
			for range n {
				a := tt.ms[rng.IntN(len(tt.ms))].IPv4.Addr().As4()
				k := binary.BigEndian.Uint32(a[:])&0xffff0000 | rng.Uint32N(1<<16)
				if c24[k>>8] {
					continue
				}
				in16++
				if tab.f4.mayCover24(k) {
					pass24++
				}
			}
			// Random /64s: about 3% may pass.
			pass6 := 0
			for range n {
				if tab.f6.mayCover(0x20010db800000000 | rng.Uint64()&0xffffffff) {
					pass6++
				}
			}
			t.Logf("filter4: %.2f%% of clients pass the /16 bitmap; %.2f%% of %d addresses in uncovered /24s of covered /16s pass the /24 one (%d bits); filter6: %.2f%% of random /64s pass (%d bits)",
				100*float64(pass16)/n, 100*float64(pass24)/float64(in16), in16, 64*len(tab.f4.by24),
				100*float64(pass6)/n, 64*len(tab.f6.bits))
			if pass16 > n/100 {
				t.Errorf("%d of %d clients pass the /16 bitmap", pass16, n)
			}
			if in16 < n/10 || pass24 > in16/16 {
				t.Errorf("%d of %d addresses in uncovered /24s pass the /24 bitmap", pass24, in16)
			}
			if pass6 > n/16 {
				t.Errorf("%d of %d random /64s pass filter6", pass6, n)
			}
		})
	}
}

// TestTableAllocs checks that lookups, hits and misses, do not allocate.
func TestTableAllocs(t *testing.T) {
	tab, err := NewTable(dcMappings(1000, rand.New(rand.NewPCG(1, 1))))
	if err != nil {
		t.Fatal(err)
	}
	hit4 := tab.Mapping(0).IPv4.Addr().As4()
	hit6, _, _ := tab.Map4(hit4)
	miss4 := [4]byte{203, 0, 113, 1}
	miss6 := netip.MustParseAddr("2001:db8:dead::1").As16()
	var sink int32
	allocs := testing.AllocsPerRun(1000, func() {
		_, e1, _ := tab.Map4(hit4)
		_, e2, _ := tab.Map6(hit6)
		_, e3, _ := tab.Map4(miss4)
		_, e4, _ := tab.Map6(miss6)
		sink += e1 + e2 + e3 + e4
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup", allocs)
	}
	if sink == 0 {
		t.Error("lookups found nothing")
	}
}

// TestTableMillion checks the acceptance figures for a million entries:
// the heap the built table holds, and the time to build it (logged; the
// benchmark BenchmarkNewTable measures it properly).
func TestTableMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million-entry table")
	}
	const maxBytes = 120 << 20
	ms := dcMappings(1_000_000, rand.New(rand.NewPCG(1, 3)))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	tab, err := NewTable(ms)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	size := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1M entries: built in %v, table holds %.1f MB", took, float64(size)/(1<<20))
	if size > maxBytes {
		t.Errorf("table holds %d bytes, more than %d", size, maxBytes)
	}
	if tab.Len() != len(ms) || tab.Mapping(123456) != ms[123456] {
		t.Error("table does not hold the mappings")
	}
	// Linear probing at a load of one half averages half a step from home
	// with a good hash; a bad one shows here long before it shows in the
	// benchmarks. The share of keys away from their home slot is what
	// costs a lookup a mispredicted branch: about a quarter at this load
	// with any good hash (all of them on the IPv4 side of a contiguous
	// table, whose sequential addresses Fibonacci hashing spreads evenly).
	var p4 []pageSlots[eamSlot4]
	for p := range tab.by4[0].distinct() {
		p4 = append(p4, pageSlots[eamSlot4]{p.slots, p.skip, p.shift})
	}
	var p6 []pageSlots[eamSlot6]
	for p := range tab.by6[0].distinct() {
		p6 = append(p6, pageSlots[eamSlot6]{p.slots, p.skip, p.shift})
	}
	d4, a4 := displacement(p4, func(s eamSlot4) uint64 { return eamHash32(s.key) })
	d6, a6 := displacement(p6, func(s eamSlot6) uint64 { return eamHash128(s.hi, s.lo) })
	t.Logf("mean probe distance from home: %.2f (IPv4 /32), %.2f (IPv6 /128); keys away from home: %.1f%%, %.1f%%",
		d4, d6, 100*a4, 100*a6)
	t.Logf("filters: %d KiB (IPv4 /16 and /24 bitmaps), %d KiB (IPv6)",
		(len(tab.f4.by16)+len(tab.f4.by24))*8>>10, len(tab.f6.bits)*8>>10)
	if d4 > 1 || d6 > 1 || a4 > 0.3 || a6 > 0.3 {
		t.Errorf("mean probe distance %.2f, %.2f, keys away from home %.2f, %.2f; want at most 1 and 0.3", d4, d6, a4, a6)
	}
	runtime.KeepAlive(tab)
}

// pageSlots is one page's slots and how a hash picks its home slot.
type pageSlots[S eamSlot4 | eamSlot6] struct {
	slots       []S
	skip, shift uint8
}

// displacement returns the mean distance of the keys from their home slot,
// and the share of keys not in it, over every page.
func displacement[S eamSlot4 | eamSlot6](pages []pageSlots[S], hash func(S) uint64) (mean, away float64) {
	var sum, n, nAway uint64
	for _, p := range pages {
		mask := uint64(len(p.slots) - 1)
		for j, s := range p.slots {
			var empty S
			if s == empty {
				continue
			}
			d := (uint64(j) - hash(s)<<p.skip>>p.shift) & mask
			sum += d
			if d != 0 {
				nAway++
			}
			n++
		}
	}
	return float64(sum) / float64(n), float64(nAway) / float64(n)
}
