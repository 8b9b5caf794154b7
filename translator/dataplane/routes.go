package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/map646/map646/translator"
)

// RouteProtocol is the routing protocol number (rtm_protocol) of the
// routes map646 installs: `ip route show proto 246` lists them, and a start
// finds the leftovers of a process that could not clean up. 246 is not
// assigned in iproute2's rt_protos; name it with
//
//	echo "246 map646" > /etc/iproute2/rt_protos.d/map646.conf
const RouteProtocol = 246

// Prefixes returns the routes that bring tr's traffic to the device:
// every mapped IPv4 prefix, adjacent ones merged into the fewest covering
// prefixes (two mapped /32s side by side become one /31), and the pseudo
// prefix. They are sorted by netip.Prefix.Compare.
func Prefixes(tr *translator.Translator) []netip.Prefix {
	t := tr.Table()
	// Packed prefixes straight from the table: 8 bytes per mapping while
	// it runs, not a []netip.Prefix of the whole table (32 bytes each; the
	// routes themselves are that many only where no mappings adjoin).
	spans := make([]span, 0, t.Len())
	for _, m := range t.All() {
		spans = append(spans, spanOf(m.IPv4))
	}
	return append(coverSpans(spans), tr.Config().PseudoPrefix)
}

// span is an IPv4 prefix packed in 8 bytes, first address<<8 | length:
// spans sort by their first address.
type span uint64

func spanOf(p netip.Prefix) span { return span(uint64(v4(p.Addr()))<<8 | uint64(p.Bits())) }

// lo and hi are the first and last addresses of the prefix.
func (s span) lo() uint64 { return uint64(s) >> 8 }
func (s span) hi() uint64 { return s.lo() + 1<<(32-uint64(s)&0xff) - 1 }

// cover returns the fewest prefixes that cover the IPv4 prefixes mapped,
// which do not overlap, adjacent ones merged, in address order.
func cover(mapped []netip.Prefix) []netip.Prefix {
	spans := make([]span, 0, len(mapped))
	for _, p := range mapped {
		spans = append(spans, spanOf(p))
	}
	return coverSpans(spans)
}

// coverSpans is cover of the spans, which it sorts in place.
func coverSpans(spans []span) []netip.Prefix {
	slices.Sort(spans)
	var out []netip.Prefix
	for i := 0; i < len(spans); {
		lo, hi := spans[i].lo(), spans[i].hi()
		for i++; i < len(spans) && spans[i].lo() <= hi+1; i++ {
			hi = max(hi, spans[i].hi())
		}
		out = appendRange(out, lo, hi)
	}
	return out
}

func v4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// appendRange appends the fewest prefixes that cover lo..hi exactly.
func appendRange(out []netip.Prefix, lo, hi uint64) []netip.Prefix {
	for lo <= hi {
		bits := 32
		// Grow the block while it stays aligned and inside the range.
		for bits > 0 {
			size := uint64(1) << (32 - bits + 1)
			if lo%size != 0 || lo+size-1 > hi {
				break
			}
			bits--
		}
		a := uint32(lo)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), bits))
		lo += 1 << (32 - bits)
	}
	return out
}

// Routes keeps the routes of RouteProtocol into one device: it knows what
// it added and removes exactly that.
type Routes struct {
	h         *netlink.Handle
	link      int
	dev       string
	log       *slog.Logger
	installed []netip.Prefix // sorted
}

// NewRoutes returns a Routes for the device dev in the network namespace
// of the calling thread.
func NewRoutes(dev string, logger *slog.Logger) (*Routes, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h, err := netlink.NewHandle(syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("routes: netlink: %w", err)
	}
	l, err := h.LinkByName(dev)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("routes: device %s: %w", dev, err)
	}
	return &Routes{h: h, link: l.Attrs().Index, dev: dev, log: logger.With("component", "routes")}, nil
}

// Close releases the netlink socket. The routes stay.
func (r *Routes) Close() { r.h.Close() }

// Installed returns the routes added and not removed, sorted.
func (r *Routes) Installed() []netip.Prefix { return slices.Clone(r.installed) }

// RemoveStale removes every route of RouteProtocol in the main table that
// this Routes did not add: what a killed map646 left behind. The kernel
// removes the routes of a device with the device, so there are leftovers
// only when a device outlived its process; one map646 per network namespace
// is assumed. It logs what it removed.
func (r *Routes) RemoveStale() (int, error) {
	var stale []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := r.h.RouteListFiltered(family, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return 0, fmt.Errorf("routes: list routes of protocol %d: %w", RouteProtocol, err)
		}
		for _, rt := range rs {
			if p, ok := prefixOf(rt.Dst); !ok || !r.has(p) {
				stale = append(stale, rt)
			}
		}
	}
	if len(stale) == 0 {
		return 0, nil
	}
	var errs []error
	var shown []string
	for _, rt := range stale {
		if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("routes: remove stale %s: %w", rt.Dst, err))
			continue
		}
		if len(shown) < 10 {
			shown = append(shown, fmt.Sprintf("%s dev %s", rt.Dst, r.linkName(rt.LinkIndex)))
		}
	}
	r.log.Warn("removed routes left by an earlier map646", "count", len(stale)-len(errs),
		"proto", RouteProtocol, "routes", strings.Join(shown, ", "))
	return len(stale) - len(errs), firstErrors(errs)
}

func (r *Routes) linkName(index int) string {
	if l, err := r.h.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("#%d", index)
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func (r *Routes) has(p netip.Prefix) bool {
	_, ok := slices.BinarySearchFunc(r.installed, p, netip.Prefix.Compare)
	return ok
}

// Diff returns the routes to add and to remove to go from what is
// installed to want.
func (r *Routes) Diff(want []netip.Prefix) (add, del []netip.Prefix) {
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Prefix.Compare)
	want = slices.Compact(want)
	i, j := 0, 0
	for i < len(r.installed) || j < len(want) {
		var c int
		switch {
		case i == len(r.installed):
			c = 1
		case j == len(want):
			c = -1
		default:
			c = r.installed[i].Compare(want[j])
		}
		switch {
		case c < 0:
			del = append(del, r.installed[i])
			i++
		case c > 0:
			add = append(add, want[j])
			j++
		default:
			i++
			j++
		}
	}
	return add, del
}

// route is the kernel route for p: into the device, protocol
// RouteProtocol, main table.
func (r *Routes) route(p netip.Prefix) *netlink.Route {
	a := p.Addr()
	rt := &netlink.Route{
		LinkIndex: r.link,
		Dst:       &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())},
		Protocol:  RouteProtocol,
		Table:     syscall.RT_TABLE_MAIN,
		Type:      syscall.RTN_UNICAST,
	}
	if a.Is4() {
		rt.Scope = netlink.SCOPE_LINK // a route to a device, no gateway
	}
	return rt
}

// Add adds routes for ps. It goes on after a failure and returns the
// failures (the first few); the routes that were added are installed.
func (r *Routes) Add(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return nil
	}
	start := time.Now()
	var errs []error
	added := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if err := r.h.RouteAdd(r.route(p)); err != nil {
			if errors.Is(err, syscall.EEXIST) {
				err = fmt.Errorf("%w: a route to %s exists already, and map646 does not replace routes it did not add (ip route show %s)", err, p, p)
			}
			errs = append(errs, fmt.Errorf("routes: add %s dev %s: %w", p, r.dev, err))
			continue
		}
		added = append(added, p)
	}
	r.insert(added)
	r.log.Debug("routes added", "count", len(added), "failed", len(errs), "took", time.Since(start).Round(time.Millisecond))
	return firstErrors(errs)
}

// Remove removes the routes for ps that are installed. A route someone
// else removed already counts as removed.
func (r *Routes) Remove(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return nil
	}
	start := time.Now()
	gone := make([]netip.Prefix, 0, len(ps))
	var errs []error
	for _, p := range ps {
		if !r.has(p) {
			continue
		}
		if err := r.h.RouteDel(r.route(p)); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("routes: remove %s dev %s: %w", p, r.dev, err))
			continue
		}
		gone = append(gone, p)
	}
	r.drop(gone)
	r.log.Debug("routes removed", "count", len(gone), "failed", len(errs), "took", time.Since(start).Round(time.Millisecond))
	return firstErrors(errs)
}

// fewRoutes is the most routes insert and drop place one by one: a
// delta's few routes must not cost a sort or a pass over a million.
const fewRoutes = 16

// insert adds ps to the installed routes, keeping them sorted.
func (r *Routes) insert(ps []netip.Prefix) {
	if len(ps) > fewRoutes {
		r.installed = append(r.installed, ps...)
		slices.SortFunc(r.installed, netip.Prefix.Compare)
		return
	}
	for _, p := range ps {
		i, _ := slices.BinarySearchFunc(r.installed, p, netip.Prefix.Compare)
		r.installed = slices.Insert(r.installed, i, p)
	}
}

// drop removes ps from the installed routes.
func (r *Routes) drop(ps []netip.Prefix) {
	if len(ps) > fewRoutes {
		slices.SortFunc(ps, netip.Prefix.Compare)
		r.installed = slices.DeleteFunc(r.installed, func(p netip.Prefix) bool {
			_, found := slices.BinarySearchFunc(ps, p, netip.Prefix.Compare)
			return found
		})
		return
	}
	for _, p := range ps {
		if i, found := slices.BinarySearchFunc(r.installed, p, netip.Prefix.Compare); found {
			r.installed = slices.Delete(r.installed, i, i+1)
		}
	}
}

// RemoveAll removes every route added.
func (r *Routes) RemoveAll() error { return r.Remove(slices.Clone(r.installed)) }

// firstErrors joins the first five errors and counts the rest: a million
// failed routes must not make a million-line message.
func firstErrors(errs []error) error {
	const show = 5
	if len(errs) <= show {
		return errors.Join(errs...)
	}
	return errors.Join(append(errs[:show:show], fmt.Errorf("... and %d more", len(errs)-show))...)
}

// RouteDelta returns the routes to add and to remove when the IPv4 prefix
// p becomes mapped (added) or stops being mapped, in a set of routes made
// as Prefixes makes them (has says whether a route is in it): only the
// routes of the span of mapped addresses p joins or leaves change, since
// Prefixes merges adjacent mapped prefixes into spans and covers each
// with the fewest prefixes. The span is found by walking the set from p
// outwards, route by adjacent route (at most 33 lookups each), so a delta
// costs what its span holds, not what the table holds.
func RouteDelta(has func(netip.Prefix) bool, p netip.Prefix, added bool) (add, del []netip.Prefix) {
	if !p.Addr().Is4() {
		return nil, nil
	}
	lo := uint64(v4(p.Addr()))
	hi := lo + 1<<(32-p.Bits()) - 1
	spanLo, spanHi := lo, hi
	if !added {
		rlo, rhi, ok := routeContaining(has, lo)
		if !ok {
			return nil, nil // not routed: nothing to take away
		}
		del = append(del, prefix4(rlo, rhi))
		spanLo, spanHi = rlo, rhi
	}
	for spanLo > 0 {
		rlo, ok := routeEnding(has, spanLo-1)
		if !ok {
			break
		}
		del = append(del, prefix4(rlo, spanLo-1))
		spanLo = rlo
	}
	for spanHi < 1<<32-1 {
		rhi, ok := routeStarting(has, spanHi+1)
		if !ok {
			break
		}
		del = append(del, prefix4(spanHi+1, rhi))
		spanHi = rhi
	}
	if added {
		add = appendRange(nil, spanLo, spanHi)
	} else {
		if spanLo < lo {
			add = appendRange(nil, spanLo, lo-1)
		}
		if hi < spanHi {
			add = appendRange(add, hi+1, spanHi)
		}
	}
	// Routes of the span that stay as they were are neither.
	slices.SortFunc(add, netip.Prefix.Compare)
	slices.SortFunc(del, netip.Prefix.Compare)
	keep := func(p netip.Prefix, in []netip.Prefix) bool {
		_, found := slices.BinarySearchFunc(in, p, netip.Prefix.Compare)
		return found
	}
	a := slices.DeleteFunc(slices.Clone(add), func(p netip.Prefix) bool { return keep(p, del) })
	d := slices.DeleteFunc(del, func(p netip.Prefix) bool { return keep(p, add) })
	return a, d
}

// prefix4 is the IPv4 prefix from lo to hi, an aligned block.
func prefix4(lo, hi uint64) netip.Prefix {
	a := uint32(lo)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 32-bits.Len64(hi-lo))
}

// routeEnding returns the start of the route of has that ends at e.
func routeEnding(has func(netip.Prefix) bool, e uint64) (uint64, bool) {
	for k := 0; k <= 32; k++ {
		size := uint64(1) << k
		if (e+1)%size != 0 || e+1 < size {
			break // the blocks ending at e are the aligned ones
		}
		if lo := e + 1 - size; has(prefix4(lo, e)) {
			return lo, true
		}
	}
	return 0, false
}

// routeStarting returns the end of the route of has that starts at s.
func routeStarting(has func(netip.Prefix) bool, s uint64) (uint64, bool) {
	for k := 0; k <= 32; k++ {
		size := uint64(1) << k
		if s%size != 0 || s+size > 1<<32 {
			break
		}
		if hi := s + size - 1; has(prefix4(s, hi)) {
			return hi, true
		}
	}
	return 0, false
}

// routeContaining returns the route of has that holds the address a.
func routeContaining(has func(netip.Prefix) bool, a uint64) (lo, hi uint64, ok bool) {
	for k := 0; k <= 32; k++ {
		size := uint64(1) << k
		lo = a &^ (size - 1)
		if hi = lo + size - 1; has(prefix4(lo, hi)) {
			return lo, hi, true
		}
	}
	return 0, 0, false
}

// Has says whether the route to p is installed.
func (r *Routes) Has(p netip.Prefix) bool { return r.has(p) }

// AnyWithin says whether an installed route lies inside a (or is a):
// whether an aggregate covering it is still needed. The routes are sorted
// by length, then address: one binary search per length from a's on.
func (r *Routes) AnyWithin(a netip.Prefix) bool {
	for l := a.Bits(); l <= a.Addr().BitLen(); l++ {
		first := netip.PrefixFrom(a.Addr(), l)
		i, _ := slices.BinarySearchFunc(r.installed, first, netip.Prefix.Compare)
		if i < len(r.installed) {
			p := r.installed[i]
			if p.Bits() == l && p.Addr().Is4() == a.Addr().Is4() && a.Contains(p.Addr()) {
				return true
			}
		}
	}
	return false
}
