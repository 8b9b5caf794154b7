package translator

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/map646/map646/translator/internal/checksum"
)

// Translation from IPv6 to IPv4 (RFC 7915 §5).

// src6 maps an IPv6 source address (or the destination of a packet quoted
// in an ICMPv6 error, which plays the source's role): through the table, and
// through the pseudo prefix only in the SIIT policy or inside a quote. In the
// datacenter policy an outer source inside the pseudo prefix would let an
// IPv6 host pose as an IPv4 client: it is refused.
func (t *Translator) src6(a *[16]byte, quoted bool) ([4]byte, int32, Reason) {
	if v4, e, ok := t.table.Map6(*a); ok {
		return v4, e, ReasonNone
	}
	if !t.pool.contains(a) {
		return [4]byte{}, -1, ReasonNoMappingSrc
	}
	if t.cfg.Policy == PolicyDatacenter && !quoted {
		return [4]byte{}, -1, ReasonSpoofedPseudo
	}
	v4, ok := t.pool.extract(a)
	switch {
	case !ok:
		return v4, -1, ReasonNoMappingSrc
	case martian4(v4):
		return v4, -1, ReasonMartianSource
	case t.wkp && nonGlobal4(v4):
		return v4, -1, ReasonNonGlobalWKP
	}
	return v4, -1, ReasonNone
}

// dst6 maps an IPv6 destination address (or the source of a quoted packet):
// the table first (RFC 7757 §3), then the pseudo prefix. New refuses tables
// with IPv6 prefixes inside the pseudo prefix, so testing the prefix first is
// the same order, and spares the usual case, a reply to an IPv4 client, a
// table lookup that would miss.
func (t *Translator) dst6(a *[16]byte) ([4]byte, int32, Reason) {
	if !t.pool.contains(a) {
		if v4, e, ok := t.table.Map6(*a); ok {
			return v4, e, ReasonNone
		}
		return [4]byte{}, -1, ReasonNoMappingDst
	}
	v4, ok := t.pool.extract(a)
	switch {
	case !ok:
		return v4, -1, ReasonNoMappingDst
	case martian4(v4):
		return v4, -1, ReasonMartianDestination
	case t.wkp && nonGlobal4(v4):
		return v4, -1, ReasonNonGlobalWKP
	}
	return v4, -1, ReasonNone
}

// rfc6791Seed spreads ICMPv6 errors from untranslatable sources over the
// RFC 6791 pool; the same router always gets the same address.
var rfc6791Seed = maphash.MakeSeed()

func (t *Translator) rfc6791(src *[16]byte) [4]byte {
	if len(t.pool6791) == 1 {
		return t.pool6791[0]
	}
	return t.pool6791[maphash.Comparable(rfc6791Seed, *src)%uint64(len(t.pool6791))]
}

// translate6 translates the IPv6 packet pkt into o.
func (t *Translator) translate6(pkt []byte, o *Out) Result {
	var h hdr6
	if r := parse6(pkt, false, &h); r != ReasonNone {
		switch {
		case r == ReasonFragmentedExtHdr:
			// RFC 7915 §5.1.1 drops it; §5.4 answers every discarded
			// packet that is not ICMPv6 with the default error.
			return t.error6(pkt[:h.end], &h, r, icmp6DestUnreach, icmp6CodeAdminProhibited, 0, o)
		case r == ReasonBadOptions && h.hbhAt != 0:
			// A Hop-by-Hop header anywhere but first, "a Next Header value
			// of zero in any header other than an IPv6 header" (RFC 8200
			// §4): Parameter Problem code 1 pointing at that Next Header
			// field, as for a next header nobody knows.
			return t.error6(pkt[:h.end], &h, r, icmp6ParamProblem, icmp6CodeUnrecognizedNH, uint32(h.hbhAt), o)
		}
		return drop(r)
	}
	pkt = pkt[:h.end]
	l4 := pkt[h.l4:]
	icmpMsg := h.proto == protoICMPv6 && !h.fragment() && len(l4) > 0
	icmpErr := icmpMsg && icmp6IsError(l4[0])
	if h.proto == protoICMPv6 && h.fragOff != 0 {
		icmpMsg = true // not the first fragment: it may belong to an error
	}

	if martian6(&h.src) {
		return drop(ReasonMartianSource)
	}
	if h.dst[0] == 0xff {
		return drop(ReasonMartianDestination)
	}
	src4, entry, r := t.src6(&h.src, false)
	if r != ReasonNone {
		switch {
		case r == ReasonNoMappingSrc && icmpErr:
			// An error from a router of the IPv6 network (RFC 6791,
			// RFC 7755): without a source it would be lost, and with it
			// path MTU discovery toward IPv4 clients.
			src4 = t.rfc6791(&h.src)
		case r == ReasonNoMappingSrc && !icmpMsg:
			return t.error6(pkt, &h, r, icmp6DestUnreach, icmp6CodeAdminProhibited, 0, o)
		default:
			return drop(r)
		}
	}
	dst4, _, r := t.dst6(&h.dst)
	if r != ReasonNone {
		if r == ReasonNoMappingDst && !icmpMsg {
			return t.error6(pkt, &h, r, icmp6DestUnreach, icmp6CodeAdminProhibited, 0, o).withEntry(entry)
		}
		return dropEntry(r, entry)
	}
	if t.toNode4(dst4) {
		return dropEntry(ReasonLocalDestination, entry)
	}
	if h.hop <= 1 {
		return t.error6(pkt, &h, ReasonTTLExpired, icmp6TimeExceeded, 0, 0, o).withEntry(entry)
	}
	if h.rtOffset != 0 {
		// RFC 7915 §5.1: a routing header with segments left is not ours to
		// skip; the pointer names its Segments Left field.
		return t.error6(pkt, &h, ReasonRoutingHdr, icmp6ParamProblem, icmp6CodeErroneousField, uint32(h.rtOffset), o).withEntry(entry)
	}

	// Hairpinning (RFC 7757 §4): a destination that is one of our own
	// mapped IPv4 addresses goes back to the IPv6 side. Build the IPv4
	// packet aside and translate it again.
	hairpin := false
	if t.cfg.Hairpin == HairpinIntrinsic {
		_, _, hairpin = t.table.Map4(dst4)
	}
	out := o
	if hairpin {
		out = o.hp
		out.reset()
	}

	tos := t.trafficClass(h.tc)
	proto := h.proto
	var p patch
	switch h.proto {
	case protoICMPv6:
		if h.fragment() {
			return dropEntry(ReasonFragmentedICMP, entry)
		}
		if len(l4) < icmpHdrLen {
			return dropEntry(ReasonTruncated, entry)
		}
		if icmpErr {
			res := t.icmpError6to4(&h, l4, &src4, &dst4, tos, out)
			if res.Verdict != Forward {
				return res.withEntry(entry)
			}
			return t.finish6(pkt, &h, hairpin, out, o, entry)
		}
		typ, ok := icmp6InfoTo4(l4[0])
		if !ok {
			return dropEntry(ReasonICMPType, entry)
		}
		proto = protoICMP
		// The ICMPv4 checksum has no pseudo-header: take it out and the
		// type change in, incrementally (a wrong checksum stays wrong).
		c := binary.BigEndian.Uint16(l4[2:])
		p = patch{typeAt: 0, typ: typ, csumAt: 2,
			csum: checksum.Adjust(c, uint64(l4[0])<<8+checksum.Pseudo6(&h.src, &h.dst, protoICMPv6, len(l4)), uint64(typ)<<8)}
		if p.csum == 0 && checksum.Sum(l4[4:], uint64(l4[1])) == 0 && typ == 0 {
			// An echo reply of nothing but zeros sums to +0, whose checksum
			// is 0xffff; the incremental update yields the other zero.
			p.csum = 0xffff
		}
	case protoICMP:
		// ICMPv4 inside IPv6: its IPv4 form would be taken for ICMP, which
		// it is not (RFC 7915 §5.1 translates only ICMPv6 to ICMP).
		return dropEntry(ReasonForeignProtocol, entry)
	case protoTCP, protoUDP:
		p = patch{typeAt: -1, csumAt: -1}
		if h.fragOff != 0 {
			if h.proto == protoTCP && int(h.fragOff)*8 < tcpMinLen {
				return dropEntry(ReasonBadFragment, entry) // overlaps the TCP header (RFC 1858)
			}
			break
		}
		if r := transportHeader(h.proto, l4, h.fragM); r != ReasonNone {
			return dropEntry(r, entry)
		}
		p.csumAt = checksumOffset(h.proto)
		c := binary.BigEndian.Uint16(l4[p.csumAt:])
		if h.proto == protoUDP && c == 0 {
			// Not legal in IPv6 (RFC 8200 §8.1) but meaningful in IPv4:
			// "no checksum". Keep it rather than invent a wrong one.
			p.csumAt = -1
			break
		}
		p.csum = checksum.Adjust(c, checksum.Addrs6(&h.src, &h.dst), checksum.Addrs4(&src4, &dst4))
		if h.proto == protoUDP && p.csum == 0 {
			p.csum = 0xffff // RFC 768: a computed zero is sent as all ones
		}
	default:
		p = patch{typeAt: -1, csumAt: -1}
	}

	if h.fragment() && !fragmentFits(h.fragM, int(h.fragOff), len(l4), ip4MinLen) {
		return dropEntry(ReasonBadFragment, entry)
	}
	tlen := ip4MinLen + len(l4)
	if tlen > t.cfg.IPv4MTU && (!hairpin || tlen > MaxMTU) {
		// RFC 7915 §1.4: the translator is a router and the packet does not
		// fit the IPv4 link: Packet Too Big with the MTU it must fit as IPv6.
		return t.error6(pkt, &h, ReasonTooBig, icmp6PacketTooBig, 0, uint32(t.cfg.IPv4MTU+ip6Len-ip4MinLen), o).withEntry(entry)
	}
	id, flags := t.idFlags(&h, tlen)
	b := out.next(tlen)
	writeIPv4(b, tos, tlen, id, flags, h.hop-1, proto, &src4, &dst4)
	copy(b[ip4MinLen:], l4)
	p.apply(b[ip4MinLen:], 0)
	return t.finish6(pkt, &h, hairpin, out, o, entry)
}

// finish6 completes a translation from IPv6: a hairpinned packet, built in
// the scratch Out, is translated back to IPv6 into o.
func (t *Translator) finish6(pkt []byte, h *hdr6, hairpin bool, out, o *Out, entry int32) Result {
	if !hairpin {
		return Result{Verdict: Forward, Entry: entry}
	}
	res := t.translate4(out.Pkts[0], o, true)
	if res.Verdict == Forward {
		res.Entry = entry
		return res
	}
	// The second pass failed; answer about the packet the sender sent.
	o.reset()
	switch res.Reason {
	case ReasonTTLExpired:
		return t.error6(pkt, h, ReasonTTLExpired, icmp6TimeExceeded, 0, 0, o).withEntry(entry)
	case ReasonTooBig:
		return t.error6(pkt, h, ReasonTooBig, icmp6PacketTooBig, 0, uint32(t.cfg.IPv6MTU), o).withEntry(entry)
	}
	return dropEntry(res.Reason, entry)
}

// idFlags returns the IPv4 Identification and flags for a packet translated
// from h (RFC 7915 §5.1, §5.1.1): a fragment keeps the low 16 bits of its
// ID, its offset and M; an unfragmented packet gets DF exactly when it is
// larger than 1260 bytes (so that IPv4 routers cannot fragment it into
// pieces the IPv6 side cannot take).
func (t *Translator) idFlags(h *hdr6, tlen int) (uint16, uint16) {
	if h.frag {
		flags := h.fragOff & ip4OffMask
		if h.fragM {
			flags |= ip4FlagMF
		}
		return uint16(h.fragID), flags
	}
	var id uint16
	if t.cfg.GenerateIPv4ID && tlen > 88 && tlen <= 1280 {
		id = uint16(t.ids.Add(1))
		if id == 0 {
			id = uint16(t.ids.Add(1))
		}
	}
	if tlen > 1260 {
		return id, ip4FlagDF
	}
	return id, 0
}
