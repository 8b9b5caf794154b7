package tun

import (
	"encoding/binary"

	"github.com/map646/map646/translator/internal/checksum"
)

// TCP flags that differ between the segments of a super-packet.
const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

// Segment splits a super-packet into ordinary packets with complete
// checksums, as the kernel would: for the super-packets that
// translator.TranslateGSOInPlace declines (ok false), so that each segment can go
// through translator.Translate and its per-packet rules.
//
// Segment i is written to out[i], which is resliced to the segment's length
// (its capacity is the room available; each needs the IP and transport
// headers plus pkt.GSOSize bytes). n is the number of segments. A packet
// with GSOSize 0 becomes one segment with its checksum completed.
//
// TCP: each segment gets the next sequence number; PSH and FIN stay on the
// last segment only and CWR on the first only (RFC 3168 §6.1.2).
// UDP (GSO type UDP_L4): each segment is a datagram with its own UDP header
// and length. IPv4: lengths, the Identification (incremented per segment)
// and the header checksum are fixed; IPv6: the payload length.
//
// The transport checksum is computed from scratch, so it does not matter
// whether pkt.Partial is set. Segment does not allocate.
func Segment(pkt Packet, out [][]byte) (n int, err error) {
	b := pkt.Bytes()
	l4, proto, total, err := transport(b)
	if err != nil {
		return 0, err
	}
	b = b[:total]
	hl, csumOff, err := l4Header(proto, b[l4:])
	if err != nil {
		return 0, err
	}
	hdrLen := l4 + hl
	payload := b[hdrLen:]
	seg := pkt.GSOSize
	if seg <= 0 || seg > len(payload) {
		seg = max(len(payload), 1)
	}
	n = (len(payload) + seg - 1) / seg
	n = max(n, 1)
	if n > len(out) {
		return 0, errTooFewBuffers
	}
	v4 := b[0]>>4 == 4
	var id uint16
	var seq uint32
	if v4 {
		id = binary.BigEndian.Uint16(b[4:])
	}
	if proto == 6 {
		seq = binary.BigEndian.Uint32(b[l4+4:])
	}
	for i := range n {
		chunk := payload[min(i*seg, len(payload)):min((i+1)*seg, len(payload))]
		size := hdrLen + len(chunk)
		if cap(out[i]) < size {
			return 0, errSmallBuffer
		}
		s := out[i][:size]
		out[i] = s
		copy(s, b[:hdrLen])
		copy(s[hdrLen:], chunk)
		if v4 {
			binary.BigEndian.PutUint16(s[2:], uint16(size))
			binary.BigEndian.PutUint16(s[4:], id+uint16(i))
			s[10], s[11] = 0, 0
			binary.BigEndian.PutUint16(s[10:], checksum.Finish(checksum.Sum(s[:l4], 0)))
		} else {
			binary.BigEndian.PutUint16(s[4:], uint16(size-40))
		}
		t := s[l4:]
		if proto == 6 {
			binary.BigEndian.PutUint32(t[4:], seq+uint32(i*seg))
			if i != n-1 {
				t[13] &^= tcpFIN | tcpPSH
			}
			if i != 0 {
				t[13] &^= tcpCWR
			}
		} else {
			binary.BigEndian.PutUint16(t[4:], uint16(len(t)))
		}
		t[csumOff], t[csumOff+1] = 0, 0
		c := checksum.Finish(checksum.Sum(t, checksum.PseudoOf(s, proto, len(t))))
		if c == 0 && proto == 17 {
			c = 0xffff // RFC 768: 0 means "no checksum"
		}
		binary.BigEndian.PutUint16(t[csumOff:], c)
	}
	return n, nil
}
