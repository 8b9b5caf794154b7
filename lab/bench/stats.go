package main

import (
	"math"
	"slices"
)

// percentile returns the p-th percentile (0 to 100) of xs, interpolated
// linearly between the two nearest order statistics (NumPy's default), or
// NaN for no value. xs is not modified.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return s[lo] + (s[hi]-s[lo])*(rank-float64(lo))
}

// median is the 50th percentile: of 3 runs, the middle one.
func median(xs []float64) float64 { return percentile(xs, 50) }
