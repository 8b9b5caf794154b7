package translator

import (
	"encoding/binary"

	"github.com/map646/map646/translator/internal/checksum"
)

// Translation from IPv4 to IPv6 (RFC 7915 §4).

// mode4 says in what role an IPv4 source address is mapped.
type mode4 uint8

const (
	outer4   mode4 = iota // the source of a packet from the IPv4 side
	inner4                // the destination of a packet quoted in an ICMP error (it plays the source's role)
	hairpin4              // the source of a hairpinned packet (RFC 7757 §4.2.2)
)

// src4 maps an IPv4 source address: through the table first (RFC 7757 §3),
// then through the pseudo prefix. In the datacenter policy every IPv4 client
// is represented by the pseudo prefix, and an outer source that is one of our
// own mapped addresses is a spoof. A hairpinned source always takes the
// pseudo prefix, so that the receiving server answers through the translator.
func (t *Translator) src4(a [4]byte, m mode4) ([16]byte, Reason) {
	if m != hairpin4 && (m == outer4 || t.cfg.Policy == PolicySIIT) {
		if v6, _, ok := t.table.Map4(a); ok {
			if t.cfg.Policy == PolicyDatacenter {
				return v6, ReasonSpoofedMapped
			}
			return v6, ReasonNone
		}
	}
	if t.wkp && nonGlobal4(a) {
		return [16]byte{}, ReasonNonGlobalWKP
	}
	return t.pool.embed(a), ReasonNone
}

// dst4 maps an IPv4 destination address (or the source of a quoted packet,
// which plays the destination's role): the table first, then the pseudo
// prefix in the SIIT policy only.
func (t *Translator) dst4(a [4]byte) ([16]byte, int32, Reason) {
	if v6, e, ok := t.table.Map4(a); ok {
		return v6, e, ReasonNone
	}
	if t.cfg.Policy != PolicySIIT {
		return [16]byte{}, -1, ReasonNoMappingDst
	}
	if t.wkp && nonGlobal4(a) {
		return [16]byte{}, -1, ReasonNonGlobalWKP
	}
	return t.pool.embed(a), -1, ReasonNone
}

// translate4 translates the IPv4 packet pkt into o. hairpin marks the second
// pass of a packet that came from the IPv6 side: its errors are reported by
// the caller, about the original IPv6 packet.
func (t *Translator) translate4(pkt []byte, o *Out, hairpin bool) Result {
	var h hdr4
	if r := parse4(pkt, false, &h); r != ReasonNone {
		return drop(r)
	}
	pkt = pkt[:h.tlen] // drop link-layer padding
	l4 := pkt[h.hlen:]

	icmpErr := h.proto == protoICMP && !h.fragment() && len(l4) > 0 && icmp4IsError(l4[0])

	if martian4(h.dst) {
		return drop(ReasonMartianDestination)
	}
	dst6, entry, r := t.dst4(h.dst)
	if r != ReasonNone {
		return t.error4(pkt, &h, r, icmp4DestUnreach, icmp4CodeAdminProhibited, 0, o)
	}
	if t.toNode6(&dst6) || t.toNode4(h.dst) {
		// The second test: under the siit policy an IPv4 client's packet
		// to the translator's or the node's IPv4 address would go out to
		// the IPv6 side through the pseudo prefix, to be refused when it
		// comes back; refused at once, so each direction refuses what the
		// other does.
		return dropEntry(ReasonLocalDestination, entry)
	}
	var src6 [16]byte
	m := outer4
	if hairpin {
		m = hairpin4
	}
	if martian4(h.src) && !icmpErr {
		return dropEntry(ReasonMartianSource, entry)
	}
	// RFC 7915 §4.1: the outer source of an ICMPv4 error is translated even
	// when it is not a legal one (0.0.0.0, 127/8 ...), "for the purpose of
	// trouble shooting": through the pseudo prefix like any other. Behind
	// the well-known prefix RFC 6052 §3.1 forbids embedding a non-global
	// address; there it becomes our own address (as in Jool, its #176).
	if src6, r = t.src4(h.src, m); r != ReasonNone {
		if !icmpErr || r != ReasonNonGlobalWKP {
			return dropEntry(r, entry)
		}
		src6 = t.addr6
	}

	if h.ttl <= 1 {
		return t.error4(pkt, &h, ReasonTTLExpired, icmp4TimeExceeded, 0, 0, o).withEntry(entry)
	}
	if h.hlen > ip4MinLen {
		if r := options4(pkt[ip4MinLen:h.hlen]); r != ReasonNone {
			if r == ReasonSourceRoute {
				return t.error4(pkt, &h, r, icmp4DestUnreach, icmp4CodeSourceRouteFailed, 0, o).withEntry(entry)
			}
			return dropEntry(r, entry)
		}
	}

	tc := t.trafficClass(h.tos)
	if foreign4(h.proto) {
		return dropEntry(ReasonForeignProtocol, entry)
	}
	nh := h.proto
	var p patch
	switch h.proto {
	case protoICMP:
		if h.fragment() {
			return dropEntry(ReasonFragmentedICMP, entry)
		}
		if len(l4) < icmpHdrLen {
			return dropEntry(ReasonTruncated, entry)
		}
		if icmpErr {
			res := t.icmpError4to6(pkt, &h, l4, &src6, &dst6, tc, hairpin, o)
			return res.withEntry(entry)
		}
		typ, ok := icmp4InfoTo6(l4[0])
		if !ok {
			return dropEntry(ReasonICMPType, entry)
		}
		nh = protoICMPv6
		// The type changes and the ICMPv6 checksum covers a pseudo-header
		// (RFC 7915 §4.2): update incrementally, so that a wrong checksum
		// stays wrong rather than being repaired.
		c := binary.BigEndian.Uint16(l4[2:])
		p = patch{typeAt: 0, typ: typ, csumAt: 2,
			csum: checksum.Adjust(c, uint64(l4[0])<<8, uint64(typ)<<8+checksum.Pseudo6(&src6, &dst6, protoICMPv6, len(l4)))}
	case protoIGMP:
		return dropEntry(ReasonIGMP, entry)
	case protoTCP, protoUDP:
		p.typeAt = -1
		if h.off != 0 {
			if h.proto == protoTCP && int(h.off)*8 < tcpMinLen {
				// It would overwrite part of the TCP header of the first
				// fragment, flags included: RFC 1858 §3.2's overlap attack.
				return dropEntry(ReasonBadFragment, entry)
			}
			p.csumAt = -1 // the checksum lives in the first fragment
			break
		}
		var r Reason
		if p, r = t.l4Checksum4to6(&h, l4, &src6, &dst6); r != ReasonNone {
			if r == ReasonTruncated || r == ReasonBadTransport || r == ReasonBadFragment {
				return dropEntry(r, entry)
			}
			// A zero UDP checksum we may not compute: RFC 7915 §4.4 asks for
			// the default error, administratively prohibited.
			return t.error4(pkt, &h, r, icmp4DestUnreach, icmp4CodeAdminProhibited, 0, o).withEntry(entry)
		}
	default:
		// Other transports are forwarded with their payload untouched
		// (RFC 7915 §4.5).
		p = patch{typeAt: -1, csumAt: -1}
	}

	if h.fragment() && !fragmentFits(h.mf, int(h.off), len(l4), h.hlen) {
		return dropEntry(ReasonBadFragment, entry)
	}
	if r := t.emit6(pkt, &h, l4, nh, tc, &src6, &dst6, p, o); r != ReasonNone {
		if hairpin {
			return dropEntry(r, entry)
		}
		// Only ReasonTooBig reaches here: DF set and larger than the IPv6
		// MTU. RFC 7915 §4.1: Fragmentation Needed with the MTU the packet
		// must fit once translated.
		return t.error4(pkt, &h, r, icmp4DestUnreach, icmp4CodeFragNeeded, uint32(t.cfg.IPv6MTU-20), o).withEntry(entry)
	}
	return Result{Verdict: Forward, Entry: entry}
}

// l4Checksum4to6 computes the TCP or UDP checksum for the translated
// packet. Only the pseudo-header changes, so the update is incremental and a
// wrong incoming checksum stays wrong (RFC 7915 §4.5; the translator does not
// validate end-to-end checksums).
func (t *Translator) l4Checksum4to6(h *hdr4, l4 []byte, src6, dst6 *[16]byte) (patch, Reason) {
	p := patch{typeAt: -1}
	if r := transportHeader(h.proto, l4, h.mf); r != ReasonNone {
		return p, r
	}
	p.csumAt = checksumOffset(h.proto)
	c := binary.BigEndian.Uint16(l4[p.csumAt:])
	if h.proto == protoUDP && c == 0 {
		// RFC 7915 §4.5: a zero UDP checksum cannot be translated statelessly
		// when the datagram is fragmented; unfragmented, it is computed
		// unless the operator chose to drop.
		if h.fragment() {
			return p, ReasonUDPZeroChecksumFrag
		}
		if t.cfg.DropUDPZeroChecksum {
			return p, ReasonUDPZeroChecksum
		}
		p.csum = checksum.Finish(checksum.Sum(l4, checksum.Pseudo6(src6, dst6, protoUDP, len(l4))))
	} else {
		p.csum = checksum.Adjust(c, checksum.Addrs4(&h.src, &h.dst), checksum.Addrs6(src6, dst6))
	}
	if h.proto == protoUDP && p.csum == 0 {
		p.csum = 0xffff // zero means "no checksum", forbidden in IPv6 UDP
	}
	return p, ReasonNone
}

// tcpMinLen is the length of a TCP header without options.
const tcpMinLen = 20

// transportHeader checks the TCP or UDP header at the start of l4, the
// upper-layer bytes of an unfragmented packet or of a first fragment (more
// set). TCP: the data offset must cover at least the fixed header and stay
// inside the bytes present. UDP: the length must be at least the header
// and, in an unfragmented datagram, exactly the bytes present: a length that
// says more or less than the packet holds is a lie that the receiver would
// resolve its own way (in IPv6 a length of 0 even reads as a jumbogram's).
// A first fragment whose bytes end inside the transport header is a tiny
// fragment (RFC 1858 for IPv4, forbidden in IPv6 by RFC 7112): its rest
// would arrive in a later fragment that no filter inspects.
func transportHeader(proto uint8, l4 []byte, first bool) Reason {
	hl := 8
	if proto == protoTCP {
		hl = tcpMinLen
		if len(l4) >= 13 {
			hl = max(hl, int(l4[12]>>4)*4)
		}
	}
	if len(l4) < hl {
		switch {
		case first:
			return ReasonBadFragment
		case proto == protoTCP && len(l4) >= 18:
			return ReasonBadTransport // the data offset reaches past the segment
		}
		return ReasonTruncated
	}
	if proto == protoTCP {
		if l4[12]>>4 < 5 {
			return ReasonBadTransport // a data offset below the fixed header
		}
		return ReasonNone
	}
	ul := int(binary.BigEndian.Uint16(l4[4:]))
	if ul < 8 || (!first && ul != len(l4)) {
		return ReasonBadTransport
	}
	return ReasonNone
}

// fragmentFits checks what a stateless translator can see of a fragment's
// place in its datagram (RFC 791, RFC 8200 §4.5): a fragment with more to
// come carries a positive multiple of 8 bytes, and no fragment reaches past
// the largest datagram, hdr bytes of IPv4 header plus 65535 - hdr of data.
// Overlaps between fragments it cannot see: it keeps every offset as it came,
// so the receiver's reassembly discards them (RFC 5722).
func fragmentFits(more bool, off, n, hdr int) bool {
	if more && (n == 0 || n%8 != 0) {
		return false
	}
	return hdr+off*8+n <= MaxMTU
}

// patch describes the bytes of the upper-layer header that differ between
// the input and the output: the ICMP type and the checksum. Offsets are from
// the start of the upper-layer header; -1 means nothing to patch.
type patch struct {
	typeAt int
	typ    uint8
	csumAt int
	csum   uint16
}

func (p *patch) apply(b []byte, at int) {
	// b holds upper-layer bytes starting at upper-layer offset at.
	if p.typeAt >= at && p.typeAt < at+len(b) {
		b[p.typeAt-at] = p.typ
	}
	if p.csumAt >= at && p.csumAt+2 <= at+len(b) {
		binary.BigEndian.PutUint16(b[p.csumAt-at:], p.csum)
	}
}

// emit6 writes the IPv6 form of an IPv4 packet whose upper-layer bytes are
// l4: as one packet when it fits, or as fragments (RFC 7915 §4, §4.1).
func (t *Translator) emit6(pkt []byte, h *hdr4, l4 []byte, nh, tc uint8, src6, dst6 *[16]byte, p patch, o *Out) Reason {
	hop := h.ttl - 1
	isFrag := h.fragment()
	fh := 0
	if isFrag {
		fh = fragHdrLen
	}
	size := ip6Len + fh + len(l4)
	if size <= t.cfg.LowestIPv6MTU || (h.df && size <= t.cfg.IPv6MTU) {
		b := o.next(size)
		if isFrag {
			writeIPv6(b, tc, fh+len(l4), protoFragment, hop, src6, dst6)
			writeFrag6(b[ip6Len:], nh, h.off, h.mf, uint32(h.id))
		} else {
			writeIPv6(b, tc, len(l4), nh, hop, src6, dst6)
		}
		copy(b[ip6Len+fh:], l4)
		p.apply(b[ip6Len+fh:], 0)
		return ReasonNone
	}
	if h.df {
		return ReasonTooBig
	}
	// Fragment to the lowest IPv6 MTU, each fragment's data a multiple of
	// eight bytes, the IPv4 Identification as the fragment ID (RFC 7915
	// §4.1). An IPv4 fragment becomes several IPv6 fragments of the same
	// datagram: offsets continue from its own, and only the last keeps its M.
	chunk := (t.cfg.LowestIPv6MTU - ip6Len - fragHdrLen) &^ 7
	base := int(h.off) * 8
	for at := 0; at < len(l4); at += chunk {
		n := min(chunk, len(l4)-at)
		more := at+n < len(l4) || h.mf
		b := o.next(ip6Len + fragHdrLen + n)
		writeIPv6(b, tc, fragHdrLen+n, protoFragment, hop, src6, dst6)
		writeFrag6(b[ip6Len:], nh, uint16((base+at)/8), more, uint32(h.id))
		copy(b[ip6Len+fragHdrLen:], l4[at:at+n])
		p.apply(b[ip6Len+fragHdrLen:], at)
	}
	return ReasonNone
}

// foreign4 reports IPv4 protocol numbers that cannot be copied into IPv6:
// there they would be parsed as extension headers, the chain continuing into
// bytes that were never one, or as ICMPv6 whose checksum lacks the
// pseudo-header. AH could not survive translation anyway: it authenticates
// the addresses we rewrite.
func foreign4(proto uint8) bool {
	switch proto {
	case protoHopByHop, protoRouting, protoFragment, protoDestOpts, protoAH, protoICMPv6:
		return true
	}
	return false
}

// IPv4 option types (RFC 791, IANA "IP Option Numbers").
const (
	opt4End  = 0
	opt4NOP  = 1
	opt4LSRR = 131
	opt4SSRR = 137
)

// options4 looks for an unexpired source route: RFC 7915 §4.1 forbids
// translating it. Every other option is ignored.
func options4(opts []byte) Reason {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case opt4End:
			return ReasonNone
		case opt4NOP:
			i++
			continue
		}
		if i+2 > len(opts) {
			return ReasonBadOptions
		}
		n := int(opts[i+1])
		if n < 2 || i+n > len(opts) {
			return ReasonBadOptions
		}
		if opts[i] == opt4LSRR || opts[i] == opt4SSRR {
			// The pointer indexes the next address to visit (from 1);
			// the route is unexpired while it points inside the option.
			if n < 3 {
				return ReasonBadOptions
			}
			if int(opts[i+2]) <= n {
				return ReasonSourceRoute
			}
		}
		i += n
	}
	return ReasonNone
}

func drop(r Reason) Result { return Result{Verdict: Drop, Reason: r, Entry: -1} }

func dropEntry(r Reason, e int32) Result { return Result{Verdict: Drop, Reason: r, Entry: e} }

func (r Result) withEntry(e int32) Result {
	if r.Entry < 0 {
		r.Entry = e
	}
	return r
}
