package routing

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/map646/map646/lab/poll"
)

var (
	pfx4  = netip.MustParsePrefix("198.51.100.10/32")
	pfx4b = netip.MustParsePrefix("198.51.100.11/32")
	pfx6  = netip.MustParsePrefix("64:ff9b::/96")
)

// Proves: sessions come up; IPv4 prefixes reach only the IPv4 neighbor and
// IPv6 prefixes only the IPv6 neighbor even where the router offers both
// families; the configured next hops (an IPv6 next hop over an IPv4
// session included), MED and communities are on the wire; a re-announcement
// with GRACEFUL_SHUTDOWN and a worse MED arrives as one replacing UPDATE,
// not a withdrawal; a withdrawal arrives. Also measures Announce-to-visible.
func TestAnnounceReachesRoutersPerFamily(t *testing.T) {
	port := freePort(t)
	n4 := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	n4.NextHopIPv4 = nh4
	n6 := testNeighbor(addrR6, 65002, port, IPv6Unicast)
	n6.NextHopIPv6 = nh6
	s := newTestSpeaker(t, addrS, 65001, port, n4, n6)
	// Both routers offer both families: what each gets is decided by the
	// speaker's configuration.
	r4 := newTestRouter(t, addrR4, 65000, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast, IPv6Unicast}})
	r6 := newTestRouter(t, addrR6, 65002, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast, IPv6Unicast}})
	waitEstablished(t, s, addrR4)
	waitEstablished(t, s, addrR6)

	want := []Announcement{
		{Prefix: pfx4, MED: 10, Communities: []uint32{65001<<16 | 100}},
		{Prefix: pfx6, MED: 10, Communities: []uint32{65001<<16 | 100}},
	}
	if err := s.Announce(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("IPv4 route", func() bool { return r4.route(pfx4) != nil })
	r6.waitFor("IPv6 route", func() bool { return r6.route(pfx6) != nil })

	a := attrsOf(r4.route(pfx4))
	if a.nextHop != nh4 || !a.hasMED || a.med != 10 || !slices.Equal(a.communities, []uint32{65001<<16 | 100}) || !slices.Equal(a.asPath, []uint32{65001}) {
		t.Errorf("IPv4 route at the upstream: %v; want next hop %v, MED 10, communities [65001:100], AS path [65001]", a, nh4)
	}
	a = attrsOf(r6.route(pfx6))
	if a.nextHop != nh6 || a.med != 10 {
		t.Errorf("IPv6 route at the backend (over an IPv4 session): %v; want next hop %v, MED 10", a, nh6)
	}
	// Each router got the other family's prefix? It would have arrived
	// before or with its own (one UPDATE per family, sent in order).
	if r4.route(pfx6) != nil || r6.route(pfx4) != nil {
		t.Errorf("a family went to a neighbor not configured for it: r4 has %v, r6 has %v", r4.route(pfx6) != nil, r6.route(pfx4) != nil)
	}
	if got := s.Announced(); len(got) != 2 || got[0].Prefix != pfx4 || got[1].Prefix != pfx6 {
		t.Errorf("Announced() = %+v", got)
	}
	for _, ns := range s.Neighbors() {
		if !ns.Established || ns.State != "established" || ns.PrefixesSent != 1 || ns.BFD != "off" || ns.Since.IsZero() {
			t.Errorf("neighbor status %+v: want established, 1 prefix sent, BFD off, Since set", ns)
		}
	}

	// Drain: GRACEFUL_SHUTDOWN and a worse MED replace the route.
	r4.mu.Lock()
	mark := len(r4.updates)
	r4.mu.Unlock()
	drain := []Announcement{
		{Prefix: pfx4, MED: 1000, Communities: []uint32{GracefulShutdown, 65001<<16 | 100}},
		{Prefix: pfx6, MED: 1000, Communities: []uint32{GracefulShutdown, 65001<<16 | 100}},
	}
	if err := s.Announce(context.Background(), drain); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("drain attributes", func() bool {
		p := r4.route(pfx4)
		return p != nil && attrsOf(p).med == 1000
	})
	a = attrsOf(r4.route(pfx4))
	if !slices.Contains(a.communities, GracefulShutdown) || a.nextHop != nh4 {
		t.Errorf("drained route: %v; want 65535:0 and next hop %v", a, nh4)
	}
	r4.mu.Lock()
	for _, ev := range r4.updates[mark:] {
		if ev.withdraw {
			t.Errorf("replacing the attributes sent a withdrawal of %s", ev.prefix)
		}
	}
	r4.mu.Unlock()

	// Withdraw everything.
	if err := s.Announce(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("withdrawal", func() bool { return r4.route(pfx4) == nil })
	r6.waitFor("withdrawal", func() bool { return r6.route(pfx6) == nil })
	if got := s.Announced(); len(got) != 0 {
		t.Errorf("Announced() after withdrawing all = %+v", got)
	}

	// The figure: Announce() to the route in the neighbor's table.
	var lat []time.Duration
	for i := 0; i < 7; i++ {
		t0 := time.Now()
		if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4b}}); err != nil {
			t.Fatal(err)
		}
		r4.waitFor("route", func() bool { return r4.route(pfx4b) != nil })
		lat = append(lat, time.Since(t0))
		if err := s.Announce(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		r4.waitFor("withdrawal", func() bool { return r4.route(pfx4b) == nil })
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("Announce() to route visible at the neighbor: median %v (min %v, max %v, n=%d)", lat[len(lat)/2], lat[0], lat[len(lat)-1], len(lat))
}

// Proves: a route a neighbor sends is in the speaker's Adj-RIB-In but in
// neither its RIB nor any UPDATE to a third speaker, while our own routes
// are in the RIB and do reach that third speaker.
func TestReceivedRoutesStayOut(t *testing.T) {
	port := freePort(t)
	s := newTestSpeaker(t, addrS, 65001, port, testNeighbor(addrR4, 65000, port, IPv4Unicast), testNeighbor(addrR3, 65003, port, IPv4Unicast))
	r4 := newTestRouter(t, addrR4, 65000, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	r3 := newTestRouter(t, addrR3, 65003, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR4)
	waitEstablished(t, s, addrR3)
	if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4}}); err != nil {
		t.Fatal(err)
	}

	foreign := netip.MustParsePrefix("203.0.113.0/24")
	r4.announce(foreign)
	// The route arrives in the Adj-RIB-In (no event reports that: poll).
	if !poll.Until(testWait, 10*time.Millisecond, func() bool { return slices.Contains(adjIn(t, s, addrR4), foreign) }) {
		t.Fatalf("%s never reached the Adj-RIB-In", foreign)
	}
	rib := ribPrefixes(t, s.bgp, bgp.RF_IPv4_UC)
	if slices.Contains(rib, foreign) || !slices.Contains(rib, pfx4) {
		t.Errorf("RIB = %v: want our %s and not the received %s", rib, pfx4, foreign)
	}
	// A marker announced after the foreign route was processed: when r3
	// has it, anything re-advertised earlier would have arrived too.
	if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4}, {Prefix: pfx4b}}); err != nil {
		t.Fatal(err)
	}
	r3.waitFor("marker", func() bool { return r3.route(pfx4b) != nil })
	if r3.route(foreign) != nil {
		t.Errorf("the route received from %s was re-advertised to %s", addrR4, addrR3)
	}
	if r3.route(pfx4) == nil {
		t.Errorf("our own %s did not reach %s", pfx4, addrR3)
	}
	for _, ns := range s.Neighbors() {
		if ns.Address == addrR4 && ns.PrefixesReceived != 1 {
			t.Errorf("prefixes received from %s = %d, want 1", addrR4, ns.PrefixesReceived)
		}
	}
}

func adjIn(t *testing.T, s *Speaker, peer netip.Addr) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	req := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: peer.String(), Family: bgp.RF_IPv4_UC}
	err := s.bgp.ListPath(req, func(n bgp.NLRI, _ []*apiutil.Path) {
		if p, ok := nlriPrefix(n); ok {
			out = append(out, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Proves: PartnerRoutes reports what an Established partner announces,
// with its GRACEFUL_SHUTDOWN flag, and forgets a withdrawn prefix; the
// partner's routes never enter the RIB.
func TestPartnerRoutes(t *testing.T) {
	port := freePort(t)
	pa := testNeighbor(addrP, 65001, port, IPv4Unicast, IPv6Unicast)
	pa.Role, pa.NextHopIPv6 = Partner, nh6
	a := newTestSpeaker(t, addrS, 65001, port, pa)
	b := newTestSpeaker(t, addrP, 65001, port, partnerOfS(port))
	waitEstablished(t, a, addrP)
	waitEstablished(t, b, addrS)

	partnerRoutes := func(what string, cond func([]PartnerRoute) bool) []PartnerRoute {
		t.Helper()
		// Route arrivals raise no event on the Speaker's API: poll.
		var got []PartnerRoute
		if !poll.Until(testWait, 10*time.Millisecond, func() bool { got = b.PartnerRoutes(); return cond(got) }) {
			t.Fatalf("%s: PartnerRoutes() = %+v", what, got)
		}
		return got
	}
	if err := a.Announce(context.Background(), []Announcement{{Prefix: pfx4}, {Prefix: pfx6}}); err != nil {
		t.Fatal(err)
	}
	got := partnerRoutes("announce", func(r []PartnerRoute) bool { return len(r) == 2 })
	want := []PartnerRoute{{Partner: addrS, Prefix: pfx4}, {Partner: addrS, Prefix: pfx6}}
	if !slices.Equal(got, want) {
		t.Errorf("PartnerRoutes() = %+v, want %+v", got, want)
	}
	if err := a.Announce(context.Background(), []Announcement{{Prefix: pfx4, Communities: []uint32{GracefulShutdown}}, {Prefix: pfx6}}); err != nil {
		t.Fatal(err)
	}
	got = partnerRoutes("graceful shutdown", func(r []PartnerRoute) bool { return len(r) == 2 && r[0].GracefulShutdown })
	if got[1].GracefulShutdown {
		t.Errorf("GRACEFUL_SHUTDOWN reported on %s, which does not carry it", got[1].Prefix)
	}
	if rib := ribPrefixes(t, b.bgp, bgp.RF_IPv4_UC); len(rib) != 0 {
		t.Errorf("the partner's routes entered the RIB: %v", rib)
	}
	if err := a.Announce(context.Background(), []Announcement{{Prefix: pfx6}}); err != nil {
		t.Fatal(err)
	}
	partnerRoutes("withdrawal", func(r []PartnerRoute) bool { return len(r) == 1 && r[0].Prefix == pfx6 })

	// A partner that is gone announces nothing.
	a.Close(context.Background())
	deadline := time.After(testWait)
	for b.Established(addrS) {
		select {
		case <-b.Changes():
		case <-deadline:
			t.Fatal("session still up after the partner closed")
		}
	}
	if r := b.PartnerRoutes(); len(r) != 0 {
		t.Errorf("PartnerRoutes() of a closed partner = %+v", r)
	}
	if ns := b.Neighbors()[0]; !strings.Contains(ns.LastError, "notification-received") {
		t.Errorf("LastError after the partner's Cease = %q, want the NOTIFICATION", ns.LastError)
	}
}

// Proves: TCP-MD5 with the same password comes up; with another password
// the session stays down and LastError says why.
func TestMD5(t *testing.T) {
	port := freePort(t)
	n4 := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	n4.Password = "s3cret"
	n3 := testNeighbor(addrR3, 65003, port, IPv4Unicast)
	n3.Password = "s3cret"
	s := newTestSpeaker(t, addrS, 65001, port, n4, n3)
	good := testNeighbor(addrS, 65001, port)
	good.Password = "s3cret"
	bad := testNeighbor(addrS, 65001, port)
	bad.Password = "wrong"
	newTestRouter(t, addrR4, 65000, port, routerPeer{good, []Family{IPv4Unicast}})
	newTestRouter(t, addrR3, 65003, port, routerPeer{bad, []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR4)

	// No event says "still not connected": poll LastError.
	var ns NeighborStatus
	if !poll.Until(testWait, 50*time.Millisecond, func() bool {
		ns = s.Neighbors()[1]
		return strings.Contains(ns.LastError, "TCP-MD5")
	}) {
		t.Fatalf("mismatched password: neighbor %+v; want LastError naming TCP-MD5", ns)
	}
	if ns.Established {
		t.Errorf("session with a mismatched TCP-MD5 password is established")
	}
	t.Logf("mismatched password: state %s, last error %q", ns.State, ns.LastError)
}

// Proves: Reconfigure adds a neighbor (it gets the routes), removes one
// (its session goes down), changes a next hop without restarting the
// session, and refuses a change that needs a restart.
func TestReconfigure(t *testing.T) {
	port := freePort(t)
	n4 := testNeighbor(addrR4, 65000, port, IPv4Unicast)
	cfg := Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{n4}}
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	r4 := newTestRouter(t, addrR4, 65000, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	r3 := newTestRouter(t, addrR3, 65003, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR4)
	if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4}}); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("route", func() bool { return r4.route(pfx4) != nil })
	if got := attrsOf(r4.route(pfx4)).nextHop; got != addrS {
		t.Errorf("next hop without configuration = %v, want the session address %v", got, addrS)
	}

	// Add r3; change r4's next hop.
	n4.NextHopIPv4 = nh4
	cfg.Neighbors = []Neighbor{n4, testNeighbor(addrR3, 65003, port, IPv4Unicast)}
	if err := s.Reconfigure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	r3.waitFor("route at the added neighbor", func() bool { return r3.route(pfx4) != nil })
	r4.waitFor("new next hop", func() bool { p := r4.route(pfx4); return p != nil && attrsOf(p).nextHop == nh4 })
	if !s.Established(addrR4) || !r4.established(addrS) {
		t.Errorf("a next-hop change restarted the session")
	}
	if len(s.Neighbors()) != 2 {
		t.Errorf("Neighbors() = %+v, want 2", s.Neighbors())
	}

	// Remove r4.
	cfg.Neighbors = cfg.Neighbors[1:]
	if err := s.Reconfigure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("session down after removal", func() bool { return !r4.established(addrS) })
	if ns := s.Neighbors(); len(ns) != 1 || ns[0].Address != addrR3 {
		t.Errorf("Neighbors() after removal = %+v", ns)
	}

	// Refused: needs a restart.
	bad := cfg
	bad.LocalAS = 65099
	if err := s.Reconfigure(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("changing the local AS: err = %v, want one saying a restart is needed", err)
	}
	if !s.Established(addrR3) {
		t.Errorf("a refused reload touched the sessions")
	}
}

// Proves: Announce refuses bad input as a whole and changes nothing.
func TestAnnounceRejectsBadInput(t *testing.T) {
	s := newTestSpeaker(t, addrS, 65001, -1)
	if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4, MED: 5}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]Announcement{
		"host bits": {{Prefix: netip.MustParsePrefix("198.51.100.1/24")}},
		"duplicate": {{Prefix: pfx4}, {Prefix: pfx4, MED: 1}},
		"invalid":   {{Prefix: pfx6}, {}},
		"4in6":      {{Prefix: netip.MustParsePrefix("::ffff:198.51.100.0/120")}},
	} {
		if err := s.Announce(context.Background(), want); err == nil {
			t.Errorf("%s: Announce(%v) accepted", name, want)
		}
	}
	if got := s.Announced(); len(got) != 1 || got[0].Prefix != pfx4 || got[0].MED != 5 {
		t.Errorf("a refused Announce changed the announced set: %+v", got)
	}
	if rib := ribPrefixes(t, s.bgp, bgp.RF_IPv4_UC); !slices.Equal(rib, []netip.Prefix{pfx4}) {
		t.Errorf("RIB = %v, want [%s] (our own route must pass the import policy)", rib, pfx4)
	}
}

// Proves: configurations GoBGP would turn into a broken session are
// refused with an error naming the problem.
func TestConfigValidation(t *testing.T) {
	base := func() Config {
		return Config{LocalAS: 65001, RouterID: addrS, ListenPort: 179, Neighbors: []Neighbor{testNeighbor(addrR4, 65000, 0, IPv4Unicast)}}
	}
	for name, tc := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"v6 over v4 without next hop": {func(c *Config) { c.Neighbors[0].Families = []Family{IPv6Unicast} }, "explicit IPv6 next hop"},
		"passive without listener":    {func(c *Config) { c.ListenPort = -1; c.Neighbors[0].Passive = true }, "no listener"},
		"duplicate neighbor":          {func(c *Config) { c.Neighbors = append(c.Neighbors, c.Neighbors[0]) }, "twice"},
		"router id":                   {func(c *Config) { c.RouterID = nh6 }, "router id"},
		"hold time":                   {func(c *Config) { c.Neighbors[0].HoldTime = time.Second }, "hold time"},
		"bfd multiplier":              {func(c *Config) { c.Neighbors[0].BFD = BFD{Enabled: true, Interval: 100 * time.Millisecond} }, "multiplier"},
		"wrong family next hop":       {func(c *Config) { c.Neighbors[0].NextHopIPv4 = nh6 }, "IPv4 next hop"},
	} {
		c := base()
		tc.mut(&c)
		s, err := New(c, testLogger(t))
		if err == nil {
			s.Close(context.Background())
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}

// Proves: Close is safe twice and the speaker refuses work afterwards.
func TestCloseTwice(t *testing.T) {
	s := newTestSpeaker(t, addrS, 65001, -1, testNeighbor(addrR4, 65000, 179, IPv4Unicast))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Announce(context.Background(), nil); !errors.Is(err, errClosed) {
		t.Errorf("Announce after Close: %v", err)
	}
	if ns := s.Neighbors(); len(ns) != 1 || ns[0].Established {
		t.Errorf("Neighbors after Close = %+v", ns)
	}
}

// Proves: the gRPC API answers on the unix socket, which is mode 0600, so
// that the gobgp CLI can inspect the speaker; the socket goes with Close.
func TestGRPCSocket(t *testing.T) {
	sock := t.TempDir() + "/gobgp.sock"
	s, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenPort: -1, GRPCSocket: sock,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, 179, IPv4Unicast)}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	stream, err := api.NewGoBgpServiceClient(conn).ListPeer(ctx, &api.ListPeerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := stream.Recv()
	if err != nil {
		t.Fatalf("ListPeer over the socket: %v", err)
	}
	if got := rsp.GetPeer().GetConf().GetNeighborAddress(); got != addrR4.String() {
		t.Errorf("ListPeer over the socket: neighbor %q, want %s", got, addrR4)
	}
	s.Close(context.Background())
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}

	// A path that is not a unix socket path is refused.
	for _, bad := range []string{"127.0.0.1:50051", "unix:///tmp/x.sock", "relative.sock"} {
		if s, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenPort: -1, GRPCSocket: bad}, testLogger(t)); err == nil {
			s.Close(context.Background())
			t.Errorf("grpc socket %q accepted", bad)
		}
	}
}

// Proves: New fails cleanly, with GoBGP's reason, when the listener cannot
// be opened (the port is taken), and leaves nothing running that would keep
// the port.
func TestNewListenFailure(t *testing.T) {
	port := freePort(t)
	s := newTestSpeaker(t, addrS, 65001, port)
	_, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "start BGP") {
		t.Fatalf("second speaker on the same address and port: err = %v", err)
	}
	s.Close(context.Background())
	s2, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port}, testLogger(t))
	if err != nil {
		t.Fatalf("port not released after Close: %v", err)
	}
	s2.Close(context.Background())
}
