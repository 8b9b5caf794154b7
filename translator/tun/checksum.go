package tun

import (
	"encoding/binary"
	"math/bits"
)

// Internet checksum (RFC 1071). Package translator has the same arithmetic
// but keeps it unexported so that its API stays about translation; the copy
// here is small, and Segment is checked against packettest's independent one.

// sum adds b to acc as big-endian 16-bit words, the last one padded with a
// zero byte when len(b) is odd. It adds 64-bit words with carry, because
// completing a 64 KB super-packet's checksum is the costliest loop here.
func sum(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	// The end-around carry of one's complement addition.
	acc, c = bits.Add64(acc, c, 0)
	acc += c
	// At most 7 bytes remain; their words cannot overflow a uint64.
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		tail += uint64(b[0]) << 8
	}
	acc, c = bits.Add64(acc, tail, 0)
	return acc + c
}

// fold reduces acc to a 16-bit one's complement sum (not inverted).
func fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// pseudoSum is the sum of the pseudo-header of a transport segment of
// length bytes (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1). IPv4's 16-bit and
// IPv6's 32-bit length add up the same, as do their protocol fields.
func pseudoSum(ip []byte, proto uint8, length int) uint64 {
	var acc uint64
	if ip[0]>>4 == 4 {
		acc = sum(ip[12:20], 0)
	} else {
		acc = sum(ip[8:40], 0)
	}
	return acc + uint64(proto) + uint64(length)
}
