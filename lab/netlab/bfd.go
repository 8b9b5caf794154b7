package netlab

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bfd"
)

// BFDPeer is a router's side of single-hop BFD (RFC 5880, RFC 5881), run
// by a test in the router's namespace, for what BIRD 2 (2.0.12) never
// does: send AdminDown. BIRD's `disable` of its bfd protocol, or `bfd off`
// on a session, deletes the session without a word (the nodes see BFD
// expire), where an operator's `shutdown` of BFD on other routers sends
// AdminDown (RFC 5880 §6.8.16).
//
// One session per node address, 100 ms x 3, the three-way handshake, a
// Final for every Poll; no detection of its own (the test watches the
// nodes). Packets go with TTL 255 from the router's address, port 3784.
type BFDPeer struct {
	conn *net.UDPConn

	mu        sync.Mutex
	sessions  map[netip.Addr]*bfdPeerSession
	adminDown bool
}

type bfdPeerSession struct {
	my, your uint32
	state    bfd.StateType
}

const bfdPeerInterval = 100 * time.Millisecond

// StartBFDPeer runs BFD in ns on local (the router's address) with each of
// peers until t ends.
func StartBFDPeer(t TB, ns *NS, local string, peers ...string) *BFDPeer {
	t.Helper()
	la, err := netip.ParseAddr(local)
	if err != nil {
		t.Fatalf("netlab: BFD peer address %q: %v", local, err)
	}
	var conn *net.UDPConn
	err = ns.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			level, opt := syscall.IPPROTO_IP, syscall.IP_TTL
			if la.Is6() {
				level, opt = syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS
			}
			var serr error
			if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), level, opt, 255) }); err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(la, 3784).String())
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		t.Fatalf("netlab: in %s: BFD on %s: %v", ns.Role, local, err)
	}
	p := &BFDPeer{conn: conn, sessions: make(map[netip.Addr]*bfdPeerSession)}
	for _, s := range peers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			conn.Close()
			t.Fatalf("netlab: BFD peer %q: %v", s, err)
		}
		p.sessions[a] = newBFDPeerSession()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); conn.Close(); wg.Wait() })
	wg.Add(2)
	go func() { defer wg.Done(); p.receive() }()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(bfdPeerInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				p.sendAll()
			}
		}
	}()
	return p
}

func newBFDPeerSession() *bfdPeerSession {
	return &bfdPeerSession{my: rand.Uint32() | 1, state: bfd.StateDown}
}

// AdminDown takes every session administratively down: AdminDown is sent
// from now on and nothing received is acted on.
func (p *BFDPeer) AdminDown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adminDown = true
}

// Enable starts a new session with every peer (a new discriminator, state
// Down), as a router does when BFD is turned on again.
func (p *BFDPeer) Enable() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adminDown = false
	for a := range p.sessions {
		p.sessions[a] = newBFDPeerSession()
	}
}

// Up reports whether the session with peer is Up.
func (p *BFDPeer) Up(peer string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sessions[netip.MustParseAddr(peer)]
	return s != nil && !p.adminDown && s.state == bfd.StateUp
}

func (p *BFDPeer) sendAll() {
	p.mu.Lock()
	var out []struct {
		to  netip.Addr
		pkt []byte
	}
	for a, s := range p.sessions {
		out = append(out, struct {
			to  netip.Addr
			pkt []byte
		}{a, p.packet(s, false)})
	}
	p.mu.Unlock()
	for _, o := range out {
		p.conn.WriteToUDPAddrPort(o.pkt, netip.AddrPortFrom(o.to, 3784))
	}
}

// packet is a control packet of s; p.mu is held.
func (p *BFDPeer) packet(s *bfdPeerSession, final bool) []byte {
	h := bfd.BFDHeader{Version: 1, State: s.state, Final: final, DetectTimeMultiplier: 3, MyDiscriminator: s.my, YourDiscriminator: s.your,
		DesiredMinTxInterval: uint32(bfdPeerInterval / time.Microsecond), RequiredMinRxInterval: uint32(bfdPeerInterval / time.Microsecond)}
	if p.adminDown {
		h.State, h.Diagnostic = bfd.StateAdminDown, bfd.DiagnosticAdministrativelyDown
	}
	b, _ := h.MarshalBinary() // fails only for a version, diagnostic or state out of range
	return b
}

func (p *BFDPeer) receive() {
	buf := make([]byte, 512)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var h bfd.BFDHeader
		if h.UnmarshalBinary(buf[:n]) != nil {
			continue
		}
		p.mu.Lock()
		s := p.sessions[from.Addr().Unmap()]
		if s != nil && !p.adminDown && (h.YourDiscriminator == 0 || h.YourDiscriminator == s.my) {
			switch {
			case h.State == bfd.StateDown && s.state == bfd.StateDown:
				s.state, s.your = bfd.StateInit, h.MyDiscriminator
			case h.State <= bfd.StateDown && s.state == bfd.StateUp:
				s.state, s.your = bfd.StateDown, 0
			case (h.State == bfd.StateInit || h.State == bfd.StateUp) && s.state != bfd.StateUp:
				s.state, s.your = bfd.StateUp, h.MyDiscriminator
			}
			if h.Poll {
				b := p.packet(s, true)
				p.mu.Unlock()
				p.conn.WriteToUDPAddrPort(b, from)
				continue
			}
		}
		p.mu.Unlock()
	}
}
