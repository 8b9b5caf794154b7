package tun

import (
	"math/rand/v2"
	"testing"
)

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
		if got, want := fold(sum(b, 0)), naiveSum(b); got != want {
			t.Fatalf("len %d off %d: sum %#04x, want %#04x", n, off, got, want)
		}
	}
}
