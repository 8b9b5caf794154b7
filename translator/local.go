package translator

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync/atomic"
)

// Destinations on the node itself.
//
// A translated packet is written back into the node's kernel, which routes
// it like any other. One whose new destination is an address of the node
// is delivered to the node's own stack: a tenant server that sends to the
// pseudo-prefix form of such an address reaches the BGP listener, the
// metrics port and anything else the node runs, from an address the node's
// filters take for an IPv4 client. So by default the translator refuses to
// translate toward its own addresses (ipv4_address, ipv6_address, the RFC
// 6791 pool) and toward the node's (LocalAddrs), in both directions
// (ReasonLocalDestination, dropped without an ICMP error).

// LocalAddrs is the set of the node's local addresses, as prefixes: the
// node's own addresses and broadcast addresses (single-address prefixes),
// and whole prefixes where the kernel takes every address as local (a
// local route such as 127.0.0.0/8 on lo, or AnyIP). Its owner (the
// daemon) replaces it whenever they change, with Set; translators built
// with it read it on every packet, without a lock, so one set serves every
// translator a reload builds. The zero value is an empty set.
type LocalAddrs struct {
	set atomic.Pointer[addrSet]
}

// NewLocalAddrs returns a set holding prefixes.
func NewLocalAddrs(prefixes ...netip.Prefix) *LocalAddrs {
	l := &LocalAddrs{}
	l.Set(prefixes)
	return l
}

// Set replaces the prefixes in the set (IPv4 and IPv6; IPv4-mapped ones
// count as IPv4, zones, host bits and duplicates are ignored, and so are
// invalid prefixes). Packets translated from now on see the new set.
func (l *LocalAddrs) Set(prefixes []netip.Prefix) { l.set.Store(newAddrSet(prefixes)) }

// Prefixes returns the prefixes in the set, IPv4 first, each family
// sorted (none for a nil set).
func (l *LocalAddrs) Prefixes() []netip.Prefix {
	s := l.load()
	if s == nil {
		return nil
	}
	return slices.Clone(s.prefixes)
}

// load returns the set now in use (nil for none).
func (l *LocalAddrs) load() *addrSet {
	if l == nil {
		return nil
	}
	return l.set.Load()
}

// addrSet is an immutable set of prefixes, and a look-up in it must not
// allocate. Single addresses (nearly all of a node's: a handful, or a few
// thousand) are kept apart from wider prefixes (a few: 127.0.0.0/8, an
// AnyIP range), each family a sorted slice searched by bisection. In
// front of each slice, a 256-bit filter: nearly every packet is for an
// address not in the set, and is told so by one bit, without the
// bisection. The filter of single addresses is indexed by a byte folded
// from the address; that of wider prefixes by the address's first byte,
// the only byte every address of a prefix of 8 bits or more shares.
type addrSet struct {
	hosts4  []uint32
	hosts6  [][2]uint64
	filter4 [4]uint64
	filter6 [4]uint64
	nets4   []range4 // sorted, not overlapping
	nets6   []range6 // sorted, not overlapping
	first4  [4]uint64
	first6  [4]uint64

	prefixes []netip.Prefix // as given, normalized: for Prefixes
}

// range4 and range6 are the first and last addresses of a prefix, or of
// prefixes merged.
type range4 struct{ lo, hi uint32 }
type range6 struct{ lo, hi [2]uint64 }

// fold4 and fold6 fold an address to the byte that indexes the filters:
// the XOR of its bytes for IPv4, of its last two for IPv6 (where the hosts
// of a subnet differ: two loads instead of sixteen).
func fold4(a uint32) uint8 { return uint8(a>>24 ^ a>>16 ^ a>>8 ^ a) }

func fold6(a *[16]byte) uint8 { return a[14] ^ a[15] }

func setBit(f *[4]uint64, i uint8)      { f[i>>6] |= 1 << (i & 63) }
func hasBit(f *[4]uint64, i uint8) bool { return f[i>>6]&(1<<(i&63)) != 0 }

// setBits sets the bits from lo to hi, both included.
func setBits(f *[4]uint64, lo, hi uint8) {
	for i := int(lo); i <= int(hi); i++ {
		setBit(f, uint8(i))
	}
}

// hostPrefixes returns addrs as single-address prefixes.
func hostPrefixes(addrs []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// normalize returns p with IPv4-mapped addresses as IPv4, without zone
// nor host bits; false for an invalid prefix.
func normalize(p netip.Prefix) (netip.Prefix, bool) {
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, false
		}
		a, bits = a.Unmap(), bits-96
	}
	q, err := a.Prefix(bits)
	return q, err == nil && q.IsValid()
}

func newAddrSet(prefixes []netip.Prefix) *addrSet {
	s := &addrSet{}
	for _, p := range prefixes {
		if p, ok := normalize(p); ok {
			s.prefixes = append(s.prefixes, p)
		}
	}
	slices.SortFunc(s.prefixes, comparePrefixes)
	s.prefixes = slices.Compact(s.prefixes)
	for _, p := range s.prefixes {
		if p.Addr().Is4() {
			s.add4(p)
		} else {
			s.add6(p)
		}
	}
	return s
}

// comparePrefixes orders IPv4 before IPv6, then by first address, then
// wider first: the order in which nested prefixes merge.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// add4 and add6 add a prefix; they are called in comparePrefixes' order.
func (s *addrSet) add4(p netip.Prefix) {
	b := p.Addr().As4()
	lo := binary.BigEndian.Uint32(b[:])
	if p.IsSingleIP() {
		s.hosts4 = append(s.hosts4, lo)
		setBit(&s.filter4, fold4(lo))
		return
	}
	hi := lo | ^uint32(0)>>p.Bits()
	setBits(&s.first4, uint8(lo>>24), uint8(hi>>24))
	if n := len(s.nets4); n > 0 && lo <= s.nets4[n-1].hi { // nested in the last
		return
	}
	s.nets4 = append(s.nets4, range4{lo, hi})
}

func (s *addrSet) add6(p netip.Prefix) {
	b := p.Addr().As16()
	lo := key6(&b)
	if p.IsSingleIP() {
		s.hosts6 = append(s.hosts6, lo)
		setBit(&s.filter6, fold6(&b))
		return
	}
	hi := lo
	if bits := p.Bits(); bits < 64 {
		hi[0] |= ^uint64(0) >> bits
		hi[1] = ^uint64(0)
	} else {
		hi[1] |= ^uint64(0) >> (bits - 64)
	}
	setBits(&s.first6, uint8(lo[0]>>56), uint8(hi[0]>>56))
	if n := len(s.nets6); n > 0 && compare6(lo, s.nets6[n-1].hi) <= 0 { // nested in the last
		return
	}
	s.nets6 = append(s.nets6, range6{lo, hi})
}

func key6(a *[16]byte) [2]uint64 {
	return [2]uint64{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
}

func compare6(a, b [2]uint64) int {
	if c := cmp.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return cmp.Compare(a[1], b[1])
}

// has4 and has6 say whether the set holds an address, given with its
// filter index (fold4, fold6): the bisections run only for the few
// addresses that pass a filter.
// A nil set holds none.
func (s *addrSet) has4(v uint32, i uint8) bool {
	if s == nil {
		return false
	}
	if hasBit(&s.filter4, i) && s.hasHost4(v) {
		return true
	}
	return len(s.nets4) != 0 && s.inNets4(v)
}

func (s *addrSet) has6(a *[16]byte, i uint8) bool {
	if s == nil {
		return false
	}
	if hasBit(&s.filter6, i) && s.hasHost6(a) {
		return true
	}
	return len(s.nets6) != 0 && s.inNets6(a)
}

// inNets4 and inNets6 look in the wider prefixes, out of line: has4 and
// has6 stay small for the common case, a set without any.
func (s *addrSet) inNets4(v uint32) bool {
	return hasBit(&s.first4, uint8(v>>24)) && in4(s.nets4, v)
}

func (s *addrSet) inNets6(a *[16]byte) bool {
	return hasBit(&s.first6, a[0]) && in6(s.nets6, key6(a))
}

func (s *addrSet) hasHost4(v uint32) bool {
	_, ok := slices.BinarySearch(s.hosts4, v)
	return ok
}

func (s *addrSet) hasHost6(a *[16]byte) bool {
	_, ok := slices.BinarySearchFunc(s.hosts6, key6(a), compare6)
	return ok
}

// in4 and in6 say whether v is in one of the ranges: the last that starts
// at or before v.
func in4(r []range4, v uint32) bool {
	i, j := 0, len(r)
	for i < j {
		if h := int(uint(i+j) >> 1); r[h].lo <= v {
			i = h + 1
		} else {
			j = h
		}
	}
	return i > 0 && v <= r[i-1].hi
}

func in6(r []range6, v [2]uint64) bool {
	i, j := 0, len(r)
	for i < j {
		if h := int(uint(i+j) >> 1); compare6(r[h].lo, v) <= 0 {
			i = h + 1
		} else {
			j = h
		}
	}
	return i > 0 && compare6(v, r[i-1].hi) <= 0
}

// toNode4 says whether a, the IPv4 destination a packet from the IPv6 side
// is given, is the translator's or the node's, and so refused. A mapped
// address that hairpins is not: the packet goes back to the IPv6 side
// (the second pass checks its IPv6 destination).
func (t *Translator) toNode4(a [4]byte) bool {
	if t.cfg.AllowLocalDestinations {
		return false
	}
	v := binary.BigEndian.Uint32(a[:])
	i := fold4(v)
	return (t.own.has4(v, i) || t.cfg.LocalAddrs.load().has4(v, i)) && !t.hairpins(a)
}

// hairpins says whether a packet from the IPv6 side to a goes back to the
// IPv6 side: a is mapped and hairpinning intrinsic.
func (t *Translator) hairpins(a [4]byte) bool {
	_, _, mapped := t.table.Map4(a)
	return mapped && t.cfg.Hairpin == HairpinIntrinsic
}

// toNode6 says whether a, the IPv6 destination a packet from the IPv4 side
// is given, is the translator's or the node's, and so refused.
func (t *Translator) toNode6(a *[16]byte) bool {
	if t.cfg.AllowLocalDestinations {
		return false
	}
	i := fold6(a)
	return t.own.has6(a, i) || t.cfg.LocalAddrs.load().has6(a, i)
}
