package translator

import "encoding/binary"

// Super-packets (generic segmentation offload).
//
// A tun device with offloads hands over TCP (and UDP) "super-packets" of up
// to 64 KB: one header and the payload of many segments, with the segment
// size beside it and the transport checksum field holding only the
// pseudo-header sum, which the kernel completes for each segment
// (CHECKSUM_PARTIAL). Translating the super-packet whole, once, instead of
// each of its segments is what lets a translator on a tun device approach
// kernel forwarding speed.

// TranslateGSO translates a super-packet whose segments carry gsoSize bytes
// of transport payload each and whose transport checksum field holds the
// partial (pseudo-header) sum. It returns the result, the segment size for
// the translated super-packet (smaller when the IPv6 MTU requires it), and
// ok.
//
// Only the common case is handled whole: an unfragmented TCP or UDP packet
// between a mapped server and a client, forwarded without hairpinning. For
// anything else ok is false and o is untouched: the caller segments the
// super-packet and translates each segment with Translate, so that every
// rule (TTL expiry, ICMP errors, hairpinning) applies as to any packet.
// Drops found on the super-packet (no mapping, spoofed or martian source)
// are returned with ok true: they hold for every segment alike.
func (t *Translator) TranslateGSO(pkt []byte, gsoSize int, o *Out) (res Result, segSize int, ok bool) {
	o.reset()
	if len(pkt) == 0 || gsoSize <= 0 {
		return Result{}, 0, false
	}
	switch pkt[0] >> 4 {
	case 4:
		return t.gso4(pkt, gsoSize, o)
	case 6:
		return t.gso6(pkt, gsoSize, o)
	}
	return Result{}, 0, false
}

// l4HeaderLen returns the transport header length of a TCP or UDP
// super-packet, or 0 when it is not one.
func l4HeaderLen(proto uint8, l4 []byte) int {
	switch proto {
	case protoTCP:
		if len(l4) < 20 {
			return 0
		}
		n := int(l4[12]>>4) * 4
		if n < 20 || n > len(l4) {
			return 0
		}
		return n
	case protoUDP:
		if len(l4) < 8 {
			return 0
		}
		return 8
	}
	return 0
}

// partialAdjust updates a partial checksum: the field holds the folded
// pseudo-header sum, not its complement, so the update is a plain one's
// complement subtraction and addition.
func partialAdjust(field uint16, old, new uint64) uint16 {
	return fold(uint64(field) + uint64(^fold(old)) + uint64(fold(new)))
}

func (t *Translator) gso4(pkt []byte, gsoSize int, o *Out) (Result, int, bool) {
	var h hdr4
	if r := parse4(pkt, false, &h); r != ReasonNone {
		return drop(r), 0, true
	}
	pkt = pkt[:h.tlen]
	l4 := pkt[h.hlen:]
	hl := l4HeaderLen(h.proto, l4)
	if hl == 0 || h.fragment() || h.ttl <= 1 || martian4(h.dst) || martian4(h.src) {
		return Result{}, 0, false
	}
	dst6, entry, r := t.dst4(h.dst)
	if r != ReasonNone {
		return Result{}, 0, false // the per-segment path answers with ICMP errors
	}
	src6, r := t.src4(h.src, outer4)
	if r != ReasonNone {
		return dropEntry(r, entry), 0, true
	}
	if h.hlen > ip4MinLen && options4(pkt[ip4MinLen:h.hlen]) != ReasonNone {
		return Result{}, 0, false
	}
	tc := h.tos
	if t.cfg.ZeroTrafficClass {
		tc = 0
	}
	csumAt := 16
	if h.proto == protoUDP {
		csumAt = 6
	}
	b := o.next(ip6Len + len(l4))
	writeIPv6(b, tc, len(l4), h.proto, h.ttl-1, &src6, &dst6)
	copy(b[ip6Len:], l4)
	c := binary.BigEndian.Uint16(l4[csumAt:])
	binary.BigEndian.PutUint16(b[ip6Len+csumAt:], partialAdjust(c, addrSum4(&h.src, &h.dst), addrSum6(&src6, &dst6)))
	// Each segment grows by 20 bytes; shrink the segments if they would no
	// longer fit the IPv6 MTU (the receiver's TCP copes with smaller ones).
	seg := min(gsoSize, t.cfg.IPv6MTU-ip6Len-hl)
	return Result{Verdict: Forward, Entry: entry}, seg, true
}

func (t *Translator) gso6(pkt []byte, gsoSize int, o *Out) (Result, int, bool) {
	var h hdr6
	if r := parse6(pkt, false, &h); r != ReasonNone {
		return Result{}, 0, false
	}
	pkt = pkt[:h.end]
	l4 := pkt[h.l4:]
	hl := l4HeaderLen(h.proto, l4)
	if hl == 0 || h.frag || h.rtOffset != 0 || h.hop <= 1 || martian6(&h.src) || h.dst[0] == 0xff {
		return Result{}, 0, false
	}
	src4, entry, r := t.src6(&h.src, false)
	if r != ReasonNone {
		if r == ReasonNoMappingSrc {
			return Result{}, 0, false // answered per segment
		}
		return dropEntry(r, entry), 0, true
	}
	dst4, _, r := t.dst6(&h.dst)
	if r != ReasonNone {
		return Result{}, 0, false
	}
	if _, _, hairpin := t.table.Map4(dst4); hairpin && t.cfg.Hairpin == HairpinIntrinsic {
		return Result{}, 0, false
	}
	tlen := ip4MinLen + len(l4)
	if tlen > MaxMTU {
		return Result{}, 0, false
	}
	tos := h.tc
	if t.cfg.ZeroTrafficClass {
		tos = 0
	}
	csumAt := 16
	if h.proto == protoUDP {
		csumAt = 6
	}
	b := o.next(tlen)
	// DF as for any packet larger than 1260 bytes (RFC 7915 §5.1); the
	// kernel gives each segment its own ID when it segments.
	writeIPv4(b, tos, tlen, 0, ip4FlagDF, h.hop-1, h.proto, &src4, &dst4)
	copy(b[ip4MinLen:], l4)
	c := binary.BigEndian.Uint16(l4[csumAt:])
	binary.BigEndian.PutUint16(b[ip4MinLen+csumAt:], partialAdjust(c, addrSum6(&h.src, &h.dst), addrSum4(&src4, &dst4)))
	seg := min(gsoSize, t.cfg.IPv4MTU-ip4MinLen-hl)
	return Result{Verdict: Forward, Entry: entry}, seg, true
}
