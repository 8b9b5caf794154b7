package routing

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// PartnerRouterIDs returns the BGP identifiers (RFC 6286: the router_id
// each sent in its OPEN) of the partner neighbors whose sessions are
// Established, by neighbor address. Two nodes that drain at the same
// moment compare them to decide, both the same way, which one backs off.
// A partner missing from the map (its identifier could not be read) is
// for the caller to treat on the safe side.
func (s *Speaker) PartnerRouterIDs() map[netip.Addr]netip.Addr {
	s.mu.Lock()
	partners := make(map[netip.Addr]bool)
	for _, n := range s.cfg.Neighbors {
		if n.Role == Partner {
			partners[n.Address] = true
		}
	}
	closed := s.closed
	s.mu.Unlock()
	out := make(map[netip.Addr]netip.Addr)
	if closed {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil || !partners[addr] || !s.Established(addr) {
			return
		}
		if id, err := netip.ParseAddr(p.GetState().GetRouterId()); err == nil && id.Is4() && !id.IsUnspecified() {
			out[addr] = id
		}
	})
	if err != nil {
		s.log.Warn("cannot list the partners' router ids", "err", err)
	}
	return out
}
