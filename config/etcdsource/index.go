package etcdsource

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/map646/map646/translator"
)

// record is one accepted mapping, 24 bytes without pointers: a million of
// them cost 24 MB, and the collector does not scan them.
type record struct {
	hi, lo     uint64 // IPv6 prefix
	v4         uint32 // IPv4 prefix
	len4, len6 uint8
}

func toRecord(m translator.Mapping) record {
	a4, a6 := m.IPv4.Addr().As4(), m.IPv6.Addr().As16()
	return record{
		hi: binary.BigEndian.Uint64(a6[:8]), lo: binary.BigEndian.Uint64(a6[8:]),
		v4: binary.BigEndian.Uint32(a4[:]), len4: uint8(m.IPv4.Bits()), len6: uint8(m.IPv6.Bits()),
	}
}

func (r record) mapping() translator.Mapping {
	var a6 [16]byte
	binary.BigEndian.PutUint64(a6[:8], r.hi)
	binary.BigEndian.PutUint64(a6[8:], r.lo)
	return translator.Mapping{
		IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(r.v4 >> 24), byte(r.v4 >> 16), byte(r.v4 >> 8), byte(r.v4)}), int(r.len4)),
		IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), int(r.len6)),
	}
}

// last4 and last6 are the last addresses of the record's prefixes.
func (r record) last4() uint32 { return r.v4 | ^uint32(0)>>r.len4 }

func (r record) last6() (hi, lo uint64) {
	mhi, mlo := mask128(int(r.len6))
	return r.hi | ^mhi, r.lo | ^mlo
}

func mask128(l int) (hi, lo uint64) {
	switch {
	case l == 0:
		return 0, 0
	case l <= 64:
		return ^uint64(0) << (64 - l), 0
	case l == 128:
		return ^uint64(0), ^uint64(0)
	}
	return ^uint64(0), ^uint64(0) << (128 - l)
}

func cmp128(ahi, alo, bhi, blo uint64) int {
	if c := cmp.Compare(ahi, bhi); c != 0 {
		return c
	}
	return cmp.Compare(alo, blo)
}

// index holds the accepted mappings, which never overlap on either side,
// sorted by first address on each side: a new mapping overlaps one of them
// only if it overlaps its neighbour in that order, so the check is two
// binary searches. The orders are blocks of 4-byte positions (order): 8
// MB for both at a million built at once (build) or loaded in address
// order, about 10.5 MB loaded in random order, up to 16 MB in descending
// order (blocks split in halves; small ones join their neighbour).
type index struct {
	// recs holds the records in chunks of recChunk (the last may be
	// shorter), so that a node following a bulk load does not copy them
	// as they grow: a single array grown by append would hold 21 MB and
	// 27 MB at once near a million, the old one garbage until the next
	// collection. A short last chunk is copied once, into a full one.
	recs [][]record
	free []int32 // positions free for reuse
	by4  order   // positions sorted by IPv4 prefix
	by6  order   // positions sorted by IPv6 prefix
}

const (
	recShift = 16 // 65,536 records (1.5 MB) a chunk
	recChunk = 1 << recShift
)

// rec returns the record at position at.
func (x *index) rec(at int32) *record { return &x.recs[at>>recShift][at&(recChunk-1)] }

// add stores n at a new position and returns it.
func (x *index) add(n record) int32 {
	k := len(x.recs) - 1
	if k < 0 || len(x.recs[k]) == recChunk {
		x.recs = append(x.recs, make([]record, 0, recChunk))
		k++
	} else if len(x.recs[k]) == cap(x.recs[k]) { // a short last chunk from build
		x.recs[k] = append(make([]record, 0, recChunk), x.recs[k]...)
	}
	x.recs[k] = append(x.recs[k], n)
	return int32(k<<recShift + len(x.recs[k]) - 1) // every chunk before k is full
}

func (x *index) len() int { return x.by4.len() }

// search4 returns the place in by4 of the first record whose IPv4 prefix
// starts at or after a.
func (x *index) search4(a uint32) cursor {
	return x.by4.search(func(at int32) bool { return x.rec(at).v4 < a })
}

// search6 is search4 in by6, for the IPv6 address hi:lo.
func (x *index) search6(hi, lo uint64) cursor {
	return x.by6.search(func(at int32) bool { r := x.rec(at); return cmp128(r.hi, r.lo, hi, lo) < 0 })
}

// conflict returns an accepted record that overlaps n on either side.
func (x *index) conflict(n record) (record, bool) {
	c := x.search4(n.v4)
	if at, ok := x.by4.at(c); ok && x.rec(at).v4 <= n.last4() {
		return *x.rec(at), true
	}
	if at, ok := x.by4.before(c); ok && x.rec(at).last4() >= n.v4 {
		return *x.rec(at), true
	}
	c = x.search6(n.hi, n.lo)
	nhi, nlo := n.last6()
	if at, ok := x.by6.at(c); ok {
		if r := *x.rec(at); cmp128(r.hi, r.lo, nhi, nlo) <= 0 {
			return r, true
		}
	}
	if at, ok := x.by6.before(c); ok {
		r := *x.rec(at)
		if hi, lo := r.last6(); cmp128(hi, lo, n.hi, n.lo) >= 0 {
			return r, true
		}
	}
	return record{}, false
}

// insert adds n, which must not conflict (see conflict).
func (x *index) insert(n record) {
	var at int32
	if k := len(x.free); k > 0 {
		at, x.free = x.free[k-1], x.free[:k-1]
		*x.rec(at) = n
	} else {
		at = x.add(n)
	}
	x.by4.insert(x.search4(n.v4), at)
	x.by6.insert(x.search6(n.hi, n.lo), at)
}

// find returns the accepted record whose IPv4 prefix is exactly p.
func (x *index) find(v4 uint32, len4 uint8) (record, bool) {
	if at, ok := x.by4.at(x.search4(v4)); ok && x.rec(at).v4 == v4 && x.rec(at).len4 == len4 {
		return *x.rec(at), true
	}
	return record{}, false
}

// remove deletes the accepted record whose IPv4 prefix is exactly
// (v4, len4), and returns it.
func (x *index) remove(v4 uint32, len4 uint8) (record, bool) {
	c := x.search4(v4)
	at, ok := x.by4.at(c)
	if !ok || x.rec(at).v4 != v4 || x.rec(at).len4 != len4 {
		return record{}, false
	}
	r := *x.rec(at)
	x.by4.remove(c)
	x.by6.remove(x.search6(r.hi, r.lo)) // unique first addresses: the record itself
	x.free = append(x.free, at)
	return r, true
}

// table builds the translator's table of every accepted mapping, in IPv4
// order. The index never holds an overlap, so an error is a bug of this
// package.
func (x *index) table() (*translator.Table, error) {
	// NewTableFunc asks for the mappings in order (then perhaps again for
	// those of an error message): nth walks the blocks along with it.
	nth := x.by4.nth()
	t, err := translator.NewTableFunc(x.len(), func(i int) translator.Mapping { return x.rec(nth(i)).mapping() })
	if err != nil {
		return nil, fmt.Errorf("etcdsource: the accepted mappings do not make a table (a bug): %w", err)
	}
	return t, nil
}

// lostEntry is an entry build refused: it overlaps the older entry to.
type lostEntry struct {
	rec, to record
	rev     int64
}

// build makes the index of recs, entries read at start-up whose
// ModRevisions are revs, and returns those it refused. It takes recs over
// as its own storage (a million records are not copied). Older entries win,
// as they would have arriving one by one through the watch: the entries
// that overlap nothing (all of them in a sane table) are taken in two
// sorts, and only those that overlap something are inserted one by one,
// oldest first.
func (x *index) build(recs []record, revs []int64) []lostEntry {
	involved := make([]bool, len(recs))
	order := make([]int32, len(recs))
	for i := range order {
		order[i] = int32(i)
	}
	markNested(recs, order, involved, false)
	markNested(recs, order, involved, true)
	order = nil

	type later struct {
		rec record
		rev int64
	}
	var late []later
	n := 0
	for i, r := range recs {
		if involved[i] {
			late = append(late, later{r, revs[i]})
			continue
		}
		recs[n] = r
		n++
	}
	// recs's array becomes the chunks, not copied; the last one keeps
	// the array's room up to a whole chunk (the refused entries' slots,
	// the read's spare capacity), which nothing else uses.
	*x = index{}
	for k := 0; k < n; k += recChunk {
		x.recs = append(x.recs, recs[k:min(k+recChunk, n):min(k+recChunk, cap(recs))])
	}
	by4, by6 := make([]int32, n), make([]int32, n)
	for i := range by4 {
		by4[i], by6[i] = int32(i), int32(i)
	}
	slices.SortFunc(by4, func(a, b int32) int { return cmp.Compare(x.rec(a).v4, x.rec(b).v4) })
	slices.SortFunc(by6, func(a, b int32) int {
		return cmp128(x.rec(a).hi, x.rec(a).lo, x.rec(b).hi, x.rec(b).lo)
	})
	x.by4.fill(by4)
	x.by6.fill(by6)

	slices.SortStableFunc(late, func(a, b later) int { return cmp.Compare(a.rev, b.rev) })
	var lost []lostEntry
	for _, l := range late {
		if w, bad := x.conflict(l.rec); bad {
			lost = append(lost, lostEntry{rec: l.rec, to: w, rev: l.rev})
			continue
		}
		x.insert(l.rec)
	}
	return lost
}

// markNested marks every candidate that overlaps another on one side:
// sorted by first address then length, a prefix follows those that
// contain it, and since two prefixes either nest or are disjoint, each
// one that overlaps anything overlaps the top of a stack of open ones.
func markNested(recs []record, order []int32, involved []bool, six bool) {
	first := func(r record) (uint64, uint64, uint8) {
		if six {
			return r.hi, r.lo, r.len6
		}
		return uint64(r.v4), 0, r.len4
	}
	slices.SortFunc(order, func(a, b int32) int {
		ahi, alo, al := first(recs[a])
		bhi, blo, bl := first(recs[b])
		if c := cmp128(ahi, alo, bhi, blo); c != 0 {
			return c
		}
		return cmp.Compare(al, bl)
	})
	var stack []int32
	for _, i := range order {
		hi, lo, _ := first(recs[i])
		for len(stack) > 0 {
			top := recs[stack[len(stack)-1]]
			var ehi, elo uint64
			if six {
				ehi, elo = top.last6()
			} else {
				ehi = uint64(top.last4())
			}
			if cmp128(ehi, elo, hi, lo) >= 0 {
				break
			}
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			involved[i] = true
			involved[stack[len(stack)-1]] = true
		}
		stack = append(stack, i)
	}
}
