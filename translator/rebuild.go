package translator

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
)

// Compact returns a table of the same entries built anew, without an
// overlay and without unused ids: the ids are given anew, in All's order.
// It takes as long as NewTable and, while it runs, the memory of a second
// table; Rebuild(nil, ...) folds the overlay in and keeps the ids.
func (t *Table) Compact() (*Table, error) {
	ents := make([]eamEntry, 0, t.Len())
	for _, m := range t.All() {
		ents = append(ents, entryOf(m))
	}
	return build(ents), nil
}

// Rebuild returns the table with changes applied, its indexes built anew
// without an overlay: a batch of many changes (a bulk load through etcd)
// costs one pass over the whole table instead of an overlay that each
// later change would rebuild.
//
// The entries keep their ids (a deleted one's id is not given again, an
// addition gets the next unused one, in the order of changes), so the data
// plane's per-mapping counters stay where they are. The table is built a
// page at a time (see pageDepth), a sixteenth of each index's hash range
// per step; when step is not nil, it is given after each step but the last
// a table made of the new pages built so far and the old ones for the
// rest (with t's overlay), which the caller makes the one in use: each old
// page is then referenced by nothing once the new ones of its range are,
// and the memory of the whole is never held twice (old and new: 192 MB at
// a million entries). Such a table translates as t with part of the
// changes applied; it lists (All, Mapping) the entries of its new pages
// and of its old ones kept, counts (Len) those of the result, and must
// not be changed (Apply, Rebuild): only the result is.
//
// Like Apply it is all or none, each refusal a MappingError naming the
// change and the entry in the way, and a deletion must name an entry at
// its turn; a refused batch gives step nothing. Unlike Apply it checks the
// overlaps of the result, not of each step: an addition that overlaps an
// entry a later change of the same batch deletes is accepted (Apply
// refuses it). A source that checked its changes one by one (etcdsource)
// sends nothing either refuses.
func (t *Table) Rebuild(changes []MappingChange, step func(*Table)) (*Table, error) {
	plan, err := t.PlanRebuild(changes)
	if err != nil {
		return nil, err
	}
	return plan.Build(step), nil
}

// RebuildPlan is a Rebuild checked and planned, its pages not built yet:
// its owner can admit the result (Len) before any table on the way is
// given out.
type RebuildPlan struct {
	r *rebuild // nil once built
	n int
}

// PlanRebuild checks changes as Rebuild does and plans it. It keeps no
// reference to t, only to its pages: once the table in use is no longer
// t, the pages are the plan's alone, and Build drops each as the new
// pages of its range are built.
func (t *Table) PlanRebuild(changes []MappingChange) (*RebuildPlan, error) {
	r, err := t.planRebuild(changes)
	if err != nil {
		return nil, err
	}
	return &RebuildPlan{r, r.n}, nil
}

// Len returns the number of entries of the result.
func (p *RebuildPlan) Len() int { return p.n }

// Build builds the result, giving step each table on the way (see
// Rebuild). It is called once.
func (p *RebuildPlan) Build(step func(*Table)) *Table {
	r := p.r
	p.r = nil
	return r.run(step)
}

// rebuildSteps is the number of steps of a Rebuild with a step function:
// a sixteenth of a million-entry table is 6 MB of pages (two per index).
const rebuildSteps = 16

// idEntry is an entry with its id, as a page is built from.
type idEntry struct {
	eamEntry
	id int32
}

// rebuild is a Rebuild checked and planned, its pages not yet built.
type rebuild struct {
	ids []uint64 // the result's
	n   int      // the result's entries
	ov  *overlay // t's overlay, served by the tables on the way; nil if none
	by4 []rebuild4
	by6 []rebuild6
	buf []idEntry // the entries of the page being built
}

// rebuild4 is one IPv4 prefix length of the old table or the new.
type rebuild4 struct {
	mask  uint32
	len   uint8
	old   eamIndex4  // t's index (a copy of its pages array, whose pages are dropped as they are replaced); no pages if t has none of this length
	freed int        // old.pages[:freed] dropped
	n     int        // entries of the result
	depth uint8      // of the result's pages
	pages []eamPage4 // the result's, 1<<depth; pages[:built] built
	built int
	adds  []idEntry // the entries added to this length, by hash
	next  int       // adds[:next] placed
}

type rebuild6 struct {
	mhi, mlo uint64
	len      uint8
	old      eamIndex6
	freed    int
	n        int
	depth    uint8
	pages    []eamPage6
	built    int
	adds     []idEntry
	next     int
}

// planRebuild checks changes against t and plans the rebuild: the ids of
// the result and, per prefix length, its count and additions. It reads t;
// what it keeps of t is the arrays of page headers, copied.
func (t *Table) planRebuild(changes []MappingChange) (*rebuild, error) {
	var probs []MappingError
	bad := func(i, other int, format string, args ...any) {
		if len(probs) < maxProblems {
			probs = append(probs, MappingError{Index: i, Other: other, Msg: fmt.Sprintf(format, args...)})
		}
	}
	span := t.Span()
	gone := make([]uint64, (span+63)/64) // ids of t deleted by changes
	// The additions, as indexes in changes; -1: withdrawn by a later
	// change. Indexes, not copies: a bulk batch is 100,000 changes.
	var adds []int
	// The additions a later deletion may withdraw, by mapping (indexes in
	// adds): only those of the mappings the batch deletes are kept track
	// of, so a bulk load of additions builds no map of them.
	deleted := map[Mapping]bool{}
	nadds := 0
	for _, c := range changes {
		if c.Op == Del {
			deleted[c.Mapping] = true
		} else {
			nadds++
		}
	}
	adds = make([]int, 0, nadds)
	pending := map[Mapping][]int{}
	for i, c := range changes {
		m := c.Mapping
		if c.Op == Del {
			if ks := pending[m]; len(ks) > 0 {
				adds[ks[len(ks)-1]] = -1 // withdrawn before it was built
				pending[m] = ks[:len(ks)-1]
				continue
			}
			id, ok := t.exact(m)
			if !ok || gone[id>>6]>>(id&63)&1 != 0 {
				bad(i, -1, "no mapping %s %s to delete", m.IPv4, m.IPv6)
				continue
			}
			gone[id>>6] |= 1 << (id & 63)
			continue
		}
		if msg := checkMapping(m); msg != "" {
			bad(i, -1, "%s", msg)
			continue
		}
		if deleted[m] {
			pending[m] = append(pending[m], len(adds))
		}
		adds = append(adds, i)
	}
	if len(probs) > 0 {
		return nil, &TableError{Problems: probs}
	}

	// The entries kept never overlap each other (t refused that): only the
	// additions are checked, each against them (a lookup per length, as
	// Apply does) and against each other (NewTable's sort, on the
	// additions only). A million-entry table is not sorted again.
	isGone := func(id int) bool { return gone[id>>6]>>(id&63)&1 != 0 }
	kept := func(id int) bool {
		return !isGone(id) && (t.ov == nil || id >= len(t.ids) || !t.ov.isDead(int32(id)))
	}
	nadded := 0
	for _, i := range adds {
		if i >= 0 {
			nadded++
		}
	}
	added := make([]eamEntry, 0, nadded)
	addedAt := make([]int, 0, nadded) // addedAt[k] is the index in changes of added[k]
	for _, i := range adds {
		if i >= 0 {
			added = append(added, entryOf(changes[i].Mapping))
			addedAt = append(addedAt, i)
		}
	}
	if n := span + len(added); n > maxEntries {
		return nil, &TableError{Problems: []MappingError{{Index: addedAt[len(addedAt)-1], Other: -1,
			Msg: fmt.Sprintf("too many mappings; at most %d ids are given between compactions", maxEntries)}}}
	}
	for k := range added {
		if id, six, ok := t.keptConflict(&added[k], kept); ok {
			m, o := changes[addedAt[k]].Mapping, t.Mapping(id)
			bad(addedAt[k], id, "%s", conflictMsg(m, o, fmt.Sprintf("mapping %d", id), six))
		}
	}
	ok := make([]bool, len(added))
	for i := range ok {
		ok[i] = true
	}
	for _, p := range checkOverlaps(checkOverlaps(nil, added, ok, false), added, ok, true) {
		m, o := changes[addedAt[p.index]].Mapping, changes[addedAt[p.other]].Mapping
		six := p.kind == probDup6 || p.kind == probOver6
		bad(addedAt[p.index], -1, "%s", conflictMsg(m, o, fmt.Sprintf("change %d", addedAt[p.other]), six))
	}
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b MappingError) int { return cmp.Compare(a.Index, b.Index) })
		return nil, &TableError{Problems: probs}
	}

	// The result's ids: t's, less those deleted (by changes, or by t's
	// overlay), with the overlay's additions and then changes' added.
	r := &rebuild{ids: make([]uint64, span, span+len(added))}
	if t.ov != nil {
		ov := *t.ov
		ov.base = nil // t's base: every old page; the tables on the way get their own
		r.ov = &ov
	}
	copy(r.ids, t.ids)
	var n4 [33]int
	var n6 [129]int
	for i := range t.by4 {
		n4[t.by4[i].len] += t.by4[i].n
	}
	for i := range t.by6 {
		n6[t.by6[i].len] += t.by6[i].n
	}
	for id := range t.ids {
		if t.ids[id] == 0 || kept(id) {
			continue
		}
		m, _ := t.baseMapping(id)
		n4[m.IPv4.Bits()]--
		n6[m.IPv6.Bits()]--
		r.ids[id] = 0
	}
	nmore := len(added)
	if t.ov != nil {
		nmore += len(t.ov.ms)
	}
	more := make([]idEntry, 0, nmore) // the entries the indexes get
	if t.ov != nil {
		for k, m := range t.ov.ms {
			if id := t.ov.ids[k]; !isGone(int(id)) {
				more = append(more, idEntry{entryOf(m), id})
			}
		}
	}
	for i := range added {
		more = append(more, idEntry{added[i], int32(len(r.ids))})
		r.ids = append(r.ids, 0)
	}
	for _, e := range more {
		r.ids[e.id] = idKey(e.v4, e.len4)
		n4[e.len4]++
		n6[e.len6]++
	}

	// Per length, longest first: t's and the result's.
	old4 := map[uint8]*eamIndex4{}
	for i := range t.by4 {
		old4[t.by4[i].len] = &t.by4[i]
	}
	old6 := map[uint8]*eamIndex6{}
	for i := range t.by6 {
		old6[t.by6[i].len] = &t.by6[i]
	}
	for l := 32; l >= 0; l-- {
		o, had := old4[uint8(l)]
		if !had && n4[l] == 0 {
			continue
		}
		x := rebuild4{mask: ^uint32(0) << (32 - l), len: uint8(l), n: n4[l], depth: pageDepth(n4[l])}
		if had {
			x.old = *o
			x.old.pages = slices.Clone(o.pages)
		}
		x.pages = make([]eamPage4, 1<<x.depth)
		r.by4 = append(r.by4, x)
	}
	for l := 128; l >= 0; l-- {
		o, had := old6[uint8(l)]
		if !had && n6[l] == 0 {
			continue
		}
		mhi, mlo := eamMask128(l)
		x := rebuild6{mhi: mhi, mlo: mlo, len: uint8(l), n: n6[l], depth: pageDepth(n6[l])}
		if had {
			x.old = *o
			x.old.pages = slices.Clone(o.pages)
		}
		x.pages = make([]eamPage6, 1<<x.depth)
		r.by6 = append(r.by6, x)
	}
	// Each length's additions, in arrays of their exact size (more's
	// counts per length are n4 and n6's parts from more alone).
	var m4 [33]int
	var m6 [129]int
	for _, e := range more {
		m4[e.len4]++
		m6[e.len6]++
	}
	for i := range r.by4 {
		r.by4[i].adds = make([]idEntry, 0, m4[r.by4[i].len])
	}
	for i := range r.by6 {
		r.by6[i].adds = make([]idEntry, 0, m6[r.by6[i].len])
	}
	for _, e := range more {
		for i := range r.by4 {
			if r.by4[i].len == e.len4 {
				r.by4[i].adds = append(r.by4[i].adds, e)
			}
		}
		for i := range r.by6 {
			if r.by6[i].len == e.len6 {
				r.by6[i].adds = append(r.by6[i].adds, e)
			}
		}
	}
	for i := range r.by4 {
		slices.SortFunc(r.by4[i].adds, func(a, b idEntry) int { return cmp.Compare(eamHash32(a.v4), eamHash32(b.v4)) })
	}
	for i := range r.by6 {
		slices.SortFunc(r.by6[i].adds, func(a, b idEntry) int {
			return cmp.Compare(eamHash128(a.hi, a.lo), eamHash128(b.hi, b.lo))
		})
	}
	for _, k := range r.ids {
		if k != 0 {
			r.n++
		}
	}
	return r, nil
}

// run builds the result's pages, giving step the table of each step on the
// way, and returns the result.
func (r *rebuild) run(step func(*Table)) *Table {
	steps := 1
	if step != nil {
		steps = rebuildSteps
	}
	for s := range steps {
		built := false
		for i := range r.by4 {
			built = r.by4[i].buildStep(r, s, steps) || built
		}
		for i := range r.by6 {
			built = r.by6[i].buildStep(r, s, steps) || built
		}
		if built && s < steps-1 {
			step(r.onTheWay())
		}
	}
	return r.result()
}

// buildStep builds the pages of step s and drops the old pages whose range
// they cover; it reports whether it built any.
func (x *rebuild4) buildStep(r *rebuild, s, steps int) bool {
	from, to := pagesIn(x.depth, s, steps)
	for k := from; k < to; k++ {
		x.pages[k] = x.page(r, k)
	}
	x.built = to
	if x.old.pages != nil {
		// Old place e is covered once (e+1)/2^D <= built/2^depth.
		od := 64 - x.old.dshift
		for x.freed < len(x.old.pages) && (x.freed+1)<<x.depth <= x.built<<od {
			x.old.pages[x.freed] = eamPage4{}
			x.freed++
		}
	}
	return from < to
}

func (x *rebuild6) buildStep(r *rebuild, s, steps int) bool {
	from, to := pagesIn(x.depth, s, steps)
	for k := from; k < to; k++ {
		x.pages[k] = x.page(r, k)
	}
	x.built = to
	if x.old.pages != nil {
		od := 64 - x.old.dshift
		for x.freed < len(x.old.pages) && (x.freed+1)<<x.depth <= x.built<<od {
			x.old.pages[x.freed] = eamPage6{}
			x.freed++
		}
	}
	return from < to
}

// oldPlaces returns the places of the old index that hold the keys of the
// new page k of depth d, the old index having 1<<od places.
func oldPlaces(k int, d, od uint8) (from, to int) {
	if od >= d {
		return k << (od - d), (k + 1) << (od - d)
	}
	return k >> (d - od), k>>(d-od) + 1
}

// page builds the result's page k: the entries of the old pages kept, in
// its hash range, and the additions in it.
func (x *rebuild4) page(r *rebuild, k int) eamPage4 {
	buf := r.buf[:0]
	if x.old.pages != nil {
		from, to := oldPlaces(k, x.depth, 64-x.old.dshift)
		for e := from; e < to; e++ {
			p := &x.old.pages[e]
			if e > from && samePage4(p, &x.old.pages[e-1]) {
				continue
			}
			for j := range p.slots {
				s := &p.slots[j]
				if s.meta == 0 {
					continue
				}
				id := int32(s.meta&(1<<24-1)) - 1
				if r.ids[id] == 0 || pageOf(eamHash32(s.key), x.depth) != uint64(k) {
					continue
				}
				buf = append(buf, idEntry{eamEntry{
					hi: binary.BigEndian.Uint64(s.v6[:8]), lo: binary.BigEndian.Uint64(s.v6[8:]),
					v4: s.key, len4: x.len, len6: uint8(s.meta >> 24),
				}, id})
			}
		}
	}
	for ; x.next < len(x.adds) && pageOf(eamHash32(x.adds[x.next].v4), x.depth) == uint64(k); x.next++ {
		buf = append(buf, x.adds[x.next])
	}
	p := newPage4(x.depth, len(buf))
	for i := range buf {
		p.insert(eamHash32(buf[i].v4), &buf[i].eamEntry, buf[i].id)
	}
	r.buf = buf
	return p
}

func (x *rebuild6) page(r *rebuild, k int) eamPage6 {
	buf := r.buf[:0]
	if x.old.pages != nil {
		from, to := oldPlaces(k, x.depth, 64-x.old.dshift)
		for e := from; e < to; e++ {
			p := &x.old.pages[e]
			if e > from && samePage6(p, &x.old.pages[e-1]) {
				continue
			}
			for j := range p.slots {
				s := &p.slots[j]
				if s.meta == 0 {
					continue
				}
				id := int32(s.meta&(1<<24-1)) - 1
				if r.ids[id] == 0 || pageOf(eamHash128(s.hi, s.lo), x.depth) != uint64(k) {
					continue
				}
				buf = append(buf, idEntry{eamEntry{
					hi: s.hi, lo: s.lo, v4: binary.BigEndian.Uint32(s.v4[:]),
					len4: uint8(s.meta >> 24), len6: x.len,
				}, id})
			}
		}
	}
	for ; x.next < len(x.adds) && pageOf(eamHash128(x.adds[x.next].hi, x.adds[x.next].lo), x.depth) == uint64(k); x.next++ {
		buf = append(buf, x.adds[x.next])
	}
	p := newPage6(x.depth, len(buf))
	for i := range buf {
		p.insert(eamHash128(buf[i].hi, buf[i].lo), &buf[i].eamEntry, buf[i].id)
	}
	r.buf = buf
	return p
}

// onTheWay returns the table of the pages built so far and the old ones
// for the rest, with the old table's overlay: see Rebuild.
func (r *rebuild) onTheWay() *Table {
	base := &Table{ids: r.ids, n: r.n, f4: coverAll4(), f6: coverAll6()}
	for i := range r.by4 {
		base.by4 = append(base.by4, r.by4[i].mixed())
	}
	for i := range r.by6 {
		base.by6 = append(base.by6, r.by6[i].mixed())
	}
	if r.ov == nil {
		return base
	}
	// Lookups go to the pages first, then to the overlay's additions not
	// yet in them; Len counts the result's entries.
	ov := *r.ov
	ov.base = base
	ov.next = int32(len(r.ids))
	t := *base
	t.n = r.n + ov.ndead - len(ov.ms)
	t.ov = &ov
	return &t
}

// mixed returns the index on the way: the new pages built, the old ones
// for the rest of the hash range, at the depth of the finer of the two.
func (x *rebuild4) mixed() eamIndex4 {
	pages, dshift := mixPages(x.pages, x.depth, x.built, x.old.pages, x.old.dshift, newPage4(0, 0))
	return eamIndex4{mask: x.mask, len: x.len, dshift: dshift, n: x.n, pages: pages}
}

func (x *rebuild6) mixed() eamIndex6 {
	pages, dshift := mixPages(x.pages, x.depth, x.built, x.old.pages, x.old.dshift, newPage6(0, 0))
	return eamIndex6{mhi: x.mhi, mlo: x.mlo, len: x.len, dshift: dshift, n: x.n, pages: pages}
}

// mixPages is mixed's page array, and its dshift: the first built of the
// new pages (depth depth), then the old pages (at 64-oldDshift; nil: the
// length is new, and empty stands in), each repeated to the finer depth.
func mixPages[P any](pages []P, depth uint8, built int, old []P, oldDshift uint8, empty P) ([]P, uint8) {
	d := max(depth, 1)
	od := d
	if old != nil {
		od = 64 - oldDshift
	}
	top := max(d, od)
	out := make([]P, 1<<top)
	for e := range out {
		switch {
		case e>>(top-depth) < built:
			out[e] = pages[e>>(top-depth)]
		case old == nil:
			out[e] = empty
		default:
			out[e] = old[e>>(top-od)]
		}
	}
	return out, 64 - top
}

// result returns the rebuilt table: the new pages of every length that has
// entries, and filters made from them.
func (r *rebuild) result() *Table {
	t := &Table{ids: r.ids, n: r.n}
	for i := range r.by4 {
		if x := &r.by4[i]; x.n > 0 {
			idx := eamIndex4{mask: x.mask, len: x.len, n: x.n}
			idx.setPages(x.depth, x.pages)
			t.by4 = append(t.by4, idx)
		}
	}
	for i := range r.by6 {
		if x := &r.by6[i]; x.n > 0 {
			idx := eamIndex6{mhi: x.mhi, mlo: x.mlo, len: x.len, n: x.n}
			idx.setPages(x.depth, x.pages)
			t.by6 = append(t.by6, idx)
		}
	}
	t.f4 = newFilter4(t.n, func(yield func(uint32, uint8) bool) {
		for i := range t.by4 {
			x := &t.by4[i]
			for p := range x.distinct() {
				for j := range p.slots {
					if s := &p.slots[j]; s.meta != 0 && !yield(s.key, x.len) {
						return
					}
				}
			}
		}
	})
	t.f6 = newFilter6(t.n, func(yield func(uint64, uint8) bool) {
		for i := range t.by6 {
			x := &t.by6[i]
			for p := range x.distinct() {
				for j := range p.slots {
					if s := &p.slots[j]; s.meta != 0 && !yield(s.hi, x.len) {
						return
					}
				}
			}
		}
	})
	return t
}

// distinct yields the index's pages once each (a page of a lower depth
// than the index's takes consecutive places).
func (x *eamIndex4) distinct() iter.Seq[*eamPage4] {
	return func(yield func(*eamPage4) bool) {
		for e := range x.pages {
			p := &x.pages[e]
			if e > 0 && samePage4(p, &x.pages[e-1]) {
				continue
			}
			if !yield(p) {
				return
			}
		}
	}
}

func (x *eamIndex6) distinct() iter.Seq[*eamPage6] {
	return func(yield func(*eamPage6) bool) {
		for e := range x.pages {
			p := &x.pages[e]
			if e > 0 && samePage6(p, &x.pages[e-1]) {
				continue
			}
			if !yield(p) {
				return
			}
		}
	}
}

// samePage4 says whether a and b are the same page. Two empty pages are
// taken as one: neither has anything to yield.
func samePage4(a, b *eamPage4) bool {
	return len(a.slots) > 0 && len(b.slots) > 0 && &a.slots[0] == &b.slots[0]
}

func samePage6(a, b *eamPage6) bool {
	return len(a.slots) > 0 && len(b.slots) > 0 && &a.slots[0] == &b.slots[0]
}
