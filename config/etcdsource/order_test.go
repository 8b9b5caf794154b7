package etcdsource

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestOrderAgainstSlice runs random inserts and removals on an order of
// plain numbers (each position its own key) and on a sorted slice, and
// checks that they agree: the positions in order, search, at, before,
// nth, and blocks neither empty nor over blockMax. Insert runs and
// removals sweep ranges too, so blocks split, fill in order and empty.
func TestOrderAgainstSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, start := range []int{0, 1, blockMax, 3*blockMax + 7} {
		var o order
		var ref []int32
		for i := range start {
			ref = append(ref, int32(2*i))
		}
		o.fill(slices.Clone(ref))
		maxBlocks, maxLen := 0, 0
		search := func(k int32) cursor { return o.search(func(at int32) bool { return at < k }) }
		for step := range 10000 {
			k := int32(rng.IntN(8 * blockMax))
			switch op := rng.IntN(20); {
			case op < 9 || len(ref) == 0: // insert k, if absent
				i, found := slices.BinarySearch(ref, k)
				if found {
					continue
				}
				ref = slices.Insert(ref, i, k)
				o.insert(search(k), k)
			case op < 10: // a run in order past the end
				top := int32(0)
				if len(ref) > 0 {
					top = ref[len(ref)-1] + 1
				}
				for j := range int32(rng.IntN(blockMax)) {
					ref = append(ref, top+j)
					o.insert(search(top+j), top+j)
				}
			case op < 11: // a sweep of removals
				n := min(len(ref), rng.IntN(blockMax))
				for range n {
					o.remove(search(ref[0]))
					ref = ref[1:]
				}
			default: // remove one
				i := rng.IntN(len(ref))
				o.remove(search(ref[i]))
				ref = slices.Delete(ref, i, i+1)
			}
			maxBlocks, maxLen = max(maxBlocks, len(o.blocks)), max(maxLen, len(ref))
			if step%200 != 0 {
				continue
			}
			if got := slices.Collect(o.all()); o.len() != len(ref) || !slices.Equal(got, ref) {
				t.Fatalf("start %d, step %d: order holds %d (len %d), want %d", start, step, len(got), o.len(), len(ref))
			}
			for _, blk := range o.blocks {
				if len(blk) == 0 || len(blk) > blockMax {
					t.Fatalf("start %d, step %d: a block of %d", start, step, len(blk))
				}
			}
			nth := o.nth()
			for _, i := range []int{len(ref) / 3, len(ref) / 2, len(ref) - 1, 1} { // the last goes back
				if i >= 0 && i < len(ref) && nth(i) != ref[i] {
					t.Fatalf("start %d, step %d: nth(%d) = %d, want %d", start, step, i, nth(i), ref[i])
				}
			}
			for i := range ref { // in order, as NewTableFunc asks
				if nth(i) != ref[i] {
					t.Fatalf("start %d, step %d: nth(%d) = %d in a walk, want %d", start, step, i, nth(i), ref[i])
				}
			}
			for range 20 {
				k := int32(rng.IntN(8*blockMax + 2))
				c := search(k)
				i, _ := slices.BinarySearch(ref, k)
				at, ok := o.at(c)
				if ok != (i < len(ref)) || ok && at != ref[i] {
					t.Fatalf("start %d, step %d: at(search(%d)) = %d, %v; want index %d of %d", start, step, k, at, ok, i, len(ref))
				}
				at, ok = o.before(c)
				if ok != (i > 0) || ok && at != ref[i-1] {
					t.Fatalf("start %d, step %d: before(search(%d)) = %d, %v; want index %d", start, step, k, at, ok, i-1)
				}
			}
		}
		// The run must have crossed blocks, or it tested one slice.
		t.Logf("start %d: up to %d positions in up to %d blocks, %d at the end", start, maxLen, maxBlocks, len(ref))
		if maxBlocks < 4 {
			t.Errorf("start %d: at most %d blocks: the blocks were not exercised", start, maxBlocks)
		}
	}
}

// TestOrderJoins thins eight full blocks to a tenth: the small blocks left
// join their neighbours instead of keeping eight 4 KB arrays for 820
// positions.
func TestOrderJoins(t *testing.T) {
	var o order
	var ref []int32
	for i := range 8 * blockMax {
		ref = append(ref, int32(i))
	}
	o.fill(slices.Clone(ref))
	var kept []int32
	for _, k := range ref {
		if k%10 == 0 {
			kept = append(kept, k)
			continue
		}
		o.remove(o.search(func(at int32) bool { return at < k }))
	}
	if got := slices.Collect(o.all()); !slices.Equal(got, kept) || o.len() != len(kept) {
		t.Fatalf("order holds %d positions, want %d", len(got), len(kept))
	}
	if len(o.blocks) > 2 {
		t.Errorf("%d positions in %d blocks, want them joined in 2 at most", len(kept), len(o.blocks))
	}
}
