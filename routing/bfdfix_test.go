package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bfd"

	"github.com/map646/map646/lab/poll"
)

var testBFD = BFD{Enabled: true, Interval: 100 * time.Millisecond, Multiplier: 3}

// newTestBFDServer is a bfdServer whose IPv6 listen fails as it does where
// bfdd holds [::]:3784; it records the families it was asked to listen on.
func newTestBFDServer(t *testing.T) (*bfdServer, *[]string) {
	t.Helper()
	var asked []string
	b := newBFDServer(slog.New(slog.DiscardHandler))
	b.listen = func(f bfdFamily) (*net.UDPConn, error) {
		asked = append(asked, f.network)
		if f == bfdIPv6 {
			// What the kernel answers where bfdd holds the port.
			return listenBFDHeld(f)
		}
		return listenBFD(f)
	}
	t.Cleanup(b.close)
	return b, &asked
}

func waitSessionState(t *testing.T, b *bfdServer, peer netip.Addr, want string) {
	t.Helper()
	if !poll.Until(testWait, 10*time.Millisecond, func() bool { return b.state(peer) == want }) {
		t.Fatalf("BFD with %s is %q after %v, want %q", peer, b.state(peer), testWait, want)
	}
}

// TestBFDIPv4WithoutIPv6: the IPv6 port cannot be had (IPv6 disabled, or
// another BFD daemon holds it without SO_REUSEADDR). An IPv4 session
// needs only the IPv4 socket: it is added and comes up, and the IPv6
// socket is not even tried until an IPv6 session is added, which fails
// naming the family, the port and the likely holder.
func TestBFDIPv4WithoutIPv6(t *testing.T) {
	b, asked := newTestBFDServer(t)
	remote := newFakeBFD(t, addrR4, addrS)
	remote.start()
	if err := b.add(addrR4, addrS, testBFD, func(bfdDown) {}); err != nil {
		t.Fatalf("IPv4 session: %v", err)
	}
	if !slices.Equal(*asked, []string{"udp4"}) {
		t.Errorf("an IPv4 session listened on %v, want [udp4]", *asked)
	}
	waitSessionState(t, b, addrR4, "up")

	v6 := netip.MustParseAddr("::1")
	err := b.add(v6, netip.Addr{}, testBFD, func(bfdDown) {})
	if err == nil {
		t.Fatal("an IPv6 session was added without its listener")
	}
	t.Logf("IPv6 session: %v", err)
	for _, want := range []string{"udp6", "[::]:3784", "held by"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the IPv6 listen error %q does not say %q", err, want)
		}
	}
	if b.state(v6) != "" {
		t.Errorf("a failed IPv6 session was kept: %q", b.state(v6))
	}
	if got := b.state(addrR4); got != "up" {
		t.Errorf("the IPv4 session is %q after the IPv6 failure, want up", got)
	}
}

// TestBFDDiag: the packets sent carry bfd.LocalDiag (RFC 5880 §6.8.1):
// 3 (Neighbor Signaled Session Down) once the neighbor said Down, 1
// (Control Detection Time Expired) once it went silent, 0 while Up.
func TestBFDDiag(t *testing.T) {
	b, _ := newTestBFDServer(t)
	remote := newFakeBFD(t, addrR4, addrS)
	remote.start()
	downs := make(chan bfdDown, 4)
	if err := b.add(addrR4, addrS, testBFD, func(why bfdDown) { downs <- why }); err != nil {
		t.Fatal(err)
	}
	waitSessionState(t, b, addrR4, "up")
	wantDown := func(want bfdDown) {
		t.Helper()
		select {
		case why := <-downs:
			if why != want {
				t.Fatalf("down for %v, want %v", why, want)
			}
		case <-time.After(testWait):
			t.Fatalf("not down after %v", testWait)
		}
	}
	// heard waits for a packet in state st after the first n, and returns
	// the diagnostic of the first such packet.
	heard := func(n int, st bfd.StateType) bfd.DiagnosticType {
		t.Helper()
		var diag bfd.DiagnosticType
		if !poll.Until(testWait, 10*time.Millisecond, func() bool {
			i := slices.IndexFunc(remote.heardSince(n), func(h bfdHeard) bool { return h.state == st })
			if i >= 0 {
				diag = remote.heardSince(n)[i].diag
			}
			return i >= 0
		}) {
			t.Fatalf("no packet in state %v after %v", st, testWait)
		}
		return diag
	}
	upDiagsSince := func(n int) []bfd.DiagnosticType {
		var diags []bfd.DiagnosticType
		for _, h := range remote.heardSince(n) {
			if h.state == bfd.StateUp {
				diags = append(diags, h.diag)
			}
		}
		return diags
	}

	n := len(remote.heardSince(0))
	remote.signalDown()
	wantDown(bfdRemote)
	if d := heard(n, bfd.StateDown); d != bfd.DiagnosticNeighborSignaledSessionDown {
		t.Errorf("Down after the neighbor's Down sent with Diag %v, want 3 (%v)", uint8(d), bfd.DiagnosticNeighborSignaledSessionDown)
	}

	// Back up: the diagnostic is cleared.
	waitSessionState(t, b, addrR4, "up")
	n = len(remote.heardSince(0))
	heard(n, bfd.StateUp)
	for _, d := range upDiagsSince(n) {
		if d != bfd.DiagnosticNoDiagnostic {
			t.Errorf("Up sent with Diag %v, want 0", uint8(d))
		}
	}

	n = len(remote.heardSince(0))
	remote.forget()
	wantDown(bfdExpired)
	if d := heard(n, bfd.StateDown); d != bfd.DiagnosticControlDetectionTimeExpired {
		t.Errorf("Down after expiry sent with Diag %v, want 1 (%v)", uint8(d), bfd.DiagnosticControlDetectionTimeExpired)
	}
}

// TestBFDStaleResetAfterRecreate: a reload re-creates a neighbor (delete,
// then add) while the reset that its old BFD session asked for is still to
// run. That reset is about a session that no longer exists: the new
// session stays Established. The same call for the current neighbor
// resets it, which shows the test would see a reset.
func TestBFDStaleResetAfterRecreate(t *testing.T) {
	port := freePort(t)
	rp := routerPeer{Neighbor: testNeighbor(addrS, 65001, port), families: []Family{IPv4Unicast}}
	newTestRouter(t, addrR4, 65000, port, rp)
	n := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	n.BFD = testBFD // no BFD neighbor: BFD stays down and resets nothing by itself
	cfg := Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{n}}
	s, log := newLoggedSpeaker(t, cfg)
	waitEstablished(t, s, addrR4)
	peerState := func() *peerState {
		s.stMu.Lock()
		defer s.stMu.Unlock()
		return s.peers[addrR4]
	}
	old := peerState()

	cfg.Neighbors[0].BFD.Multiplier = 4 // not the same session: deleted and added
	if err := s.Reconfigure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if peerState() == old {
		t.Fatal("the reload did not re-create the neighbor")
	}
	waitEstablished(t, s, addrR4)

	s.onBFDDown(addrR4, old, bfdExpired)
	stayEstablished(t, s, time.Second, log)
	if got := log.grep("BFD is down"); len(got) != 0 {
		t.Errorf("the old BFD session's reset reached the new session: %q", got)
	}

	s.onBFDDown(addrR4, peerState(), bfdExpired)
	for s.Established(addrR4) {
		waitChange(t, s, "the current neighbor's BFD reset")
	}
}

// TestUDPPortHolder: the process holding a UDP port is found and named
// (here this test, holding a port of its own: port 3784 may be in use by
// other tests of this host).
func TestUDPPortHolder(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pid %d (%s)", os.Getpid(), strings.TrimSpace(string(comm)))
	if got := udpPortHolder("udp4", port); got != want {
		t.Errorf("holder of udp4 port %d: %q, want %q", port, got, want)
	}
	if got := udpPortHolder("udp6", port); got != "" {
		t.Errorf("holder of udp6 port %d, which no IPv6 socket has: %q", port, got)
	}
}

// listenBFDHeld fails as listenBFD does when the port is held:
// net.ListenConfig's error for EADDRINUSE.
func listenBFDHeld(f bfdFamily) (*net.UDPConn, error) {
	return nil, &net.OpError{Op: "listen", Net: f.network, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
}
