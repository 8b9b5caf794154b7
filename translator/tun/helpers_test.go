package tun

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/map646/map646/translator"
)

// naiveSum is RFC 1071 written the obvious way, 16 bits at a time, as the
// reference for sum.
func naiveSum(b []byte) uint16 {
	var acc uint32
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// partialize turns a packet with a complete transport checksum into what a
// device with checksum offload hands over: the field holds the folded
// pseudo-header sum. l4 is the offset of the transport header, at the
// offset of the checksum field within it. The pseudo-header is computed
// with naiveSum, not with this package's code.
func partialize(pkt []byte, l4, at int) []byte {
	pkt = bytes.Clone(pkt)
	n := len(pkt) - l4
	var ph []byte
	if pkt[0]>>4 == 4 {
		ph = append(ph, pkt[12:20]...)
		ph = append(ph, 0, pkt[9])
	} else {
		ph = append(ph, pkt[8:40]...)
		ph = append(ph, 0, pkt[6])
	}
	ph = binary.BigEndian.AppendUint32(ph, uint32(n))
	binary.BigEndian.PutUint16(pkt[l4+at:], naiveSum(ph))
	return pkt
}

// packet wraps b in a Packet with some headroom, as a device read would.
func packet(b []byte, gso int, partial bool) Packet {
	buf := make([]byte, Headroom+len(b))
	copy(buf[Headroom:], b)
	return Packet{Buf: buf, Off: Headroom, Len: len(b), GSOSize: gso, Partial: partial}
}

// payload returns n bytes that differ from segment to segment, so that a
// segment put in the wrong place is noticed.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

var (
	client4 = netip.MustParseAddr("192.0.2.7")
	server4 = netip.MustParseAddr("198.51.100.10")
	client6 = netip.MustParseAddr("64:ff9b::192.0.2.7")
	server6 = netip.MustParseAddr("2001:db8:1::10")
)

func buffers(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out
}

func netipPrefix(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }
func mustAddr(s string) netip.Addr                    { return netip.MustParseAddr(s) }

func newOut() *translator.Out { return translator.NewOut() }
