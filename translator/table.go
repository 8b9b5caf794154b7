package translator

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// Mapping is one EAMT entry (RFC 7757 §3): an IPv4 prefix and an IPv6 prefix.
type Mapping struct{ IPv4, IPv6 netip.Prefix }

// MappingError describes one problem with the entry at Index (0-based, into
// the slice given to NewTable); Other is the index of the conflicting entry
// or -1. The indexes let the config loader point at the lines at fault.
type MappingError struct {
	Index, Other int
	Msg          string
}

func (e *MappingError) Error() string { return fmt.Sprintf("mapping %d: %s", e.Index, e.Msg) }

// TableError is returned by NewTable and lists every problem found, in the
// order of the entries, so that one run of the loader shows all of them.
// The list stops at maxProblems; More counts the rest.
type TableError struct {
	Problems []MappingError
	More     int
}

// maxProblems caps TableError.Problems: a file with a million bad lines
// needs its first hundred shown, not a million messages built.
const maxProblems = 100

// Error returns one problem per line.
func (e *TableError) Error() string {
	var b strings.Builder
	for i := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Problems[i].Error())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n... and %d more problems", e.More)
	}
	return b.String()
}

// Table is the explicit address mapping table. It is immutable and safe
// for concurrent use; Apply makes a changed copy that shares its slots
// (delta.go).
//
// A lookup does the same work at a thousand entries and at a million: each
// direction keeps one open-addressing hash per prefix length present, and a
// lookup tries those lengths, longest first (RFC 7757 §3 asks for the
// longest match; NewTable refuses overlaps, so at most one can match). A
// slot holds everything the translation needs, so a hit reads one slot and
// nothing else: at a million entries, one cache miss rather than two.
//
// Most lookups on the hot path miss (the spoof check on every IPv4 source,
// the hairpin check on every IPv4 destination from the IPv6 side, the IPv6
// destination of every packet to a client), and a miss would otherwise probe
// every length present, each probe a cache miss in a large table. A small
// filter per family answers most of them first (see filter4, filter6).
type Table struct {
	by4 []eamIndex4 // one per IPv4 prefix length present, longest first
	by6 []eamIndex6 // one per IPv6 prefix length present, longest first
	ids []uint64    // ids[id]: entry id's IPv4 prefix (idKey); 0: no entry has that id
	n   int         // entries in the indexes (ids not 0)
	f4  filter4
	f6  filter6
	ov  *overlay // the changes since the indexes were built (delta.go); nil: none
}

// idKey records an entry's IPv4 prefix in ids: enough to find its slot
// (Mapping, All) without a second copy of the entries. Bit 40 keeps a /0
// of 0.0.0.0 apart from "no entry" (NewTable refuses /0 anyway).
func idKey(v4 uint32, len4 uint8) uint64 { return 1<<40 | uint64(v4)<<8 | uint64(len4) }

// The slots of each prefix length are cut into pages by the top bits of
// the key's hash: a page of at most about 32,768 entries (65,536 slots,
// 1.5 MB) is a hash table of its own, sized by its own count. A table
// built anew (Rebuild: a bulk batch through etcd) is built page by page,
// each new page replacing the old ones of its hash range in a table the
// data plane takes at once, so that the old pages are freed as the new
// ones are made: a million entries are never held twice (building the
// whole table anew held both, 2 x 96 MB). The price is a dependent load
// per lookup: the page's header, from an array of at most 1,024 (32 KB, in
// cache on a busy translator). BenchmarkTableLookup against the layout
// without pages, medians of 3 interleaved runs here: +1 to +1.8 ns at 1k
// to 100k entries, 27.9 -> 38.0 ns from IPv4 and 41.5 -> 44.9 ns from
// IPv6 at a million.
const maxPageDepth = 10 // at most 1<<maxPageDepth pages per prefix length

// pageEntriesLog: a page holds up to about 1<<pageEntriesLog entries. A
// variable only for the tests, which cut small tables into many pages.
var pageEntriesLog = 15

// pageDepth returns log2 of the number of pages for n entries of a length.
func pageDepth(n int) uint8 {
	return uint8(min(bits.Len(uint(max(n, 1)-1)>>pageEntriesLog), maxPageDepth))
}

// pageOf returns the page of hash h at depth d: its top d bits (none at 0:
// Go shifts by 64 give zero).
func pageOf(h uint64, d uint8) uint64 { return h >> (64 - uint(d)) }

// pagesIn returns the pages of depth d a rebuild of steps steps builds at
// step s: those whose hash range starts in the step's share of the
// hash space; steps is a power of two.
func pagesIn(d uint8, s, steps int) (from, to int) {
	n := 1 << d
	return (s*n + steps - 1) / steps, ((s+1)*n + steps - 1) / steps
}

// eamIndex4 holds the entries of one IPv4 prefix length.
type eamIndex4 struct {
	mask   uint32 // netmask of the length
	len    uint8
	dshift uint8 // 64 - log2(len(pages)), at most 63: pages[h>>dshift] is key hash h's page
	n      int   // entries
	pages  []eamPage4
}

// eamPage4 is one page of an index: a page of depth d has 1<<(D-d)
// consecutive places in pages (of 1<<D); a built index has every page at
// the same depth, a table on its way through Rebuild old and new ones.
type eamPage4 struct {
	skip  uint8 // the page's depth: the hash bits that chose it, skipped
	shift uint8 // 64 - log2(len(slots)): (h << skip) >> shift is the home slot
	slots []eamSlot4
}

type eamSlot4 struct {
	key  uint32   // IPv4 prefix
	meta uint32   // IPv6 prefix length << 24 | (entry index + 1); 0: empty
	v6   [16]byte // IPv6 prefix, as Map4 returns it when there is no suffix to carry
}

// eamIndex6 holds the entries of one IPv6 prefix length.
type eamIndex6 struct {
	mhi, mlo uint64 // netmask of the length
	len      uint8
	dshift   uint8
	n        int
	pages    []eamPage6
}

type eamPage6 struct {
	skip, shift uint8
	slots       []eamSlot6
}

type eamSlot6 struct {
	hi, lo uint64  // IPv6 prefix, big-endian halves
	v4     [4]byte // IPv4 prefix, as Map6 returns it when there is no suffix to carry
	meta   uint32  // IPv4 prefix length << 24 | (entry index + 1); 0: empty
}

// Slots are 24 bytes, without pointers for the garbage collector to scan:
// at a load factor of at most one half, a million entries take 48 MB per
// direction (pages of 65,536 slots each). The entry index gets 24 bits.
//
// At that load a quarter of the keys cannot be in their home slot, and the
// branch on "is it here?" mispredicts for them, which costs more than the
// probe: at a thousand entries, keys at home took 4.8 ns and the others 14
// (compare BenchmarkTableLookupContiguous, whose keys are all at home, with
// BenchmarkTableLookup). Layouts without that branch were measured and
// were slower where it matters, at a million entries: checking a window of
// two or three slots from home without a branch (after Robin Hood
// insertion, 91% or 98% of the keys are in it) reads two cache lines per
// lookup and makes the slot load wait for the key compares; buckets of one
// 64-byte cache line (two 32-byte slots) need 64 MB per direction for the
// same load, past the memory budget, and still leave 10% of the keys
// outside their bucket.
const maxEntries = 1<<24 - 1

// eamEntry is a checked Mapping, as NewTable works on it.
type eamEntry struct {
	hi, lo     uint64 // IPv6 prefix, big-endian halves
	v4         uint32 // IPv4 prefix
	len4, len6 uint8
}

// eamHash32 and eamHash128 index the tables with the top bits of a
// multiply, which depend on every key bit. eamHash32 is multiplicative
// (Fibonacci) hashing: it spreads sequential addresses perfectly and random
// ones as well as any hash. eamHash128 folds the key with one multiply and
// mixes it with a full 64x64->128 one, whose halves are XORed. A plain
// multiply of the fold spread a million datacenter addresses (hosts
// numbered in rack /64s) worse than random keys, 71% of them in their home
// slot against 76%; this one spreads every kind of key tried like random
// ones. (The plain multiply did better on a thousand such keys, 93% at home,
// by the luck of how the few racks fell, not by design.)
func eamHash32(k uint32) uint64 { return uint64(k) * 0x9e3779b97f4a7c15 }

func eamHash128(hi, lo uint64) uint64 {
	h, l := bits.Mul64(hi^lo*0xff51afd7ed558ccd, 0x9e3779b97f4a7c15)
	return h ^ l
}

// NewTable checks ms and builds the table. NewTable(nil) is a valid empty
// table. ms is not retained.
//
// It refuses, listing every problem in a *TableError: prefixes of the wrong
// family (an IPv4-mapped ::ffff: prefix is not IPv6), host bits set, an IPv6
// suffix too short to carry the IPv4 suffix, a /0 on either side, and any
// duplicate or overlap on either side.
//
// RFC 7757 forbids neither overlaps (it resolves them by longest match) nor
// /0. But an overlap in a table of explicit mappings is far more often a
// typo than a design, and it makes the shorter entry one-way for the
// addresses the longer one takes. A /0 would overlap every other entry on
// its side and take every address of its family from the pseudo prefix: an
// IPv6 client reaching 192.0.2.1 through the pseudo prefix would get its
// replies from the /0's IPv6 prefix instead.
func NewTable(ms []Mapping) (*Table, error) {
	return NewTableFunc(len(ms), func(i int) Mapping { return ms[i] })
}

// NewTableFunc is NewTable of the n mappings at(0) ... at(n-1), for an
// owner that keeps them in a form of its own (the etcd source's compact
// records): a million mappings are not copied into a []Mapping (64 MB)
// on the way. at may be called more than once for an index.
func NewTableFunc(n int, at func(int) Mapping) (*Table, error) {
	if n > maxEntries {
		return nil, &TableError{Problems: []MappingError{{
			Index: maxEntries, Other: -1,
			Msg: fmt.Sprintf("too many mappings (%d); at most %d are accepted", n, maxEntries),
		}}}
	}
	var probs []eamProblem
	ents := make([]eamEntry, n)
	ok := make([]bool, n)
	for i := range n {
		m := at(i)
		n := len(probs)
		probs = checkSide(probs, i, m.IPv4, false)
		probs = checkSide(probs, i, m.IPv6, true)
		if len(probs) > n {
			continue
		}
		l4, l6 := m.IPv4.Bits(), m.IPv6.Bits()
		if 128-l6 < 32-l4 {
			probs = append(probs, eamProblem{int32(i), -1, probSuffix})
			continue
		}
		ents[i] = entryOf(m)
		ok[i] = true
	}
	probs = checkOverlaps(probs, ents, ok, false)
	probs = checkOverlaps(probs, ents, ok, true)
	if len(probs) > 0 {
		return nil, tableError(at, probs)
	}
	return build(ents), nil
}

// entryOf converts a mapping that passed the checks.
func entryOf(m Mapping) eamEntry {
	a4, a6 := m.IPv4.Addr().As4(), m.IPv6.Addr().As16()
	return eamEntry{
		hi:   binary.BigEndian.Uint64(a6[:8]),
		lo:   binary.BigEndian.Uint64(a6[8:]),
		v4:   binary.BigEndian.Uint32(a4[:]),
		len4: uint8(m.IPv4.Bits()),
		len6: uint8(m.IPv6.Bits()),
	}
}

// build builds the table of ents, which passed NewTable's checks: entry i
// gets id i.
func build(ents []eamEntry) *Table {
	t := &Table{ids: make([]uint64, len(ents)), n: len(ents)}
	var n4 [33]int
	var n6 [129]int
	for i := range ents {
		e := &ents[i]
		n4[e.len4]++
		n6[e.len6]++
		t.ids[i] = idKey(e.v4, e.len4)
	}
	var at4 [33]int
	var at6 [129]int
	for l := 32; l >= 0; l-- {
		if n4[l] > 0 {
			at4[l] = len(t.by4)
			t.by4 = append(t.by4, eamIndex4{mask: ^uint32(0) << (32 - l), len: uint8(l), n: n4[l]})
		}
	}
	for l := 128; l >= 0; l-- {
		if n6[l] > 0 {
			at6[l] = len(t.by6)
			mhi, mlo := eamMask128(l)
			t.by6 = append(t.by6, eamIndex6{mhi: mhi, mlo: mlo, len: uint8(l), n: n6[l]})
		}
	}
	// Each page is sized by its own count: one pass counts, one places.
	counts4, counts6 := make([][]int, len(t.by4)), make([][]int, len(t.by6))
	for k := range t.by4 {
		counts4[k] = make([]int, 1<<pageDepth(t.by4[k].n))
	}
	for k := range t.by6 {
		counts6[k] = make([]int, 1<<pageDepth(t.by6[k].n))
	}
	for i := range ents {
		e := &ents[i]
		k4, k6 := at4[e.len4], at6[e.len6]
		counts4[k4][pageOf(eamHash32(e.v4), pageDepth(t.by4[k4].n))]++
		counts6[k6][pageOf(eamHash128(e.hi, e.lo), pageDepth(t.by6[k6].n))]++
	}
	for k := range t.by4 {
		d := pageDepth(t.by4[k].n)
		pages := make([]eamPage4, len(counts4[k]))
		for j, c := range counts4[k] {
			pages[j] = newPage4(d, c)
		}
		t.by4[k].setPages(d, pages)
	}
	for k := range t.by6 {
		d := pageDepth(t.by6[k].n)
		pages := make([]eamPage6, len(counts6[k]))
		for j, c := range counts6[k] {
			pages[j] = newPage6(d, c)
		}
		t.by6[k].setPages(d, pages)
	}
	// The checks above leave no key twice in an index.
	for i := range ents {
		e := &ents[i]
		t.by4[at4[e.len4]].insert(e, int32(i))
		t.by6[at6[e.len6]].insert(e, int32(i))
	}
	t.f4 = newFilter4(len(ents), func(yield func(uint32, uint8) bool) {
		for i := range ents {
			if !yield(ents[i].v4, ents[i].len4) {
				return
			}
		}
	})
	t.f6 = newFilter6(len(ents), func(yield func(uint64, uint8) bool) {
		for i := range ents {
			if !yield(ents[i].hi, ents[i].len6) {
				return
			}
		}
	})
	return t
}

// newPage4 returns an empty page of depth d for n entries; with none, the
// shared empty page.
func newPage4(d uint8, n int) eamPage4 {
	if n == 0 {
		return eamPage4{skip: d, shift: 64 - 3, slots: noSlots4[:]}
	}
	shift, slots := eamSize(n)
	return eamPage4{skip: d, shift: shift, slots: make([]eamSlot4, slots)}
}

func newPage6(d uint8, n int) eamPage6 {
	if n == 0 {
		return eamPage6{skip: d, shift: 64 - 3, slots: noSlots6[:]}
	}
	shift, slots := eamSize(n)
	return eamPage6{skip: d, shift: shift, slots: make([]eamSlot6, slots)}
}

// noSlots4 and noSlots6 back every page without entries: a lookup there
// reads an empty slot and misses. Nothing is ever inserted into them.
var (
	noSlots4 [8]eamSlot4
	noSlots6 [8]eamSlot6
)

// setPages makes pages, all of depth d (1<<d of them), the index's pages.
// An index has at least two places, so that dshift stays below 64 (a
// lookup masks it, and a shift by 64 would need a branch): the single page
// of depth 0 takes both.
func (x *eamIndex4) setPages(d uint8, pages []eamPage4) {
	if d == 0 {
		pages = []eamPage4{pages[0], pages[0]}
		d = 1
	}
	x.dshift, x.pages = 64-d, pages
}

func (x *eamIndex6) setPages(d uint8, pages []eamPage6) {
	if d == 0 {
		pages = []eamPage6{pages[0], pages[0]}
		d = 1
	}
	x.dshift, x.pages = 64-d, pages
}

// eamSize returns the hash shift and slot count for n keys, a power of two.
// The load factor is at most one half, which keeps the probing runs short
// and a million entries within budget, and at most one eighth while that
// takes no more than 1<<16 slots (1.5 MB): the share of keys away from
// home, whose lookups mispredict (see maxEntries), falls from a quarter
// to 6%, and a thousand-entry lookup takes about half the time (9.6 ns
// down to 5.3 from IPv4, 11.6 to 6.9 from IPv6) for 300 KB more.
func eamSize(n int) (shift uint8, slots int) {
	b := max(bits.Len(uint(2*n-1)), min(bits.Len(uint(8*n-1)), 16))
	return uint8(64 - b), 1 << b
}

// insert places entry id, e, in the first empty slot from its home on. It
// writes the fields in place: a slot put together aside and copied in was
// read back with a store-forwarding stall, which made every insert wait
// for the last one's cache miss and the build of a million entries take
// twice as long.
func (x *eamIndex4) insert(e *eamEntry, id int32) {
	h := eamHash32(e.v4)
	x.pages[h>>(x.dshift&63)].insert(h, e, id)
}

// insert places e, whose key has hash h, in the page.
func (p *eamPage4) insert(h uint64, e *eamEntry, id int32) {
	j, m := h<<(p.skip&63)>>(p.shift&63), uint64(len(p.slots)-1)
	for p.slots[j].meta != 0 {
		j = (j + 1) & m
	}
	s := &p.slots[j]
	s.key, s.meta = e.v4, uint32(e.len6)<<24|uint32(id+1)
	binary.BigEndian.PutUint64(s.v6[:8], e.hi)
	binary.BigEndian.PutUint64(s.v6[8:], e.lo)
}

func (x *eamIndex6) insert(e *eamEntry, id int32) {
	h := eamHash128(e.hi, e.lo)
	x.pages[h>>(x.dshift&63)].insert(h, e, id)
}

func (p *eamPage6) insert(h uint64, e *eamEntry, id int32) {
	j, m := h<<(p.skip&63)>>(p.shift&63), uint64(len(p.slots)-1)
	for p.slots[j].meta != 0 {
		j = (j + 1) & m
	}
	s := &p.slots[j]
	s.hi, s.lo, s.meta = e.hi, e.lo, uint32(e.len4)<<24|uint32(id+1)
	binary.BigEndian.PutUint32(s.v4[:], e.v4)
}

// find returns the slot of key, or nil.
func (x *eamIndex4) find(key uint32) *eamSlot4 {
	h := eamHash32(key)
	p := &x.pages[h>>(x.dshift&63)]
	j, m := h<<(p.skip&63)>>(p.shift&63), uint64(len(p.slots)-1)
	for {
		s := &p.slots[j]
		if s.key == key && s.meta != 0 {
			return s
		}
		if s.meta == 0 {
			return nil
		}
		j = (j + 1) & m
	}
}

// find returns the slot of the key hi, lo, or nil; h is its hash, taken
// by the caller.
func (x *eamIndex6) find(h, hi, lo uint64) *eamSlot6 {
	p := &x.pages[h>>(x.dshift&63)]
	j, m := h<<(p.skip&63)>>(p.shift&63), uint64(len(p.slots)-1)
	for {
		s := &p.slots[j]
		if s.hi == hi && s.lo == lo && s.meta != 0 {
			return s
		}
		if s.meta == 0 {
			return nil
		}
		j = (j + 1) & m
	}
}

// eamMask128 returns the netmask of an IPv6 prefix length as two halves.
func eamMask128(l int) (hi, lo uint64) {
	if l <= 64 {
		return ^uint64(0) << (64 - l), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - l)
}

// baseMapping returns the entry of the indexes whose id is id, found by
// the IPv4 prefix ids records; false if there is none (an id given to a
// mapping that a table on its way through Rebuild has not placed yet).
func (t *Table) baseMapping(id int) (Mapping, bool) {
	k := t.ids[id]
	if k == 0 {
		return Mapping{}, false
	}
	key, l := uint32(k>>8), uint8(k)
	for i := range t.by4 {
		x := &t.by4[i]
		if x.len != l {
			continue
		}
		s := x.find(key)
		if s == nil || int(s.meta&(1<<24-1))-1 != id {
			return Mapping{}, false
		}
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], key)
		return Mapping{
			IPv4: netip.PrefixFrom(netip.AddrFrom4(a4), int(l)),
			IPv6: netip.PrefixFrom(netip.AddrFrom16(s.v6), int(s.meta>>24)),
		}, true
	}
	return Mapping{}, false
}

// Map4 translates an IPv4 address through the table: the IPv6 prefix's
// bits, then the IPv4 address's suffix bits (the bits after the IPv4 prefix
// length) placed at the top of the IPv6 suffix, the remaining low bits zero
// (RFC 7757 §3.2, §3.3). entry is the index of the matching Mapping.
//
// The hit path is kept short on purpose: with independent lookups in
// flight (a batch of packets), the CPU overlaps their cache misses only as
// far as its reorder window reaches, so at a million entries every
// instruction saved is time saved, not only at a thousand.
func (t *Table) Map4(a [4]byte) (v6 [16]byte, entry int32, ok bool) {
	if t.ov != nil { // changed since NewTable: one predictable branch (delta.go)
		return t.ov.map4(a)
	}
	k := binary.BigEndian.Uint32(a[:])
	if !t.f4.mayCover16(k) {
		return v6, -1, false
	}
	for i := range t.by4 {
		x := &t.by4[i]
		key := k & x.mask
		s := x.find(key)
		if s == nil {
			if i == 0 && !t.f4.mayCover24(k) {
				break
			}
			continue
		}
		v6 = s.v6
		if suf := uint64(k &^ key); suf != 0 {
			// The IPv4 suffix goes right after the IPv6 prefix, that is
			// sh = 128 - len6 - (32 - len4) bits above the bottom: in lo,
			// in hi, or across both. Go shifts by 64 or more give zero,
			// so no branch is needed. A /32 has no suffix and skips this.
			sh := 96 - uint(s.meta>>24) + uint(x.len)
			hi := binary.BigEndian.Uint64(v6[:8]) | suf<<(sh-64) | suf>>(64-sh)
			lo := binary.BigEndian.Uint64(v6[8:]) | suf<<sh
			binary.BigEndian.PutUint64(v6[:8], hi)
			binary.BigEndian.PutUint64(v6[8:], lo)
		}
		return v6, int32(s.meta&(1<<24-1)) - 1, true
	}
	return v6, -1, false
}

// Map6 is the reverse: an IPv6 address inside an entry's IPv6 prefix gives
// the IPv4 prefix plus the top IPv4-suffix-length bits of the IPv6 suffix.
// Addresses in the IPv6 prefix whose remaining low bits (below those
// carried) are not zero still match (RFC 7757 §3.3: the IPv6 suffix bits
// beyond the IPv4 suffix are ignored).
func (t *Table) Map6(a [16]byte) (v4 [4]byte, entry int32, ok bool) {
	if t.ov != nil {
		return t.ov.map6(a)
	}
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	if !t.f6.mayCover(hi) {
		return v4, -1, false
	}
	for i := range t.by6 {
		x := &t.by6[i]
		khi, klo := hi&x.mhi, lo&x.mlo
		s := x.find(eamHash128(khi, klo), khi, klo)
		if s == nil {
			continue
		}
		v4 = s.v4
		if len4 := uint(s.meta >> 24); len4 < 32 { // not 0: /0 is refused
			sh := 96 - uint(x.len) + len4
			suf := uint32(lo>>sh | hi<<(64-sh) | hi>>(sh-64))
			binary.BigEndian.PutUint32(v4[:], binary.BigEndian.Uint32(v4[:])|suf&(math.MaxUint32>>len4))
		}
		return v4, int32(s.meta&(1<<24-1)) - 1, true
	}
	return v4, -1, false
}

// filter4 answers whether some IPv4 prefix of the table may contain an
// address: two bitmaps, of the /16s and of the /24s that some prefix
// covers at least in part. It has no false negatives, only false
// positives, which then cost the probes a miss costs without it.
//
// The /16 bitmap (8 KiB) stays in L1 and, checked before any probe, turns
// away almost every client of a datacenter's table, which covers a few
// /16s of the 57,000 in use. The /24 bitmap sharpens that for addresses
// inside a covered /16. It is checked only once the longest length has
// missed, before the others are probed: on the path of every hit it cost
// 0.8 ns at a thousand entries and 2.3 ns at a million (where it is out of
// L1), for nothing. It is indexed by a multiplicative hash of the /24 and
// has 32 bits per /24 covered (at most 3% false positives; fewer on blocks
// of neighbouring /24s, which the hash spreads evenly), at most 2^24 bits
// (2 MiB); at that size the hash is a bijection, and the bitmap exact.
type filter4 struct {
	by16  *[1 << 16 / 64]uint64 // bit x: a prefix covers part of /16 x
	by24  []uint64              // bit (x * filterMul32 mod 2^24) >> (shift-8): a prefix covers part of /24 x
	shift uint8                 // 32 - log2 of the number of bits of by24
}

// filterMul32 and filterMul64 are odd (so the 24-bit multiply is a
// bijection) and golden-ratio (so the top bits spread sequential keys).
const (
	filterMul32 = 0x9e3779b1
	filterMul64 = 0x9e3779b97f4a7c15
)

// noneCovered backs the filters of an empty table: they turn away every
// address, with no special case on the lookup path.
var noneCovered [1 << 16 / 64]uint64

func (f *filter4) mayCover16(k uint32) bool { return f.by16[k>>22]>>(k>>16&63)&1 != 0 }

func (f *filter4) mayCover24(k uint32) bool {
	// (k &^ 0xff) * filterMul32 is (k>>8) * filterMul32 mod 2^24 in the
	// top 24 bits: the hash of the /24, its top bits kept. The shift is
	// at most 23; the mask tells the compiler so.
	h := (k &^ 0xff) * filterMul32 >> (f.shift & 31)
	return f.by24[h>>6]>>(h&63)&1 != 0
}

// newFilter4 returns the filter of n prefixes, which each yields (address
// and length).
func newFilter4(n int, each iter.Seq2[uint32, uint8]) filter4 {
	if n == 0 {
		return filter4{by16: &noneCovered, by24: noneCovered[:], shift: 16}
	}
	f := filter4{by16: new([1 << 16 / 64]uint64)}
	if n <= smallFilter {
		return smallFilter4(f, each)
	}
	// First at full size, which counts the /24s covered (NewTable refuses
	// overlaps, so the loops set at most 2^24 + n bits); then folded down
	// to the size that count calls for.
	full := make([]uint64, 1<<24/64)
	for v4, len4 := range each {
		for x, n := v4>>8, 1<<(24-min(len4, 24)); n > 0; x, n = x+1, n-1 {
			h := x * filterMul32 & (1<<24 - 1)
			full[h>>6] |= 1 << (h & 63)
		}
		for x, n := v4>>16, 1<<(16-min(len4, 16)); n > 0; x, n = x+1, n-1 {
			f.by16[x>>6] |= 1 << (x & 63)
		}
	}
	b := filterBits(full, 24)
	f.shift = uint8(32 - b)
	f.by24 = filterFold(full, 24-b)
	return f
}

// smallFilter is the most entries for which newFilter4 sizes the /24
// bitmap from their prefix lengths rather than from a full-size count:
// the small table of a running table's added mappings (delta.go) is built
// anew at every change, and clearing and counting the 2 MiB of the
// full-size bitmap took most of that time.
const smallFilter = 4096

// smallFilter4 completes f for a few prefixes: the bitmap is sized for the
// /24s they may cover (at most that count, overlaps being refused) and
// set directly at that size, as filterFold would have set it.
func smallFilter4(f filter4, each iter.Seq2[uint32, uint8]) filter4 {
	n := 0
	for _, len4 := range each {
		n += 1 << (24 - min(len4, 24))
	}
	b := min(max(bits.Len(uint(32*min(n, 1<<24)-1)), 9), 24)
	f.shift = uint8(32 - b)
	f.by24 = make([]uint64, max(1<<b/64, 1))
	for v4, len4 := range each {
		for x, n := v4>>8, 1<<(24-min(len4, 24)); n > 0; x, n = x+1, n-1 {
			h := (x * filterMul32 & (1<<24 - 1)) >> (24 - b)
			f.by24[h>>6] |= 1 << (h & 63)
		}
		for x, n := v4>>16, 1<<(16-min(len4, 16)); n > 0; x, n = x+1, n-1 {
			f.by16[x>>6] |= 1 << (x & 63)
		}
	}
	return f
}

// everyCovered backs the filters of a table on its way through Rebuild:
// they let every address through to the probes (the old pages and the
// new ones are both in it, and the filters of neither cover the other).
var everyCovered = func() *[1 << 16 / 64]uint64 {
	var a [1 << 16 / 64]uint64
	for i := range a {
		a[i] = ^uint64(0)
	}
	return &a
}()

func coverAll4() filter4 { return filter4{by16: everyCovered, by24: everyCovered[:], shift: 16} }
func coverAll6() filter6 { return filter6{bits: everyCovered[:], shift: 64 - 16} }

// filter6 is filter4's counterpart for Map6: a bitmap of the blocks of
// length L that some IPv6 prefix covers in part, L being the shortest IPv6
// prefix length present, at most 64 (every prefix then lies in one block).
// A datacenter maps its servers out of a few hundred or thousand /64s, and
// the IPv6 destinations that miss are clients under the pseudo prefix, in a
// /64 of their own. A table with a short IPv6 prefix gets a coarser, less
// effective filter, never a wrong one.
type filter6 struct {
	mask  uint64   // netmask of L, in the top half of the address
	shift uint8    // 64 - log2 of the number of bits
	bits  []uint64 // bit (hi & mask) * filterMul64 >> shift: a prefix covers part of the block
}

func (f *filter6) mayCover(hi uint64) bool {
	h := (hi & f.mask) * filterMul64 >> (f.shift & 63)
	return f.bits[h>>6]>>(h&63)&1 != 0
}

// newFilter6 returns the filter of n prefixes, which each yields (the top
// half of the address and the length).
func newFilter6(n int, each iter.Seq2[uint64, uint8]) filter6 {
	if n == 0 {
		return filter6{bits: noneCovered[:], shift: 64 - 16}
	}
	l := uint8(64)
	for _, len6 := range each {
		l = min(l, len6)
	}
	f := filter6{mask: ^uint64(0) << (64 - l)}
	// Sized first for every entry in a block of its own, then folded down
	// to the blocks actually covered: dropping low bits of a top-bits hash
	// is the hash of a smaller bitmap.
	b0 := min(max(bits.Len(uint(32*n-1)), 9), 24)
	full := make([]uint64, 1<<b0/64)
	for hi := range each {
		h := (hi & f.mask) * filterMul64 >> (64 - b0)
		full[h>>6] |= 1 << (h & 63)
	}
	b := filterBits(full, b0)
	f.shift = uint8(64 - b)
	f.bits = filterFold(full, b0-b)
	return f
}

// filterBits returns log2 of the size of a filter for the bits set in full
// (of 1<<b0 bits): 32 bits per bit set, at least 512, at most 1<<b0.
func filterBits(full []uint64, b0 int) int {
	n := 0
	for _, w := range full {
		n += bits.OnesCount64(w)
	}
	return min(max(bits.Len(uint(32*n-1)), 9), b0)
}

// filterFold returns full with each run of 1<<by bits ORed into one bit.
func filterFold(full []uint64, by int) []uint64 {
	if by == 0 {
		return full
	}
	f := make([]uint64, len(full)>>by)
	for w, x := range full {
		for ; x != 0; x &= x - 1 {
			i := (w*64 + bits.TrailingZeros64(x)) >> by
			f[i>>6] |= 1 << (i & 63)
		}
	}
	return f
}

// Problems are recorded small and turned into messages only for the ones
// reported: a million bad lines must not cost a million Sprintfs.
type eamProblem struct {
	index, other int32
	kind         uint8
}

const (
	probMissing4 = iota // IPv4 side is the zero Prefix
	probMissing6
	probNot4    // IPv4 side is not an IPv4 prefix
	probNot6    // IPv6 side is not an IPv6 prefix
	probMapped6 // IPv6 side is an IPv4-mapped prefix
	probHost4   // host bits set
	probHost6
	probAll4 // /0
	probAll6
	probSuffix // IPv6 suffix shorter than the IPv4 suffix
	probDup4   // same prefix as entry other
	probDup6
	probDup // same pair of prefixes as entry other
	probOver4
	probOver6
)

// checkSide checks the prefix p of entry i.
func checkSide(probs []eamProblem, i int, p netip.Prefix, six bool) []eamProblem {
	k := 0 // offset from the IPv4 kind to the IPv6 one
	if six {
		k = 1
	}
	switch {
	case !p.IsValid():
		return append(probs, eamProblem{int32(i), -1, uint8(probMissing4 + k)})
	case !six && !p.Addr().Is4():
		return append(probs, eamProblem{int32(i), -1, probNot4})
	case six && !p.Addr().Is6():
		return append(probs, eamProblem{int32(i), -1, probNot6})
	case six && p.Addr().Is4In6():
		return append(probs, eamProblem{int32(i), -1, probMapped6})
	case p.Masked() != p:
		return append(probs, eamProblem{int32(i), -1, uint8(probHost4 + k)})
	case p.Bits() == 0:
		return append(probs, eamProblem{int32(i), -1, uint8(probAll4 + k)})
	}
	return probs
}

// checkOverlaps finds the duplicates and overlaps on one side in O(n log n):
// sorted by first address, then by length, a prefix follows every prefix
// that contains it, and since two prefixes either nest or are disjoint, a
// stack of the prefixes still open holds the nearest container on top. Each
// overlap is reported once, on the later entry of the pair, against the
// nearest container.
func checkOverlaps(probs []eamProblem, ents []eamEntry, ok []bool, six bool) []eamProblem {
	type pfx struct {
		hi, lo uint64 // first address; IPv4 in the top bits of hi
		bits   uint8
		idx    int32
	}
	ps := make([]pfx, 0, len(ents))
	for i := range ents {
		if !ok[i] {
			continue
		}
		e := &ents[i]
		if six {
			ps = append(ps, pfx{e.hi, e.lo, e.len6, int32(i)})
		} else {
			ps = append(ps, pfx{uint64(e.v4) << 32, 0, e.len4, int32(i)})
		}
	}
	slices.SortFunc(ps, func(a, b pfx) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		if c := cmp.Compare(a.bits, b.bits); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	type open struct {
		ehi, elo uint64 // last address
		idx      int32
	}
	var stack []open
	for _, p := range ps {
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			if s.ehi > p.hi || s.ehi == p.hi && s.elo >= p.lo {
				break
			}
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			o := stack[len(stack)-1].idx
			i, j := max(o, p.idx), min(o, p.idx)
			a, b := &ents[i], &ents[j]
			switch {
			case a.v4 == b.v4 && a.len4 == b.len4 && a.hi == b.hi && a.lo == b.lo && a.len6 == b.len6:
				if !six { // reported once, not once per side
					probs = append(probs, eamProblem{i, j, probDup})
				}
			case six && a.hi == b.hi && a.lo == b.lo && a.len6 == b.len6:
				probs = append(probs, eamProblem{i, j, probDup6})
			case !six && a.v4 == b.v4 && a.len4 == b.len4:
				probs = append(probs, eamProblem{i, j, probDup4})
			case six:
				probs = append(probs, eamProblem{i, j, probOver6})
			default:
				probs = append(probs, eamProblem{i, j, probOver4})
			}
		}
		mhi, mlo := eamMask128(int(p.bits))
		stack = append(stack, open{p.hi | ^mhi, p.lo | ^mlo, p.idx})
	}
	return probs
}

// tableError sorts the problems into entry order and writes the messages
// of the first maxProblems.
func tableError(at func(int) Mapping, probs []eamProblem) *TableError {
	slices.SortStableFunc(probs, func(a, b eamProblem) int {
		if c := cmp.Compare(a.index, b.index); c != 0 {
			return c
		}
		return cmp.Compare(a.other, b.other)
	})
	e := &TableError{}
	if len(probs) > maxProblems {
		e.More = len(probs) - maxProblems
		probs = probs[:maxProblems]
	}
	for _, p := range probs {
		m := at(int(p.index))
		var o Mapping
		if p.other >= 0 {
			o = at(int(p.other))
		}
		var msg string
		switch p.kind {
		case probMissing4:
			msg = "IPv4 prefix missing"
		case probMissing6:
			msg = "IPv6 prefix missing"
		case probNot4:
			msg = fmt.Sprintf("IPv4 side %s is not an IPv4 prefix", m.IPv4)
		case probNot6:
			msg = fmt.Sprintf("IPv6 side %s is not an IPv6 prefix", m.IPv6)
		case probMapped6:
			msg = fmt.Sprintf("IPv6 side %s is an IPv4-mapped prefix, not an IPv6 one", m.IPv6)
		case probHost4:
			msg = fmt.Sprintf("%s has host bits set; the prefix is %s", m.IPv4, m.IPv4.Masked())
		case probHost6:
			msg = fmt.Sprintf("%s has host bits set; the prefix is %s", m.IPv6, m.IPv6.Masked())
		case probAll4:
			msg = fmt.Sprintf("%s would map every IPv4 address; map specific prefixes and leave the rest to the pseudo prefix", m.IPv4)
		case probAll6:
			msg = fmt.Sprintf("%s would map every IPv6 address; map specific prefixes and leave the rest to the pseudo prefix", m.IPv6)
		case probSuffix:
			n := 32 - m.IPv4.Bits()
			msg = fmt.Sprintf("%s has %d suffix bits, more than the %d of %s; use an IPv6 prefix of /%d or shorter (RFC 7757 §3.2)",
				m.IPv4, n, 128-m.IPv6.Bits(), m.IPv6, 128-n)
		case probDup:
			msg = fmt.Sprintf("duplicates mapping %d (%s, %s)", p.other, m.IPv4, m.IPv6)
		case probDup4:
			msg = fmt.Sprintf("%s duplicates mapping %d", m.IPv4, p.other)
		case probDup6:
			msg = fmt.Sprintf("%s duplicates mapping %d", m.IPv6, p.other)
		case probOver4:
			msg = fmt.Sprintf("%s overlaps mapping %d (%s)", m.IPv4, p.other, o.IPv4)
		case probOver6:
			msg = fmt.Sprintf("%s overlaps mapping %d (%s)", m.IPv6, p.other, o.IPv6)
		}
		e.Problems = append(e.Problems, MappingError{Index: int(p.index), Other: int(p.other), Msg: msg})
	}
	return e
}
