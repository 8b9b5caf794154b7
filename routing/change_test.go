package routing

import (
	"context"
	"net/netip"
	"testing"
)

// TestChange: Change adds and withdraws the prefixes it is given and
// leaves the others announced, as the router sees them; a prefix not
// announced is ignored; invalid input changes nothing.
func TestChange(t *testing.T) {
	port := freePort(t)
	s := newTestSpeaker(t, addrS, 65001, port, testNeighbor(addrR4, 65000, port, IPv4Unicast))
	r4 := newTestRouter(t, addrR4, 65000, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR4)
	ctx := context.Background()
	if err := s.Announce(ctx, []Announcement{{Prefix: pfx4, MED: 10}}); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("the first route", func() bool { return r4.route(pfx4) != nil })

	if err := s.Change(ctx, []Announcement{{Prefix: pfx4b, MED: 10}}, nil); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("the added route", func() bool { return r4.route(pfx4b) != nil })
	if err := s.Change(ctx, nil, []netip.Prefix{pfx4, netip.MustParsePrefix("203.0.113.0/24")}); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("the withdrawal", func() bool { return r4.route(pfx4) == nil })
	if r4.route(pfx4b) == nil {
		t.Error("a change withdrew a prefix it was not given")
	}
	if got := s.Announced(); len(got) != 1 || got[0].Prefix != pfx4b {
		t.Errorf("Announced() = %+v, want %v alone", got, pfx4b)
	}
	bad := netip.MustParsePrefix("198.51.100.7/24")
	if err := s.Change(ctx, []Announcement{{Prefix: bad}}, []netip.Prefix{pfx4b}); err == nil {
		t.Error("a prefix with host bits accepted")
	}
	if got := s.Announced(); len(got) != 1 {
		t.Errorf("a refused change changed the announcements: %+v", got)
	}
}
