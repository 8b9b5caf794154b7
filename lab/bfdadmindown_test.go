package lab

// TestBFDAdminDown: when a router takes BFD administratively down (it
// sends AdminDown, as an operator's `shutdown` of BFD does on FRR and
// others), the nodes keep their BGP sessions with BIRD and BIRD keeps
// every route: RFC 5882 §4.2, a BFD client takes no action on AdminDown.
// BFD comes back up when the router turns it on again (a new session),
// still without a session reset. A ping every 10 ms through the nodes
// loses nothing. BIRD 2.0.12 itself never sends AdminDown (disabling its
// bfd protocol deletes the sessions silently: the nodes see BFD expire,
// and rightly reset), so the routers' side of BFD is netlab.BFDPeer, in
// the routers' namespaces, with BIRD running BGP without BFD. Before the
// speaker ran BFD itself, GoBGP's BFD reset both sessions of each node at
// the AdminDown and both prefixes left the routers for about 1.7 s.
//
//	go test ./lab -run TestBFDAdminDown -v   (root, about 12 s; -short skips it)

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// adminDownHold is how long BFD stays administratively down: several
// detection times (300 ms) and more than the 1.7 s the routes were gone
// for when AdminDown reset the sessions.
const adminDownHold = 3 * time.Second

func TestBFDAdminDown(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the BFD AdminDown lab takes about 12 s")
	}
	netlab.Need(t, "ip", "bird", "birdc", "ping")
	l := topo.New(t, topo.Options{BFD: true, RouterBFDByTest: true})
	peers := []*netlab.BFDPeer{
		netlab.StartBFDPeer(t, l.Up.NS, topo.Upstream4, topo.Gateways4(l.Nodes...)...),
		netlab.StartBFDPeer(t, l.Back.NS, topo.Backend6, topo.Gateways6(l.Nodes...)...),
	}
	for _, n := range l.Nodes {
		waitRouterBFD(t, n, "up", 5*time.Second)
	}
	l.WaitRouted(t, 5*time.Second, l.Nodes...)

	ping := l.Client.Start(t, "ping", "-n", "-i", "0.01", "-W", "1", topo.Public10)
	waitPinging(t, ping)
	since := make(map[string]time.Time)
	logFrom := make(map[string]int)
	for _, n := range l.Nodes {
		for _, nb := range n.Status(t).Neighbors {
			since[n.Name+" "+nb.Address] = nb.Since
		}
		logFrom[n.Name] = len(n.M.Lines())
	}

	for _, p := range peers {
		p.AdminDown()
	}
	// Both routers must still route over both nodes all along, and the
	// nodes must see BFD down (AdminDown received) without a reset.
	watchRouted(t, l, adminDownHold)
	for _, n := range l.Nodes {
		waitRouterBFD(t, n, "down", time.Second)
	}
	for _, p := range peers {
		p.Enable()
	}
	for _, n := range l.Nodes {
		waitRouterBFD(t, n, "up", 5*time.Second)
	}
	watchRouted(t, l, time.Second)

	if err := ping.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent, recv := pingResult(t, ping)
	unanswered := unansweredEchoes(ping.Lines(), sent)
	t.Logf("ping every 10 ms across BFD disabled %v and enabled again: %d sent, %d received, unanswered %v", adminDownHold, sent, recv, unanswered)
	if sent == 0 || len(unanswered) > 1 || len(unanswered) == 1 && unanswered[0] != sent {
		t.Errorf("ping: %d sent, %d received, unanswered echoes %v; want every echo answered (but the last, in flight when ping was stopped)", sent, recv, unanswered)
	}
	for _, n := range l.Nodes {
		for _, nb := range n.Status(t).Neighbors {
			if !nb.Established || !nb.Since.Equal(since[n.Name+" "+nb.Address]) {
				t.Errorf("%s: session with %s (%s) changed: established %v since %s, was since %s; last error %q",
					n.Name, nb.Address, nb.Description, nb.Established, nb.Since, since[n.Name+" "+nb.Address], nb.LastError)
			}
		}
		lines := n.M.Lines()[logFrom[n.Name]:]
		if got := grepLines(lines, "neighbor down", "bfd is down", "no packet for the detection time"); got != "" {
			t.Errorf("%s reset or lost a session, or saw BFD fail, while BFD was administratively down:\n%s", n.Name, got)
		}
		if got := strings.Count(grepLines(lines, "administratively down"), "\n"); got != 2 {
			t.Errorf("%s logged %d AdminDowns received, want 2 (one per router):\n%s", n.Name, got, grepLines(lines, "bfd"))
		}
	}
	for _, b := range []*netlab.Bird{l.Up, l.Back} {
		for _, n := range l.Nodes {
			if p := b.Protocol(t, n.Name); !p.Established() {
				t.Errorf("%s's session to %s: %s %s", b.NS.Role, n.Name, p.State, p.BGPState)
			}
		}
	}
}

// watchRouted checks every 20 ms for d that both routers' FIBs route over
// both nodes.
func watchRouted(t *testing.T, l *topo.Lab, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		up := l.Upstream.FIB(t, topo.Prefix4)
		back := l.Backend.FIB(t, topo.Pseudo)
		if !topo.Multipath(topo.Gateways4(l.Nodes...)...)(up) || !topo.Multipath(topo.Gateways6(l.Nodes...)...)(back) {
			t.Fatalf("a router stopped routing over both nodes: upstream %+v, backend %+v", up, back)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRouterBFD waits until every router neighbor of n reports BFD state.
func waitRouterBFD(t *testing.T, n *topo.Node, state string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var other []string
		for _, nb := range n.Status(t).Neighbors {
			if nb.Role == "router" && nb.BFD != state {
				other = append(other, nb.Address+": "+nb.BFD)
			}
		}
		if len(other) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: BFD not %s after %v with %s", n.Name, state, timeout, strings.Join(other, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
