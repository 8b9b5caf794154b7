package translator

import (
	"encoding/binary"

	"github.com/map646/map646/translator/internal/checksum"
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	protoHopByHop = 0
	protoICMP     = 1
	protoIGMP     = 2
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoICMPv6   = 58
	protoNoNext   = 59
	protoDestOpts = 60
	protoMobility = 135
	protoHIP      = 139
	protoShim6    = 140
)

// IPv4 header (RFC 791 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	|         Identification        |Flags|      Fragment Offset    |
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	|                       Source Address                          |
//	|                    Destination Address                        |
//	|                    Options                    |    Padding    |
const (
	ip4TOS      = 1
	ip4TotalLen = 2
	ip4ID       = 4
	ip4Flags    = 6
	ip4TTL      = 8
	ip4Proto    = 9
	ip4Checksum = 10
	ip4Src      = 12
	ip4Dst      = 16
	ip4MinLen   = 20

	ip4FlagDF  = 0x4000
	ip4FlagMF  = 0x2000
	ip4OffMask = 0x1fff
)

// IPv6 header (RFC 8200 §3) and Fragment header (§4.5):
//
//	|Version| Traffic Class |           Flow Label                  |
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	|                  Source Address (16 octets)                   |
//	|               Destination Address (16 octets)                 |
//
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	|                         Identification                        |
const (
	ip6PayloadLen = 4
	ip6NextHeader = 6
	ip6HopLimit   = 7
	ip6Src        = 8
	ip6Dst        = 24
	ip6Len        = 40
	fragHdrLen    = 8
)

// hdr4 is a parsed IPv4 header.
type hdr4 struct {
	hlen, tlen int // header length, total length (bounded by the bytes present)
	tos, ttl   uint8
	proto      uint8
	id         uint16
	df, mf     bool
	off        uint16 // fragment offset in 8-byte units
	src, dst   [4]byte
	claimed    int // total length as the header claims it (quoted packets may be cut short)
}

func (h *hdr4) fragment() bool { return h.mf || h.off != 0 }

// parse4 validates and parses the IPv4 header at the start of b. A quoted
// packet (inside an ICMP error) may be cut short, so for it the total length
// may exceed len(b) and the header checksum is not checked.
func parse4(b []byte, quoted bool, h *hdr4) Reason {
	if len(b) < ip4MinLen {
		return ReasonTruncated
	}
	if b[0]>>4 != 4 {
		return ReasonBadVersion
	}
	h.hlen = int(b[0]&0xf) * 4
	h.claimed = int(binary.BigEndian.Uint16(b[ip4TotalLen:]))
	if h.hlen < ip4MinLen || h.claimed < h.hlen {
		return ReasonBadIPv4Header
	}
	if h.hlen > len(b) {
		return ReasonTruncated
	}
	h.tlen = h.claimed
	if h.tlen > len(b) {
		if !quoted {
			return ReasonTruncated
		}
		h.tlen = len(b)
	}
	if !quoted && checksum.Fold(checksum.Sum(b[:h.hlen], 0)) != 0xffff {
		return ReasonBadIPv4Checksum
	}
	h.tos = b[ip4TOS]
	h.ttl = b[ip4TTL]
	h.proto = b[ip4Proto]
	h.id = binary.BigEndian.Uint16(b[ip4ID:])
	fl := binary.BigEndian.Uint16(b[ip4Flags:])
	h.df = fl&ip4FlagDF != 0
	h.mf = fl&ip4FlagMF != 0
	h.off = fl & ip4OffMask
	copy(h.src[:], b[ip4Src:ip4Src+4])
	copy(h.dst[:], b[ip4Dst:ip4Dst+4])
	return ReasonNone
}

// hdr6 is a parsed IPv6 header with its extension headers walked.
type hdr6 struct {
	end      int // end of the packet (bounded by the bytes present)
	l4       int // offset of the upper-layer header (after the skipped extension headers)
	tc       uint8
	hop      uint8
	proto    uint8 // the first next header that is not skipped
	frag     bool
	fragOff  uint16 // in 8-byte units
	fragM    bool
	fragID   uint32
	claimed  int // 40 + payload length as the header claims it
	rtOffset int // offset of Segments Left of a routing header with segments left, or 0
	hbhAt    int // offset of the Next Header field that names a misplaced Hop-by-Hop header, or 0
	src, dst [16]byte
}

func (h *hdr6) fragment() bool { return h.frag && (h.fragM || h.fragOff != 0) }

// maxExtHeaders bounds the extension-header walk: a chain longer than this
// is an attack or a bug (RFC 8200 §4.1 recommends at most one of each kind).
const maxExtHeaders = 8

// extHeader reports next-header values that are IPv6 extension headers
// (RFC 7045 §2, IANA "IPv6 Extension Header Types"), ESP excepted: RFC 7915
// §5.1.1 translates a fragment carrying ESP but no other extension header.
func extHeader(nh uint8) bool {
	switch nh {
	case protoHopByHop, protoRouting, protoFragment, protoDestOpts, protoAH,
		protoMobility, protoHIP, protoShim6, 253, 254:
		return true
	}
	return false
}

// parse6 validates and parses the IPv6 header at the start of b and walks
// its extension headers, skipping Hop-by-Hop, Routing and Destination
// Options and reading the Fragment header (RFC 7915 §5.1). quoted allows a
// packet cut short, as inside an ICMPv6 error.
func parse6(b []byte, quoted bool, h *hdr6) Reason {
	if len(b) < ip6Len {
		return ReasonTruncated
	}
	if b[0]>>4 != 6 {
		return ReasonBadVersion
	}
	plen := int(binary.BigEndian.Uint16(b[ip6PayloadLen:]))
	nh := b[ip6NextHeader]
	if plen == 0 && nh == protoHopByHop && !quoted {
		return ReasonJumbogram
	}
	h.claimed = ip6Len + plen
	h.end = h.claimed
	if h.end > len(b) {
		if !quoted {
			return ReasonTruncated
		}
		h.end = len(b)
	}
	h.tc = b[0]<<4 | b[1]>>4
	h.hop = b[ip6HopLimit]
	copy(h.src[:], b[ip6Src:ip6Src+16])
	copy(h.dst[:], b[ip6Dst:ip6Dst+16])
	h.frag, h.fragM, h.fragOff, h.fragID, h.rtOffset, h.hbhAt = false, false, 0, 0, 0, 0

	off := ip6Len
	nhAt := ip6NextHeader // where nh was read, for a Parameter Problem pointer
	for i := 0; ; i++ {
		if i > maxExtHeaders {
			return ReasonExtHeaderChain
		}
		switch nh {
		case protoHopByHop, protoRouting, protoDestOpts:
			if nh == protoHopByHop && i != 0 && h.hbhAt == 0 {
				// RFC 8200 §4.1: Hop-by-Hop only first. The walk goes on
				// to the upper layer, so that the caller can tell an
				// ICMPv6 error, which is never answered.
				h.hbhAt = nhAt
			}
			if off+8 > h.end {
				return ReasonTruncated
			}
			n := (int(b[off+1]) + 1) * 8
			if off+n > h.end {
				return ReasonTruncated
			}
			if nh == protoRouting && b[off+3] != 0 && h.rtOffset == 0 {
				h.rtOffset = off + 3
			}
			nh, nhAt = b[off], off
			off += n
		case protoFragment:
			if off+fragHdrLen > h.end {
				return ReasonTruncated
			}
			fo := binary.BigEndian.Uint16(b[off+2:])
			h.frag = true
			h.fragOff = fo >> 3
			h.fragM = fo&1 != 0
			h.fragID = binary.BigEndian.Uint32(b[off+4:])
			nh, nhAt = b[off], off
			off += fragHdrLen
			h.proto, h.l4 = nh, off
			if nh == protoHopByHop && h.hbhAt == 0 {
				h.hbhAt = nhAt // the walk ends at the Fragment header (RFC 7915 §5.1.1)
			}
			switch {
			case h.hbhAt != 0:
				return ReasonBadOptions
			case extHeader(nh):
				return ReasonFragmentedExtHdr
			}
			return ReasonNone
		default:
			h.proto, h.l4 = nh, off
			if h.hbhAt != 0 {
				return ReasonBadOptions
			}
			return ReasonNone
		}
	}
}

// upperLayer6 walks on from the header nh at offset off through whatever
// extension headers follow (those parse6 skips, and the Fragment, AH and
// other headers it stops at) and returns the first header that is not one,
// and its offset. ok is false when the chain is cut short or longer than
// maxExtHeaders: what it carries cannot be told.
func upperLayer6(b []byte, off int, nh uint8) (uint8, int, bool) {
	for range maxExtHeaders + 1 {
		var n int
		switch {
		case nh == protoFragment:
			n = fragHdrLen
		case nh == protoAH: // RFC 4302 §2.2: length in 4-octet units, minus 2
			if off+2 > len(b) {
				return nh, off, false
			}
			n = (int(b[off+1]) + 2) * 4
		case extHeader(nh): // RFC 6564's uniform format
			if off+2 > len(b) {
				return nh, off, false
			}
			n = (int(b[off+1]) + 1) * 8
		default:
			return nh, off, true
		}
		if off+n > len(b) {
			return nh, off, false
		}
		nh = b[off]
		off += n
	}
	return nh, off, false
}

// writeIPv4 writes a 20-byte IPv4 header with its checksum.
func writeIPv4(b []byte, tos uint8, tlen int, id uint16, flags uint16, ttl, proto uint8, src, dst *[4]byte) {
	b[0] = 0x45
	b[ip4TOS] = tos
	binary.BigEndian.PutUint16(b[ip4TotalLen:], uint16(tlen))
	binary.BigEndian.PutUint16(b[ip4ID:], id)
	binary.BigEndian.PutUint16(b[ip4Flags:], flags)
	b[ip4TTL] = ttl
	b[ip4Proto] = proto
	b[ip4Checksum], b[ip4Checksum+1] = 0, 0
	copy(b[ip4Src:], src[:])
	copy(b[ip4Dst:], dst[:])
	binary.BigEndian.PutUint16(b[ip4Checksum:], checksum.Finish(checksum.Sum(b[:ip4MinLen], 0)))
}

// writeIPv6 writes a 40-byte IPv6 header with a zero flow label (RFC 7915
// §4.1).
func writeIPv6(b []byte, tc uint8, plen int, nh, hop uint8, src, dst *[16]byte) {
	b[0] = 0x60 | tc>>4
	b[1] = tc << 4
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[ip6PayloadLen:], uint16(plen))
	b[ip6NextHeader] = nh
	b[ip6HopLimit] = hop
	copy(b[ip6Src:], src[:])
	copy(b[ip6Dst:], dst[:])
}

// writeFrag6 writes a Fragment header.
func writeFrag6(b []byte, nh uint8, off uint16, m bool, id uint32) {
	b[0] = nh
	b[1] = 0
	fo := off << 3
	if m {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[2:], fo)
	binary.BigEndian.PutUint32(b[4:], id)
}
