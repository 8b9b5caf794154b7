package routing

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bfd"

	"github.com/map646/map646/lab/poll"
)

// TestBFDNewRemoteSession: the router's side of BFD behaves as BIRD 2
// does, deleting its BFD session when its BGP session goes down and
// starting a new one (new discriminator) when BGP starts again; packets
// for a discriminator it does not know are dropped. The router shuts the
// session down; our BFD session expires while the BGP session is Idle
// (nothing to reset) and takes the router's new session as soon as it
// hears it. The next BGP session comes up and stays up, BFD up. (GoBGP's
// own BFD peer kept the old discriminator and reset such a session.)
func TestBFDNewRemoteSession(t *testing.T) {
	port := freePort(t)
	rp := routerPeer{Neighbor: testNeighbor(addrS, 65001, port), families: []Family{IPv4Unicast}}
	r := newTestRouter(t, addrR4, 65000, port, rp)
	remote := newFakeBFD(t, addrR4, addrS)
	n := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	n.BFD = BFD{Enabled: true, Interval: 100 * time.Millisecond, Multiplier: 3}
	s, log := newLoggedSpeaker(t, Config{LocalAS: 65001, RouterID: addrS,
		ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{n}})
	remote.start()
	waitEstablished(t, s, addrR4)
	waitBFD(t, s, addrR4, "up")

	// The router ends the session, and deletes its BFD session as BIRD
	// does; our BFD peer hears nothing valid any more.
	ctx := context.Background()
	if err := r.s.DisablePeer(ctx, &api.DisablePeerRequest{Address: addrS.String(), Communication: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	remote.forget()
	for s.Established(addrR4) {
		waitChange(t, s, "the session to go down")
	}
	// Our BFD state goes down by expiry.
	waitBFD(t, s, addrR4, "down")

	// BGP starts again on the router, with a new BFD session.
	remote.start()
	if err := r.s.EnablePeer(ctx, &api.EnablePeerRequest{Address: addrS.String()}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, s, addrR4)
	up := time.Now()
	// A queued reset ends the session within milliseconds of Established;
	// 2 s (several BFD detection times) shows it is not coming.
	stay := time.After(2 * time.Second)
	for {
		select {
		case <-s.Changes():
			if !s.Established(addrR4) {
				t.Fatalf("the new session went down %v after it came up: %+v", time.Since(up).Round(time.Millisecond), s.Neighbors()[0])
			}
			continue
		case <-stay:
		}
		break
	}
	waitBFD(t, s, addrR4, "up")
	if got := log.grep("BFD is down"); len(got) != 0 {
		t.Errorf("a session was reset by BFD: %v", got)
	}
}

func waitChange(t *testing.T, s *Speaker, what string) {
	t.Helper()
	select {
	case <-s.Changes():
	case <-time.After(testWait):
		t.Fatalf("waiting for %s: nothing changed in %v: %+v", what, testWait, s.Neighbors())
	}
}

// waitBFD waits until the neighbor's BFD state is want. GoBGP has no event
// for BFD state: polled every 10 ms, up to testWait.
func waitBFD(t *testing.T, s *Speaker, peer netip.Addr, want string) {
	t.Helper()
	if !poll.Until(testWait, 10*time.Millisecond, func() bool {
		return slices.ContainsFunc(s.Neighbors(), func(ns NeighborStatus) bool { return ns.Address == peer && ns.BFD == want })
	}) {
		t.Fatalf("BFD with %s not %s after %v: %+v", peer, want, testWait, s.Neighbors())
	}
}

// fakeBFD is the router's side of BFD, as BIRD 2 runs it: one session at a
// time, which it deletes (forget) and creates anew (start) with its BGP
// session; packets for another discriminator are dropped ("unknown session
// id"). 100 ms x 3, RFC 5880's three-way handshake, no poll sequence.
type fakeBFD struct {
	t    *testing.T
	conn *net.UDPConn
	peer *net.UDPAddr

	mu     sync.Mutex
	active bool
	my     uint32
	your   uint32
	state  bfd.StateType
	heard  []bfdHeard // every packet received, also while forgotten
}

// bfdHeard is what a received packet said.
type bfdHeard struct {
	state bfd.StateType
	diag  bfd.DiagnosticType
}

func newFakeBFD(t *testing.T, local, peer netip.Addr) *fakeBFD {
	t.Helper()
	return newFakeBFDTTL(t, local, peer, bfdTTL)
}

// newFakeBFDTTL is newFakeBFD sending with TTL ttl.
func newFakeBFDTTL(t *testing.T, local, peer netip.Addr, ttl int) *fakeBFD {
	t.Helper()
	// The speaker's BFD listens on the wildcard address, port 3784, with
	// SO_REUSEADDR: this socket on the router's own address takes what is
	// sent to the router. It sends with TTL 255, as a neighbor on the link
	// must (RFC 5881 §5).
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return setsockopts(c, [][3]int{{syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1}, {syscall.IPPROTO_IP, syscall.IP_TTL, ttl}})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(local, 3784).String())
	if err != nil {
		t.Fatalf("fake BFD on %s: %v", local, err)
	}
	f := &fakeBFD{t: t, conn: pc.(*net.UDPConn), peer: net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 3784))}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); f.conn.Close() })
	go f.receive()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				f.send()
			}
		}
	}()
	return f
}

// start creates a new session: a new discriminator, state Down.
func (f *fakeBFD) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active, f.my, f.your, f.state = true, rand.Uint32()|1, 0, bfd.StateDown
}

// forget deletes the session: nothing is sent, everything is dropped.
func (f *fakeBFD) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = false
}

func (f *fakeBFD) send() {
	f.mu.Lock()
	if !f.active {
		f.mu.Unlock()
		return
	}
	h := bfd.BFDHeader{Version: 1, State: f.state, DetectTimeMultiplier: 3, MyDiscriminator: f.my, YourDiscriminator: f.your,
		DesiredMinTxInterval: 100000, RequiredMinRxInterval: 100000}
	f.mu.Unlock()
	b, _ := h.MarshalBinary()
	f.conn.WriteToUDP(b, f.peer)
}

func (f *fakeBFD) receive() {
	buf := make([]byte, 512)
	for {
		n, _, err := f.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var h bfd.BFDHeader
		if h.UnmarshalBinary(buf[:n]) != nil {
			continue
		}
		f.mu.Lock()
		f.heard = append(f.heard, bfdHeard{h.State, h.Diagnostic})
		if f.active && f.state != bfd.StateAdminDown && (h.YourDiscriminator == 0 || h.YourDiscriminator == f.my) {
			switch {
			case h.State == bfd.StateDown && f.state == bfd.StateDown:
				f.state, f.your = bfd.StateInit, h.MyDiscriminator
			case h.State == bfd.StateDown && f.state == bfd.StateUp:
				f.state, f.your = bfd.StateDown, 0
			case (h.State == bfd.StateInit || h.State == bfd.StateUp) && f.state != bfd.StateUp:
				f.state, f.your = bfd.StateUp, h.MyDiscriminator
			}
		}
		f.mu.Unlock()
	}
}

// signalDown tells the peer at once that the session is down, as a
// router does whose BFD timer expired, and starts over.
func (f *fakeBFD) signalDown() {
	f.mu.Lock()
	h := bfd.BFDHeader{Version: 1, State: bfd.StateDown, Diagnostic: bfd.DiagnosticControlDetectionTimeExpired,
		DetectTimeMultiplier: 3, MyDiscriminator: f.my, YourDiscriminator: f.your,
		DesiredMinTxInterval: 100000, RequiredMinRxInterval: 100000}
	f.state, f.your = bfd.StateDown, 0
	f.mu.Unlock()
	b, _ := h.MarshalBinary()
	if _, err := f.conn.WriteToUDP(b, f.peer); err != nil {
		f.t.Errorf("fake BFD: send Down: %v", err)
	}
}

// heardSince returns the packets received after the first n.
func (f *fakeBFD) heardSince(n int) []bfdHeard {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.heard[min(n, len(f.heard)):])
}

// adminDown takes the session administratively down, as an operator's
// shutdown of BFD does: AdminDown sent with our discriminator
// (RFC 5880 §6.8.16), nothing received acted on.
func (f *fakeBFD) adminDown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = bfd.StateAdminDown
}

// TestParseBFD: the checks of RFC 5880 §6.8.6 that need no session, on
// packets made from a valid one by changing a field (hdr) or the bytes.
func TestParseBFD(t *testing.T) {
	good := bfd.BFDHeader{Version: 1, State: bfd.StateUp, DetectTimeMultiplier: 3, MyDiscriminator: 7, YourDiscriminator: 9,
		DesiredMinTxInterval: 100000, RequiredMinRxInterval: 100000}
	for _, tc := range []struct {
		name  string
		hdr   func(*bfd.BFDHeader)
		bytes func([]byte) []byte
		ok    bool
	}{
		{"valid", nil, nil, true},
		{"Down without Your Discriminator", func(h *bfd.BFDHeader) { h.State, h.YourDiscriminator = bfd.StateDown, 0 }, nil, true},
		{"AdminDown without Your Discriminator", func(h *bfd.BFDHeader) { h.State, h.YourDiscriminator = bfd.StateAdminDown, 0 }, nil, true},
		{"Up without Your Discriminator", func(h *bfd.BFDHeader) { h.YourDiscriminator = 0 }, nil, false},
		{"Init without Your Discriminator", func(h *bfd.BFDHeader) { h.State, h.YourDiscriminator = bfd.StateInit, 0 }, nil, false},
		{"no My Discriminator", func(h *bfd.BFDHeader) { h.MyDiscriminator = 0 }, nil, false},
		{"detect multiplier 0", func(h *bfd.BFDHeader) { h.DetectTimeMultiplier = 0 }, nil, false},
		{"version 2", func(h *bfd.BFDHeader) { h.Version = 2 }, nil, false},
		{"authentication bit", nil, func(b []byte) []byte { b[1] |= 0x04; return b }, false},
		{"multipoint bit", nil, func(b []byte) []byte { b[1] |= 0x01; return b }, false},
		{"truncated", nil, func(b []byte) []byte { return b[:20] }, false},
		{"length field past the end", nil, func(b []byte) []byte { b[3] = 30; return b }, false},
		{"empty", nil, func([]byte) []byte { return nil }, false},
	} {
		h := good
		if tc.hdr != nil {
			tc.hdr(&h)
		}
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.bytes != nil {
			b = tc.bytes(b)
		}
		if _, ok := parseBFD(b); ok != tc.ok {
			t.Errorf("%s: accepted %v, want %v", tc.name, ok, tc.ok)
		}
	}
}
