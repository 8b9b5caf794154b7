package translator

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// dcMappings returns n mappings shaped like a datacenter's: single
// addresses (/32 <-> /128) drawn at random from 10/8, each mapped into a
// rack's /64 of 2001:db8::/32, plus one prefix pair in a thousand (at least
// four) of /24, /28, /26 and /29. Random IPv4 addresses give the hash no
// pattern to exploit, and the order is shuffled as in a file nobody sorted.
func dcMappings(n int, rng *rand.Rand) []Mapping {
	type shape struct{ l4, l6 int }
	shapes := []shape{{24, 120}, {28, 124}, {26, 112}, {29, 125}}
	k := min(n, max(4, n/1000))
	ms := make([]Mapping, 0, n)
	for j := range k {
		s := shapes[j%len(shapes)]
		var a4 [4]byte // 100.64/10, one /24 block each
		binary.BigEndian.PutUint32(a4[:], 100<<24|64<<16|uint32(j)<<8)
		var a6 [16]byte
		binary.BigEndian.PutUint64(a6[:8], 0x20010db8ffff0000|uint64(j))
		ms = append(ms, Mapping{
			IPv4: netip.PrefixFrom(netip.AddrFrom4(a4), s.l4),
			IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), s.l6),
		})
	}
	var hosts []uint32
	for len(hosts) < n-k {
		for range n - k - len(hosts) {
			hosts = append(hosts, 10<<24|rng.Uint32()&0xffffff)
		}
		slices.Sort(hosts)
		hosts = slices.Compact(hosts)
	}
	for i, h := range hosts {
		ms = append(ms, rackMapping(h, i))
	}
	rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	return ms
}

// contiguousMappings returns n single-address mappings as a datacenter
// numbers its servers: consecutive addresses of public blocks from
// 52.0.0.0 up (a million fill 16 consecutive /16s), the i-th in rack i/256.
// The IPv4 side then covers few /16s and /24s, densely.
func contiguousMappings(n int) []Mapping {
	ms := make([]Mapping, n)
	for i := range ms {
		ms[i] = rackMapping(52<<24+uint32(i), i)
	}
	return ms
}

// rackMapping maps the IPv4 address a to host i of the racks of
// 2001:db8::/32: 256 hosts per rack /64.
func rackMapping(a uint32, i int) Mapping {
	var a4 [4]byte
	binary.BigEndian.PutUint32(a4[:], a)
	var a6 [16]byte
	binary.BigEndian.PutUint64(a6[:8], 0x20010db800000000|uint64(i>>8))
	binary.BigEndian.PutUint64(a6[8:], 0x1000|uint64(i&0xff))
	return Mapping{
		IPv4: netip.PrefixFrom(netip.AddrFrom4(a4), 32),
		IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), 128),
	}
}

// dcQueries returns nq addresses of each family drawn uniformly from the
// entries of t, a random address inside prefix entries.
func dcQueries(t *Table, nq int, rng *rand.Rand) (q4 [][4]byte, q6 [][16]byte) {
	q4 = make([][4]byte, nq)
	q6 = make([][16]byte, nq)
	for i := range nq {
		m := t.Mapping(rng.IntN(t.Len()))
		a4 := m.IPv4.Addr().As4()
		x := binary.BigEndian.Uint32(a4[:]) | rng.Uint32()&(1<<(32-m.IPv4.Bits())-1)
		binary.BigEndian.PutUint32(q4[i][:], x)
		v6, _, ok := t.Map4(q4[i])
		if !ok {
			panic(fmt.Sprintf("query %v of %v not found", q4[i], m))
		}
		q6[i] = v6
	}
	return q4, q6
}

// missQueries returns nq IPv4 clients that t does not map, drawn uniformly
// from the unicast space (1/8 to 223/8 but 127/8), and the same clients as
// an IPv6 server addresses them: under the pseudo prefix 64:ff9b::/96.
// These are the misses of the hot path: the spoof check on every IPv4
// source, the hairpin check on every IPv4 destination from the IPv6 side,
// and the table lookup of every IPv6 destination before the pseudo prefix.
func missQueries(t *Table, nq int, rng *rand.Rand) (q4 [][4]byte, q6 [][16]byte) {
	q4 = make([][4]byte, 0, nq)
	q6 = make([][16]byte, 0, nq)
	for len(q4) < nq {
		a := rng.Uint32N(223<<24) + 1<<24
		if a>>24 == 127 {
			continue
		}
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], a)
		a6 := [16]byte{0, 0x64, 0xff, 0x9b, 12: a4[0], a4[1], a4[2], a4[3]}
		_, _, ok4 := t.Map4(a4)
		_, _, ok6 := t.Map6(a6)
		if ok4 || ok6 {
			continue
		}
		q4, q6 = append(q4, a4), append(q6, a6)
	}
	return q4, q6
}

var benchSizes = []struct {
	name string
	n    int
}{{"1k", 1000}, {"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}}

// benchTable is one table of benchSizes with its queries.
type benchTable struct {
	name  string
	t     *Table
	q4    [][4]byte // hits
	q6    [][16]byte
	miss4 [][4]byte
	miss6 [][16]byte
}

const benchQueries = 1 << 16 // pre-generated so the loop does no RNG work

// benchTables builds (once per run) the tables of benchSizes: dcMappings, or
// contiguousMappings if contiguous.
var benchTables = func() func(b *testing.B, contiguous bool) []*benchTable {
	built := map[bool][]*benchTable{}
	return func(b *testing.B, contiguous bool) []*benchTable {
		if ts, ok := built[contiguous]; ok {
			return ts
		}
		var ts []*benchTable
		for _, s := range benchSizes {
			rng := rand.New(rand.NewPCG(1, uint64(s.n)))
			var ms []Mapping
			if contiguous {
				ms = contiguousMappings(s.n)
			} else {
				ms = dcMappings(s.n, rng)
			}
			t, err := NewTable(ms)
			if err != nil {
				b.Fatal(err)
			}
			bt := &benchTable{name: s.name, t: t}
			bt.q4, bt.q6 = dcQueries(t, benchQueries, rng)
			bt.miss4, bt.miss6 = missQueries(t, benchQueries, rng)
			ts = append(ts, bt)
		}
		built[contiguous] = ts
		return ts
	}
}()

// benchLookups measures Map4 on q4 and Map6 on q6 of every table, and
// checks that every lookup hit, or that none did.
func benchLookups(b *testing.B, ts []*benchTable, hit bool) {
	b.Run("4to6", func(b *testing.B) {
		for _, s := range ts {
			q := s.q4
			if !hit {
				q = s.miss4
			}
			b.Run(s.name, func(b *testing.B) {
				b.ReportAllocs()
				hits, n := 0, 0
				for i := 0; b.Loop(); i++ {
					if _, _, ok := s.t.Map4(q[i&(benchQueries-1)]); ok {
						hits++
					}
					n++
				}
				if hit && hits != n || !hit && hits != 0 {
					b.Fatalf("%d hits in %d lookups", hits, n)
				}
			})
		}
	})
	b.Run("6to4", func(b *testing.B) {
		for _, s := range ts {
			q := s.q6
			if !hit {
				q = s.miss6
			}
			b.Run(s.name, func(b *testing.B) {
				b.ReportAllocs()
				hits, n := 0, 0
				for i := 0; b.Loop(); i++ {
					if _, _, ok := s.t.Map6(q[i&(benchQueries-1)]); ok {
						hits++
					}
					n++
				}
				if hit && hits != n || !hit && hits != 0 {
					b.Fatalf("%d hits in %d lookups", hits, n)
				}
			})
		}
	})
}

// BenchmarkTableLookup measures hits at every table size; the figures
// should not grow with the size beyond what the caches take away (at a
// million entries, a cache and a TLB miss per lookup).
func BenchmarkTableLookup(b *testing.B) { benchLookups(b, benchTables(b, false), true) }

// BenchmarkTableLookupContiguous is BenchmarkTableLookup on tables of
// consecutive addresses. Their IPv4 side hashes without a collision, so
// that 4to6 here against 4to6 above shows what the keys away from their
// home slot (a fifth of the random ones) cost in mispredicted branches.
func BenchmarkTableLookupContiguous(b *testing.B) { benchLookups(b, benchTables(b, true), true) }

// BenchmarkTableMiss measures the lookups of addresses the table does not
// map (missQueries), the common case on the hot path.
func BenchmarkTableMiss(b *testing.B) { benchLookups(b, benchTables(b, false), false) }

// BenchmarkTableMissContiguous is BenchmarkTableMiss on tables of
// consecutive addresses.
func BenchmarkTableMissContiguous(b *testing.B) { benchLookups(b, benchTables(b, true), false) }

// BenchmarkNewTable measures building the 1M-entry table the config loader
// must load in under 3 s, parsing included.
func BenchmarkNewTable(b *testing.B) {
	ms := dcMappings(1_000_000, rand.New(rand.NewPCG(1, 2)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewTable(ms); err != nil {
			b.Fatal(err)
		}
	}
}
