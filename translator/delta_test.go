package translator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// randMapping draws a mapping from a small space, so that random ones
// overlap often: IPv4 inside 198.51.100.0/24 (/24 to /32), IPv6 inside
// 2001:db8::/120 (/120 to /128), sometimes with host bits set.
func randMapping(r *rand.Rand) Mapping {
	l4 := 24 + r.IntN(9)
	l6 := 120 + r.IntN(9)
	if 128-l6 < 32-l4 {
		if r.IntN(4) > 0 { // mostly valid, sometimes a suffix too short
			l6 = 128 - (32 - l4)
		}
	}
	a4 := netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))})
	a6 := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	a6[15] = byte(r.IntN(256))
	p4, p6 := netip.PrefixFrom(a4, l4), netip.PrefixFrom(netip.AddrFrom16(a6), l6)
	if r.IntN(20) > 0 {
		p4, p6 = p4.Masked(), p6.Masked()
	}
	return Mapping{p4, p6}
}

// sameLookups checks that got answers as want for every address of the
// test space and a few outside it: same hit, same translation, same
// mapping behind the entry.
func sameLookups(t *testing.T, step int, got, want *Table) {
	t.Helper()
	for i := range 258 {
		a4 := [4]byte{198, 51, 100, byte(i)}
		if i >= 256 {
			a4 = [4]byte{203, 0, 113, byte(i)}
		}
		g6, ge, gok := got.Map4(a4)
		w6, we, wok := want.Map4(a4)
		if gok != wok || g6 != w6 || gok && got.Mapping(int(ge)) != want.Mapping(int(we)) {
			t.Fatalf("step %d: Map4(%v) = %v %v %v, a fresh table %v %v %v", step, a4, g6, ge, gok, w6, we, wok)
		}
		var a6 [16]byte
		copy(a6[:], []byte{0x20, 0x01, 0x0d, 0xb8})
		a6[15] = byte(i)
		if i >= 256 {
			a6[3] = 0xb9
		}
		g4, ge, gok := got.Map6(a6)
		w4, we, wok := want.Map6(a6)
		if gok != wok || g4 != w4 || gok && got.Mapping(int(ge)) != want.Mapping(int(we)) {
			t.Fatalf("step %d: Map6(%v) = %v %v %v, a fresh table %v %v %v", step, a6, g4, ge, gok, w4, we, wok)
		}
	}
}

// TestApplyDifferential applies random additions and deletions, valid and
// not, one at a time and in batches, and checks the result against a
// table built from scratch of the same mappings: Apply accepts exactly
// what NewTable accepts, and the two answer every lookup alike.
//
// Rebuild is checked on the same batches, with pages of the real size
// (one per prefix length here) and with pages of about two entries, so
// that the tables on the way through it mix old pages and new ones.
func TestApplyDifferential(t *testing.T) {
	for _, log := range []int{15, 1} {
		t.Run(fmt.Sprintf("pages%d", 1<<log), func(t *testing.T) {
			defer func(was int) { pageEntriesLog = was }(pageEntriesLog)
			pageEntriesLog = log
			if ways := applyDifferential(t); log == 1 && ways == 0 {
				t.Error("no Rebuild gave a table on the way: the mixed pages went untested")
			}
		})
	}
}

// applyDifferential returns how many tables on the way Rebuild gave.
func applyDifferential(t *testing.T) (ways int) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var live []Mapping
		for range 30 {
			m := randMapping(r)
			if _, err := NewTable(append(slices.Clone(live), m)); err == nil {
				live = append(live, m)
			}
		}
		tab, err := NewTable(live)
		if err != nil {
			t.Fatal(err)
		}
		for step := range 200 {
			batch := 1 + r.IntN(3)
			var changes []MappingChange
			next := slices.Clone(live)
			okModel := true
			// Rebuild checks the result as a whole: a deletion must name an
			// entry at its turn and an addition must be valid on its own,
			// but an overlap that a later change of the batch removes is
			// not one.
			okNet := true
			for range batch {
				if len(next) > 0 && r.IntN(2) == 0 {
					var m Mapping
					if r.IntN(8) == 0 {
						m = randMapping(r) // most likely absent: refused
					} else {
						m = next[r.IntN(len(next))]
					}
					changes = append(changes, MappingChange{Op: Del, Mapping: m})
					if k := slices.Index(next, m); k >= 0 {
						next = slices.Delete(next, k, k+1)
					} else {
						okModel, okNet = false, false
					}
					continue
				}
				m := randMapping(r)
				changes = append(changes, MappingChange{Op: Add, Mapping: m})
				if _, err := NewTable(append(slices.Clone(next), m)); err != nil {
					okModel = false
				}
				if _, err := NewTable([]Mapping{m}); err != nil {
					okNet = false
				}
				next = append(next, m)
			}
			if _, err := NewTable(next); err != nil {
				okNet = false
			}
			got, err := tab.Apply(changes)
			var te *TableError
			if (err == nil) != okModel || err != nil && !errors.As(err, &te) {
				t.Fatalf("round %d step %d: Apply(%v) = %v, NewTable accepts: %v", round, step, changes, err, okModel)
			}
			var onTheWay []*Table
			rebuilt, rerr := tab.Rebuild(changes, func(w *Table) { onTheWay = append(onTheWay, w) })
			var rte *TableError
			if (rerr == nil) != okNet || rerr != nil && (!errors.As(rerr, &rte) || len(rte.Problems) == 0) {
				t.Fatalf("round %d step %d: Rebuild(%v) = %v, NewTable accepts the result: %v", round, step, changes, rerr, okNet)
			}
			if rerr != nil && len(onTheWay) > 0 {
				t.Fatalf("round %d step %d: a refused Rebuild gave %d tables on the way", round, step, len(onTheWay))
			}
			if rerr == nil {
				var rall []Mapping
				for id, m := range rebuilt.All() {
					if !rebuilt.Live(id) || rebuilt.Mapping(id) != m || id >= rebuilt.Span() {
						t.Fatalf("round %d step %d: Rebuild All yields %d %v, Live %v, Mapping %v, Span %d", round, step, id, m, rebuilt.Live(id), rebuilt.Mapping(id), rebuilt.Span())
					}
					rall = append(rall, m)
				}
				if !sameSet(rall, next) || rebuilt.Pending() != 0 || rebuilt.Len() != len(next) {
					t.Fatalf("round %d step %d: Rebuild All = %v (pending %d, len %d), want %v", round, step, rall, rebuilt.Pending(), rebuilt.Len(), next)
				}
				// The ids of the entries kept do not move.
				for id, m := range tab.All() {
					if rebuilt.Live(id) && rebuilt.Mapping(id) != m {
						t.Fatalf("round %d step %d: Rebuild moved id %d: was %v, is %v", round, step, id, m, rebuilt.Mapping(id))
					}
				}
				want, _ := NewTable(next)
				sameLookups(t, step, rebuilt, want)
				ways += len(onTheWay)
				for _, w := range onTheWay {
					if w.Len() != len(next) {
						t.Fatalf("round %d step %d: a table on the way has Len %d, want the result's %d", round, step, w.Len(), len(next))
					}
					betweenLookups(t, step, w, tab, rebuilt)
					// It lists each id once, as one of the two tables has it.
					seen := map[int]bool{}
					for id, m := range w.All() {
						if seen[id] || !(tab.Live(id) && tab.Mapping(id) == m || rebuilt.Live(id) && rebuilt.Mapping(id) == m) {
							t.Fatalf("round %d step %d: on the way, All yields %d %v (seen before: %v)", round, step, id, m, seen[id])
						}
						seen[id] = true
					}
				}
			}
			if err != nil {
				if rerr == nil && r.IntN(2) == 0 {
					tab, live = rebuilt, next // go on from what only Rebuild accepts
				}
				continue
			}
			want, err := NewTable(next)
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != len(next) {
				t.Fatalf("round %d step %d: Len %d, want %d", round, step, got.Len(), len(next))
			}
			var all []Mapping
			for id, m := range got.All() {
				if !got.Live(id) || got.Mapping(id) != m || id >= got.Span() {
					t.Fatalf("round %d step %d: All yields %d %v, Live %v, Mapping %v, Span %d", round, step, id, m, got.Live(id), got.Mapping(id), got.Span())
				}
				all = append(all, m)
			}
			if !sameSet(all, next) {
				t.Fatalf("round %d step %d: All = %v, want %v", round, step, all, next)
			}
			sameLookups(t, step, got, want)
			// The ids of the entries kept do not move.
			for id, m := range tab.All() {
				if got.Live(id) && got.Mapping(id) != m {
					t.Fatalf("round %d step %d: id %d was %v, is %v", round, step, id, m, got.Mapping(id))
				}
			}
			tab, live = got, next
			if rerr == nil && r.IntN(3) == 0 {
				tab = rebuilt // its ids have holes where entries were deleted
			}
			if tab.NeedsCompaction() || r.IntN(50) == 0 {
				if tab, err = tab.Compact(); err != nil {
					t.Fatal(err)
				}
				sameLookups(t, step, tab, want)
			}
		}
	}
	return ways
}

// betweenLookups checks a table on its way through Rebuild from before to
// after: where those two agree, it agrees (an entry kept is never missed,
// nothing is found that neither has); where they differ, it answers as
// one of them or misses (a change not applied yet on one side of the
// mapping, applied on the other: as if the changes came one by one).
func betweenLookups(t *testing.T, step int, w, before, after *Table) {
	t.Helper()
	type answer struct {
		v6 [16]byte
		v4 [4]byte
		id int32
		ok bool
	}
	check := func(what string, g, b, a answer) {
		if g == b || g == a || !g.ok && b != a {
			return
		}
		t.Fatalf("step %d: on the way %s = %+v; before %+v, after %+v", step, what, g, b, a)
	}
	for i := range 258 {
		a4 := [4]byte{198, 51, 100, byte(i)}
		if i >= 256 {
			a4 = [4]byte{203, 0, 113, byte(i)}
		}
		var g, b, a answer
		g.v6, g.id, g.ok = w.Map4(a4)
		b.v6, b.id, b.ok = before.Map4(a4)
		a.v6, a.id, a.ok = after.Map4(a4)
		check(fmt.Sprintf("Map4(%v)", a4), g, b, a)
		var a6 [16]byte
		copy(a6[:], []byte{0x20, 0x01, 0x0d, 0xb8})
		a6[15] = byte(i)
		if i >= 256 {
			a6[3] = 0xb9
		}
		g, b, a = answer{}, answer{}, answer{}
		g.v4, g.id, g.ok = w.Map6(a6)
		b.v4, b.id, b.ok = before.Map6(a6)
		a.v4, a.id, a.ok = after.Map6(a6)
		check(fmt.Sprintf("Map6(%v)", a6), g, b, a)
	}
}

func sameSet(a, b []Mapping) bool {
	cmp := func(x, y Mapping) int {
		if c := x.IPv4.Addr().Compare(y.IPv4.Addr()); c != 0 {
			return c
		}
		if c := x.IPv4.Bits() - y.IPv4.Bits(); c != 0 {
			return c
		}
		if c := x.IPv6.Addr().Compare(y.IPv6.Addr()); c != 0 {
			return c
		}
		return x.IPv6.Bits() - y.IPv6.Bits()
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// TestApplyRefusals checks the reasons given, naming the entry in the way
// by its id.
func TestApplyRefusals(t *testing.T) {
	mp := func(a, b string) Mapping { return Mapping{netip.MustParsePrefix(a), netip.MustParsePrefix(b)} }
	tab, err := NewTable([]Mapping{mp("198.51.100.0/24", "2001:db8:1::/120"), mp("203.0.113.7/32", "2001:db8:2::7/128")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		change MappingChange
		other  int
		msg    string
	}{
		{MappingChange{Op: Add, Mapping: mp("198.51.100.10/32", "2001:db8:9::/128")}, 0, "198.51.100.10/32 overlaps mapping 0 (198.51.100.0/24)"},
		{MappingChange{Op: Add, Mapping: mp("198.51.0.0/16", "2001:db8:9::/112")}, 0, "198.51.0.0/16 overlaps mapping 0 (198.51.100.0/24)"},
		{MappingChange{Op: Add, Mapping: mp("203.0.0.0/8", "2001:db8:9::/96")}, 1, "203.0.0.0/8 overlaps mapping 1 (203.0.113.7/32)"},
		{MappingChange{Op: Add, Mapping: mp("192.0.2.1/32", "2001:db8:2::/64")}, 1, "2001:db8:2::/64 overlaps mapping 1 (2001:db8:2::7/128)"},
		{MappingChange{Op: Add, Mapping: mp("203.0.113.7/32", "2001:db8:2::7/128")}, 1, "duplicates mapping 1 (203.0.113.7/32, 2001:db8:2::7/128)"},
		{MappingChange{Op: Add, Mapping: mp("192.0.2.0/24", "2001:db8:3::/124")}, -1, "192.0.2.0/24 has 8 suffix bits, more than the 4 of 2001:db8:3::/124; use an IPv6 prefix of /120 or shorter (RFC 7757 §3.2)"},
		{MappingChange{Op: Del, Mapping: mp("203.0.113.7/32", "2001:db8:2::8/128")}, -1, "no mapping 203.0.113.7/32 2001:db8:2::8/128 to delete"},
	} {
		_, err := tab.Apply([]MappingChange{c.change})
		var te *TableError
		if !errors.As(err, &te) || len(te.Problems) != 1 || te.Problems[0].Msg != c.msg || te.Problems[0].Other != c.other {
			t.Errorf("Apply(%v) = %v, want %q against %d", c.change, err, c.msg, c.other)
		}
		// Rebuild refuses alike, the first change being the second here.
		keep := MappingChange{Op: Add, Mapping: mp("192.0.2.200/32", "2001:db8:7::200/128")}
		_, err = tab.Rebuild([]MappingChange{keep, c.change}, nil)
		if !errors.As(err, &te) || len(te.Problems) != 1 || te.Problems[0].Msg != c.msg || te.Problems[0].Other != c.other || te.Problems[0].Index != 1 {
			t.Errorf("Rebuild(%v) = %v, want %q against %d at 1", c.change, err, c.msg, c.other)
		}
	}
	if _, err := tab.Apply([]MappingChange{{Op: Add, Mapping: mp("192.0.2.1/32", "2001:db8:5::1/128")}, {Op: Add, Mapping: mp("192.0.2.1/32", "2001:db8:5::2/128")}}); err == nil {
		t.Error("two additions of one IPv4 prefix in one batch accepted")
	}
}

// BenchmarkApply measures one addition and one deletion (two Apply calls
// per op) on a table of a million datacenter mappings, with an overlay of
// pending changes already made (none, or compactAdds additions and as many
// deletions: the most before NeedsCompaction asks for a new base).
func BenchmarkApply(b *testing.B) {
	ms := dcMappings(1_000_000, rand.New(rand.NewPCG(1, 2)))
	base, err := NewTable(ms)
	if err != nil {
		b.Fatal(err)
	}
	// 11/8 is not in dcMappings.
	fresh := func(i int) Mapping {
		return rackMapping(11<<24|uint32(i), 1<<22+i)
	}
	for _, pending := range []int{0, compactAdds} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			t := base
			var changes []MappingChange
			for i := range pending {
				changes = append(changes, MappingChange{Op: Add, Mapping: fresh(i)}, MappingChange{Op: Del, Mapping: ms[i]})
			}
			if t, err = t.Apply(changes); err != nil {
				b.Fatal(err)
			}
			m := fresh(1 << 20)
			b.ReportAllocs()
			for b.Loop() {
				t2, err := t.Apply([]MappingChange{{Op: Add, Mapping: m}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := t2.Apply([]MappingChange{{Op: Del, Mapping: m}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDiff: the changes Diff finds, applied, give a table with the
// entries of the target; past max it declines.
func TestDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		var a, b []Mapping
		for range 20 {
			m := randMapping(r)
			if _, err := NewTable(append(slices.Clone(a), m)); err == nil {
				a = append(a, m)
			}
			m = randMapping(r)
			if _, err := NewTable(append(slices.Clone(b), m)); err == nil {
				b = append(b, m)
			}
		}
		ta, _ := NewTable(a)
		tb, _ := NewTable(b)
		changes, ok := Diff(ta, tb, 100)
		if !ok {
			t.Fatal("declined under max")
		}
		got, err := ta.Apply(changes)
		if err != nil {
			t.Fatalf("Apply(Diff) = %v", err)
		}
		var all []Mapping
		for _, m := range got.All() {
			all = append(all, m)
		}
		if !sameSet(all, b) {
			t.Fatalf("Apply(Diff(%v, %v)) = %v", a, b, all)
		}
		if n := len(changes); n > 1 {
			if _, ok := Diff(ta, tb, n-1); ok {
				t.Fatalf("%d changes accepted under max %d", n, n-1)
			}
		}
	}
}

// BenchmarkTableLookupOverlay is BenchmarkTableLookup's 1M case on a table
// with changes pending in its overlay (compactAdds additions and as many
// deletions): what a lookup costs between a change and the compaction.
func BenchmarkTableLookupOverlay(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	ms := dcMappings(1_000_000, rng)
	t, err := NewTable(ms)
	if err != nil {
		b.Fatal(err)
	}
	var changes []MappingChange
	for i := range compactAdds {
		changes = append(changes, MappingChange{Op: Add, Mapping: rackMapping(11<<24|uint32(i), 1<<22+i)}, MappingChange{Op: Del, Mapping: ms[i]})
	}
	if t, err = t.Apply(changes); err != nil {
		b.Fatal(err)
	}
	q4 := make([][4]byte, 1<<16)
	for i := range q4 {
		q4[i] = ms[compactAdds+rng.IntN(len(ms)-compactAdds)].IPv4.Addr().As4()
	}
	hits := 0
	for i := 0; b.Loop(); i++ {
		if _, _, ok := t.Map4(q4[i&(len(q4)-1)]); ok {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hit")
	}
}

// TestApplyConcurrentReaders: readers look the table up while a writer
// applies changes and publishes each new table through an atomic pointer,
// as the data plane does: an entry no change touches is always found,
// unchanged, and one being added and removed is either absent or right.
// Run with -race, it also shows the tables are published whole.
func TestApplyConcurrentReaders(t *testing.T) {
	mp := func(a, b string) Mapping { return Mapping{netip.MustParsePrefix(a), netip.MustParsePrefix(b)} }
	kept, toggled := mp("198.51.100.10/32", "2001:db8:1::10/128"), mp("198.51.100.11/32", "2001:db8:1::11/128")
	base, err := NewTable([]Mapping{kept})
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[Table]
	cur.Store(base)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab := cur.Load()
				v6, _, ok := tab.Map4([4]byte{198, 51, 100, 10})
				if !ok || netip.AddrFrom16(v6) != kept.IPv6.Addr() {
					t.Errorf("the kept mapping: %v %v", netip.AddrFrom16(v6), ok)
					return
				}
				if v6, _, ok := tab.Map4([4]byte{198, 51, 100, 11}); ok && netip.AddrFrom16(v6) != toggled.IPv6.Addr() {
					t.Errorf("the toggled mapping: %v", netip.AddrFrom16(v6))
					return
				}
			}
		}()
	}
	tab := base
	for i := range 2000 {
		op := Add
		if i%2 == 1 {
			op = Del
		}
		if tab, err = tab.Apply([]MappingChange{{Op: op, Mapping: toggled}}); err != nil {
			t.Fatal(err)
		}
		cur.Store(tab)
	}
	close(stop)
	wg.Wait()
}

// BenchmarkRebuild measures a batch of 10,000 additions on a table of a
// million datacenter mappings built anew (what a bulk load through etcd
// costs per batch), with its allocations.
func BenchmarkRebuild(b *testing.B) {
	ms := dcMappings(1_000_000, rand.New(rand.NewPCG(1, 2)))
	base, err := NewTable(ms)
	if err != nil {
		b.Fatal(err)
	}
	var changes []MappingChange
	for i := range 10_000 {
		changes = append(changes, MappingChange{Op: Add, Mapping: rackMapping(11<<24|uint32(i), 1<<22+i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := base.Rebuild(changes, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRebuildWithdrawn: additions withdrawn later in the same batch, in
// any order, and refusals naming an entry of the overlay by its id.
func TestRebuildWithdrawn(t *testing.T) {
	mp := func(a, b string) Mapping { return Mapping{netip.MustParsePrefix(a), netip.MustParsePrefix(b)} }
	tab, err := NewTable([]Mapping{mp("203.0.113.7/32", "2001:db8:2::7/128")})
	if err != nil {
		t.Fatal(err)
	}
	a, b := mp("192.0.2.1/32", "2001:db8:5::1/128"), mp("192.0.2.1/32", "2001:db8:5::2/128")
	add := func(m Mapping) MappingChange { return MappingChange{Op: Add, Mapping: m} }
	del := func(m Mapping) MappingChange { return MappingChange{Op: Del, Mapping: m} }
	for _, c := range []struct {
		changes []MappingChange
		want    []Mapping // the added mappings left
	}{
		{[]MappingChange{add(a), add(b), del(a)}, []Mapping{b}},
		{[]MappingChange{add(a), add(b), del(b), del(a)}, nil},
		{[]MappingChange{add(a), del(a), add(b)}, []Mapping{b}},
		{[]MappingChange{add(a), add(a), del(a)}, []Mapping{a}},
	} {
		got, err := tab.Rebuild(c.changes, nil)
		if err != nil {
			t.Errorf("Rebuild(%v): %v", c.changes, err)
			continue
		}
		var all []Mapping
		for _, m := range got.All() {
			all = append(all, m)
		}
		if want := append([]Mapping{mp("203.0.113.7/32", "2001:db8:2::7/128")}, c.want...); !sameSet(all, want) {
			t.Errorf("Rebuild(%v) = %v, want %v", c.changes, all, want)
		}
	}
	// A conflict with an entry added since the base names its id.
	ov, err := tab.Apply([]MappingChange{add(mp("198.51.100.0/28", "2001:db8:9::/124"))})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := ov.Lookup4(netip.MustParseAddr("198.51.100.1"))
	_, err = ov.Rebuild([]MappingChange{add(mp("192.0.2.9/32", "2001:db8:7::9/128")), add(mp("198.51.100.3/32", "2001:db8:8::3/128"))}, nil)
	var te *TableError
	want := fmt.Sprintf("198.51.100.3/32 overlaps mapping %d (198.51.100.0/28)", id)
	if !errors.As(err, &te) || len(te.Problems) != 1 || te.Problems[0].Index != 1 || te.Problems[0].Other != id || te.Problems[0].Msg != want {
		t.Errorf("a conflict with the overlay: %v, want %q against %d", err, want, id)
	}
	// Two additions of the batch colliding: named by the earlier change.
	_, err = tab.Rebuild([]MappingChange{add(a), add(mp("192.0.2.0/30", "2001:db8:6::/126"))}, nil)
	if !errors.As(err, &te) || len(te.Problems) != 1 || !strings.Contains(te.Problems[0].Msg, "change 0") {
		t.Errorf("two additions colliding: %v", err)
	}
}
