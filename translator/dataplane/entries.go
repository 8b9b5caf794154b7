package dataplane

import (
	"slices"
	"sync/atomic"
)

// carryOver adds the counts of old's mappings to the mappings of next with
// the same IPv4 side (the mapping's identity in the metrics), so that a
// reload does not reset the counters of the mappings it keeps. Both tables
// are keyed and sorted rather than put in a map: a million mappings cost
// 16 MB of keys, not a hash map ten times that size. Workers may be adding
// to next meanwhile; the atomic adds commute.
func carryOver(old, next *state) {
	if !old.entries.any() {
		return
	}
	a, b := mappingKeys(old), mappingKeys(next)
	for i, j := 0, 0; i < len(a) && j < len(b); {
		ka, kb := a[i]>>indexBits, b[j]>>indexBits
		switch {
		case ka < kb:
			i++
		case ka > kb:
			j++
		default:
			from, to := old.entries.of(int(a[i]&indexMask)), next.entries.of(int(b[j]&indexMask))
			for k := range from {
				if v := atomic.LoadUint64(&from[k]); v != 0 && to != nil {
					atomic.AddUint64(&to[k], v)
				}
			}
			i++
			j++
		}
	}
}

// A mapping key: the IPv4 prefix (address and length, 40 bits) above the
// mapping's id in its table (24 bits). Tables with more mappings than
// the index holds are not carried over.
const (
	indexBits = 24
	indexMask = 1<<indexBits - 1
)

func mappingKeys(s *state) []uint64 {
	t := s.tr.Table()
	if t.Span() > indexMask {
		return nil
	}
	keys := make([]uint64, 0, t.Len())
	for i, m := range t.All() {
		p := m.IPv4
		a := p.Addr().As4()
		v4 := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
		keys = append(keys, (v4<<8|uint64(p.Bits()))<<indexBits|uint64(i))
	}
	slices.Sort(keys)
	return keys
}
