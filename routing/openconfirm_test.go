package routing

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/map646/map646/lab/poll"
)

// TestOpenConfirmHoldTimer: a connection collision (RFC 4271 §6.8) in the
// order that left two GoBGP speakers in OpenConfirm for good, forced by a
// raw peer playing the other speaker (router id 127.0.0.3, above ours).
// The speaker connects to it (C2) and sends OPEN; before the raw peer
// answers there, it connects to the speaker (C1) and exchanges OPENs:
// GoBGP takes C1 to OpenConfirm and sends KEEPALIVE. Then the raw peer
// answers on C2 with OPEN and KEEPALIVE, as the other GoBGP does on the
// connection it took to OpenConfirm, and sends nothing more on C1, as the
// other GoBGP does on the connection it parked. GoBGP parks C2 unread and,
// before a first session, runs no hold timer in OpenConfirm: without the
// speaker's own (expireOpenConfirm) nothing happened for as long as it was
// watched (15 s with a hold time of 3 s). With it both connections are
// closed openConfirmFloor (10 s, more than the hold time) later, LastError
// says why, and the neighbor is not left disabled: a new session comes up.
func TestOpenConfirmHoldTimer(t *testing.T) {
	port := freePort(t)
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addrR4, uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, log := newLoggedSpeaker(t, Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, port, IPv4Unicast)}}) // hold time 3 s
	c2 := acceptRaw(t, ln, addrR4)
	c2.waitMsg("the speaker's OPEN on its connection", bgp.BGP_MSG_OPEN)

	caps := bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(65000),
	})
	open, err := bgp.NewBGPOpenMessage(65000, 3, addrR4, []bgp.OptionParameterInterface{caps})
	if err != nil {
		t.Fatal(err)
	}
	c1 := connectRaw(t, addrR4, port, 0)
	openAt := time.Now() // OpenConfirm, and its hold time, start after this
	c1.sendMsg(open)
	c1.waitMsg("the speaker's OPEN on the raw peer's connection", bgp.BGP_MSG_OPEN)
	c1.waitMsg("the speaker's KEEPALIVE on the raw peer's connection", bgp.BGP_MSG_KEEPALIVE)
	c2.sendMsg(open)
	c2.sendMsg(bgp.NewBGPKeepAliveMessage())
	var state string
	if !poll.Until(testWait, 10*time.Millisecond, func() bool {
		state = neighborStatus(t, s, addrR4).State
		return state == "openconfirm"
	}) {
		t.Fatalf("state %s after the collision, want openconfirm", state)
	}

	// openConfirmFloor, then GoBGP closes both connections.
	deadline := time.After(openConfirmFloor + testWait)
	for _, c := range []*rawPeer{c1, c2} {
		for {
			if _, closed := c.notification(); closed {
				break
			}
			select {
			case <-c.notify:
			case <-deadline:
				t.Fatalf("connections not closed %v after the speaker reached OpenConfirm: %+v", openConfirmFloor+testWait, s.Neighbors())
			}
		}
	}
	closedAfter := time.Since(openAt)
	if closedAfter < openConfirmFloor {
		t.Errorf("connections closed %v after our OPEN, before %v", closedAfter, openConfirmFloor)
	}
	// GoBGP's event comes on its own goroutine: polled.
	var lastErr string
	if !poll.Until(testWait, 10*time.Millisecond, func() bool {
		lastErr = neighborStatus(t, s, addrR4).LastError
		return lastErr == openConfirmExpiredReason
	}) {
		t.Errorf("LastError %q, want %q", lastErr, openConfirmExpiredReason)
	}
	if len(log.grep("no KEEPALIVE in OpenConfirm in time", "peer="+addrR4.String())) != 1 {
		t.Errorf("want one warning about the session stuck in OpenConfirm")
	}

	// Enabled again: after GoBGP's idle hold (5 s) a session comes up.
	ln.Close() // the speaker's own attempts are refused from now on
	for !tryRaw(s, addrR4, port) {
		if time.Since(openAt) > openConfirmFloor+testWait {
			t.Fatalf("no session with %s %v after the stuck one was closed: %+v", addrR4, testWait, s.Neighbors())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("connections closed %v after our OPEN; a new session %v after it", closedAfter.Round(10*time.Millisecond), time.Since(openAt).Round(100*time.Millisecond))
}

// acceptRaw accepts one connection on ln, from the speaker, and reads it
// as a raw peer at addr.
func acceptRaw(t *testing.T, ln net.Listener, addr netip.Addr) *rawPeer {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testWait))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("raw peer %s: no connection from the speaker: %v", addr, err)
	}
	p := &rawPeer{t: t, addr: addr, conn: conn, notify: make(chan struct{}, 1)}
	t.Cleanup(func() { conn.Close() })
	go p.read()
	return p
}
