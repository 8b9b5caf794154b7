package dataplane

import "sync/atomic"

// counters holds the per-mapping counters, entryWords per mapping id,
// atomic, in chunks of chunkIDs ids. A table that gives out more ids gets
// counters with more chunks that share the existing ones (grown): the
// counts never move, and a node following a bulk load never holds two
// arrays of them (32 MB each at a million ids). A chunk is never shared by
// two tables whose ids mean different mappings: a table numbered anew
// (Swap) gets new counters, and the counts are carried over by mapping.
type counters struct {
	chunks [][]uint64 // each chunkIDs*entryWords words
}

const (
	chunkShift = 14 // 16,384 ids (512 KB) a chunk
	chunkIDs   = 1 << chunkShift
)

// newCounters returns zero counters for at least ids ids.
func newCounters(ids int) *counters { return (&counters{}).grown(ids) }

// grown returns counters for at least ids ids: c's chunks, and new ones.
func (c *counters) grown(ids int) *counters {
	n := (ids + chunkIDs - 1) / chunkIDs
	if n <= len(c.chunks) {
		return c
	}
	g := &counters{chunks: make([][]uint64, len(c.chunks), n)}
	copy(g.chunks, c.chunks)
	for len(g.chunks) < n {
		g.chunks = append(g.chunks, make([]uint64, chunkIDs*entryWords))
	}
	return g
}

// ids returns how many ids the counters have room for.
func (c *counters) ids() int { return len(c.chunks) * chunkIDs }

// of returns the entryWords counters of id, nil past the room.
func (c *counters) of(id int) []uint64 {
	k := id >> chunkShift
	if id < 0 || k >= len(c.chunks) {
		return nil
	}
	at := (id & (chunkIDs - 1)) * entryWords
	return c.chunks[k][at : at+entryWords : at+entryWords]
}

// any says whether some counter is not zero.
func (c *counters) any() bool {
	for _, ch := range c.chunks {
		for i := range ch {
			if atomic.LoadUint64(&ch[i]) != 0 {
				return true
			}
		}
	}
	return false
}
