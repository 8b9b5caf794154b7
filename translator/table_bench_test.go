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
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], h)
		var a6 [16]byte // 256 hosts per rack /64
		binary.BigEndian.PutUint64(a6[:8], 0x20010db800000000|uint64(i>>8))
		binary.BigEndian.PutUint64(a6[8:], 0x1000|uint64(i&0xff))
		ms = append(ms, Mapping{
			IPv4: netip.PrefixFrom(netip.AddrFrom4(a4), 32),
			IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), 128),
		})
	}
	rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	return ms
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

var benchSizes = []struct {
	name string
	n    int
}{{"1k", 1000}, {"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}}

// BenchmarkTableLookup measures hits at every table size; the figures
// should not grow with the size beyond what the caches take away.
func BenchmarkTableLookup(b *testing.B) {
	const nq = 1 << 16 // queries, pre-generated so the loop does no RNG work
	type sized struct {
		name   string
		t      *Table
		q4     [][4]byte
		q6     [][16]byte
		t4, t6 int // lookups that hit, to keep the results used
	}
	var tables []*sized
	for _, s := range benchSizes {
		rng := rand.New(rand.NewPCG(1, uint64(s.n)))
		t, err := NewTable(dcMappings(s.n, rng))
		if err != nil {
			b.Fatal(err)
		}
		q4, q6 := dcQueries(t, nq, rng)
		tables = append(tables, &sized{name: s.name, t: t, q4: q4, q6: q6})
	}
	b.Run("4to6", func(b *testing.B) {
		for _, s := range tables {
			b.Run(s.name, func(b *testing.B) {
				b.ReportAllocs()
				hits := 0
				for i := 0; b.Loop(); i++ {
					if _, _, ok := s.t.Map4(s.q4[i&(nq-1)]); ok {
						hits++
					}
				}
				if hits == 0 {
					b.Fatal("no hits")
				}
			})
		}
	})
	b.Run("6to4", func(b *testing.B) {
		for _, s := range tables {
			b.Run(s.name, func(b *testing.B) {
				b.ReportAllocs()
				hits := 0
				for i := 0; b.Loop(); i++ {
					if _, _, ok := s.t.Map6(s.q6[i&(nq-1)]); ok {
						hits++
					}
				}
				if hits == 0 {
					b.Fatal("no hits")
				}
			})
		}
	})
}

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
