package routing

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// The speakers of a test listen on distinct 127.0.0.x addresses (a
// neighbor is known by its address) and on one port picked free for the
// test. Short timers keep sessions quick: GoBGP's first connection attempt
// comes 1.5-2 s after a neighbor is added.
const (
	testHold      = 3 * time.Second
	testKeepalive = time.Second
	testRetry     = time.Second
	testWait      = 15 * time.Second // upper bound of any wait on an event
)

var (
	addrS  = netip.MustParseAddr("127.0.0.2")  // the map646 speaker under test
	addrR4 = netip.MustParseAddr("127.0.0.3")  // IPv4 upstream router
	addrR6 = netip.MustParseAddr("127.0.0.4")  // IPv6 backend router (over an IPv4 session)
	addrR3 = netip.MustParseAddr("127.0.0.5")  // a third router
	addrP  = netip.MustParseAddr("127.0.0.6")  // a partner map646 node
	nh4    = netip.MustParseAddr("192.0.2.10") // configured next hops
	nh6    = netip.MustParseAddr("2001:db8::10")
)

func testLogger(t *testing.T) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("ROUTING_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// freePort returns a TCP port for the speakers of one test, which listen on
// several 127.0.0.x addresses. It is taken below the kernel's ephemeral
// range: a port from that range (what ":0" gives) may meanwhile become the
// source port of some outgoing connection on one of those addresses, and the
// speaker's bind then fails with "address already in use" (seen in CI).
// Ports already handed out in this process are not reused, and a port must
// be free on all addresses (a wildcard listen) to be taken.
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	const first = 10000
	if low-first < 1000 {
		t.Fatalf("freePort: the ephemeral port range starts at %d: no room below it", low)
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := first + rand.IntN(low-first)
		if portsUsed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[port] = true
		return port
	}
	t.Fatal("freePort: no free port found below the ephemeral range")
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

func testNeighbor(addr netip.Addr, as uint32, port int, fams ...Family) Neighbor {
	return Neighbor{
		Address: addr, PeerAS: as, Port: uint16(port), Families: fams,
		HoldTime: testHold, KeepaliveTime: testKeepalive, ConnectRetry: testRetry,
	}
}

func newTestSpeaker(t *testing.T, addr netip.Addr, as uint32, port int, neighbors ...Neighbor) *Speaker {
	t.Helper()
	s, err := New(Config{
		LocalAS: as, RouterID: addr, ListenAddresses: []netip.Addr{addr}, ListenPort: port,
		Neighbors: neighbors,
	}, testLogger(t).With("node", addr))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// partnerOfS is a partner node's neighbor entry for the speaker under
// test (addrS, AS 65001). Passive, as testRouter's neighbors are (it says
// why): the speaker under test connects.
func partnerOfS(port int) Neighbor {
	n := testNeighbor(addrS, 65001, port, IPv4Unicast, IPv6Unicast)
	n.Role, n.NextHopIPv6, n.Passive = Partner, netip.MustParseAddr("2001:db8::20"), true
	return n
}

// waitEstablished waits on the speaker's Changes() until the neighbor is
// Established.
func waitEstablished(t *testing.T, s *Speaker, peer netip.Addr) {
	t.Helper()
	deadline := time.After(testWait)
	for !s.Established(peer) {
		select {
		case <-s.Changes():
		case <-deadline:
			t.Fatalf("session with %s not established after %v: %+v", peer, testWait, s.Neighbors())
		}
	}
}

// testRouter is a plain GoBGP speaker standing for a router: it accepts
// every route and records each UPDATE it receives, in order.
//
// Its neighbors are passive: only the speaker under test connects. When
// both GoBGP speakers connect (a collision, RFC 4271 §6.8), GoBGP v4.9
// can leave both stuck in OpenConfirm for good: each takes the other's
// connection to OpenConfirm before its own has received an OPEN, parks
// its own unread once that OPEN arrives (OpenConfirm never looks at it),
// and so never sends the KEEPALIVE the other side waits for on it; and
// the hold timer does not run in OpenConfirm before a first session
// (negotiated hold time still 0). A rare race, seen in CI under load.
type testRouter struct {
	t    *testing.T
	addr netip.Addr
	s    *server.BgpServer

	mu      sync.Mutex
	rib     map[netip.Prefix]*apiutil.Path // latest path per prefix; deleted on withdrawal
	updates []routeEvent
	states  map[netip.Addr]bgp.FSMState
	notify  chan struct{}
}

type routeEvent struct {
	prefix   netip.Prefix
	from     netip.Addr
	withdraw bool
}

type routerPeer struct {
	Neighbor
	families []Family // as configured on the router's side
}

func newTestRouter(t *testing.T, addr netip.Addr, as uint32, port int, peers ...routerPeer) *testRouter {
	t.Helper()
	r := &testRouter{
		t: t, addr: addr,
		rib:    make(map[netip.Prefix]*apiutil.Path),
		states: make(map[netip.Addr]bgp.FSMState),
		notify: make(chan struct{}, 1),
	}
	r.s = server.NewBgpServer(server.LoggerOption(testLogger(t).With("router", addr), nil))
	go r.s.Serve()
	t.Cleanup(r.s.Stop)
	ctx := context.Background()
	err := r.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: as, RouterId: addr.String(), ListenPort: int32(port), ListenAddresses: []string{addr.String()},
	}})
	if err != nil {
		t.Fatalf("router %s: %v", addr, err)
	}
	err = r.s.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPathUpdate: r.onUpdate,
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			r.mu.Lock()
			r.states[ev.Peer.State.NeighborAddress] = ev.Peer.State.SessionState
			r.mu.Unlock()
			r.poke()
		},
	}, server.WatchUpdate(false, "", ""), server.WatchPeer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		r.addPeer(p)
	}
	return r
}

func (r *testRouter) addPeer(p routerPeer) {
	r.t.Helper()
	ap := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.PeerAS, AuthPassword: p.Password},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1, ConnectRetry: 1}},
		Transport: &api.Transport{LocalAddress: r.addr.String(), RemotePort: uint32(p.Port), PassiveMode: true},
	}
	for _, f := range p.families {
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}})
	}
	if err := r.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: ap}); err != nil {
		r.t.Fatalf("router %s: add peer %s: %v", r.addr, p.Address, err)
	}
}

func (r *testRouter) poke() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *testRouter) onUpdate(paths []*apiutil.Path, _ time.Time) {
	r.mu.Lock()
	for _, p := range paths {
		pfx, ok := nlriPrefix(p.Nlri)
		if !ok {
			continue // end-of-RIB markers
		}
		r.updates = append(r.updates, routeEvent{prefix: pfx, from: p.PeerAddress, withdraw: p.Withdrawal})
		if p.Withdrawal {
			delete(r.rib, pfx)
		} else {
			r.rib[pfx] = p
		}
	}
	r.mu.Unlock()
	r.poke()
}

// route returns the router's current path for pfx.
func (r *testRouter) route(pfx netip.Prefix) *apiutil.Path {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rib[pfx]
}

func (r *testRouter) established(peer netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[peer] == bgp.BGP_FSM_ESTABLISHED
}

// waitFor waits on the router's events until cond holds.
func (r *testRouter) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.After(testWait)
	for !cond() {
		select {
		case <-r.notify:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("router %s: %s: not after %v (rib %v)", r.addr, what, testWait, r.rib)
		}
	}
}

// announce makes the router send pfx to its peers.
func (r *testRouter) announce(pfx netip.Prefix) {
	r.t.Helper()
	p := pathFor(Announcement{Prefix: pfx, MED: 7}, false)
	p.Attrs[2], _ = bgp.NewPathAttributeNextHop(r.addr)
	if _, err := r.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		r.t.Fatalf("router %s: announce %s: %v", r.addr, pfx, err)
	}
}

// attrs of a received path, for assertions.
type pathAttrs struct {
	nextHop     netip.Addr
	med         uint32
	hasMED      bool
	communities []uint32
	asPath      []uint32
}

func attrsOf(p *apiutil.Path) pathAttrs {
	var a pathAttrs
	for _, at := range p.Attrs {
		switch v := at.(type) {
		case *bgp.PathAttributeNextHop:
			a.nextHop = v.Value
		case *bgp.PathAttributeMpReachNLRI:
			a.nextHop = v.Nexthop
		case *bgp.PathAttributeMultiExitDisc:
			a.med, a.hasMED = v.Value, true
		case *bgp.PathAttributeCommunities:
			a.communities = v.Value
		case *bgp.PathAttributeAsPath:
			for _, seg := range v.Value {
				a.asPath = append(a.asPath, seg.GetAS()...)
			}
		}
	}
	return a
}

func (a pathAttrs) String() string {
	return fmt.Sprintf("next hop %v, MED %d (set %v), communities %v, AS path %v", a.nextHop, a.med, a.hasMED, a.communities, a.asPath)
}

// ribPrefixes lists the prefixes of a family in a speaker's global RIB.
func ribPrefixes(t *testing.T, s *server.BgpServer, f bgp.Family) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	err := s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(n bgp.NLRI, _ []*apiutil.Path) {
		if p, ok := nlriPrefix(n); ok {
			out = append(out, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
