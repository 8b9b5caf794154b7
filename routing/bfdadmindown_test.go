package routing

import (
	"net/netip"
	"testing"
	"time"
)

// TestBFDAdminDownKeepsSession: the router takes BFD administratively down
// (it sends AdminDown); RFC 5882 §4.2: the BFD client takes no action, so
// the BGP session stays Established while our BFD state is down. When the
// router turns BFD on again (a new session, as BIRD starts one), BFD comes
// back up, the BGP session still untouched. With GoBGP's BFD the session
// was reset with "BFD is down" (checked: this test fails so).
func TestBFDAdminDownKeepsSession(t *testing.T) {
	port := freePort(t)
	rp := routerPeer{Neighbor: testNeighbor(addrS, 65001, port), families: []Family{IPv4Unicast}}
	newTestRouter(t, addrR4, 65000, port, rp)
	remote := newFakeBFD(t, addrR4, addrS)
	n := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	// Our detection time: the router's multiplier (3) times the slower of
	// this interval and its 100 ms, 1.5 s. At 300 ms a loaded machine
	// (load average 10 on 2 CPUs) stalled this process long enough for
	// BFD to expire and reset the session, 1 run in 20.
	n.BFD = BFD{Enabled: true, Interval: 500 * time.Millisecond, Multiplier: 3}
	s, log := newLoggedSpeaker(t, Config{LocalAS: 65001, RouterID: addrS,
		ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{n}})
	remote.start()
	waitEstablished(t, s, addrR4)
	waitBFD(t, s, addrR4, "up")
	since := s.Neighbors()[0].Since

	remote.adminDown()
	waitBFD(t, s, addrR4, "down")
	if got := log.grep("administratively down"); len(got) != 1 {
		t.Fatalf("want one log line saying the neighbor took BFD administratively down, got %q", got)
	}
	stayEstablished(t, s, 3*time.Second, log) // two detection times (1.5 s): a reset would have come

	remote.start()
	waitBFD(t, s, addrR4, "up")
	stayEstablished(t, s, time.Second, log)
	if got := s.Neighbors()[0]; got.Since != since {
		t.Errorf("the session changed state at %v (up since %v): %+v", got.Since, since, got)
	}
}

// TestBFDNeedsTTL255: BFD packets that do not come with TTL 255 (not from
// a neighbor on the link, RFC 5881 §5) are ignored: BFD never comes up.
func TestBFDNeedsTTL255(t *testing.T) {
	port := freePort(t)
	rp := routerPeer{Neighbor: testNeighbor(addrS, 65001, port), families: []Family{IPv4Unicast}}
	newTestRouter(t, addrR4, 65000, port, rp)
	remote := newFakeBFDTTL(t, addrR4, addrS, 254)
	n := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	n.BFD = BFD{Enabled: true, Interval: 100 * time.Millisecond, Multiplier: 3}
	s, _ := newLoggedSpeaker(t, Config{LocalAS: 65001, RouterID: addrS,
		ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{n}})
	remote.start()
	waitEstablished(t, s, addrR4)
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if st := s.Neighbors()[0].BFD; st != "down" {
			t.Fatalf("BFD %s with packets of TTL 254", st)
		}
	}
}

// stayEstablished fails t if the session with addrR4 leaves Established
// within d.
func stayEstablished(t *testing.T, s *Speaker, d time.Duration, log *logLines) {
	t.Helper()
	stay := time.After(d)
	for {
		select {
		case <-s.Changes():
			if !s.Established(addrR4) {
				t.Fatalf("the session went down: %+v\n%q", s.Neighbors()[0], log.grep("BFD"))
			}
		case <-stay:
			return
		}
	}
}
