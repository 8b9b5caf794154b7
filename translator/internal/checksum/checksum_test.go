package checksum

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
)

// naive is RFC 1071's 16-bit reference: the oracle Sum must agree with.
func naive(b []byte) uint16 {
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

// TestSumMatchesRFC1071: the 64-bit-word sum folds to the same value as the
// 16-bit reference for every length and alignment (odd tails, carries).
func TestSumMatchesRFC1071(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 300)
	for trial := range 2000 {
		for i := range buf {
			buf[i] = byte(r.IntN(256))
			if trial%3 == 0 {
				buf[i] = 0xff // long carry chains
			}
		}
		off, n := r.IntN(8), r.IntN(len(buf)-8)
		b := buf[off : off+n]
		if got, want := Fold(Sum(b, 0)), naive(b); got != want {
			t.Fatalf("len %d off %d: sum %#04x, want %#04x", n, off, got, want)
		}
	}
}

// TestAdjustMatchesRecompute: updating a checksum for changed words
// (RFC 1624) gives the checksum computed from scratch over the new data.
func TestAdjustMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 64)
	for range 2000 {
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		c := Finish(Sum(b, 0))
		at := 2 * r.IntN(len(b)/2-8)
		old := Sum(b[at:at+16], 0)
		for i := at; i < at+16; i++ {
			b[i] = byte(r.IntN(256))
		}
		got, want := Adjust(c, old, Sum(b[at:at+16], 0)), Finish(Sum(b, 0))
		// 0x0000 and 0xffff are the same one's complement value.
		if got != want && got^want != 0xffff {
			t.Fatalf("adjusted %#04x, recomputed %#04x", got, want)
		}
	}
}

// TestPseudoOf: the pseudo-header read from a packet equals the one built
// from its addresses.
func TestPseudoOf(t *testing.T) {
	ip4 := make([]byte, 20)
	ip4[0] = 0x45
	src4, dst4 := [4]byte{192, 0, 2, 1}, [4]byte{198, 51, 100, 7}
	copy(ip4[12:], src4[:])
	copy(ip4[16:], dst4[:])
	if got, want := Fold(PseudoOf(ip4, 17, 1234)), Fold(Addrs4(&src4, &dst4)+17+1234); got != want {
		t.Errorf("IPv4: %#04x, want %#04x", got, want)
	}
	ip6 := make([]byte, 40)
	ip6[0] = 0x60
	src6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	dst6 := [16]byte{0x00, 0x64, 0xff, 0x9b, 12: 198, 13: 51, 14: 100, 15: 7}
	copy(ip6[8:], src6[:])
	copy(ip6[24:], dst6[:])
	if got, want := Fold(PseudoOf(ip6, 6, 70000)), Fold(Pseudo6(&src6, &dst6, 6, 70000)); got != want {
		t.Errorf("IPv6: %#04x, want %#04x", got, want)
	}
	// The IPv6 pseudo-header's 32-bit length, summed as two words.
	var word [4]byte
	binary.BigEndian.PutUint32(word[:], 70000)
	if got, want := Fold(Pseudo6(&src6, &dst6, 6, 70000)), Fold(Addrs6(&src6, &dst6)+6+Sum(word[:], 0)); got != want {
		t.Errorf("IPv6 length as a 32-bit field: %#04x, want %#04x", got, want)
	}
}

var sink uint16

// BenchmarkChecksum: an IPv4 header, an IPv6 header's addresses, a
// full-size packet and a 64 KB super-packet.
func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 40, 1480, 65535} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sink += Fold(Sum(buf, 0))
			}
		})
	}
}
