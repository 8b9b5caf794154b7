package etcdsource

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/translator"
)

func mp(v4, v6 string) translator.Mapping {
	return translator.Mapping{IPv4: netip.MustParsePrefix(v4), IPv6: netip.MustParsePrefix(v6)}
}

// overlapsAny is the index's conflict rule, written the slow obvious way.
func overlapsAny(ms []translator.Mapping, m translator.Mapping) bool {
	for _, o := range ms {
		if o.IPv4.Overlaps(m.IPv4) || o.IPv6.Overlaps(m.IPv6) {
			return true
		}
	}
	return false
}

// TestIndexAgainstSlowRule inserts and removes random small prefixes
// (many of them overlapping) and checks every decision of the index
// against a linear scan, and its mappings against the accepted set.
func TestIndexAgainstSlowRule(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x index
	var accepted []translator.Mapping
	for step := range 20000 {
		l4 := 28 + r.IntN(5)
		a4 := netip.AddrFrom4([4]byte{100, 64, byte(r.IntN(16)), byte(r.IntN(256))})
		p4, _ := a4.Prefix(l4)
		var a6 [16]byte
		copy(a6[:], netip.MustParseAddr("2001:db8::").AsSlice())
		a6[14], a6[15] = byte(r.IntN(16)), byte(r.IntN(256))
		p6, _ := netip.AddrFrom16(a6).Prefix(124 + r.IntN(5))
		m := translator.Mapping{IPv4: p4, IPv6: p6}
		if 128-p6.Bits() < 32-p4.Bits() {
			continue
		}
		if r.IntN(10) == 0 && len(accepted) > 0 {
			i := r.IntN(len(accepted))
			old, ok := x.remove(recordOf4(accepted[i].IPv4))
			if !ok || old.mapping() != accepted[i] {
				t.Fatalf("step %d: remove %v: got %v %v", step, accepted[i], old.mapping(), ok)
			}
			accepted = slices.Delete(accepted, i, i+1)
			continue
		}
		_, conflict := x.conflict(toRecord(m))
		if want := overlapsAny(accepted, m); conflict != want {
			t.Fatalf("step %d: conflict(%v) = %v, want %v", step, m, conflict, want)
		}
		if !conflict {
			x.insert(toRecord(m))
			accepted = append(accepted, m)
		}
	}
	got := x.mappings()
	slices.SortFunc(accepted, func(a, b translator.Mapping) int { return a.IPv4.Addr().Compare(b.IPv4.Addr()) })
	if !slices.Equal(got, accepted) {
		t.Fatalf("index holds %d mappings, want %d", len(got), len(accepted))
	}
	// The table a Snapshot carries holds the same mappings, in IPv4 order.
	tab, err := x.table()
	if err != nil {
		t.Fatal(err)
	}
	var fromTable []translator.Mapping
	for _, m := range tab.All() {
		fromTable = append(fromTable, m)
	}
	if !slices.Equal(fromTable, accepted) {
		t.Fatalf("the index's table holds %d mappings, want %d in IPv4 order", len(fromTable), len(accepted))
	}
	t.Logf("%d mappings accepted at the end", len(accepted))
	if len(accepted) < 100 {
		t.Fatalf("only %d mappings accepted: the test exercised little", len(accepted))
	}
}

// TestBuildOlderWins: a whole read resolves overlaps as the watch would
// have, oldest first, whatever the order the keys come in.
func TestBuildOlderWins(t *testing.T) {
	ms := []translator.Mapping{
		mp("198.51.100.0/30", "2001:db8:1::/126"),  // rev 5: overlaps the two /32 below
		mp("198.51.100.1/32", "2001:db8:2::1/128"), // rev 3: oldest, wins over the /30
		mp("198.51.100.2/32", "2001:db8:3::2/128"), // rev 7: in once the /30 lost
		mp("198.51.100.9/32", "2001:db8:2::1/128"), // rev 9: same IPv6 as rev 3, loses
		mp("203.0.113.1/32", "2001:db8:4::1/128"),  // rev 1: overlaps nothing
	}
	revs := []int64{5, 3, 7, 9, 1}
	var recs []record
	for _, m := range ms {
		recs = append(recs, toRecord(m))
	}
	var x index
	lost := x.build(recs, revs)
	want := []translator.Mapping{ms[1], ms[2], ms[4]}
	if got := x.mappings(); !slices.Equal(got, want) {
		t.Errorf("accepted %v, want %v", got, want)
	}
	if len(lost) != 2 || lost[0].rec.mapping() != ms[0] || lost[0].to.mapping() != ms[1] ||
		lost[1].rec.mapping() != ms[3] || lost[1].to.mapping() != ms[1] {
		t.Errorf("lost %+v, want the /30 and 198.51.100.9, both to 198.51.100.1", lost)
	}
}

func TestCacheRoundTripAndDamage(t *testing.T) {
	dir := t.TempDir()
	var x index
	var recs []record
	for i := range 1000 {
		recs = append(recs, toRecord(mp(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}).String()+"/32",
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)}).String()+"/128")))
	}
	x.build(recs, make([]int64, len(recs)))
	x.insert(toRecord(mp("198.51.100.16/28", "2001:db8:9::/124")))
	if err := writeCache(dir, "/map646", 42, &x); err != nil {
		t.Fatal(err)
	}
	c, err := readCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	var y index
	y.build(c.recs, make([]int64, len(c.recs)))
	if c.prefix != "/map646" || c.revision != 42 || !slices.Equal(y.mappings(), x.mappings()) {
		t.Fatalf("read back prefix %q revision %d, %d mappings; want /map646, 42, %d", c.prefix, c.revision, y.len(), x.len())
	}

	path := filepath.Join(dir, cacheFile)
	data, _ := os.ReadFile(path)
	for _, damage := range []struct {
		name string
		data []byte
	}{
		{"flipped bit", func() []byte { d := slices.Clone(data); d[len(d)/2] ^= 1; return d }()},
		{"truncated", data[:len(data)-30]},
		{"other file", []byte("198.51.100.10 2001:db8::10\n")},
	} {
		os.WriteFile(path, damage.data, 0o600)
		if _, err := readCache(dir); err == nil {
			t.Errorf("%s: read without error", damage.name)
		}
	}
}

func TestParseEntry(t *testing.T) {
	pseudo := netip.MustParsePrefix("64:ff9b::/96")
	for _, c := range []struct {
		key, value string
		want       string // "" valid
	}{
		{"/p/mappings/198.51.100.10", "2001:db8:1::10", ""},
		{"/p/mappings/198.51.100.10", "2001:db8:1::10\n", ""},
		{"/p/mappings/198.51.100.16/28", "2001:db8:2::/124", ""},
		{"/p/mappings/198.51.100.10/32", "2001:db8:1::10", "the key must be written /p/mappings/198.51.100.10 (one key per IPv4 prefix)"},
		{"/p/mappings/198.51.100.10", "", `empty value; accepted: the IPv6 side, e.g. "2001:db8:1::10"`},
		{"/p/mappings/198.51.100.17/28", "2001:db8:2::/124", `IPv4 "198.51.100.17/28": has host bits set; did you mean 198.51.100.16/28? (the key names the IPv4 side, the value the IPv6 side)`},
		{"/p/mappings/198.51.100.16/28", "2001:db8:2::/125", "198.51.100.16/28 has 4 suffix bits, more than the 3 of 2001:db8:2::/125; use an IPv6 prefix of /124 or shorter (RFC 7757 §3.2) (the key names the IPv4 side, the value the IPv6 side)"},
		{"/p/mappings/127.0.0.1", "2001:db8:1::10", `IPv4 "127.0.0.1": lies in 127.0.0.0/8 (loopback); accepted: unicast addresses only (the key names the IPv4 side, the value the IPv6 side)`},
	} {
		_, msg := parseEntry("/p", []byte(c.key), []byte(c.value), pseudo)
		if msg != c.want {
			t.Errorf("%s = %q:\n got %q\nwant %q", c.key, c.value, msg, c.want)
		}
	}
	if p, ok := keyPrefix("/p", "/p/mappings/198.51.100.16/28"); !ok || p != netip.MustParsePrefix("198.51.100.16/28") {
		t.Errorf("keyPrefix: %v %v", p, ok)
	}
	if _, ok := keyPrefix("/p", "/p/mappings/198.51.100.10/32"); ok {
		t.Errorf("keyPrefix accepted a key not written as MappingKey writes it")
	}
}

// BenchmarkCache1M writes and reads back the cache of a million mappings:
// a node restarted without etcd loads it this fast.
func BenchmarkCache1M(b *testing.B) {
	dir := b.TempDir()
	recs := make([]record, 1_000_000)
	for i := range recs {
		recs[i] = record{v4: 0x64400000 + uint32(i), len4: 32, hi: 0x20010db800000000, lo: uint64(i), len6: 128}
	}
	var x index
	x.build(recs, make([]int64, len(recs)))
	for b.Loop() {
		if err := writeCache(dir, "/map646", 1, &x); err != nil {
			b.Fatal(err)
		}
		c, err := readCache(dir)
		if err != nil || len(c.recs) != 1_000_000 {
			b.Fatal(err)
		}
	}
}

func TestWriteCluster(t *testing.T) {
	since := time.Date(2026, 12, 7, 11, 2, 3, 0, time.UTC)
	nodes := []NodeStatus{
		{NodeRecord{Node: "192.0.2.2", Revision: 1234, State: "synced", Since: since, NodeState: "serving", Version: "v1.2.3", Mappings: 10000}, 2},
		{NodeRecord{Node: "192.0.2.3", Revision: 1100, State: "stale", Since: since, Version: "v1.2.3", Mappings: 9990, BadEntries: 1}, 136},
	}
	var b strings.Builder
	if err := WriteCluster(&b, nodes, 1236); err != nil {
		t.Fatal(err)
	}
	want := `etcd revision 1236, 2 nodes
NODE       STATE    TABLE   SINCE                 REVISION  LAG  MAPPINGS  BAD  VERSION
192.0.2.2  serving  synced  2026-12-07T11:02:03Z  1234      2    10000     0    v1.2.3
192.0.2.3  -        stale   2026-12-07T11:02:03Z  1100      136  9990      1    v1.2.3
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// mappings returns every accepted mapping in IPv4 order.
func (x *index) mappings() []translator.Mapping {
	var ms []translator.Mapping
	for at := range x.by4.all() {
		ms = append(ms, x.rec(at).mapping())
	}
	return ms
}

// TestIndexChunks crosses the records' chunks: a built index whose last
// chunk is short grows it, new chunks follow, and freed positions are
// reused, every record found where it was put.
func TestIndexChunks(t *testing.T) {
	rec := func(i int) record {
		return record{v4: 0x64400000 + uint32(i), len4: 32, hi: 0x20010db800000000, lo: uint64(i), len6: 128}
	}
	var x index
	n := recChunk + 10
	recs := make([]record, n)
	for i := range recs {
		recs[i] = rec(i)
	}
	x.build(recs, make([]int64, n))
	for i := n; i < 3*recChunk+5; i++ {
		x.insert(rec(i))
	}
	want := map[record]bool{}
	for i := range 3*recChunk + 5 {
		want[rec(i)] = true
	}
	for i := 7; i < 3*recChunk; i += 1000 { // in every chunk
		if _, ok := x.remove(rec(i).v4, 32); !ok {
			t.Fatalf("record %d not removed", i)
		}
		delete(want, rec(i))
	}
	for i := range 50 { // the freed positions first
		r := rec(4*recChunk + i)
		x.insert(r)
		want[r] = true
	}
	if given := (len(x.recs)-1)*recChunk + len(x.recs[len(x.recs)-1]); given != 3*recChunk+5 || len(x.recs) != 4 {
		t.Errorf("%d positions in %d chunks; want %d in 4 (freed ones reused)", given, len(x.recs), 3*recChunk+5)
	}
	if x.len() != len(want) {
		t.Fatalf("%d records, want %d", x.len(), len(want))
	}
	for r := range want {
		if got, ok := x.find(r.v4, 32); !ok || got != r {
			t.Fatalf("find %08x: %+v, %v; want %+v", r.v4, got, ok, r)
		}
	}
	for k, c := range x.recs[:len(x.recs)-1] {
		if len(c) != recChunk {
			t.Errorf("chunk %d holds %d records, want %d", k, len(c), recChunk)
		}
	}
}

// BenchmarkIndexInsert accepts keys one at a time into an index of
// 900,000, as the watch does, in address order (a load that appends) and
// in random order (a controller that reuses addresses): ns/op is a key's
// check and insert.
func BenchmarkIndexInsert(b *testing.B) {
	const base = 900_000
	rec := func(i uint32) record {
		return record{v4: 0x64400000 + i, len4: 32, hi: 0x20010db800000000, lo: uint64(i), len6: 128}
	}
	for _, order := range []string{"sequential", "random"} {
		b.Run(order, func(b *testing.B) {
			recs := make([]record, base)
			for i := range recs {
				recs[i] = rec(uint32(i) * 4) // room between them for the random ones
			}
			var x index
			x.build(recs, make([]int64, base))
			rng := rand.New(rand.NewPCG(1, 2))
			next := uint32(base * 4)
			for b.Loop() {
				r := rec(next)
				next++
				for order == "random" { // a free address: each op inserts
					r = rec(rng.Uint32N(base*4)&^3 | 1 + rng.Uint32N(3))
					if _, bad := x.conflict(r); !bad {
						break
					}
				}
				if _, bad := x.conflict(r); bad {
					b.Fatalf("%+v conflicts", r)
				}
				x.insert(r)
			}
		})
	}
}
