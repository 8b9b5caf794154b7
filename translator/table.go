package translator

import (
	"cmp"
	"encoding/binary"
	"fmt"
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
// for concurrent use.
//
// A lookup does the same work at a thousand entries and at a million: each
// direction keeps one open-addressing hash per prefix length present, and a
// lookup tries those lengths, longest first (RFC 7757 §3 asks for the
// longest match; NewTable refuses overlaps, so at most one can match). A
// slot holds everything the translation needs, so a hit reads one slot and
// nothing else: at a million entries, one cache miss rather than two.
type Table struct {
	by4   []eamIndex4 // one per IPv4 prefix length present, longest first
	by6   []eamIndex6 // one per IPv6 prefix length present, longest first
	where []uint32    // entry i is in by4[where[i]>>26].slots[where[i]&(1<<26-1)]
}

// eamIndex4 holds the entries of one IPv4 prefix length.
type eamIndex4 struct {
	mask  uint32 // netmask of the length
	len   uint8
	shift uint8 // 64 - log2(len(slots)), for eamHash32
	slots []eamSlot4
}

type eamSlot4 struct {
	key    uint32 // IPv4 prefix
	meta   uint32 // IPv6 prefix length << 24 | (entry index + 1); 0: empty
	hi, lo uint64 // IPv6 prefix, big-endian halves
}

// eamIndex6 holds the entries of one IPv6 prefix length.
type eamIndex6 struct {
	mhi, mlo uint64 // netmask of the length
	len      uint8
	shift    uint8
	slots    []eamSlot6
}

type eamSlot6 struct {
	hi, lo uint64 // IPv6 prefix
	v4     uint32 // IPv4 prefix
	meta   uint32 // IPv4 prefix length << 24 | (entry index + 1); 0: empty
}

// Slots are 24 bytes, without pointers for the garbage collector to scan:
// at a load factor of at most one half, a million entries take 48 MB per
// direction (96 MB from 1<<20 entries on). The entry index gets 24 bits.
const maxEntries = 1<<24 - 1

// eamEntry is a checked Mapping, as NewTable works on it.
type eamEntry struct {
	hi, lo     uint64 // IPv6 prefix, big-endian halves
	v4         uint32 // IPv4 prefix
	len4, len6 uint8
}

// eamHash32 and eamHash128 are multiplicative (Fibonacci) hashes: the top
// bits of a multiply depend on every key bit and index the table (the
// 128-bit key is first folded with one more multiply). They spread
// sequential and block-structured addresses evenly, and random ones as well
// as any hash: linear probing needs no more.
func eamHash32(k uint32) uint64 { return uint64(k) * 0x9e3779b97f4a7c15 }

func eamHash128(hi, lo uint64) uint64 {
	return (hi*0xff51afd7ed558ccd ^ lo) * 0x9e3779b97f4a7c15
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
	if len(ms) > maxEntries {
		return nil, &TableError{Problems: []MappingError{{
			Index: maxEntries, Other: -1,
			Msg: fmt.Sprintf("too many mappings (%d); at most %d are accepted", len(ms), maxEntries),
		}}}
	}
	var probs []eamProblem
	ents := make([]eamEntry, len(ms))
	ok := make([]bool, len(ms))
	for i, m := range ms {
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
		a4, a6 := m.IPv4.Addr().As4(), m.IPv6.Addr().As16()
		ents[i] = eamEntry{
			hi:   binary.BigEndian.Uint64(a6[:8]),
			lo:   binary.BigEndian.Uint64(a6[8:]),
			v4:   binary.BigEndian.Uint32(a4[:]),
			len4: uint8(l4),
			len6: uint8(l6),
		}
		ok[i] = true
	}
	probs = checkOverlaps(probs, ents, ok, false)
	probs = checkOverlaps(probs, ents, ok, true)
	if len(probs) > 0 {
		return nil, tableError(ms, probs)
	}

	t := &Table{where: make([]uint32, len(ents))}
	var n4 [33]int
	var n6 [129]int
	for i := range ents {
		n4[ents[i].len4]++
		n6[ents[i].len6]++
	}
	var at4 [33]int
	var at6 [129]int
	for l := 32; l >= 0; l-- {
		if n4[l] > 0 {
			at4[l] = len(t.by4)
			shift, slots := eamSize(n4[l])
			t.by4 = append(t.by4, eamIndex4{
				mask:  ^uint32(0) << (32 - l),
				len:   uint8(l),
				shift: shift,
				slots: make([]eamSlot4, slots),
			})
		}
	}
	for l := 128; l >= 0; l-- {
		if n6[l] > 0 {
			at6[l] = len(t.by6)
			shift, slots := eamSize(n6[l])
			mhi, mlo := eamMask128(l)
			t.by6 = append(t.by6, eamIndex6{
				mhi: mhi, mlo: mlo,
				len:   uint8(l),
				shift: shift,
				slots: make([]eamSlot6, slots),
			})
		}
	}
	// Linear probing to the first empty slot: the checks above leave no key
	// twice in an index.
	for i := range ents {
		e := &ents[i]
		x4 := &t.by4[at4[e.len4]]
		j, m := eamHash32(e.v4)>>x4.shift, uint64(len(x4.slots)-1)
		for x4.slots[j].meta != 0 {
			j = (j + 1) & m
		}
		x4.slots[j] = eamSlot4{key: e.v4, meta: uint32(e.len6)<<24 | uint32(i+1), hi: e.hi, lo: e.lo}
		t.where[i] = uint32(at4[e.len4])<<26 | uint32(j)

		x6 := &t.by6[at6[e.len6]]
		j, m = eamHash128(e.hi, e.lo)>>x6.shift, uint64(len(x6.slots)-1)
		for x6.slots[j].meta != 0 {
			j = (j + 1) & m
		}
		x6.slots[j] = eamSlot6{hi: e.hi, lo: e.lo, v4: e.v4, meta: uint32(e.len4)<<24 | uint32(i+1)}
	}
	return t, nil
}

// eamSize returns the hash shift and slot count for n keys: a power of two
// at least 2n, which keeps the load factor at or below one half and the
// linear-probing runs short.
func eamSize(n int) (shift uint8, slots int) {
	b := bits.Len(uint(2*n - 1))
	return uint8(64 - b), 1 << b
}

// eamMask128 returns the netmask of an IPv6 prefix length as two halves.
func eamMask128(l int) (hi, lo uint64) {
	if l <= 64 {
		return ^uint64(0) << (64 - l), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - l)
}

// Len returns the number of entries.
func (t *Table) Len() int { return len(t.where) }

// Mapping returns entry i as it was given to NewTable.
func (t *Table) Mapping(i int) Mapping {
	w := t.where[i]
	x := &t.by4[w>>26]
	s := &x.slots[w&(1<<26-1)]
	var a4 [4]byte
	var a6 [16]byte
	binary.BigEndian.PutUint32(a4[:], s.key)
	binary.BigEndian.PutUint64(a6[:8], s.hi)
	binary.BigEndian.PutUint64(a6[8:], s.lo)
	return Mapping{
		IPv4: netip.PrefixFrom(netip.AddrFrom4(a4), int(x.len)),
		IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), int(s.meta>>24)),
	}
}

// Map4 translates an IPv4 address through the table: the IPv6 prefix's
// bits, then the IPv4 address's suffix bits (the bits after the IPv4 prefix
// length) placed at the top of the IPv6 suffix, the remaining low bits zero
// (RFC 7757 §3.2, §3.3). entry is the index of the matching Mapping.
func (t *Table) Map4(a [4]byte) (v6 [16]byte, entry int32, ok bool) {
	k := binary.BigEndian.Uint32(a[:])
	for i := range t.by4 {
		x := &t.by4[i]
		key := k & x.mask
		j, m := eamHash32(key)>>x.shift, uint64(len(x.slots)-1)
		for {
			s := &x.slots[j]
			if s.meta == 0 {
				break
			}
			if s.key == key {
				// The IPv4 suffix goes right after the IPv6 prefix, that
				// is sh = 128 - len6 - (32 - len4) bits above the bottom:
				// in lo, in hi, or across both. Go shifts by 64 or more
				// give zero, so no branch is needed.
				suf, sh := uint64(k&^key), 96-uint(s.meta>>24)+uint(x.len)
				binary.BigEndian.PutUint64(v6[:8], s.hi|suf<<(sh-64)|suf>>(64-sh))
				binary.BigEndian.PutUint64(v6[8:], s.lo|suf<<sh)
				return v6, int32(s.meta&(1<<24-1)) - 1, true
			}
			j = (j + 1) & m
		}
	}
	return v6, -1, false
}

// Map6 is the reverse: an IPv6 address inside an entry's IPv6 prefix gives
// the IPv4 prefix plus the top IPv4-suffix-length bits of the IPv6 suffix.
// Addresses in the IPv6 prefix whose remaining low bits (below those
// carried) are not zero still match (RFC 7757 §3.3: the IPv6 suffix bits
// beyond the IPv4 suffix are ignored).
func (t *Table) Map6(a [16]byte) (v4 [4]byte, entry int32, ok bool) {
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	for i := range t.by6 {
		x := &t.by6[i]
		khi, klo := hi&x.mhi, lo&x.mlo
		j, m := eamHash128(khi, klo)>>x.shift, uint64(len(x.slots)-1)
		for {
			s := &x.slots[j]
			if s.meta == 0 {
				break
			}
			if s.hi == khi && s.lo == klo {
				len4 := uint(s.meta >> 24) // not 0: /0 is refused
				sh := 96 - uint(x.len) + len4
				suf := uint32(lo>>sh | hi<<(64-sh) | hi>>(sh-64))
				binary.BigEndian.PutUint32(v4[:], s.v4|suf&(math.MaxUint32>>len4))
				return v4, int32(s.meta&(1<<24-1)) - 1, true
			}
			j = (j + 1) & m
		}
	}
	return v4, -1, false
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
func tableError(ms []Mapping, probs []eamProblem) *TableError {
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
		m := ms[p.index]
		var o Mapping
		if p.other >= 0 {
			o = ms[p.other]
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
