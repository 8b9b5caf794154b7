package routing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Announce makes the announced set equal to want: it adds the prefixes
// that are missing, re-adds those whose attributes differ (GoBGP replaces
// a route added again, so the neighbors see one UPDATE, not a withdrawal),
// and withdraws those that are not in want. An invalid want changes
// nothing. If GoBGP refuses a change, Announce carries on with the others
// and returns every failure; Announced then tells what is announced.
func (s *Speaker) Announce(ctx context.Context, want []Announcement) error {
	norm, err := normalize(want)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}

	var errs []error
	for _, a := range norm {
		if old, ok := s.announced[a.Prefix]; ok && equalAnnouncement(old, a) {
			continue
		}
		_, err := s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{pathFor(a, false)}})
		if err != nil {
			errs = append(errs, fmt.Errorf("routing: announce %s: %w", a.Prefix, err))
			continue
		}
		s.announced[a.Prefix] = a
	}
	keep := make(map[netip.Prefix]bool, len(norm))
	for _, a := range norm {
		keep[a.Prefix] = true
	}
	for p, a := range s.announced {
		if keep[p] {
			continue
		}
		if err := s.bgp.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{pathFor(a, true)}}); err != nil {
			errs = append(errs, fmt.Errorf("routing: withdraw %s: %w", p, err))
			continue
		}
		delete(s.announced, p)
	}
	return errors.Join(errs...)
}

// Change announces add (each added, or replaced if announced with other
// attributes) and withdraws del, leaving every other announcement as it
// is: what a change of a few mappings in a table of a million needs,
// where Announce would go over the whole set. An invalid add changes
// nothing; a prefix of del that is not announced is ignored. Failures are
// returned as Announce returns them.
func (s *Speaker) Change(ctx context.Context, add []Announcement, del []netip.Prefix) error {
	norm, err := normalize(add)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	var errs []error
	for _, p := range del {
		a, ok := s.announced[p]
		if !ok {
			continue
		}
		if err := s.bgp.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{pathFor(a, true)}}); err != nil {
			errs = append(errs, fmt.Errorf("routing: withdraw %s: %w", p, err))
			continue
		}
		delete(s.announced, p)
	}
	for _, a := range norm {
		if old, ok := s.announced[a.Prefix]; ok && equalAnnouncement(old, a) {
			continue
		}
		if _, err := s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{pathFor(a, false)}}); err != nil {
			errs = append(errs, fmt.Errorf("routing: announce %s: %w", a.Prefix, err))
			continue
		}
		s.announced[a.Prefix] = a
	}
	return errors.Join(errs...)
}

// Announced returns what is announced now, sorted by prefix.
func (s *Speaker) Announced() []Announcement {
	s.mu.Lock()
	out := make([]Announcement, 0, len(s.announced))
	for _, a := range s.announced {
		a.Communities = slices.Clone(a.Communities)
		out = append(out, a)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Announcement) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

// normalize validates want and returns a copy with sorted, de-duplicated
// communities (the order of communities carries no meaning, so a reordered
// list is not a change).
func normalize(want []Announcement) ([]Announcement, error) {
	out := make([]Announcement, 0, len(want))
	seen := make(map[netip.Prefix]bool, len(want))
	var errs []error
	for i, a := range want {
		p := a.Prefix
		switch {
		case !p.IsValid():
			errs = append(errs, fmt.Errorf("routing: announcement %d: invalid prefix", i+1))
			continue
		case p.Addr().Zone() != "" || p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("routing: announcement %d: prefix %s: want a plain IPv4 or IPv6 prefix", i+1, p))
			continue
		case p != p.Masked():
			errs = append(errs, fmt.Errorf("routing: announcement %d: prefix %s has host bits set; did you mean %s?", i+1, p, p.Masked()))
			continue
		case seen[p]:
			errs = append(errs, fmt.Errorf("routing: announcement %d: prefix %s listed twice", i+1, p))
			continue
		}
		seen[p] = true
		a.Communities = slices.Clone(a.Communities)
		slices.Sort(a.Communities)
		a.Communities = slices.Compact(a.Communities)
		out = append(out, a)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func equalAnnouncement(a, b Announcement) bool {
	return a.Prefix == b.Prefix && a.MED == b.MED && slices.Equal(a.Communities, b.Communities)
}

// pathFor builds the GoBGP path of an announcement. The next hop is left
// unspecified: GoBGP then uses each session's local address, and the
// export policy replaces it where a neighbor has a configured next hop.
func pathFor(a Announcement, withdraw bool) *apiutil.Path {
	nlri, _ := bgp.NewIPAddrPrefix(a.Prefix) // cannot fail: the prefix was validated
	family, nh := bgp.RF_IPv4_UC, netip.IPv4Unspecified()
	if a.Prefix.Addr().Is6() {
		family, nh = bgp.RF_IPv6_UC, netip.IPv6Unspecified()
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeMultiExitDisc(a.MED),
	}
	if family == bgp.RF_IPv4_UC {
		a, _ := bgp.NewPathAttributeNextHop(nh)
		attrs = append(attrs, a)
	} else {
		a, _ := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		attrs = append(attrs, a)
	}
	if len(a.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(slices.Clone(a.Communities)))
	}
	// Age is the route's origination time (shown by `gobgp global rib`).
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw, Age: time.Now().Unix()}
}
