package packettest

import (
	"encoding/binary"
	"net/netip"
)

// sum adds b to acc as big-endian 16-bit words (RFC 1071). An odd trailing
// byte counts as the high byte of a word padded with zero, so only the last
// slice of a chain of calls may have an odd length.
func sum(acc uint64, b []byte) uint64 {
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces acc to 16 bits with end-around carry: the one's complement sum.
func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// checksum is the value to store in a checksum field whose data (with the
// field zeroed) sums to acc.
func checksum(acc uint64) uint16 { return ^fold(acc) }

// pseudo is the sum of the pseudo-header of RFC 768/793 (IPv4) or RFC 8200
// §8.1 (IPv6). Both sum to the same words apart from the addresses, since
// zero padding does not change a one's complement sum.
func pseudo(src, dst netip.Addr, proto uint8, length int) uint64 {
	s := src.AsSlice()
	d := dst.AsSlice()
	acc := sum(0, s)
	acc = sum(acc, d)
	return acc + uint64(proto) + uint64(length)
}
