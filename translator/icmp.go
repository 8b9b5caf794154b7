package translator

import (
	"encoding/binary"

	"github.com/map646/map646/translator/internal/checksum"
)

// ICMP translation (RFC 7915 §4.2, §4.3, §5.2, §5.3) with RFC 4884
// extensions.

// ICMPv4 types and codes (RFC 792, RFC 1191, RFC 1812, IANA).
const (
	icmp4EchoReply             = 0
	icmp4DestUnreach           = 3
	icmp4SourceQuench          = 4
	icmp4Redirect              = 5
	icmp4Echo                  = 8
	icmp4TimeExceeded          = 11
	icmp4ParamProblem          = 12
	icmp4CodeNetUnreach        = 0
	icmp4CodeHostUnreach       = 1
	icmp4CodeProtoUnreach      = 2
	icmp4CodePortUnreach       = 3
	icmp4CodeFragNeeded        = 4
	icmp4CodeSourceRouteFailed = 5
	icmp4CodeNetProhibited     = 9
	icmp4CodeHostProhibited    = 10
	icmp4CodeAdminProhibited   = 13
	icmp4CodePrecedenceCutoff  = 15
)

// ICMPv6 types and codes (RFC 4443).
const (
	icmp6DestUnreach         = 1
	icmp6PacketTooBig        = 2
	icmp6TimeExceeded        = 3
	icmp6ParamProblem        = 4
	icmp6EchoRequest         = 128
	icmp6EchoReply           = 129
	icmp6CodeNoRoute         = 0
	icmp6CodeAdminProhibited = 1
	icmp6CodeBeyondScope     = 2
	icmp6CodeAddrUnreach     = 3
	icmp6CodePortUnreach     = 4
	icmp6CodeErroneousField  = 0
	icmp6CodeUnrecognizedNH  = 1
	icmp6CodeUnrecognizedOpt = 2
)

const (
	icmpHdrLen = 8
	// Size caps for ICMP errors: RFC 1812 §4.3.2.3 (576) and RFC 4443
	// §2.4(c) (1280).
	maxICMPv4Error = 576
	maxICMPv6Error = 1280
	// rfc4884Min is the least length of the "original datagram" field when
	// an extension follows it (RFC 4884 §4).
	rfc4884Min = 128
)

func icmp4IsError(typ uint8) bool {
	switch typ {
	case icmp4DestUnreach, icmp4SourceQuench, icmp4Redirect, icmp4TimeExceeded, icmp4ParamProblem:
		return true
	}
	return false
}

// ICMPv6 types below 128 are errors (RFC 4443 §2.1).
func icmp6IsError(typ uint8) bool { return typ < 128 }

// icmp4InfoTo6 translates the informational types RFC 7915 §4.2 keeps:
// echo request and reply. Everything else is silently dropped.
func icmp4InfoTo6(typ uint8) (uint8, bool) {
	switch typ {
	case icmp4Echo:
		return icmp6EchoRequest, true
	case icmp4EchoReply:
		return icmp6EchoReply, true
	}
	return 0, false
}

func icmp6InfoTo4(typ uint8) (uint8, bool) {
	switch typ {
	case icmp6EchoRequest:
		return icmp4Echo, true
	case icmp6EchoReply:
		return icmp4EchoReply, true
	}
	return 0, false
}

// Parameter Problem pointers: RFC 7915 Figure 3 (IPv4 -> IPv6) and Figure 6
// (IPv6 -> IPv4); -1 marks fields with no counterpart.
var pointer4to6 = [20]int16{
	0, 1, // Version/IHL, Type of Service
	4, 4, // Total Length -> Payload Length
	-1, -1, -1, -1, // Identification, Flags/Fragment Offset
	7, 6, // TTL -> Hop Limit, Protocol -> Next Header
	-1, -1, // Header Checksum
	8, 8, 8, 8, // Source Address
	24, 24, 24, 24, // Destination Address
}

var pointer6to4 = [40]int16{
	0, 1, -1, -1, // Version/Traffic Class, Traffic Class/Flow Label, Flow Label
	2, 2, // Payload Length -> Total Length
	9, 8, // Next Header -> Protocol, Hop Limit -> TTL
	12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // Source Address
	16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, // Destination Address
}

// plateaus are the RFC 1191 §7 MTU plateaus, used when a Fragmentation
// Needed message carries no MTU (a pre-RFC 1191 router).
var plateaus = [...]int{65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68}

func plateauBelow(size int) int {
	for _, p := range plateaus {
		if p < size {
			return p
		}
	}
	return 68
}

// icmpError4to6 translates an ICMPv4 error and the packet it quotes
// (RFC 7915 §4.2, §4.3). l4 is the ICMPv4 message; src6 and dst6 are the
// outer addresses already mapped.
func (t *Translator) icmpError4to6(pkt []byte, h *hdr4, l4 []byte, src6, dst6 *[16]byte, tc uint8, hairpin bool, o *Out) Result {
	typ, code := l4[0], l4[1]
	var ntyp, ncode uint8
	var rest uint32
	lengthField := false // the ICMPv6 type carries an RFC 4884 length
	ptb := false
	switch typ {
	case icmp4DestUnreach:
		switch code {
		case 0, 1, 5, 6, 7, 8, 11, 12:
			ntyp, ncode, lengthField = icmp6DestUnreach, icmp6CodeNoRoute, true
		case icmp4CodeProtoUnreach:
			ntyp, ncode, rest = icmp6ParamProblem, icmp6CodeUnrecognizedNH, 6
		case icmp4CodePortUnreach:
			ntyp, ncode, lengthField = icmp6DestUnreach, icmp6CodePortUnreach, true
		case icmp4CodeFragNeeded:
			ntyp, ncode, ptb = icmp6PacketTooBig, 0, true
		case 9, 10, 13, 15:
			ntyp, ncode, lengthField = icmp6DestUnreach, icmp6CodeAdminProhibited, true
		default: // 14 (host precedence violation) and unknown codes
			return drop(ReasonICMPType)
		}
	case icmp4TimeExceeded:
		ntyp, ncode, lengthField = icmp6TimeExceeded, code, true
	case icmp4ParamProblem:
		if code != 0 && code != 2 {
			return drop(ReasonICMPType)
		}
		ptr := int(l4[4])
		if ptr >= len(pointer4to6) || pointer4to6[ptr] < 0 {
			return drop(ReasonICMPParamPointer)
		}
		ntyp, ncode, rest = icmp6ParamProblem, icmp6CodeErroneousField, uint32(pointer4to6[ptr])
	default: // redirect, source quench, unknown errors
		return drop(ReasonICMPType)
	}

	// The quoted packet, and an RFC 4884 extension after it when the length
	// field (octet 5, in 32-bit words) is set and consistent.
	q := l4[icmpHdrLen:]
	var ext []byte
	if n := int(l4[5]) * 4; n != 0 && n >= rfc4884Min && n <= len(q) {
		q, ext = q[:n], q[n:]
	}
	var ih hdr4
	if r := parse4(q, true, &ih); r != ReasonNone {
		return drop(ReasonBadEmbeddedPacket)
	}
	q = q[:ih.tlen] // the original datagram without RFC 4884 padding
	il4 := q[ih.hlen:]
	if ih.proto == protoICMP && ih.off == 0 && len(il4) > 0 && icmp4IsError(il4[0]) {
		return drop(ReasonICMPErrorInError)
	}
	if ih.src != h.dst {
		// An error goes to the source of the packet it quotes (RFC 792,
		// RFC 4443 §2.4): one that quotes somebody else's packet is forged,
		// an attempt to reach a flow its sender cannot see. Jool does not
		// check this; a server's stack would mostly ignore such an error,
		// but the translator need not deliver it.
		return drop(ReasonEmbeddedMismatch)
	}
	if foreign4(ih.proto) {
		return drop(ReasonBadEmbeddedPacket) // we never translated such a packet
	}
	if ih.proto == protoICMP && ih.off == 0 && len(il4) > 0 {
		if _, ok := icmp4InfoTo6(il4[0]); !ok {
			return drop(ReasonBadEmbeddedPacket) // nor an ICMP message other than echo
		}
	}
	// The quoted packet went the other way: its source plays the role of a
	// destination and its destination that of a source (RFC 7915 §4.3).
	isrc6, _, r := t.dst4(ih.src)
	if r != ReasonNone {
		return drop(r)
	}
	m := inner4
	if hairpin {
		m = hairpin4
	}
	idst6, r := t.src4(ih.dst, m)
	if r != ReasonNone {
		return drop(r)
	}

	if ptb {
		adv := int(binary.BigEndian.Uint16(l4[6:]))
		if adv == 0 {
			adv = plateauBelow(ih.claimed)
		}
		mtu := min(adv+20, t.cfg.IPv6MTU, t.cfg.IPv4MTU+20)
		rest = uint32(max(mtu, MinIPv6MTU))
	}

	// Translate the quoted header; its hop limit is not decremented.
	ifh := 0
	if ih.fragment() {
		ifh = fragHdrLen
	}
	inh := ih.proto
	ip := patch{typeAt: -1, csumAt: -1}
	if ih.off == 0 {
		ip = quotedChecksum4to6(&ih, il4, &isrc6, &idst6)
	}
	if inh == protoICMP {
		inh = protoICMPv6
	}
	itc := t.trafficClass(ih.tos)

	innerLen := ip6Len + ifh + len(il4)
	sect, lenWords, ext := rfc4884Section(innerLen, ext, lengthField, maxICMPv6Error-ip6Len-icmpHdrLen, 8)
	body := icmpHdrLen + sect + len(ext)
	b := o.next(ip6Len + body)
	writeIPv6(b, tc, body, protoICMPv6, h.ttl-1, src6, dst6)
	msg := b[ip6Len:]
	msg[0], msg[1], msg[2], msg[3] = ntyp, ncode, 0, 0
	binary.BigEndian.PutUint32(msg[4:], rest)
	if lenWords > 0 {
		msg[4] = uint8(lenWords) // ICMPv6 length field: octet 4, 64-bit words
	}
	in := msg[icmpHdrLen : icmpHdrLen+sect]
	iplen := ih.claimed - ih.hlen + ifh
	if ifh != 0 {
		writeIPv6(in, itc, iplen, protoFragment, ih.ttl, &isrc6, &idst6)
		writeFrag6(in[ip6Len:], inh, ih.off, ih.mf, uint32(ih.id))
	} else {
		writeIPv6(in, itc, iplen, inh, ih.ttl, &isrc6, &idst6)
	}
	n := copy(in[ip6Len+ifh:], il4)
	ip.apply(in[ip6Len+ifh:ip6Len+ifh+n], 0)
	clear(in[ip6Len+ifh+n:]) // RFC 4884 padding
	copy(msg[icmpHdrLen+sect:], ext)
	binary.BigEndian.PutUint16(msg[2:], checksum.Finish(checksum.Sum(msg, checksum.Pseudo6(src6, dst6, protoICMPv6, body))))
	return Result{Verdict: Forward, Entry: -1}
}

// rfc4884Section sizes the quoted-packet section of a translated ICMP error
// of at most limit bytes after the ICMP header. With an extension to carry
// (RFC 4884 §4), the section is padded to a multiple of word and at least
// 128 bytes, and its length in words goes into the header; an extension that
// cannot fit beside 128 bytes of quote is dropped, as is one the new type
// cannot carry. Without one, the quote is cut to fit.
func rfc4884Section(innerLen int, ext []byte, lengthField bool, limit, word int) (sect, words int, _ []byte) {
	if len(ext) == 0 || !lengthField || len(ext) > limit-rfc4884Min {
		return min(innerLen, limit), 0, nil
	}
	sect = (innerLen + word - 1) / word * word
	sect = min(sect, (limit-len(ext))/word*word)
	sect = min(sect, 255*word) // the length field is one octet
	sect = max(sect, rfc4884Min)
	return sect, sect / word, ext
}

// quotedChecksum4to6 adjusts the checksum of a quoted TCP, UDP or ICMP echo
// header for its translated addresses. The quote is usually cut short, so
// only an incremental update is possible (RFC 7915 §4.3 implies it).
func quotedChecksum4to6(ih *hdr4, il4 []byte, src6, dst6 *[16]byte) patch {
	p := patch{typeAt: -1, csumAt: -1}
	switch ih.proto {
	case protoTCP:
		if len(il4) >= 18 {
			p.csumAt = 16
			p.csum = checksum.Adjust(binary.BigEndian.Uint16(il4[16:]), checksum.Addrs4(&ih.src, &ih.dst), checksum.Addrs6(src6, dst6))
		}
	case protoUDP:
		if len(il4) >= 8 {
			if c := binary.BigEndian.Uint16(il4[6:]); c != 0 {
				p.csumAt = 6
				p.csum = checksum.Adjust(c, checksum.Addrs4(&ih.src, &ih.dst), checksum.Addrs6(src6, dst6))
				if p.csum == 0 {
					p.csum = 0xffff
				}
			}
		}
	case protoICMP:
		// The type must change even in a quote cut after its first byte: an
		// echo type left as it was would read as an ICMPv6 error.
		if len(il4) >= 1 {
			if typ, ok := icmp4InfoTo6(il4[0]); ok {
				p.typeAt, p.typ = 0, typ
			}
		}
		if len(il4) >= 4 && p.typeAt == 0 {
			typ := p.typ
			p.csumAt = 2
			ulen := ih.claimed - ih.hlen
			p.csum = checksum.Adjust(binary.BigEndian.Uint16(il4[2:]), uint64(il4[0])<<8,
				uint64(typ)<<8+checksum.Pseudo6(src6, dst6, protoICMPv6, ulen))
		}
	}
	return p
}

// quotedChecksum6to4 is the reverse of quotedChecksum4to6.
func quotedChecksum6to4(ih *hdr6, il4 []byte, src4, dst4 *[4]byte) patch {
	p := patch{typeAt: -1, csumAt: -1}
	switch ih.proto {
	case protoTCP:
		if len(il4) >= 18 {
			p.csumAt = 16
			p.csum = checksum.Adjust(binary.BigEndian.Uint16(il4[16:]), checksum.Addrs6(&ih.src, &ih.dst), checksum.Addrs4(src4, dst4))
		}
	case protoUDP:
		if len(il4) >= 8 {
			if c := binary.BigEndian.Uint16(il4[6:]); c != 0 {
				p.csumAt = 6
				p.csum = checksum.Adjust(c, checksum.Addrs6(&ih.src, &ih.dst), checksum.Addrs4(src4, dst4))
				if p.csum == 0 {
					p.csum = 0xffff
				}
			}
		}
	case protoICMPv6:
		if len(il4) >= 1 {
			if typ, ok := icmp6InfoTo4(il4[0]); ok {
				p.typeAt, p.typ = 0, typ
			}
		}
		if len(il4) >= 4 && p.typeAt == 0 {
			typ := p.typ
			p.csumAt = 2
			ulen := ih.claimed - ih.l4
			p.csum = checksum.Adjust(binary.BigEndian.Uint16(il4[2:]),
				uint64(il4[0])<<8+checksum.Pseudo6(&ih.src, &ih.dst, protoICMPv6, ulen), uint64(typ)<<8)
		}
	}
	return p
}

// icmpError6to4 translates an ICMPv6 error and the packet it quotes
// (RFC 7915 §5.2, §5.3). src4 and dst4 are the outer addresses already
// mapped.
func (t *Translator) icmpError6to4(h *hdr6, l4 []byte, src4, dst4 *[4]byte, tos uint8, o *Out) Result {
	typ, code := l4[0], l4[1]
	var ntyp, ncode uint8
	var rest uint32
	lengthField := false
	ptb := false
	switch typ {
	case icmp6DestUnreach:
		switch code {
		case icmp6CodeNoRoute, icmp6CodeBeyondScope, icmp6CodeAddrUnreach:
			ntyp, ncode = icmp4DestUnreach, icmp4CodeHostUnreach
		case icmp6CodeAdminProhibited:
			ntyp, ncode = icmp4DestUnreach, icmp4CodeHostProhibited
		case icmp6CodePortUnreach:
			ntyp, ncode = icmp4DestUnreach, icmp4CodePortUnreach
		default:
			return drop(ReasonICMPType)
		}
		lengthField = true
	case icmp6PacketTooBig:
		ntyp, ncode, ptb = icmp4DestUnreach, icmp4CodeFragNeeded, true
	case icmp6TimeExceeded:
		ntyp, ncode, lengthField = icmp4TimeExceeded, code, true
	case icmp6ParamProblem:
		switch code {
		case icmp6CodeErroneousField:
			ptr := binary.BigEndian.Uint32(l4[4:])
			if ptr >= uint32(len(pointer6to4)) || pointer6to4[ptr] < 0 {
				return drop(ReasonICMPParamPointer)
			}
			ntyp, ncode, rest = icmp4ParamProblem, 0, uint32(pointer6to4[ptr])<<24
		case icmp6CodeUnrecognizedNH:
			ntyp, ncode, lengthField = icmp4DestUnreach, icmp4CodeProtoUnreach, true
		default:
			return drop(ReasonICMPType)
		}
	default:
		return drop(ReasonICMPType)
	}

	q := l4[icmpHdrLen:]
	var ext []byte
	if typ == icmp6DestUnreach || typ == icmp6TimeExceeded {
		// RFC 4884: ICMPv6 length field in octet 4, in 64-bit words.
		if n := int(l4[4]) * 8; n != 0 && n >= rfc4884Min && n <= len(q) {
			q, ext = q[:n], q[n:]
		}
	}
	var ih hdr6
	if r := parse6(q, true, &ih); r != ReasonNone {
		return drop(ReasonBadEmbeddedPacket)
	}
	q = q[:ih.end]
	il4 := q[ih.l4:]
	if ih.proto == protoICMPv6 && ih.fragOff == 0 && len(il4) > 0 && icmp6IsError(il4[0]) {
		return drop(ReasonICMPErrorInError)
	}
	if ih.src != h.dst {
		return drop(ReasonEmbeddedMismatch) // as in icmpError4to6
	}
	if ih.proto == protoICMP {
		return drop(ReasonBadEmbeddedPacket) // we never translated such a packet
	}
	if ih.proto == protoICMPv6 && ih.fragOff == 0 && len(il4) > 0 {
		if _, ok := icmp6InfoTo4(il4[0]); !ok {
			return drop(ReasonBadEmbeddedPacket) // nor an ICMPv6 message other than echo
		}
	}
	// Reverse roles, as in icmpError4to6.
	isrc4, _, r := t.dst6(&ih.src)
	if r != ReasonNone {
		return drop(r)
	}
	idst4, _, r := t.src6(&ih.dst, true)
	if r != ReasonNone {
		return drop(r)
	}

	if ptb {
		adv := binary.BigEndian.Uint32(l4[4:])
		mtu := min(int64(adv)-20, int64(t.cfg.IPv4MTU), int64(t.cfg.IPv6MTU)-20)
		rest = uint32(max(mtu, 68)) // octets 6-7; IPv4MTU bounds it below 65536
	}

	inh := ih.proto
	if inh == protoICMPv6 {
		inh = protoICMP
	}
	ip := patch{typeAt: -1, csumAt: -1}
	if ih.fragOff == 0 {
		ip = quotedChecksum6to4(&ih, il4, &isrc4, &idst4)
	}
	itos := t.trafficClass(ih.tc)
	itlen := ip4MinLen + ih.claimed - ih.l4
	if itlen > MaxMTU {
		return drop(ReasonBadEmbeddedPacket) // no IPv4 packet was ever that long
	}
	id, flags := t.idFlags(&ih, itlen)

	innerLen := ip4MinLen + len(il4)
	sect, lenWords, ext := rfc4884Section(innerLen, ext, lengthField, maxICMPv4Error-ip4MinLen-icmpHdrLen, 4)
	body := icmpHdrLen + sect + len(ext)
	b := o.next(ip4MinLen + body)
	// The outer header follows the rules of every translated packet: an
	// atomic fragment keeps the low bits of its Identification (RFC 7915
	// §5.1.1; fragmented ICMPv6 never gets here).
	oid, oflags := t.idFlags(h, ip4MinLen+body)
	writeIPv4(b, tos, ip4MinLen+body, oid, oflags, h.hop-1, protoICMP, src4, dst4)
	msg := b[ip4MinLen:]
	msg[0], msg[1], msg[2], msg[3] = ntyp, ncode, 0, 0
	binary.BigEndian.PutUint32(msg[4:], rest)
	if lenWords > 0 {
		msg[5] = uint8(lenWords) // ICMPv4 length field: octet 5, 32-bit words
	}
	in := msg[icmpHdrLen : icmpHdrLen+sect]
	writeIPv4(in, itos, itlen, id, flags, ih.hop, inh, &isrc4, &idst4)
	n := copy(in[ip4MinLen:], il4)
	ip.apply(in[ip4MinLen:ip4MinLen+n], 0)
	clear(in[ip4MinLen+n:])
	copy(msg[icmpHdrLen+sect:], ext)
	binary.BigEndian.PutUint16(msg[2:], checksum.Finish(checksum.Sum(msg, 0)))
	return Result{Verdict: Forward, Entry: -1}
}
