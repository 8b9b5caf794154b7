package routing

import (
	"maps"
	"net/netip"
	"testing"
)

// Proves: PartnerRouterIDs gives each Established partner's router id (as
// its OPEN said), and nothing for a partner whose session is not up.
func TestPartnerRouterIDs(t *testing.T) {
	port := freePort(t)
	pa := testNeighbor(addrP, 65001, port, IPv4Unicast, IPv6Unicast)
	pa.Role, pa.NextHopIPv6 = Partner, nh6
	a := newTestSpeaker(t, addrS, 65001, port, pa)
	if got := a.PartnerRouterIDs(); len(got) != 0 {
		t.Errorf("before the partner runs: PartnerRouterIDs() = %v, want none", got)
	}
	b := newTestSpeaker(t, addrP, 65001, port, partnerOfS(port))
	waitEstablished(t, a, addrP)
	waitEstablished(t, b, addrS)
	// newTestSpeaker makes a node's address its router id.
	if got, want := a.PartnerRouterIDs(), map[netip.Addr]netip.Addr{addrP: addrP}; !maps.Equal(got, want) {
		t.Errorf("a: PartnerRouterIDs() = %v, want %v", got, want)
	}
	if got, want := b.PartnerRouterIDs(), map[netip.Addr]netip.Addr{addrS: addrS}; !maps.Equal(got, want) {
		t.Errorf("b: PartnerRouterIDs() = %v, want %v", got, want)
	}
}
