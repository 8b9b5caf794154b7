package routing

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// Re-creating a BFD neighbor after each session loss.
//
// GoBGP v4.8 keeps one BFD peer per neighbor for the neighbor's whole life,
// and when BFD goes down (expiry, or the remote side signals Down) it calls
// ResetPeer. A reset is a NOTIFICATION put in the session's channel, which
// only the Established state reads: a reset requested while the session is
// not Established stays queued and ends the next session the moment it is
// Established, with "BFD is down".
//
// Against BIRD 2 that is a loop that never ends. BIRD deletes its BFD
// session when its BGP session goes down and creates a new one (a new
// discriminator) when BGP starts again. Our BFD peer still holds BIRD's
// old discriminator: BIRD drops its packets ("Bad packet ... unknown
// session id"), our peer hears nothing it accepts and expires 300 ms
// later, while our session is Idle: a reset is queued. The BFD peer then
// comes up with BIRD's new session, BGP re-establishes, the queued reset
// ends it, BIRD deletes its BFD session again, and so on every ~3 s. What
// starts it is any BFD expiry while the session is not Established: a
// node frozen (SIGSTOP) and thawed has its hold timers and its BFD expiry
// fire at once, the hold timer first.
//
// So when a BFD neighbor's session leaves Established (for any reason but
// our own deletion), the speaker deletes the neighbor from GoBGP and adds
// it again with the same configuration: a new FSM (no queued reset) and a
// new BFD peer (Down, a new discriminator of ours, none of theirs), which
// comes up with whatever session the neighbor now runs. The new neighbor
// starts connecting at once (a new neighbor has no idle hold).
//
// Left over: the old BFD peer may be expiring at the very moment it is
// replaced; its reset then lands on the new neighbor and ends its first
// session, which is one more session loss and one more renewal: a flap of
// about a second, not a loop.

// renewWait bounds how long a renewal waits for GoBGP's BFD server to have
// replaced the neighbor's BFD peer.
const renewWait = 5 * time.Second

// queueRenewal asks the renewal loop to re-create the neighbor at addr. It
// is called from GoBGP's event callback and must not block.
func (s *Speaker) queueRenewal(addr netip.Addr) {
	s.stMu.Lock()
	s.renewals[addr] = struct{}{}
	s.stMu.Unlock()
	select {
	case s.renewKick <- struct{}{}:
	default:
	}
}

// renewLoop re-creates the neighbors queued by queueRenewal, one at a time,
// until ctx is done (Close).
func (s *Speaker) renewLoop(ctx context.Context) {
	defer close(s.renewDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.renewKick:
		}
		s.stMu.Lock()
		addrs := make([]netip.Addr, 0, len(s.renewals))
		for a := range s.renewals {
			addrs = append(addrs, a)
		}
		clear(s.renewals)
		s.stMu.Unlock()
		for _, a := range addrs {
			s.renewPeer(ctx, a)
		}
	}
}

// renewPeer deletes the BFD neighbor at addr from GoBGP and adds it again
// with the same configuration, unless it was removed or changed meanwhile
// (a reload), or its session is Established again (a reset still queued
// would already have ended it, and that loss queues another renewal). It
// holds mu: no reload or Close runs in between.
func (s *Speaker) renewPeer(ctx context.Context, addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var n Neighbor
	found := false
	for _, c := range s.cfg.Neighbors {
		if c.Address == addr && c.BFD.Enabled {
			n, found = c, true
		}
	}
	if !found || s.Established(addr) {
		return
	}
	// GoBGP's management calls ignore their context; only the waits below
	// are bounded.
	if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		s.log.Warn("cannot re-create the neighbor after its session loss: its next session may be reset with \"BFD is down\"",
			"peer", addr, "err", err)
		return
	}
	// GoBGP's BFD server replaces the peer on its own goroutine, one event
	// at a time from a queue of one, and an old peer being stopped may be
	// waiting for GoBGP's management loop (a ResetPeer): a DeletePeer or
	// AddPeer sent while both of those wait would block GoBGP for good.
	// So each step waits until the BFD server has taken the previous one:
	// the old peer gone from its list (it is stopped right after), then
	// the new one listed (added only once the old one has stopped).
	if !s.waitBFDPeer(addr, false) {
		// Added again anyway: a neighbor missing is worse than the risk.
		s.log.Warn("GoBGP's BFD server still lists the old BFD peer of a neighbor being re-created", "peer", addr, "waited", renewWait)
	}
	if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(n)}); err != nil {
		err = fmt.Errorf("neighbor %s deleted to renew its BFD session but not added again: %w (reload or restart map646 to restore it)", addr, err)
		s.log.Error("neighbor lost", "peer", addr, "err", err)
		s.stMu.Lock()
		if ps, ok := s.peers[addr]; ok {
			ps.lastErr = err.Error()
		}
		s.stMu.Unlock()
		return
	}
	if !s.waitBFDPeer(addr, true) {
		s.log.Warn("neighbor re-created, but GoBGP's BFD server has not listed its new BFD peer yet", "peer", addr, "waited", renewWait)
		return
	}
	s.log.Info("neighbor re-created after its session loss: a new BFD session, no reset left over from the old one", "peer", addr)
}

// waitBFDPeer waits (renewWait at most) until GoBGP's BFD server lists a
// peer for addr (want) or no longer does (!want). It has no events for
// that: polled.
func (s *Speaker) waitBFDPeer(addr netip.Addr, want bool) bool {
	deadline := time.Now().Add(renewWait)
	for {
		listed := false
		s.bgp.ListBfdPeer(context.Background(), func(a string, _ *api.BfdPeerState) {
			if p, err := netip.ParseAddr(a); err == nil && p == addr {
				listed = true
			}
		})
		if listed == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
