package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestRouteDelta: on random sets of mapped prefixes of a small space
// (many adjacent, merging into spans), adding or removing one prefix and
// applying RouteDelta's answer to the routes of the set before gives
// exactly the routes of the set after, as Prefixes computes them.
func TestRouteDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 2000 {
		var mapped []netip.Prefix
		for range 1 + r.IntN(20) {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))}), 26+r.IntN(7)).Masked()
			if !slices.ContainsFunc(mapped, p.Overlaps) {
				mapped = append(mapped, p)
			}
		}
		before := cover(mapped)
		var p netip.Prefix
		added := r.IntN(2) == 0
		var after []netip.Prefix
		if added {
			for {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))}), 26+r.IntN(7)).Masked()
				if !slices.ContainsFunc(mapped, p.Overlaps) {
					break
				}
			}
			after = cover(append(slices.Clone(mapped), p))
		} else {
			k := r.IntN(len(mapped))
			p = mapped[k]
			after = cover(slices.Delete(slices.Clone(mapped), k, k+1))
		}
		sorted := slices.Clone(before)
		slices.SortFunc(sorted, netip.Prefix.Compare)
		has := func(q netip.Prefix) bool {
			_, ok := slices.BinarySearchFunc(sorted, q, netip.Prefix.Compare)
			return ok
		}
		add, del := RouteDelta(has, p, added)
		got := slices.DeleteFunc(slices.Clone(before), func(q netip.Prefix) bool { return slices.Contains(del, q) })
		for _, q := range del {
			if !has(q) {
				t.Fatalf("round %d: removes %v, not a route", round, q)
			}
		}
		for _, q := range add {
			if has(q) {
				t.Fatalf("round %d: adds %v, a route already", round, q)
			}
		}
		got = append(got, add...)
		slices.SortFunc(got, netip.Prefix.Compare)
		want := slices.Clone(after)
		slices.SortFunc(want, netip.Prefix.Compare)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: mapped %v, %v added=%v: routes %v, +%v -%v gives %v, want %v", round, mapped, p, added, before, add, del, got, want)
		}
	}
}

// TestAnyWithin against a scan of the routes.
func TestAnyWithin(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 500 {
		rs := &Routes{}
		var ps []netip.Prefix
		for range r.IntN(20) {
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(r.IntN(4)), byte(r.IntN(256))}), 20+r.IntN(13)).Masked())
		}
		ps = append(ps, netip.MustParsePrefix("64:ff9b::/96"))
		rs.insert(slices.Clone(ps))
		a := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(r.IntN(4)), byte(r.IntN(256))}), 16+r.IntN(17)).Masked()
		want := slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is4() && p.Bits() >= a.Bits() && a.Contains(p.Addr()) })
		if got := rs.AnyWithin(a); got != want {
			t.Fatalf("AnyWithin(%v) = %v in %v", a, got, ps)
		}
	}
}
