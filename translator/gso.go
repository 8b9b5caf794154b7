package translator

import (
	"encoding/binary"

	"github.com/map646/map646/translator/internal/checksum"
)

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
// the translated super-packet (always gsoSize: the segments keep their
// boundaries), and ok.
//
// The contract is exactness: the segments the kernel cuts from the result
// are the packets Translate would make of the segments cut from the input,
// byte for byte but for the IPv4 Identification (see gso6). So only the
// common case is handled whole: an unfragmented TCP or UDP packet between a
// mapped server and a client, forwarded without hairpinning, whose every
// segment Translate would turn into exactly one packet with the same
// header. For anything else ok is false and o is untouched: the caller
// segments the super-packet and translates each segment with Translate, so
// that every rule (TTL expiry, ICMP errors, fragmentation, Packet Too Big,
// DF by size, hairpinning) applies as to any packet. Drops found on the
// super-packet (a spoofed source, or one whose other form is martian or
// non-global) are returned with ok true: they hold for every segment alike.
func (t *Translator) TranslateGSO(pkt []byte, gsoSize int, o *Out) (res Result, segSize int, ok bool) {
	o.reset()
	if len(pkt) == 0 || gsoSize <= 0 {
		return Result{}, 0, false
	}
	switch pkt[0] >> 4 {
	case 4:
		res, segSize, _, ok = t.gso4(pkt, nil, gsoSize, o)
	case 6:
		res, segSize, _, ok = t.gso6(pkt, nil, gsoSize, o)
	}
	return res, segSize, ok
}

// GSOHeadroom is the headroom TranslateGSOInPlace needs in front of a
// super-packet: an IPv6 header replacing the shortest IPv4 one.
const GSOHeadroom = ip6Len - ip4MinLen

// TranslateGSOInPlace is TranslateGSO without the copy: the super-packet is
// buf[off:off+n], and the translated one is written over it, its header
// moved in front of or behind the untouched payload: buf[newOff:newOff+newLen].
// off must leave GSOHeadroom bytes in front; with less, ok is false.
func (t *Translator) TranslateGSOInPlace(buf []byte, off, n, gsoSize int) (res Result, newOff, newLen, segSize int, ok bool) {
	if off < GSOHeadroom || n == 0 || off+n > len(buf) || gsoSize <= 0 {
		return Result{}, 0, 0, 0, false
	}
	pkt := buf[off : off+n]
	var out []byte
	switch pkt[0] >> 4 {
	case 4:
		res, segSize, out, ok = t.gso4(pkt, buf[:off], gsoSize, nil)
	case 6:
		res, segSize, out, ok = t.gso6(pkt, buf[:off], gsoSize, nil)
	default:
		return Result{}, 0, 0, 0, false
	}
	if !ok || res.Verdict != Forward {
		return res, 0, 0, 0, ok
	}
	// out ends where pkt ends; find where it starts in buf.
	return res, off + n - len(out), len(out), segSize, true
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

// checksumOffset is where the checksum field lies in a TCP or UDP header.
func checksumOffset(proto uint8) int {
	if proto == protoUDP {
		return 6
	}
	return 16
}

// partialAdjust updates a partial checksum: the field holds the folded
// pseudo-header sum, not its complement, so the update is a plain one's
// complement subtraction and addition.
func partialAdjust(field uint16, old, new uint64) uint16 {
	return checksum.Fold(uint64(field) + uint64(^checksum.Fold(old)) + uint64(checksum.Fold(new)))
}

// segmentSpan returns the transport payload of the largest and of the
// smallest segment of a super-packet whose payload of n bytes is cut every
// gsoSize bytes: the last segment takes the rest. The rules that depend on
// a segment's size hold for every segment when they hold for these two.
func segmentSpan(n, gsoSize int) (largest, smallest int) {
	if n <= gsoSize {
		return n, n
	}
	if last := n % gsoSize; last != 0 {
		return gsoSize, last
	}
	return gsoSize, gsoSize
}

// whole6 reports whether Translate turns an unfragmented IPv4 packet that
// becomes an IPv6 packet of size bytes into that one packet, with no
// Fragment header (emit6, RFC 7915 §4 and §4.1): it fits the lowest IPv6
// MTU, or it has DF and fits the IPv6 MTU. Otherwise it is fragmented (no
// DF) or answered with Fragmentation Needed (DF).
func (t *Translator) whole6(size int, df bool) bool {
	return size <= t.cfg.LowestIPv6MTU || (df && size <= t.cfg.IPv6MTU)
}

// atomic4 reports whether Translate gives an unfragmented IPv4 packet of
// tlen bytes translated from IPv6 DF and the Identification zero (idFlags,
// RFC 7915 §5.1): above 1260 bytes, and above 1280 when the translator
// generates Identifications for the smaller ones.
func (t *Translator) atomic4(tlen int) bool {
	return tlen > 1260 && !(t.cfg.GenerateIPv4ID && tlen <= 1280)
}

// gso4 and gso6 translate a super-packet into o, or in place when o is nil:
// then the new header is written right in front of the payload, over the
// old header and, when it is longer, into head (the headroom before pkt).
// They return the translated packet.
//
// They decline (ok false) everything that Translate would not treat the
// same for every segment, and every malformed header: the kernel's
// segmentation (and tun.Segment) rewrites lengths and checksums per
// segment, so only the per-segment path sees what the segments really are.
func (t *Translator) gso4(pkt, head []byte, gsoSize int, o *Out) (Result, int, []byte, bool) {
	var h hdr4
	if parse4(pkt, false, &h) != ReasonNone {
		return Result{}, 0, nil, false
	}
	if o == nil && h.tlen != len(pkt) {
		return Result{}, 0, nil, false // padding after the packet: not worth the bother
	}
	pkt = pkt[:h.tlen]
	l4 := pkt[h.hlen:]
	hl := l4HeaderLen(h.proto, l4)
	if hl == 0 || h.fragment() || h.ttl <= 1 || martian4(h.dst) || martian4(h.src) {
		return Result{}, 0, nil, false
	}
	dst6, entry, r := t.dst4(h.dst)
	if r != ReasonNone || t.toNode6(&dst6) || t.toNode4(h.dst) {
		// The per-segment path answers with ICMP errors, and counts a
		// refused local destination per segment, as without offloads.
		return Result{}, 0, nil, false
	}
	src6, r := t.src4(h.src, outer4)
	if r != ReasonNone {
		return dropEntry(r, entry), 0, nil, true
	}
	if h.hlen > ip4MinLen && options4(pkt[ip4MinLen:h.hlen]) != ReasonNone {
		return Result{}, 0, nil, false
	}
	// Every segment must become one IPv6 packet without a Fragment header;
	// the largest decides. A segment too big for that is fragmented (no DF)
	// or refused with Fragmentation Needed (DF) by Translate: so is it here,
	// through the fallback, rather than by shrinking the segments, which
	// would hide the path MTU from the sender and cut UDP datagrams apart.
	largest, _ := segmentSpan(len(l4)-hl, gsoSize)
	if !t.whole6(ip6Len+hl+largest, h.df) {
		return Result{}, 0, nil, false
	}
	tc := t.trafficClass(h.tos)
	csumAt := checksumOffset(h.proto)
	c := binary.BigEndian.Uint16(l4[csumAt:])
	c = partialAdjust(c, checksum.Addrs4(&h.src, &h.dst), checksum.Addrs6(&src6, &dst6))
	var b []byte
	if o != nil {
		b = o.next(ip6Len + len(l4))
		copy(b[ip6Len:], l4)
	} else {
		// The payload stays; the header goes in front of it, reaching
		// back into the headroom.
		b = inPlace(head, pkt, h.hlen, ip6Len)
	}
	writeIPv6(b, tc, len(l4), h.proto, h.ttl-1, &src6, &dst6)
	binary.BigEndian.PutUint16(b[ip6Len+csumAt:], c)
	return Result{Verdict: Forward, Entry: entry}, gsoSize, b, true
}

// inPlace returns the bytes of a translated packet that keeps pkt's payload
// where it is: pkt's header of oldHdr bytes is replaced by a header of
// newHdr bytes, starting newHdr-oldHdr bytes earlier (in head, the bytes
// before pkt in the same buffer) or later. The caller has read everything it
// needs from the old header.
func inPlace(head, pkt []byte, oldHdr, newHdr int) []byte {
	if newHdr <= oldHdr {
		return pkt[oldHdr-newHdr:]
	}
	grow := newHdr - oldHdr
	full := head[:len(head)+len(pkt)] // head and pkt share one array
	return full[len(head)-grow:]
}

func (t *Translator) gso6(pkt, head []byte, gsoSize int, o *Out) (Result, int, []byte, bool) {
	var h hdr6
	if parse6(pkt, false, &h) != ReasonNone {
		return Result{}, 0, nil, false
	}
	if o == nil && h.end != len(pkt) {
		return Result{}, 0, nil, false
	}
	pkt = pkt[:h.end]
	l4 := pkt[h.l4:]
	hl := l4HeaderLen(h.proto, l4)
	if hl == 0 || h.frag || h.rtOffset != 0 || h.hop <= 1 || martian6(&h.src) || h.dst[0] == 0xff {
		return Result{}, 0, nil, false
	}
	src4, entry, r := t.src6(&h.src, false)
	if r != ReasonNone {
		if r == ReasonNoMappingSrc {
			return Result{}, 0, nil, false // answered per segment
		}
		return dropEntry(r, entry), 0, nil, true
	}
	dst4, _, r := t.dst6(&h.dst)
	if r != ReasonNone || t.toNode4(dst4) {
		return Result{}, 0, nil, false
	}
	if _, _, hairpin := t.table.Map4(dst4); hairpin && t.cfg.Hairpin == HairpinIntrinsic {
		return Result{}, 0, nil, false
	}
	tlen := ip4MinLen + len(l4)
	if tlen > MaxMTU {
		return Result{}, 0, nil, false
	}
	// Every segment must fit the IPv4 MTU (else Translate answers Packet
	// Too Big) and get DF and the Identification zero from Translate (else
	// it goes without DF, or with a generated Identification): the largest
	// and the smallest segment decide. The header written here is copied
	// into every segment; a super-packet that ends in a short segment of
	// at most 1260 bytes is translated per segment.
	largest, smallest := segmentSpan(len(l4)-hl, gsoSize)
	if ip4MinLen+hl+largest > t.cfg.IPv4MTU || !t.atomic4(ip4MinLen+hl+smallest) {
		return Result{}, 0, nil, false
	}
	tos := t.trafficClass(h.tc)
	csumAt := checksumOffset(h.proto)
	c := binary.BigEndian.Uint16(l4[csumAt:])
	c = partialAdjust(c, checksum.Addrs6(&h.src, &h.dst), checksum.Addrs4(&src4, &dst4))
	var b []byte
	if o != nil {
		b = o.next(tlen)
		copy(b[ip4MinLen:], l4)
	} else {
		b = inPlace(head, pkt, h.l4, ip4MinLen)
	}
	// DF and Identification zero, as Translate gives each segment. The
	// kernel numbers the segments it cuts from an IPv4 super-packet from
	// its Identification up (0, 1, 2, ...), where Translate leaves every
	// one at zero: the only difference between the two paths, and one no
	// receiver can see, for these segments are atomic datagrams (DF, not
	// fragments), whose Identification has no meaning (RFC 6864 §4.1).
	writeIPv4(b, tos, tlen, 0, ip4FlagDF, h.hop-1, h.proto, &src4, &dst4)
	binary.BigEndian.PutUint16(b[ip4MinLen+csumAt:], c)
	return Result{Verdict: Forward, Entry: entry}, gsoSize, b, true
}
