package translator

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// rfc6052 embeds IPv4 addresses in an IPv6 prefix (RFC 6052 §2.2). For
// prefixes shorter than /96 the embedded address is split around bits 64-71,
// the "u-octet", which must be zero.
type rfc6052 struct {
	prefix [16]byte
	bytes  int    // prefix length in bytes
	pos    [4]int // where each byte of the IPv4 address goes
	hasU   bool   // the u-octet (byte 8) lies in the suffix and must be zero
}

func newRFC6052(p netip.Prefix) (rfc6052, error) {
	var r rfc6052
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return r, fmt.Errorf("translator: pseudo prefix %v is not an IPv6 prefix", p)
	}
	if p.Masked() != p {
		return r, fmt.Errorf("translator: pseudo prefix %v has host bits set", p)
	}
	switch p.Bits() {
	case 32:
		r.pos = [4]int{4, 5, 6, 7}
	case 40:
		r.pos = [4]int{5, 6, 7, 9}
	case 48:
		r.pos = [4]int{6, 7, 9, 10}
	case 56:
		r.pos = [4]int{7, 9, 10, 11}
	case 64:
		r.pos = [4]int{9, 10, 11, 12}
	case 96:
		r.pos = [4]int{12, 13, 14, 15}
	default:
		return r, fmt.Errorf("translator: pseudo prefix %v: RFC 6052 allows lengths 32, 40, 48, 56, 64 and 96", p)
	}
	r.prefix = p.Addr().As16()
	r.bytes = p.Bits() / 8
	r.hasU = p.Bits() < 96
	if p.Bits() == 96 && r.prefix[8] != 0 {
		return r, fmt.Errorf("translator: pseudo prefix %v: bits 64-71 must be zero (RFC 6052 §2.2)", p)
	}
	return r, nil
}

// embed writes the IPv6 address that represents a.
func (r *rfc6052) embed(a [4]byte) (v6 [16]byte) {
	copy(v6[:r.bytes], r.prefix[:r.bytes])
	v6[r.pos[0]] = a[0]
	v6[r.pos[1]] = a[1]
	v6[r.pos[2]] = a[2]
	v6[r.pos[3]] = a[3]
	return v6
}

// contains reports whether a lies inside the prefix.
func (r *rfc6052) contains(a *[16]byte) bool {
	// Prefix lengths are whole bytes; compare the first 8 bytes as one word
	// and the rest (only for /96) as another.
	n := r.bytes
	if n <= 8 {
		mask := ^uint64(0) << (64 - 8*n)
		return (binary.BigEndian.Uint64(a[:8])^binary.BigEndian.Uint64(r.prefix[:8]))&mask == 0
	}
	return binary.BigEndian.Uint64(a[:8]) == binary.BigEndian.Uint64(r.prefix[:8]) &&
		binary.BigEndian.Uint32(a[8:12]) == binary.BigEndian.Uint32(r.prefix[8:12])
}

// extract returns the IPv4 address embedded in a, which must lie inside the
// prefix. ok is false when the u-octet is not zero: such an address was not
// built by RFC 6052 and does not stand for an IPv4 address.
func (r *rfc6052) extract(a *[16]byte) (v4 [4]byte, ok bool) {
	if r.hasU && a[8] != 0 {
		return v4, false
	}
	return [4]byte{a[r.pos[0]], a[r.pos[1]], a[r.pos[2]], a[r.pos[3]]}, true
}

// EmbedIPv4 returns the address that stands for the IPv4 address a under
// the pseudo prefix p, as the translator writes it (RFC 6052 §2.2). ok is
// false when p is no RFC 6052 prefix, a is not IPv4, or RFC 6052 §3.1
// forbids the embedding: a non-global address behind 64:ff9b::/96.
func EmbedIPv4(p netip.Prefix, a netip.Addr) (_ netip.Addr, ok bool) {
	r, err := newRFC6052(p)
	if err != nil || !a.Is4() || (p == WellKnownPrefix && nonGlobal4(a.As4())) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(r.embed(a.As4())), true
}

// ExtractIPv4 returns the IPv4 address that a, an address of the pseudo
// prefix p, stands for (RFC 6052 §2.3); ok is false when p is no RFC 6052
// prefix or does not hold a.
func ExtractIPv4(p netip.Prefix, a netip.Addr) (_ netip.Addr, ok bool) {
	r, err := newRFC6052(p)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	v4, ok := r.extract(&b)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(v4), true
}

// martian4 reports IPv4 addresses that are never a valid source or
// destination of a routed packet: "this network" 0/8, loopback 127/8,
// multicast 224/4 and the reserved 240/4 with the limited broadcast
// (RFC 1812 §5.3.7, RFC 7915 §4.1).
func martian4(a [4]byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0] >= 224
}

// nonGlobal4 reports IPv4 addresses that RFC 6052 §3.1 forbids behind the
// well-known prefix 64:ff9b::/96: the special-purpose blocks that are not
// globally reachable (RFC 6890). The three documentation blocks (TEST-NET-1,
// -2, -3) are deliberately treated as global so that the project can be run
// and tested with documentation addresses only; see translator/README.md.
func nonGlobal4(a [4]byte) bool {
	switch {
	case a[0] == 10: // RFC 1918
	case a[0] == 100 && a[1]&0xc0 == 64: // 100.64/10 shared address space
	case a[0] == 169 && a[1] == 254: // link local
	case a[0] == 172 && a[1]&0xf0 == 16: // RFC 1918
	case a[0] == 192 && a[1] == 0 && a[2] == 0: // IETF protocol assignments
	case a[0] == 192 && a[1] == 168: // RFC 1918
	case a[0] == 198 && a[1]&0xfe == 18: // 198.18/15 benchmarking
	default:
		return martian4(a)
	}
	return true
}

// martian6 reports IPv6 addresses that are never a valid source of a routed
// packet: unspecified, loopback and multicast (RFC 7915 §5.1, RFC 4291).
func martian6(a *[16]byte) bool {
	if a[0] == 0xff {
		return true
	}
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	return hi == 0 && (lo == 0 || lo == 1)
}
