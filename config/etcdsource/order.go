package etcdsource

import (
	"iter"
	"slices"
	"sort"
)

// order keeps record positions sorted by a key of their records, in blocks
// of at most blockMax: an insert or a removal moves at most a block's
// positions (4 KB) and, when a block splits or empties, the block headers
// (24 bytes each, 1,000 to 2,000 at a million: blocks are full after a
// build or a load in address order, half full after splits). One sorted array moved
// half of itself per key inserted in random order, 0.57 ms at 900,000
// (BenchmarkIndexInsert): a controller that reuses addresses, loading a
// million keys, would have kept a CPU busy for minutes.
//
// The order holds positions only; the caller compares them through its
// records (search's less).
type order struct {
	blocks [][]int32 // none empty; each sorted, and all in sequence
	n      int
}

const blockMax = 1024

// cursor is a place in an order: blocks[b][i], or the end (b == the
// number of blocks, i == 0).
type cursor struct{ b, i int }

func (o *order) len() int { return o.n }

// fill makes the order of sorted, taking its array over: sorted is cut
// into full blocks, not copied.
func (o *order) fill(sorted []int32) {
	*o = order{n: len(sorted)}
	for k := 0; k < len(sorted); k += blockMax {
		e := min(k+blockMax, len(sorted))
		o.blocks = append(o.blocks, sorted[k:e:e])
	}
}

// search returns the first place whose position is not less (the end if
// every one is): less must be false from some place on, as sort.Search
// asks.
func (o *order) search(less func(int32) bool) cursor {
	b := sort.Search(len(o.blocks), func(k int) bool { blk := o.blocks[k]; return !less(blk[len(blk)-1]) })
	if b == len(o.blocks) {
		return cursor{b, 0}
	}
	blk := o.blocks[b]
	return cursor{b, sort.Search(len(blk), func(j int) bool { return !less(blk[j]) })}
}

// at returns the position at c; false at the end.
func (o *order) at(c cursor) (int32, bool) {
	if c.b >= len(o.blocks) {
		return 0, false
	}
	return o.blocks[c.b][c.i], true
}

// before returns the position before c; false at the start.
func (o *order) before(c cursor) (int32, bool) {
	switch {
	case c.i > 0:
		return o.blocks[c.b][c.i-1], true
	case c.b > 0:
		blk := o.blocks[c.b-1]
		return blk[len(blk)-1], true
	}
	return 0, false
}

// insert puts at at c (before what is there: c from search keeps the
// order sorted).
func (o *order) insert(c cursor, at int32) {
	o.n++
	if len(o.blocks) == 0 {
		o.blocks = [][]int32{append(make([]int32, 0, blockMax), at)}
		return
	}
	if c.b == len(o.blocks) { // the end: after the last block's last
		c = cursor{c.b - 1, len(o.blocks[c.b-1])}
	}
	blk := o.blocks[c.b]
	if len(blk) < blockMax {
		o.blocks[c.b] = slices.Insert(blk, c.i, at)
		return
	}
	if c.b == len(o.blocks)-1 && c.i == len(blk) {
		// Past the end of a full last block: a new block, so that a load
		// in order leaves full blocks behind it, not halves.
		o.blocks = append(o.blocks, append(make([]int32, 0, blockMax), at))
		return
	}
	// Split the full block in halves: the left keeps its array, the right
	// gets one of its own.
	half := blockMax / 2
	right := append(make([]int32, 0, blockMax), blk[half:]...)
	left := blk[:half]
	if c.i <= half {
		left = slices.Insert(left, c.i, at)
	} else {
		right = slices.Insert(right, c.i-half, at)
	}
	o.blocks[c.b] = left
	o.blocks = slices.Insert(o.blocks, c.b+1, right)
}

// remove takes out the position at c, which must not be the end. A
// block left with under a quarter of blockMax joins its left neighbour
// when the two fit in three quarters, so that churn does not leave many
// near-empty blocks (4 KB each, whatever they hold) and a join is not
// split again by the next few inserts.
func (o *order) remove(c cursor) {
	o.n--
	blk := slices.Delete(o.blocks[c.b], c.i, c.i+1)
	switch {
	case len(blk) == 0:
		o.blocks = slices.Delete(o.blocks, c.b, c.b+1)
	case len(blk) < blockMax/4 && c.b > 0 && len(o.blocks[c.b-1])+len(blk) <= blockMax*3/4:
		o.blocks[c.b-1] = append(o.blocks[c.b-1], blk...)
		o.blocks = slices.Delete(o.blocks, c.b, c.b+1)
	default:
		o.blocks[c.b] = blk
	}
}

// nth returns a function that gives the i-th position (0 <= i < len), in
// constant time when i follows the one asked before, by a walk from the
// start otherwise.
func (o *order) nth() func(i int) int32 {
	var b, j, at int // blocks[b][j] is the at-th position
	return func(i int) int32 {
		if i < at {
			b, j, at = 0, 0, 0
		}
		for at < i {
			if rest := len(o.blocks[b]) - j; at+rest <= i {
				b, j, at = b+1, 0, at+rest
			} else {
				j, at = j+i-at, i
			}
		}
		return o.blocks[b][j]
	}
}

// all yields the positions in order.
func (o *order) all() iter.Seq[int32] {
	return func(yield func(int32) bool) {
		for _, blk := range o.blocks {
			for _, at := range blk {
				if !yield(at) {
					return
				}
			}
		}
	}
}
