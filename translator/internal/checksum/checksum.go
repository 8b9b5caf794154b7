// Package checksum is the Internet checksum arithmetic (RFC 1071, RFC 1624)
// of the data plane: the one implementation that package translator
// (translation, ICMP errors, header checks) and package translator/tun
// (segmenting super-packets, completing partial checksums, the offload
// self-test) both use.
//
// It owns nothing but arithmetic: no state, no allocation. It imports only
// the standard library, and, being internal to translator, only translator
// and the packages below it can import it. Tests check it against
// translator/packettest's independent 16-bit implementation, which stays
// separate on purpose: a test oracle must not share the code it checks.
//
// Sums are accumulated in 64 bits and folded at the end: one's complement
// addition is associative, so folding a sum of wider words gives the same
// 16-bit result as summing 16-bit words.
package checksum

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds b to acc as big-endian 16-bit words, the last one padded with a
// zero byte when len(b) is odd. It adds 64-bit words with carry, because
// the checksum of a 64 KB super-packet is the costliest loop of the data
// plane.
func Sum(b []byte, acc uint64) uint64 {
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

// Fold reduces acc to a 16-bit one's complement sum (not inverted).
func Fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// Finish returns the Internet checksum of a sum: its folded complement.
func Finish(acc uint64) uint16 { return ^Fold(acc) }

// Adjust updates checksum c for data whose one's complement sum changed
// from old to new (RFC 1624 eqn. 3: C' = ~(~C + ~m + m')).
func Adjust(c uint16, old, new uint64) uint16 {
	return ^Fold(uint64(^c) + uint64(^Fold(old)) + uint64(Fold(new)))
}

// Pseudo6 returns the sum of the IPv6 pseudo-header (RFC 8200 §8.1).
// Length and protocol add up the same in IPv4's (RFC 768), so an
// incremental update between the two needs only the addresses (Addrs4,
// Addrs6).
func Pseudo6(src, dst *[16]byte, proto uint8, length int) uint64 {
	return Addrs6(src, dst) + uint64(proto) + uint64(length)
}

// Addrs4 and Addrs6 return the sums of a source and a destination address.
func Addrs4(src, dst *[4]byte) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:]))
}

func Addrs6(src, dst *[16]byte) uint64 { return Sum(src[:], Sum(dst[:], 0)) }

// PseudoOf is the pseudo-header sum of a transport segment of length bytes
// carried by the IP packet ip (version 4 or 6, read from its first byte;
// RFC 768, RFC 9293 §3.1, RFC 8200 §8.1). IPv4's 16-bit and IPv6's 32-bit
// length add up the same, as do their protocol fields.
func PseudoOf(ip []byte, proto uint8, length int) uint64 {
	var acc uint64
	if ip[0]>>4 == 4 {
		acc = Sum(ip[12:20], 0)
	} else {
		acc = Sum(ip[8:40], 0)
	}
	return acc + uint64(proto) + uint64(length)
}
