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

// LocalAddrs is the set of the node's own addresses. Its owner (the daemon)
// replaces it whenever the node's addresses change, with Set; translators
// built with it read it on every packet, without a lock, so one set serves
// every translator a reload builds. The zero value is an empty set.
type LocalAddrs struct {
	set atomic.Pointer[addrSet]
}

// NewLocalAddrs returns a set holding addrs.
func NewLocalAddrs(addrs ...netip.Addr) *LocalAddrs {
	l := &LocalAddrs{}
	l.Set(addrs)
	return l
}

// Set replaces the addresses in the set with addrs (IPv4 and IPv6; zones
// and duplicates are ignored). Packets translated from now on see the new
// set.
func (l *LocalAddrs) Set(addrs []netip.Addr) { l.set.Store(newAddrSet(addrs)) }

// Addrs returns the addresses in the set, IPv4 first, each family sorted
// (none for a nil set).
func (l *LocalAddrs) Addrs() []netip.Addr {
	if l == nil {
		return nil
	}
	s := l.set.Load()
	if s == nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range s.v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], a)
		out = append(out, netip.AddrFrom4(b))
	}
	for _, a := range s.v6 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], a[0])
		binary.BigEndian.PutUint64(b[8:], a[1])
		out = append(out, netip.AddrFrom16(b))
	}
	return out
}

// load returns the set now in use (nil for none).
func (l *LocalAddrs) load() *addrSet {
	if l == nil {
		return nil
	}
	return l.set.Load()
}

// addrSet is an immutable set of addresses, each family a sorted slice
// searched by bisection: a node has a handful of addresses, or a few
// thousand, and a look-up must not allocate. In front of each slice, a
// 256-bit filter indexed by a byte folded from the address: nearly every
// packet is for an address not in the set, and is told so by one bit,
// without the bisection.
type addrSet struct {
	v4      []uint32
	v6      [][2]uint64
	filter4 [4]uint64
	filter6 [4]uint64
}

// fold4 and fold6 fold an address to the byte that indexes the filters:
// the XOR of its bytes for IPv4, of its last two for IPv6 (where the hosts
// of a subnet differ: two loads instead of sixteen).
func fold4(a uint32) uint8 { return uint8(a>>24 ^ a>>16 ^ a>>8 ^ a) }

func fold6(a *[16]byte) uint8 { return a[14] ^ a[15] }

func setBit(f *[4]uint64, i uint8)      { f[i>>6] |= 1 << (i & 63) }
func hasBit(f *[4]uint64, i uint8) bool { return f[i>>6]&(1<<(i&63)) != 0 }

func newAddrSet(addrs []netip.Addr) *addrSet {
	s := &addrSet{}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		switch {
		case a.Is4():
			b := a.As4()
			s.v4 = append(s.v4, binary.BigEndian.Uint32(b[:]))
		case a.Is6():
			b := a.As16()
			s.v6 = append(s.v6, key6(&b))
		}
	}
	slices.Sort(s.v4)
	s.v4 = slices.Compact(s.v4)
	slices.SortFunc(s.v6, compare6)
	s.v6 = slices.Compact(s.v6)
	for _, a := range s.v4 {
		setBit(&s.filter4, fold4(a))
	}
	for _, k := range s.v6 {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:], k[0])
		binary.BigEndian.PutUint64(a[8:], k[1])
		setBit(&s.filter6, fold6(&a))
	}
	return s
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
// filter index (fold4, fold6): the bisection runs only for the few
// addresses that pass the filter. A nil set holds none.
func (s *addrSet) has4(v uint32, i uint8) bool {
	if s == nil || !hasBit(&s.filter4, i) {
		return false
	}
	_, ok := slices.BinarySearch(s.v4, v)
	return ok
}

func (s *addrSet) has6(a *[16]byte, i uint8) bool {
	if s == nil || !hasBit(&s.filter6, i) {
		return false
	}
	_, ok := slices.BinarySearchFunc(s.v6, key6(a), compare6)
	return ok
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
