package translator

import (
	"encoding/binary"
	"fmt"
	"iter"
	"net/netip"
	"slices"
)

// A running table changes by deltas: a cloud controller adds and removes
// mappings all day, and rebuilding a million-entry table for each one
// (NewTable: about a second, and a second copy of the table while it
// runs) is out of the question.
//
// The design: the table NewTable or Rebuild built (the base) stays immutable, and a
// delta makes a new Table that shares the base's slots and adds an
// overlay: the mappings added since (a small table of their own, rebuilt
// at each delta, each entry checked once) and a bitmap of the base
// entries deleted since (tombstones). A lookup tries the base, then, if
// it missed or hit a tombstone, the overlay. Readers stay lock-free and allocation-free: a
// Table is still immutable, and the data plane swaps the pointer.
//
// Why not make the base itself mutable under a single writer: a slot is 24
// bytes, wider than any atomic store, so a reader could see half of one;
// and deleting from a linear-probing hash moves other keys back along
// their runs, so a concurrent reader could miss a key that is in the
// table. Copy-on-write of the pages a delta touches would cost 1.5 MB a
// page per change; the overlay costs, per delta, a rebuild of at most
// compactAdds entries and a copy of the tombstone bitmap (128 KB at a
// million): well under a millisecond (see BenchmarkApply), and lookups on
// a table without changes pay one predictable branch (Map4, Map6).
//
// The overlay grows with the changes. Its additions are folded into the
// base by Rebuild (rebuild.go), which builds the indexes anew a page at a
// time, keeping every id, so that the one who serves the table can drop
// each old page as soon as the new ones of its range are in use: a bulk
// batch (thousands of changes at once: a controller loading a table
// through etcd) goes the same way, checking only its additions (the
// entries kept never overlap). Past compactAdds additions NeedsCompaction
// says so; it also does once the ids left unused by deletions (tombstones,
// and the ids Rebuild does not give again) pass an eighth of the entries
// (at least compactDeadMin), and then Compact numbers the entries anew,
// building a second table (the daemon does it in the background and swaps
// the result in like a reload).
//
// Entry indexes ("ids") stay stable across deltas and Rebuild, so that
// the data plane's per-mapping counters, indexed by them, need not move:
// the base's entries keep theirs, an added mapping gets the next unused
// one, and a deleted one's is never given again (until Compact). Span is
// the number of ids given out.

// ChangeOp says what a MappingChange does.
type ChangeOp uint8

const (
	Add ChangeOp = iota // add the mapping
	Del                 // delete the mapping (both sides must match)
)

func (o ChangeOp) String() string {
	if o == Del {
		return "del"
	}
	return "add"
}

// MappingChange is one change to a running table. Origin says where the
// mapping is written (a file and line, an etcd key); the table does not
// use it, its owner records it.
type MappingChange struct {
	Op      ChangeOp
	Mapping Mapping
	Origin  string
}

// compactAdds and compactDead bound the overlay before NeedsCompaction
// asks for a fresh base: every delta rebuilds the added entries, so their
// number bounds its cost; tombstones cost a bit each and a wasted base
// slot, so a larger share of them is tolerated.
const (
	compactAdds    = 1024
	compactDeadMin = 4096
)

// overlay is a Table's changes since its base was built.
type overlay struct {
	base  *Table    // the table NewTable or Rebuild built, without overlay
	add   *Table    // the added mappings still live, nil if none
	ms    []Mapping // add's entries, in id order
	ids   []int32   // ids[i] is the id of ms[i] (add's entry i), ascending
	dead  []uint64  // bit i: base entry i was deleted; nil if none
	ndead int
	next  int32 // the next id to give: Span
}

// map4 and map6 look a changed table up: the base (without its overlay),
// then, if it missed or hit a deleted entry, the added entries. At most
// one live entry matches: Apply refuses overlaps.
func (o *overlay) map4(a [4]byte) ([16]byte, int32, bool) {
	v6, e, ok := o.base.Map4(a)
	if ok && !o.isDead(e) {
		return v6, e, true
	}
	if o.add != nil {
		if v6, e, ok = o.add.Map4(a); ok {
			return v6, o.ids[e], true
		}
	}
	return [16]byte{}, -1, false
}

func (o *overlay) map6(a [16]byte) ([4]byte, int32, bool) {
	v4, e, ok := o.base.Map6(a)
	if ok && !o.isDead(e) {
		return v4, e, true
	}
	if o.add != nil {
		if v4, e, ok = o.add.Map6(a); ok {
			return v4, o.ids[e], true
		}
	}
	return [4]byte{}, -1, false
}

// holds says whether id is one of the overlay's additions. Only a table on
// its way through Rebuild has them in its pages too (see rebuild.go):
// All lists them once, from the overlay.
func (o *overlay) holds(id int32) bool {
	if len(o.ids) == 0 || id < o.ids[0] {
		return false
	}
	_, ok := slices.BinarySearch(o.ids, id)
	return ok
}

func (o *overlay) isDead(id int32) bool {
	// An id past the bitmap is not the base's: it was given after the
	// overlay was made (by a Rebuild on its way, see rebuild.go).
	return int(id>>6) < len(o.dead) && o.dead[id>>6]>>(id&63)&1 != 0
}

// Len returns the number of entries.
func (t *Table) Len() int {
	if t.ov == nil {
		return t.n
	}
	return t.n - t.ov.ndead + len(t.ov.ms)
}

// Span returns the number of ids given out: every entry's id is below it.
// Without changes since NewTable, it is Len.
func (t *Table) Span() int {
	if t.ov == nil {
		return len(t.ids)
	}
	return int(t.ov.next)
}

// Live says whether id is the id of an entry of the table.
func (t *Table) Live(id int) bool {
	switch {
	case id < 0:
		return false
	case id < len(t.ids):
		return t.ids[id] != 0 && (t.ov == nil || !t.ov.isDead(int32(id)))
	case t.ov == nil:
		return false
	}
	_, ok := slices.BinarySearch(t.ov.ids, int32(id))
	return ok
}

// Mapping returns the entry of id id, as it was given to NewTable or
// Apply. id must be Live.
func (t *Table) Mapping(id int) Mapping {
	if id < len(t.ids) {
		m, _ := t.baseMapping(id)
		return m
	}
	k, _ := slices.BinarySearch(t.ov.ids, int32(id))
	return t.ov.ms[k]
}

// All yields the entries with their ids, in id order: the base's in the
// order given to NewTable, then those added since, in the order added.
func (t *Table) All() iter.Seq2[int, Mapping] {
	return func(yield func(int, Mapping) bool) {
		for i := range t.ids {
			if t.ids[i] == 0 || t.ov != nil && (t.ov.isDead(int32(i)) || t.ov.holds(int32(i))) {
				continue
			}
			m, ok := t.baseMapping(i)
			if ok && !yield(i, m) {
				return
			}
		}
		if t.ov == nil {
			return
		}
		for k, m := range t.ov.ms {
			if !yield(int(t.ov.ids[k]), m) {
				return
			}
		}
	}
}

// Lookup4 returns the id of the entry whose IPv4 prefix holds a.
func (t *Table) Lookup4(a netip.Addr) (int, bool) {
	if !a.Is4() {
		return -1, false
	}
	_, e, ok := t.Map4(a.As4())
	return int(e), ok
}

// Lookup6 returns the id of the entry whose IPv6 prefix holds a.
func (t *Table) Lookup6(a netip.Addr) (int, bool) {
	if !a.Is6() || a.Is4In6() {
		return -1, false
	}
	_, e, ok := t.Map6(a.As16())
	return int(e), ok
}

// NeedsCompaction says whether the changes since NewTable are many enough
// to make Compact worth its cost: each Apply would otherwise grow slower.
func (t *Table) NeedsCompaction() bool {
	dead := len(t.ids) - t.n // ids left unused by Rebuild's deletions
	if t.ov != nil {
		dead += t.ov.ndead
	}
	return dead > max(compactDeadMin, t.n/8) || t.ov != nil && len(t.ov.ms) > compactAdds
}

// Pending returns the number of mappings added since the base was built
// and still in the overlay: what each Apply rebuilds.
func (t *Table) Pending() int {
	if t.ov == nil {
		return 0
	}
	return len(t.ov.ms)
}

// keptConflict returns the id of an entry of t that kept says is kept
// and that e overlaps (or duplicates) on either side, and which side.
func (t *Table) keptConflict(e *eamEntry, kept func(id int) bool) (id int, six, ok bool) {
	live := func(meta uint32) (int, bool) {
		id := int(meta&(1<<24-1)) - 1
		return id, kept(id)
	}
	if id, ok := t.overlap4(e.v4, int(e.len4), live); ok {
		return id, false, true
	}
	if id, ok := t.overlap6(e.hi, e.lo, int(e.len6), live); ok {
		return id, true, true
	}
	if t.ov == nil || t.ov.add == nil {
		return 0, false, false
	}
	liveAdded := func(meta uint32) (int, bool) {
		id := int(t.ov.ids[int(meta&(1<<24-1))-1])
		return id, kept(id)
	}
	if id, ok := t.ov.add.overlap4(e.v4, int(e.len4), liveAdded); ok {
		return id, false, true
	}
	if id, ok := t.ov.add.overlap6(e.hi, e.lo, int(e.len6), liveAdded); ok {
		return id, true, true
	}
	return 0, false, false
}

// conflictMsg says how m collides with o, named other ("mapping 7", or
// "change 3" for an earlier change of the same batch), on side six.
func conflictMsg(m, o Mapping, other string, six bool) string {
	switch {
	case o == m:
		return fmt.Sprintf("duplicates %s (%s, %s)", other, m.IPv4, m.IPv6)
	case six && o.IPv6 == m.IPv6:
		return fmt.Sprintf("%s duplicates %s", m.IPv6, other)
	case !six && o.IPv4 == m.IPv4:
		return fmt.Sprintf("%s duplicates %s", m.IPv4, other)
	case six:
		return fmt.Sprintf("%s overlaps %s (%s)", m.IPv6, other, o.IPv6)
	}
	return fmt.Sprintf("%s overlaps %s (%s)", m.IPv4, other, o.IPv4)
}

// exact returns the id of the live entry of t that is m, both sides.
func (t *Table) exact(m Mapping) (int, bool) {
	if !m.IPv4.Addr().Is4() {
		return 0, false
	}
	id, ok := t.Lookup4(m.IPv4.Addr())
	if !ok || t.Mapping(id) != m {
		return 0, false
	}
	return id, true
}

// Apply returns the table with changes applied in order, all of them or,
// when one is refused, none: the error is a *TableError whose problems
// have Index the index of the change and Other the id of the entry in the
// way (or -1). An addition is checked as NewTable checks an entry (family,
// host bits, /0, suffix length) and against every entry of the table and
// the earlier changes for duplicates and overlaps; a deletion must name an
// entry exactly, both sides. t is not changed: readers of t go on.
//
// The cost does not depend on the size of the table, but for an addition
// whose prefix is shorter, by more than 12 bits, than prefixes of its
// family already in the table: it scans the slots of those lengths.
func (t *Table) Apply(changes []MappingChange) (*Table, error) {
	if len(changes) == 0 {
		return t, nil
	}
	o := t.ov
	if o == nil {
		base := *t
		o = &overlay{base: &base, next: int32(len(t.ids))}
	}
	w := overlay{ // the working copy; o is shared with readers
		base:  o.base,
		ms:    slices.Clone(o.ms),
		ids:   slices.Clone(o.ids),
		ndead: o.ndead,
		next:  o.next,
	}
	if o.dead != nil {
		w.dead = slices.Clone(o.dead)
	}
	var probs []MappingError
	bad := func(i, other int, format string, args ...any) {
		if len(probs) < maxProblems {
			probs = append(probs, MappingError{Index: i, Other: other, Msg: fmt.Sprintf(format, args...)})
		}
	}
	added := false
	for i, c := range changes {
		m := c.Mapping
		if c.Op == Del {
			if !t.del(&w, m) {
				bad(i, -1, "no mapping %s %s to delete", m.IPv4, m.IPv6)
			}
			continue
		}
		if msg := checkMapping(m); msg != "" {
			bad(i, -1, "%s", msg)
			continue
		}
		if id, six, ok := t.conflict(&w, m); ok {
			bad(i, id, "%s", conflictMsg(m, t.mappingIn(&w, id), fmt.Sprintf("mapping %d", id), six))
			continue
		}
		if w.next > maxEntries {
			bad(i, -1, "too many mappings; at most %d ids are given between compactions", maxEntries)
			continue
		}
		w.ms = append(w.ms, m)
		w.ids = append(w.ids, w.next)
		w.next++
		added = true
	}
	if len(probs) > 0 {
		return nil, &TableError{Problems: probs}
	}
	if added || len(w.ms) != len(o.ms) {
		if len(w.ms) > 0 {
			// Checked above, one by one and against each other: NewTable's
			// checks would sort them all again at every change.
			ents := make([]eamEntry, len(w.ms))
			for i, m := range w.ms {
				ents[i] = entryOf(m)
			}
			w.add = build(ents)
		}
	} else {
		w.add = o.add
	}
	nt := *t
	nt.ov = &w
	return &nt, nil
}

// checkMapping checks m on its own, as NewTable does; "" if it is fine.
func checkMapping(m Mapping) string {
	probs := checkSide(checkSide(nil, 0, m.IPv4, false), 0, m.IPv6, true)
	if len(probs) == 0 && 128-m.IPv6.Bits() < 32-m.IPv4.Bits() {
		probs = append(probs, eamProblem{0, -1, probSuffix})
	}
	if len(probs) == 0 {
		return ""
	}
	return tableError(func(int) Mapping { return m }, probs[:1]).Problems[0].Msg
}

// mappingIn returns the mapping of id in t changed by w.
func (t *Table) mappingIn(w *overlay, id int) Mapping {
	if id < len(t.ids) {
		m, _ := t.baseMapping(id)
		return m
	}
	k, _ := slices.BinarySearch(w.ids, int32(id))
	return w.ms[k]
}

// del removes m from t as changed by w, and reports whether it was there.
func (t *Table) del(w *overlay, m Mapping) bool {
	if k := slices.Index(w.ms, m); k >= 0 {
		w.ms = slices.Delete(w.ms, k, k+1)
		w.ids = slices.Delete(w.ids, k, k+1)
		return true
	}
	if !m.IPv4.Addr().Is4() {
		return false
	}
	id, ok := t.base4(m.IPv4)
	if !ok || w.isDead(int32(id)) {
		return false
	}
	if b, ok := t.baseMapping(id); !ok || b != m {
		return false
	}
	if w.dead == nil {
		w.dead = make([]uint64, (len(t.ids)+63)/64)
	}
	w.dead[id>>6] |= 1 << (id & 63)
	w.ndead++
	return true
}

// base4 returns the id of the base entry whose IPv4 side is exactly p.
func (t *Table) base4(p netip.Prefix) (int, bool) {
	a := p.Addr().As4()
	k := binary.BigEndian.Uint32(a[:])
	for i := range t.by4 {
		if x := &t.by4[i]; int(x.len) == p.Bits() {
			if s := x.find(k); s != nil {
				return int(s.meta&(1<<24-1)) - 1, true
			}
		}
	}
	return 0, false
}

// conflict returns an entry of t as changed by w that m overlaps (or
// duplicates) on either side, and which side (six).
func (t *Table) conflict(w *overlay, m Mapping) (id int, six, ok bool) {
	for k, o := range w.ms {
		if o.IPv4.Overlaps(m.IPv4) {
			return int(w.ids[k]), false, true
		}
		if o.IPv6.Overlaps(m.IPv6) {
			return int(w.ids[k]), true, true
		}
	}
	live := func(s uint32) (int, bool) {
		id := int(s&(1<<24-1)) - 1
		return id, !w.isDead(int32(id))
	}
	a4 := m.IPv4.Addr().As4()
	if id, ok := t.overlap4(binary.BigEndian.Uint32(a4[:]), m.IPv4.Bits(), live); ok {
		return id, false, true
	}
	a6 := m.IPv6.Addr().As16()
	if id, ok := t.overlap6(binary.BigEndian.Uint64(a6[:8]), binary.BigEndian.Uint64(a6[8:]), m.IPv6.Bits(), live); ok {
		return id, true, true
	}
	return 0, false, false
}

// enumBits bounds the search of the entries inside a new prefix by key:
// up to 2^enumBits lookups per length; past it, the length's slots are
// scanned.
const enumBits = 12

// overlap4 finds a base entry overlapping the IPv4 prefix k/b for which
// live (given the slot's meta) says yes: one that contains it (a lookup
// per shorter length) or one inside it (a lookup per possible key of a
// longer length, or a scan of that length's slots).
func (t *Table) overlap4(k uint32, b int, live func(meta uint32) (int, bool)) (int, bool) {
	pmask := ^uint32(0) << (32 - b)
	for i := range t.by4 {
		x := &t.by4[i]
		l := int(x.len)
		switch {
		case l <= b:
			if s := x.find(k & x.mask); s != nil {
				if id, ok := live(s.meta); ok {
					return id, true
				}
			}
		case l-b <= enumBits:
			for j := range uint32(1) << (l - b) {
				if s := x.find(k | j<<(32-l)); s != nil {
					if id, ok := live(s.meta); ok {
						return id, true
					}
				}
			}
		default:
			for p := range x.distinct() {
				for j := range p.slots {
					s := &p.slots[j]
					if s.meta != 0 && s.key&pmask == k {
						if id, ok := live(s.meta); ok {
							return id, true
						}
					}
				}
			}
		}
	}
	return 0, false
}

// overlap6 is overlap4 for the IPv6 prefix hi, lo / b.
func (t *Table) overlap6(hi, lo uint64, b int, live func(meta uint32) (int, bool)) (int, bool) {
	phi, plo := eamMask128(b)
	for i := range t.by6 {
		x := &t.by6[i]
		l := int(x.len)
		switch {
		case l <= b:
			khi, klo := hi&x.mhi, lo&x.mlo
			if s := x.find(eamHash128(khi, klo), khi, klo); s != nil {
				if id, ok := live(s.meta); ok {
					return id, true
				}
			}
		case l-b <= enumBits:
			sh := uint(128 - l) // j goes above the sh low bits
			for j := range uint64(1) << (l - b) {
				// Go shifts by 64 or more give zero: no branch on sh.
				khi, klo := hi|j<<(sh-64)|j>>(64-sh), lo|j<<sh
				if s := x.find(eamHash128(khi, klo), khi, klo); s != nil {
					if id, ok := live(s.meta); ok {
						return id, true
					}
				}
			}
		default:
			for p := range x.distinct() {
				for j := range p.slots {
					s := &p.slots[j]
					if s.meta != 0 && s.hi&phi == hi && s.lo&plo == lo {
						if id, ok := live(s.meta); ok {
							return id, true
						}
					}
				}
			}
		}
	}
	return 0, false
}

// Diff returns the changes that make a table of from's entries into one
// of to's, deletions first (a mapping whose IPv6 side changed is deleted,
// then added), or false when there are more than max: a reload applies a
// small difference as a delta (Apply) and swaps a large one whole. It
// costs a lookup per entry of each table.
func Diff(from, to *Table, max int) ([]MappingChange, bool) {
	var dels, adds []MappingChange
	missing := func(t *Table, m Mapping) bool {
		id, ok := t.Lookup4(m.IPv4.Addr())
		return !ok || t.Mapping(id) != m
	}
	for _, m := range from.All() {
		if missing(to, m) {
			if dels = append(dels, MappingChange{Op: Del, Mapping: m}); len(dels) > max {
				return nil, false
			}
		}
	}
	for _, m := range to.All() {
		if missing(from, m) {
			if adds = append(adds, MappingChange{Op: Add, Mapping: m}); len(dels)+len(adds) > max {
				return nil, false
			}
		}
	}
	return append(dels, adds...), true
}
