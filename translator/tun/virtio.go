package tun

import (
	"encoding/binary"
	"errors"

	"github.com/map646/map646/translator/internal/checksum"
)

// The virtio-net header (struct virtio_net_hdr, virtio 1.x §5.1.6;
// include/uapi/linux/virtio_net.h). A tun device opened with IFF_VNET_HDR
// puts one in front of every packet it hands over and expects one in front
// of every packet written: it carries the segmentation and checksum offload
// state that lets the kernel pass 64 KB super-packets instead of segments.
//
//	 0        1        2        4        6          8           10
//	+--------+--------+--------+--------+----------+-----------+
//	| flags  |gso_type| hdr_len|gso_size|csum_start|csum_offset|
//	+--------+--------+--------+--------+----------+-----------+
//
// The 16-bit fields are little-endian: the device is switched to that order
// with TUNSETVNETLE, which is a no-op on little-endian hosts.
const VirtioNetHdrLen = 10

// Flags.
const (
	// VirtioFlagNeedsCsum: the transport checksum field at
	// csum_start+csum_offset holds the pseudo-header sum; the checksum over
	// csum_start..end remains to be computed.
	VirtioFlagNeedsCsum = 1
	// VirtioFlagDataValid: the kernel has verified the checksum (read only).
	VirtioFlagDataValid = 2
)

// GSO types. VirtioGSOUDP is UDP fragmentation offload (UFO), which this
// package never enables; VirtioGSOUDPL4 is UDP segmentation (USO), each
// segment a datagram of its own. VirtioGSOECN is or-ed into a TCP type when
// the super-packet has CWR set (only the first segment keeps it).
const (
	VirtioGSONone  = 0
	VirtioGSOTCPv4 = 1
	VirtioGSOUDP   = 3
	VirtioGSOTCPv6 = 4
	VirtioGSOUDPL4 = 5
	VirtioGSOECN   = 0x80
)

// VirtioNetHdr is a decoded virtio-net header.
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // bytes of IP and transport header (from the kernel: only a hint)
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // offset of the transport header
	CsumOffset uint16 // offset of the checksum field within it
}

// Decode reads h from the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Decode(b []byte) error {
	if len(b) < VirtioNetHdrLen {
		return errShortHdr
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:])
	return nil
}

// Encode writes h into the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Encode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// Errors of the packet path are fixed values: building one must not
// allocate, and they are counted, not shown per packet.
var (
	errShortHdr      = errors.New("tun: virtio header shorter than 10 bytes")
	errBadCsum       = errors.New("tun: virtio checksum offsets outside the packet")
	errGSOType       = errors.New("tun: unsupported virtio GSO type")
	errGSONoCsum     = errors.New("tun: super-packet without a partial checksum")
	errGSOSize       = errors.New("tun: super-packet segment size 0 or above 65535")
	errBadIP         = errors.New("tun: not a well-formed IPv4 or IPv6 packet")
	errNotTCPUDP     = errors.New("tun: partial checksum or super-packet that is not TCP or UDP")
	errTooFewBuffers = errors.New("tun: segment: not enough output buffers")
	errSmallBuffer   = errors.New("tun: segment: output buffer too small")
)

// fromVirtio applies a header read from the device to its packet: it
// returns the segment size of a super-packet, which keeps its partial
// checksum, and completes the checksum of an ordinary packet in place, so
// that the translator sees partial sums on super-packets only.
func fromVirtio(h *VirtioNetHdr, pkt []byte) (gsoSize int, partial bool, err error) {
	switch h.GSOType &^ VirtioGSOECN {
	case VirtioGSONone:
		if h.Flags&VirtioFlagNeedsCsum != 0 {
			if err := completeChecksum(pkt, int(h.CsumStart), int(h.CsumOffset)); err != nil {
				return 0, false, err
			}
		}
		return 0, false, nil
	case VirtioGSOTCPv4, VirtioGSOTCPv6, VirtioGSOUDPL4:
		// The kernel marks every super-packet CHECKSUM_PARTIAL; one that is
		// not would carry a checksum nobody can update per segment.
		if h.Flags&VirtioFlagNeedsCsum == 0 {
			return 0, false, errGSONoCsum
		}
		if h.GSOSize == 0 {
			return 0, false, errGSOSize
		}
		if int(h.CsumStart)+int(h.CsumOffset)+2 > len(pkt) {
			return 0, false, errBadCsum
		}
		return int(h.GSOSize), true, nil
	}
	return 0, false, errGSOType
}

// completeChecksum does what a NIC does with a NEEDS_CSUM packet: the field
// at start+off holds the pseudo-header sum, so the checksum is the
// complement of the sum from start to the end.
func completeChecksum(pkt []byte, start, off int) error {
	if start+off+2 > len(pkt) {
		return errBadCsum
	}
	c := checksum.Finish(checksum.Sum(pkt[start:], 0))
	// 0 and 0xffff are the same in one's complement; UDP reserves 0 for
	// "no checksum" (RFC 768), so 0xffff is the one that is always right.
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[start+off:], c)
	return nil
}

// truncated reports whether b is shorter than its IP header says. A tun
// device silently truncates a packet larger than the read buffer, so a read
// that fills the buffer is checked with this.
func truncated(b []byte) bool {
	switch {
	case len(b) >= 4 && b[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(b[2:])) > len(b)
	case len(b) >= 6 && b[0]>>4 == 6:
		return 40+int(binary.BigEndian.Uint16(b[4:])) > len(b)
	}
	return false
}

// transport locates the transport header: the IP header length (IPv6 with
// its Hop-by-Hop and Destination Options headers, the only ones a TCP or
// UDP super-packet from the kernel can carry), the protocol, and the length
// of the IP packet according to its header.
func transport(b []byte) (l4 int, proto uint8, total int, err error) {
	if len(b) < 20 {
		return 0, 0, 0, errBadIP
	}
	switch b[0] >> 4 {
	case 4:
		l4 = int(b[0]&0x0f) * 4
		total = int(binary.BigEndian.Uint16(b[2:]))
		if l4 < 20 || total < l4 || total > len(b) {
			return 0, 0, 0, errBadIP
		}
		return l4, b[9], total, nil
	case 6:
		if len(b) < 40 {
			return 0, 0, 0, errBadIP
		}
		total = 40 + int(binary.BigEndian.Uint16(b[4:]))
		if total > len(b) {
			return 0, 0, 0, errBadIP
		}
		l4, proto = 40, b[6]
		for proto == 0 || proto == 60 { // Hop-by-Hop, Destination Options
			if l4+8 > total {
				return 0, 0, 0, errBadIP
			}
			proto = b[l4]
			l4 += (int(b[l4+1]) + 1) * 8
		}
		if l4 > total {
			return 0, 0, 0, errBadIP
		}
		return l4, proto, total, nil
	}
	return 0, 0, 0, errBadIP
}

// l4Header returns the transport header length and the offset of the
// checksum field within it, for TCP and UDP.
func l4Header(proto uint8, l4 []byte) (hl, csumOff int, err error) {
	switch proto {
	case 6:
		if len(l4) < 20 {
			return 0, 0, errBadIP
		}
		hl = int(l4[12]>>4) * 4
		if hl < 20 || hl > len(l4) {
			return 0, 0, errBadIP
		}
		return hl, 16, nil
	case 17:
		if len(l4) < 8 {
			return 0, 0, errBadIP
		}
		return 8, 6, nil
	}
	return 0, 0, errNotTCPUDP
}

// HeaderFor builds the virtio-net header for writing p, from the packet
// itself: IP version and protocol give the GSO type, csum_start is the IP
// header length, hdr_len adds the transport header. A packet that is
// neither partial nor a super-packet gets the all-zero header ("checksum
// complete, no segmentation"). A super-packet with a single segment is
// written as an ordinary partial packet: the kernel would not segment it
// anyway.
func HeaderFor(p *Packet) (VirtioNetHdr, error) {
	if !p.Partial {
		if p.GSOSize > 0 {
			return VirtioNetHdr{}, errGSONoCsum
		}
		return VirtioNetHdr{}, nil
	}
	b := p.Bytes()
	l4, proto, total, err := transport(b)
	if err != nil {
		return VirtioNetHdr{}, err
	}
	hl, csumOff, err := l4Header(proto, b[l4:total])
	if err != nil {
		return VirtioNetHdr{}, err
	}
	h := VirtioNetHdr{
		Flags:      VirtioFlagNeedsCsum,
		CsumStart:  uint16(l4),
		CsumOffset: uint16(csumOff),
	}
	if p.GSOSize <= 0 || total-l4-hl <= p.GSOSize {
		return h, nil
	}
	if p.GSOSize > 0xffff {
		return VirtioNetHdr{}, errGSOSize
	}
	h.HdrLen = uint16(l4 + hl)
	h.GSOSize = uint16(p.GSOSize)
	switch {
	case proto == 17:
		h.GSOType = VirtioGSOUDPL4
	case b[0]>>4 == 4:
		h.GSOType = VirtioGSOTCPv4
	default:
		h.GSOType = VirtioGSOTCPv6
	}
	if proto == 6 && b[l4+13]&tcpCWR != 0 {
		h.GSOType |= VirtioGSOECN
	}
	return h, nil
}
