package dataplane

import "testing"

// TestCountersGrown: counters grown for more ids share the chunks they had
// (the counts stay where they are, nothing copied) and add zero ones; an
// id past the room has no counters, and counting into it is a no-op.
func TestCountersGrown(t *testing.T) {
	c := newCounters(10)
	if c.ids() != chunkIDs {
		t.Fatalf("room for %d ids, want one chunk of %d", c.ids(), chunkIDs)
	}
	if c.any() {
		t.Fatal("new counters are not zero")
	}
	w := c.of(3)
	w[ePackets4to6], w[eBytes6to4] = 7, 9
	if !c.any() {
		t.Fatal("any misses a count")
	}
	if c.of(chunkIDs) != nil || c.of(-1) != nil {
		t.Fatal("an id past the room has counters")
	}
	if c.grown(chunkIDs) != c {
		t.Error("grown for the room it has made new counters")
	}
	g := c.grown(3*chunkIDs - 5)
	if g.ids() != 3*chunkIDs {
		t.Fatalf("grown has room for %d ids, want %d", g.ids(), 3*chunkIDs)
	}
	if &g.of(3)[0] != &w[0] || g.of(3)[ePackets4to6] != 7 || g.of(3)[eBytes6to4] != 9 {
		t.Error("grown moved or lost the counts of id 3")
	}
	if last := g.of(3*chunkIDs - 1); last == nil || last[0] != 0 {
		t.Error("the new chunks are missing or not zero")
	}
	if c.ids() != chunkIDs || c.of(chunkIDs) != nil {
		t.Error("growing changed the counters grown from")
	}
	var e entryPending
	e.used = make([]uint16, 0, entrySlots)
	e.add(int32(3*chunkIDs+1), Dir4to6, 100) // past g's room
	e.add(3, Dir6to4, 50)
	e.flush(g)
	if g.of(3)[ePackets6to4] != 1 || g.of(3)[eBytes6to4] != 59 {
		t.Errorf("flush: id 3 has %v", g.of(3))
	}
}
