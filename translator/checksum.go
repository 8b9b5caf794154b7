package translator

import "encoding/binary"

// Internet checksum arithmetic (RFC 1071, RFC 1624). Sums are accumulated
// in 64 bits from 32-bit words and folded at the end: one's complement
// addition is associative, so folding a sum of 32-bit words gives the same
// 16-bit result as summing 16-bit words.

// sum adds b to acc as a sequence of big-endian 16-bit words, the last one
// padded with a zero byte when len(b) is odd.
func sum(b []byte, acc uint64) uint64 {
	for len(b) >= 32 {
		acc += uint64(binary.BigEndian.Uint32(b[0:4])) +
			uint64(binary.BigEndian.Uint32(b[4:8])) +
			uint64(binary.BigEndian.Uint32(b[8:12])) +
			uint64(binary.BigEndian.Uint32(b[12:16])) +
			uint64(binary.BigEndian.Uint32(b[16:20])) +
			uint64(binary.BigEndian.Uint32(b[20:24])) +
			uint64(binary.BigEndian.Uint32(b[24:28])) +
			uint64(binary.BigEndian.Uint32(b[28:32]))
		b = b[32:]
	}
	for len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
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

// checksum returns the Internet checksum of a sum.
func checksum(acc uint64) uint16 { return ^fold(acc) }

// adjust updates checksum c for data whose one's complement sum changed
// from old to new (RFC 1624 eqn. 3: C' = ~(~C + ~m + m')).
func adjust(c uint16, old, new uint64) uint16 {
	return ^fold(uint64(^c) + uint64(^fold(old)) + uint64(fold(new)))
}

// pseudo4 and pseudo6 return the sums of the pseudo-headers (RFC 768,
// RFC 8200 §8.1). Length and protocol add up the same in both, so an
// incremental update between them needs only the addresses.
func pseudo4(src, dst *[4]byte, proto uint8, length int) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:])) +
		uint64(proto) + uint64(length)
}

func pseudo6(src, dst *[16]byte, proto uint8, length int) uint64 {
	return sum(src[:], sum(dst[:], 0)) + uint64(proto) + uint64(length)
}

func addrSum4(src, dst *[4]byte) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:]))
}

func addrSum6(src, dst *[16]byte) uint64 { return sum(src[:], sum(dst[:], 0)) }
