package routing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
)

// Reconfigure applies a reloaded configuration: it removes the neighbors
// that are gone, adds the new ones, and re-creates those whose session
// parameters changed (their sessions restart). A neighbor whose next hops
// or description alone changed keeps its session: the export policy is
// replaced and the routes are re-sent (soft reset out). A change of local
// AS, router id, listener or gRPC socket needs a restart and is refused
// before anything changes.
func (s *Speaker) Reconfigure(ctx context.Context, cfg Config) error {
	if err := validateConfig(cfg); err != nil {
		return err
	}
	cfg = cloneConfig(cfg)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	old := s.cfg
	var restart []string
	if cfg.LocalAS != old.LocalAS {
		restart = append(restart, fmt.Sprintf("local AS %d -> %d", old.LocalAS, cfg.LocalAS))
	}
	if cfg.RouterID != old.RouterID {
		restart = append(restart, fmt.Sprintf("router id %s -> %s", old.RouterID, cfg.RouterID))
	}
	if cfg.ListenPort != old.ListenPort || !sameAddrSet(cfg.ListenAddresses, old.ListenAddresses) {
		restart = append(restart, fmt.Sprintf("listener %v port %d -> %v port %d", old.ListenAddresses, old.ListenPort, cfg.ListenAddresses, cfg.ListenPort))
	}
	if cfg.GRPCSocket != old.GRPCSocket {
		restart = append(restart, fmt.Sprintf("grpc socket %q -> %q", old.GRPCSocket, cfg.GRPCSocket))
	}
	if len(restart) > 0 {
		return fmt.Errorf("routing: reload cannot change %v: restart map646 to apply it (nothing was changed)", restart)
	}

	oldByAddr := make(map[netip.Addr]Neighbor, len(old.Neighbors))
	for _, n := range old.Neighbors {
		oldByAddr[n.Address] = n
	}
	newByAddr := make(map[netip.Addr]Neighbor, len(cfg.Neighbors))
	for _, n := range cfg.Neighbors {
		newByAddr[n.Address] = n
	}

	var errs []error
	// Removed first, so that the export policy never names a neighbor twice.
	for _, n := range old.Neighbors {
		nn, kept := newByAddr[n.Address]
		if kept && sameSession(n, nn) {
			continue
		}
		if err := s.deletePeer(ctx, n.Address); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.installExportPolicy(ctx, cfg.Neighbors); err != nil {
		// The previous policy is still assigned: the next hops of the
		// remaining sessions are unchanged.
		errs = append(errs, err)
	}
	for _, n := range cfg.Neighbors {
		on, existed := oldByAddr[n.Address]
		switch {
		case existed && sameSession(on, n):
			if sameNextHops(on, n) {
				continue
			}
			err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: n.Address.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT})
			if err != nil {
				errs = append(errs, fmt.Errorf("routing: re-send routes with the new next hop to %s: %w", n.Address, err))
			} else {
				s.log.Info("neighbor next hops changed", "peer", n.Address, "ipv4", n.NextHopIPv4, "ipv6", n.NextHopIPv6)
			}
		default:
			if err := s.addPeer(ctx, n); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// The configuration kept is what GoBGP now runs: a neighbor that
	// could not be added is not reported as configured.
	applied := cfg
	applied.Neighbors = slices.DeleteFunc(slices.Clone(cfg.Neighbors), func(n Neighbor) bool {
		s.stMu.Lock()
		_, ok := s.peers[n.Address]
		s.stMu.Unlock()
		return !ok
	})
	s.cfg = applied
	s.applyListenerGTSM(applied)
	return errors.Join(errs...)
}

// sameSession reports whether a and b describe the same session, next
// hops and description aside.
func sameSession(a, b Neighbor) bool {
	return a.Address == b.Address && a.PeerAS == b.PeerAS && a.Role == b.Role && a.Port == b.Port &&
		slices.Equal(a.Families, b.Families) && a.Password == b.Password &&
		a.HoldTime == b.HoldTime && a.KeepaliveTime == b.KeepaliveTime && a.ConnectRetry == b.ConnectRetry &&
		a.Passive == b.Passive && a.MultihopTTL == b.MultihopTTL && a.BFD == b.BFD &&
		a.TTLSecurity == b.TTLSecurity && a.MaxPrefixes == b.MaxPrefixes
}

func sameNextHops(a, b Neighbor) bool {
	return a.NextHopIPv4 == b.NextHopIPv4 && a.NextHopIPv6 == b.NextHopIPv6
}

func sameAddrSet(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}
