package routing

import (
	"context"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// TestSessionBackSoonAfterReset proves that a session our speaker reset
// comes back within seconds. GoBGP's BFD resets the session with a Cease
// "Administrative Reset" when BFD goes down (the ResetPeer below is its
// very call), and by default GoBGP then idles 30 s, refusing connections:
// a node revived after a silent death stayed unrouted that long.
// The router is replaced by a fresh speaker on the same address, as a
// router that forgot the session would be; it only accepts (testRouter):
// what is left to wait for is our speaker's idle hold after the reset
// (the neighbor's connect retry, 1 s here), then its first connection
// attempt (GoBGP's 1.5-2 s) and one connection.
func TestSessionBackSoonAfterReset(t *testing.T) {
	const bound = 8 * time.Second // GoBGP's default would take more than 30 s
	port := freePort(t)
	rp := routerPeer{Neighbor: testNeighbor(addrS, 65001, port), families: []Family{IPv4Unicast}}
	r := newTestRouter(t, addrR4, 65000, port, rp)
	s := newTestSpeaker(t, addrS, 65001, port, testNeighbor(addrR4, 65000, port, IPv4Unicast))
	waitEstablished(t, s, addrR4)

	err := s.bgp.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: addrR4.String(), Communication: "BFD is down"})
	if err != nil {
		t.Fatalf("ResetPeer: %v", err)
	}
	deadline := time.After(testWait)
	for s.Established(addrR4) {
		select {
		case <-s.Changes():
		case <-deadline:
			t.Fatalf("the session with %s is still established %v after the reset", addrR4, testWait)
		}
	}
	down := time.Now()
	r.s.Stop()
	newTestRouter(t, addrR4, 65000, port, rp)

	timeout := time.After(bound)
	for !s.Established(addrR4) {
		select {
		case <-s.Changes():
		case <-timeout:
			t.Fatalf("the session with %s is not back %v after the reset: %+v", addrR4, bound, s.Neighbors())
		}
	}
	t.Logf("session back %v after the reset", time.Since(down).Round(time.Millisecond))
}
