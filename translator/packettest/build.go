package packettest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDestOpts = 60
)

// TCP flags (RFC 9293 §3.1).
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
	URG = 0x20
	ECE = 0x40
	CWR = 0x80
)

// IPv4 is an IPv4 header to build (RFC 791 §3.1). Every field is written as
// given; the builder fills Version, IHL, Total Length, Protocol and the
// header checksum.
type IPv4 struct {
	TOS     uint8
	ID      uint16
	DF, MF  bool
	FragOff uint16 // in 8-byte units
	TTL     uint8
	Src     netip.Addr
	Dst     netip.Addr
	Options []byte // raw; zero-padded (End of Option List) to a multiple of 4

	TotalLen    int  // if not zero, written instead of the true total length
	BadChecksum bool // write a wrong header checksum
}

// IPv6 is an IPv6 header to build (RFC 8200 §3), with its extension headers
// in order. The builder fills Version, Payload Length and every Next Header.
type IPv6 struct {
	TC   uint8
	Flow uint32 // 20 bits
	Hop  uint8
	Src  netip.Addr
	Dst  netip.Addr
	Ext  []Ext

	PayloadLen int // if not zero, written instead of the true payload length
}

// Ext is an IPv6 extension header: its protocol number and all its bytes.
// Bytes[0] (Next Header) is overwritten by the builder.
type Ext struct {
	Proto uint8
	Bytes []byte
}

// TCP is a TCP header to build (RFC 9293 §3.1); Data Offset and the checksum
// are filled by the builder, Options are zero-padded to a multiple of 4.
type TCP struct {
	Sport, Dport uint16
	Seq, Ack     uint32
	Flags        uint8
	Window       uint16
	Urgent       uint16
	Options      []byte
}

// Raw4 builds an IPv4 packet carrying payload as protocol proto, untouched.
// It is the builder for unknown protocols and for hand-made transport headers.
func Raw4(ip IPv4, proto uint8, payload []byte) []byte {
	return ip.build(proto, payload)
}

// UDP4 builds an IPv4 UDP datagram with its checksum computed over the bytes
// given (so with MF set it is not the checksum of the whole datagram: build
// the whole and use Fragment4 for real fragments).
func UDP4(ip IPv4, sport, dport uint16, payload []byte) []byte {
	u := udp(sport, dport, payload)
	setUDPChecksum(u, pseudo(ip.Src, ip.Dst, ProtoUDP, len(u)))
	return ip.build(ProtoUDP, u)
}

// UDP4NoChecksum builds an IPv4 UDP datagram with checksum 0, which IPv4
// reads as "no checksum" (RFC 768) and RFC 7915 §4.5 treats specially.
func UDP4NoChecksum(ip IPv4, sport, dport uint16, payload []byte) []byte {
	return ip.build(ProtoUDP, udp(sport, dport, payload))
}

// TCP4 builds an IPv4 TCP segment with its checksum computed.
func TCP4(ip IPv4, t TCP, payload []byte) []byte {
	b := t.build(payload)
	putChecksum(b[16:], pseudo(ip.Src, ip.Dst, ProtoTCP, len(b)), b)
	return ip.build(ProtoTCP, b)
}

// ICMP4 builds an ICMPv4 message (RFC 792): type, code, checksum, the four
// bytes of rest of header (Rest16, Rest32), then body: the echo data or the
// quoted datagram of an error. The checksum has no pseudo-header.
func ICMP4(ip IPv4, typ, code uint8, rest [4]byte, body []byte) []byte {
	b := icmp(typ, code, rest, body)
	putChecksum(b[2:], 0, b)
	return ip.build(ProtoICMP, b)
}

// Raw6 builds an IPv6 packet whose last Next Header is proto, payload untouched.
func Raw6(ip IPv6, proto uint8, payload []byte) []byte {
	return ip.build(proto, payload)
}

// UDP6 builds an IPv6 UDP datagram with its checksum computed (RFC 8200 §8.1).
func UDP6(ip IPv6, sport, dport uint16, payload []byte) []byte {
	u := udp(sport, dport, payload)
	setUDPChecksum(u, pseudo(ip.Src, ip.finalDst(), ProtoUDP, len(u)))
	return ip.build(ProtoUDP, u)
}

// UDP6NoChecksum builds an IPv6 UDP datagram with checksum 0: invalid in
// IPv6 (RFC 8200 §8.1), so Check rejects it; an input for drop tests.
func UDP6NoChecksum(ip IPv6, sport, dport uint16, payload []byte) []byte {
	return ip.build(ProtoUDP, udp(sport, dport, payload))
}

// TCP6 builds an IPv6 TCP segment with its checksum computed.
func TCP6(ip IPv6, t TCP, payload []byte) []byte {
	b := t.build(payload)
	putChecksum(b[16:], pseudo(ip.Src, ip.finalDst(), ProtoTCP, len(b)), b)
	return ip.build(ProtoTCP, b)
}

// ICMP6 builds an ICMPv6 message (RFC 4443 §2.1), checksum with the
// pseudo-header.
func ICMP6(ip IPv6, typ, code uint8, rest [4]byte, body []byte) []byte {
	b := icmp(typ, code, rest, body)
	putChecksum(b[2:], pseudo(ip.Src, ip.finalDst(), ProtoICMPv6, len(b)), b)
	return ip.build(ProtoICMPv6, b)
}

// Rest16 is an ICMP rest of header made of two 16-bit fields: identifier and
// sequence number of an echo, or (0, Next-Hop MTU) of an ICMPv4 Fragmentation
// Needed (RFC 1191).
func Rest16(hi, lo uint16) [4]byte {
	var r [4]byte
	binary.BigEndian.PutUint16(r[0:], hi)
	binary.BigEndian.PutUint16(r[2:], lo)
	return r
}

// Rest32 is an ICMP rest of header holding one 32-bit field: the MTU of an
// ICMPv6 Packet Too Big or the pointer of an ICMPv6 Parameter Problem.
func Rest32(v uint32) [4]byte {
	var r [4]byte
	binary.BigEndian.PutUint32(r[:], v)
	return r
}

// HopByHop is a Hop-by-Hop Options header (RFC 8200 §4.3) holding the raw
// TLV options opts, padded with Pad1/PadN to a multiple of 8 bytes.
func HopByHop(opts []byte) Ext { return Ext{ProtoHopByHop, tlvHeader(opts)} }

// DestOpts is a Destination Options header (RFC 8200 §4.6), padded like HopByHop.
func DestOpts(opts []byte) Ext { return Ext{ProtoDestOpts, tlvHeader(opts)} }

// Routing is a Routing header (RFC 8200 §4.4) of type typ with addresses
// after the four type-specific bytes, as in types 0 and 2 and the Segment
// Routing Header (type 4, RFC 8754, whose Last Entry is set).
func Routing(typ, segLeft uint8, addrs ...netip.Addr) Ext {
	b := make([]byte, 8+16*len(addrs))
	b[1] = uint8(2 * len(addrs))
	b[2] = typ
	b[3] = segLeft
	if typ == 4 && len(addrs) > 0 {
		b[4] = uint8(len(addrs) - 1)
	}
	for i, a := range addrs {
		if !a.Is6() {
			panic(fmt.Sprintf("packettest: routing header address %v is not IPv6", a))
		}
		a16 := a.As16()
		copy(b[8+16*i:], a16[:])
	}
	return Ext{ProtoRouting, b}
}

// Fragment is a Fragment header (RFC 8200 §4.5); off is in 8-byte units.
// Offset 0 with more false makes an atomic fragment (RFC 6946).
func Fragment(off uint16, more bool, id uint32) Ext {
	if off > 0x1fff {
		panic(fmt.Sprintf("packettest: fragment offset %d does not fit 13 bits", off))
	}
	b := make([]byte, 8)
	fo := off << 3
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[2:], fo)
	binary.BigEndian.PutUint32(b[4:], id)
	return Ext{ProtoFragment, b}
}

// SourceRoute is an IPv4 Loose (0x83) or Strict (0x89) Source and Record
// Route option (RFC 791 §3.1). The route is unexpired while pointer <= its
// length; pointer 4 points at the first address.
func SourceRoute(strict bool, pointer uint8, addrs ...netip.Addr) []byte {
	b := []byte{0x83, uint8(3 + 4*len(addrs)), pointer}
	if strict {
		b[0] = 0x89
	}
	for _, a := range addrs {
		a4 := must4(a, "source route")
		b = append(b, a4[:]...)
	}
	return b
}

// Extended returns the body of an ICMP error carrying an RFC 4884 extension
// structure: quote zero-padded to a multiple of unit (4 for ICMPv4, 8 for
// ICMPv6) and to at least 128 bytes (RFC 4884 §4.1), then the extension
// header (version 2, checksum) and objects (see ExtObject). length is the
// value for the ICMP length field, in units: rest[1] of an ICMPv4 error,
// rest[0] of an ICMPv6 error.
func Extended(quote []byte, unit int, objects ...[]byte) (body []byte, length uint8) {
	n := max(len(quote), 128)
	n = (n + unit - 1) / unit * unit
	if n/unit > 255 {
		panic(fmt.Sprintf("packettest: quote of %d bytes is too long for the RFC 4884 length field", len(quote)))
	}
	body = make([]byte, n, n+4)
	copy(body, quote)
	ext := []byte{0x20, 0, 0, 0} // version 2
	for _, o := range objects {
		ext = append(ext, o...)
	}
	putChecksum(ext[2:], 0, ext)
	return append(body, ext...), uint8(n / unit)
}

// ExtObject is an RFC 4884 §7 extension object: length, class, C-type, data.
func ExtObject(class, ctype uint8, data []byte) []byte {
	b := make([]byte, 4+len(data))
	binary.BigEndian.PutUint16(b, uint16(len(b)))
	b[2] = class
	b[3] = ctype
	copy(b[4:], data)
	return b
}

func (ip IPv4) build(proto uint8, payload []byte) []byte {
	opts := pad(ip.Options, 4)
	if len(opts) > 40 {
		panic(fmt.Sprintf("packettest: %d bytes of IPv4 options, at most 40 fit", len(ip.Options)))
	}
	hl := 20 + len(opts)
	total := hl + len(payload)
	if total > 0xffff {
		panic(fmt.Sprintf("packettest: IPv4 packet of %d bytes", total))
	}
	if ip.FragOff > 0x1fff {
		panic(fmt.Sprintf("packettest: fragment offset %d does not fit 13 bits", ip.FragOff))
	}
	b := make([]byte, total)
	b[0] = 0x40 | uint8(hl/4)
	b[1] = ip.TOS
	tl := total
	if ip.TotalLen != 0 {
		tl = ip.TotalLen
	}
	binary.BigEndian.PutUint16(b[2:], uint16(tl))
	binary.BigEndian.PutUint16(b[4:], ip.ID)
	ff := ip.FragOff
	if ip.DF {
		ff |= 0x4000
	}
	if ip.MF {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = ip.TTL
	b[9] = proto
	s, d := must4(ip.Src, "source"), must4(ip.Dst, "destination")
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	copy(b[hl:], payload)
	putChecksum(b[10:], 0, b[:hl])
	if ip.BadChecksum {
		b[11] ^= 1 // never the other representation of the same sum
	}
	return b
}

func (ip IPv6) build(proto uint8, payload []byte) []byte {
	if ip.Flow > 0xfffff {
		panic(fmt.Sprintf("packettest: flow label %#x does not fit 20 bits", ip.Flow))
	}
	n := 40
	for _, e := range ip.Ext {
		n += len(e.Bytes)
	}
	n += len(payload)
	if n-40 > 0xffff {
		panic(fmt.Sprintf("packettest: IPv6 payload of %d bytes (jumbograms are not built)", n-40))
	}
	b := make([]byte, 40, n)
	binary.BigEndian.PutUint32(b, 6<<28|uint32(ip.TC)<<20|ip.Flow)
	pl := n - 40
	if ip.PayloadLen != 0 {
		pl = ip.PayloadLen
	}
	binary.BigEndian.PutUint16(b[4:], uint16(pl))
	b[7] = ip.Hop
	s, d := must6(ip.Src, "source"), must6(ip.Dst, "destination")
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	next := 6 // offset of the Next Header field to fill
	for _, e := range ip.Ext {
		b[next] = e.Proto
		next = len(b)
		b = append(b, e.Bytes...)
	}
	b[next] = proto
	return append(b, payload...)
}

// finalDst is the destination the transport pseudo-header uses: the last
// hop of a Routing header that still has segments left (RFC 8200 §8.1).
func (ip IPv6) finalDst() netip.Addr {
	for _, e := range ip.Ext {
		if e.Proto != ProtoRouting {
			continue
		}
		d, ok := routingFinalDst(e.Bytes)
		if !ok {
			panic(fmt.Sprintf("packettest: routing header type %d: final destination unknown", e.Bytes[2]))
		}
		if d.IsValid() {
			return d
		}
	}
	return ip.Dst
}

// routingFinalDst returns the final destination named by routing header r,
// or an invalid Addr when r has no segments left; ok is false for routing
// types whose layout is not known here.
func routingFinalDst(r []byte) (d netip.Addr, ok bool) {
	if len(r) < 8 || r[3] == 0 {
		return netip.Addr{}, true
	}
	n := (len(r) - 8) / 16
	var at int
	switch r[2] {
	case 0, 2: // addresses in visiting order: the last is the destination
		at = n - 1
	case 4: // Segment List[0] is the last segment (RFC 8754 §2)
		at = 0
	default:
		return netip.Addr{}, false
	}
	if n == 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(r[8+16*at:])), true
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

// setUDPChecksum stores the UDP checksum, sent as 0xffff when it computes to
// zero because zero means "no checksum" (RFC 768).
func setUDPChecksum(u []byte, acc uint64) {
	c := checksum(sum(acc, u))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
}

func (t TCP) build(payload []byte) []byte {
	opts := pad(t.Options, 4)
	if len(opts) > 40 {
		panic(fmt.Sprintf("packettest: %d bytes of TCP options, at most 40 fit", len(t.Options)))
	}
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:], t.Sport)
	binary.BigEndian.PutUint16(b[2:], t.Dport)
	binary.BigEndian.PutUint32(b[4:], t.Seq)
	binary.BigEndian.PutUint32(b[8:], t.Ack)
	b[12] = uint8(hl/4) << 4
	b[13] = t.Flags
	binary.BigEndian.PutUint16(b[14:], t.Window)
	binary.BigEndian.PutUint16(b[18:], t.Urgent)
	copy(b[20:], opts)
	copy(b[hl:], payload)
	return b
}

func icmp(typ, code uint8, rest [4]byte, body []byte) []byte {
	b := make([]byte, 8+len(body))
	b[0] = typ
	b[1] = code
	copy(b[4:], rest[:])
	copy(b[8:], body)
	return b
}

// putChecksum writes into field (zero on entry) the checksum of data
// starting from the pseudo-header sum acc.
func putChecksum(field []byte, acc uint64, data []byte) {
	binary.BigEndian.PutUint16(field, checksum(sum(acc, data)))
}

// tlvHeader lays out an options header: Next Header, Hdr Ext Len, options,
// then Pad1 or PadN (RFC 8200 §4.2) up to a multiple of 8 bytes.
func tlvHeader(opts []byte) []byte {
	n := 2 + len(opts)
	padLen := (8 - n%8) % 8
	b := make([]byte, n+padLen)
	b[1] = uint8((n+padLen)/8 - 1)
	copy(b[2:], opts)
	switch padLen {
	case 0:
	case 1:
		b[n] = 0 // Pad1
	default:
		b[n] = 1 // PadN
		b[n+1] = uint8(padLen - 2)
	}
	return b
}

// pad returns b extended with zeros to a multiple of n.
func pad(b []byte, n int) []byte {
	if len(b)%n == 0 {
		return b
	}
	return append(append([]byte(nil), b...), make([]byte, n-len(b)%n)...)
}

func must4(a netip.Addr, what string) [4]byte {
	if !a.Is4() {
		panic(fmt.Sprintf("packettest: IPv4 %s %v is not an IPv4 address", what, a))
	}
	return a.As4()
}

func must6(a netip.Addr, what string) [16]byte {
	if !a.Is6() {
		panic(fmt.Sprintf("packettest: IPv6 %s %v is not an IPv6 address", what, a))
	}
	return a.As16()
}
