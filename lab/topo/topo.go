package topo

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// Addresses and prefixes of the drawing (package comment).
const (
	Client4    = "192.0.2.2"         // the IPv4 client
	Client6    = "64:ff9b::c000:202" // the client as the servers see it
	Upstream4  = "192.0.2.17"        // the upstream on sw4
	Backend6   = "2001:db8:100::1"   // the backend on sw6
	Public10   = "198.51.100.10"     // srv10 to the IPv4 world
	Public11   = "198.51.100.11"     // srv11
	Server10   = "2001:db8:1::10"
	Server11   = "2001:db8:1::11"
	Prefix4    = "198.51.100.10/31" // what the nodes route and announce for the two mappings (adjacent ones merge)
	Pseudo     = "64:ff9b::/96"
	PeerRoute4 = "203.0.113.0/24"     // sent by the upstream to the nodes with Options.PeerRoutes
	PeerRoute6 = "2001:db8:ffff::/48" // sent by the backend

	UpstreamAS = 65000
	NodeAS     = 65001
	BackendAS  = 65002
)

// Options shape a lab. The zero value is the lab with BGP (hold 3 s,
// keepalive 1 s), no BFD, no password, no health checks.
type Options struct {
	// Bin is the map646 binary; "" builds this module's (netlab.BuildMap646).
	Bin string
	// NoBGP: nodes without [bgp]; the routers route both prefixes to both
	// nodes statically (multipath).
	NoBGP bool
	// HoldTime and KeepaliveTime of the router sessions, on both ends;
	// default 3 s and 1 s.
	HoldTime, KeepaliveTime time.Duration
	// BFD on the router sessions, 100 ms x 3 on both ends.
	BFD bool
	// RouterBFDByTest, with BFD: the nodes run BFD with the routers, but
	// the routers' BIRD does not (no bfd protocol, `bfd off`): the test
	// runs the routers' side (netlab.StartBFDPeer), to do what BIRD 2 never
	// does, such as sending AdminDown.
	RouterBFDByTest bool
	// Password: TCP-MD5 on the router sessions, on both ends.
	Password string
	// PeerRoutes: the routers send PeerRoute4 / PeerRoute6 to the nodes.
	PeerRoutes bool
	// Checks are every node's [[health.check]] entries.
	Checks []Check
	// Offload: the nodes' tun devices with offloads (multiqueue); default
	// the plain device, whose packet counters count packets, not
	// super-packets.
	Offload bool
	// Linger and DrainTimeout of the nodes ([node]); default 1 s and 5 s.
	Linger, DrainTimeout time.Duration
	// DrainIdlePPS of the nodes; 0 leaves map646's default (the drain does
	// not count the data-plane check's own probe packets as traffic).
	DrainIdlePPS int
	// GRPC serves GoBGP's API on a unix socket per node (Node.GRPCSocket).
	GRPC bool
	// NoStart builds the lab without starting the nodes: the test changes
	// their Config and calls Start (then Lab.WaitConverged).
	NoStart bool
	// Nodes is the number of map646 nodes, 2 (tokyo and osaka) to 4 (then
	// kyoto and sapporo, at the next addresses on sw4 and sw6; the
	// routers merge up to 4 paths); 0 is 2. Every node peers with every
	// other as a partner.
	Nodes int
}

// nodeNames name the nodes in order.
var nodeNames = []string{"tokyo", "osaka", "kyoto", "sapporo"}

// Lab is a running lab of two nodes (or Options.Nodes).
type Lab struct {
	Opts     Options
	Bin      string
	Client   *netlab.NS
	Upstream *netlab.NS
	Switch   *netlab.NS // the bridges sw4 and sw6
	Backend  *netlab.NS
	Servers  []*netlab.NS // srv10, srv11
	Up, Back *netlab.Bird // the routers' BIRDs
	Tokyo    *Node        // Nodes[0]
	Osaka    *Node        // Nodes[1]
	Nodes    []*Node      // tokyo, osaka (then kyoto, sapporo)
	dir      string       // short paths (unix sockets)
}

// New builds the lab and, unless Options.NoStart, starts both nodes and
// waits until both routers route both prefixes over both nodes. It skips
// the test when not root (fails it under CI, see lab/labreq; a program
// fails) and fails it on any problem; everything is removed when t ends.
func New(t netlab.TB, o Options) *Lab {
	t.Helper()
	netlab.RequireRoot(t)
	netlab.Need(t, "ip", "bird", "birdc", "nstat", "ping")
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Nodes < 2 || o.Nodes > len(nodeNames) {
		t.Fatalf("topo: Options.Nodes %d: the lab has 2 to %d nodes", o.Nodes, len(nodeNames))
	}
	if o.HoldTime == 0 {
		o.HoldTime = 3 * time.Second
	}
	if o.KeepaliveTime == 0 {
		o.KeepaliveTime = time.Second
	}
	if o.Linger == 0 {
		o.Linger = time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 5 * time.Second
	}
	l := &Lab{Opts: o, Bin: o.Bin}
	if l.Bin == "" {
		l.Bin = netlab.BuildMap646(t)
	}
	// Unix socket paths must fit in 108 bytes: t.TempDir() paths grow with
	// the test's name.
	dir, err := os.MkdirTemp("", "topo")
	if err != nil {
		t.Fatalf("topo: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l.dir = dir

	l.Client = netlab.NewNS(t, "client4")
	l.Upstream = netlab.NewNS(t, "upstream")
	l.Switch = netlab.NewNS(t, "sw")
	for i := range o.Nodes {
		l.Nodes = append(l.Nodes, &Node{Name: nodeNames[i], Addr4: fmt.Sprintf("192.0.2.%d", 18+i),
			Addr6: fmt.Sprintf("2001:db8:100::%d", 2+i), lab: l})
	}
	l.Tokyo, l.Osaka = l.Nodes[0], l.Nodes[1]
	for _, n := range l.Nodes {
		n.NS = netlab.NewNS(t, n.Name)
		n.Port4, n.Port6 = "p4-"+n.Name, "p6-"+n.Name
	}
	l.Backend = netlab.NewNS(t, "backend")
	l.Servers = []*netlab.NS{netlab.NewNS(t, "srv10"), netlab.NewNS(t, "srv11")}

	all := append([]*netlab.NS{l.Client, l.Upstream, l.Switch, l.Backend}, l.Servers...)
	for _, n := range l.Nodes {
		all = append(all, n.NS)
	}
	for _, ns := range all {
		// Before the links exist, so that they inherit "default": no
		// reverse-path filter (ECMP returns may come back over the other
		// node), no duplicate address detection, no ICMP rate limits.
		ns.Sysctl(t, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
	}
	forwarders := []*netlab.NS{l.Upstream, l.Backend}
	for _, n := range l.Nodes {
		forwarders = append(forwarders, n.NS)
	}
	for _, ns := range forwarders {
		ns.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
	// L4 hashing: the flows of one client spread over both nodes.
	for _, ns := range []*netlab.NS{l.Upstream, l.Backend} {
		ns.Sysctl(t, "net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1")
	}
	// The switch forwards frames only: no addresses of its own.
	l.Switch.Sysctl(t, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

	// Client and upstream.
	netlab.Veth(t, l.Client, "c0", l.Upstream, "u-c")
	l.Client.AddAddr(t, "c0", Client4+"/29")
	l.Upstream.AddAddr(t, "u-c", "192.0.2.1/29")
	l.Client.AddRoute(t, "default", "192.0.2.1")

	// The bridges: multicast snooping off, so that neighbour discovery
	// never depends on MLD state.
	for _, br := range []string{"sw4", "sw6"} {
		l.Switch.IP(t, "link", "add", br, "type", "bridge", "mcast_snooping", "0")
		l.Switch.IP(t, "link", "set", br, "up")
	}
	port := func(ns *netlab.NS, dev, swPort, br string) {
		netlab.Veth(t, ns, dev, l.Switch, swPort)
		l.Switch.IP(t, "link", "set", swPort, "master", br)
	}
	port(l.Upstream, "u-sw", "p-up", "sw4")
	l.Upstream.AddAddr(t, "u-sw", Upstream4+"/28")
	port(l.Backend, "b-sw", "p-back", "sw6")
	l.Backend.AddAddr(t, "b-sw", Backend6+"/64")
	for _, n := range l.Nodes {
		port(n.NS, "n4", n.Port4, "sw4")
		port(n.NS, "n6", n.Port6, "sw6")
		n.NS.AddAddr(t, "n4", n.Addr4+"/28")
		n.NS.AddAddr(t, "n6", n.Addr6+"/64")
		n.NS.AddRoute(t, "default", Upstream4)
		n.NS.AddRoute(t, "default", Backend6)
	}

	// Backend and servers.
	l.Backend.IP(t, "link", "add", "srv", "type", "bridge", "mcast_snooping", "0")
	l.Backend.IP(t, "link", "set", "srv", "up")
	l.Backend.AddAddr(t, "srv", "2001:db8:1::1/64")
	for i, s := range l.Servers {
		dev := fmt.Sprintf("b-s%d", i)
		netlab.Veth(t, s, "s0", l.Backend, dev)
		l.Backend.IP(t, "link", "set", dev, "master", "srv")
		s.AddAddr(t, "s0", []string{Server10, Server11}[i]+"/64")
		s.AddRoute(t, "default", "2001:db8:1::1")
	}

	l.Up = netlab.StartBird(t, l.Upstream, l.upstreamConf())
	l.Back = netlab.StartBird(t, l.Backend, l.backendConf())

	for _, n := range l.Nodes {
		n.Config = l.nodeConfig(n)
	}
	if !o.NoStart {
		for _, n := range l.Nodes {
			n.Start(t)
		}
		l.WaitConverged(t, 30*time.Second)
	}
	return l
}

// Other returns the other node of a two-node lab (with more, osaka for
// tokyo and tokyo for the others).
func (l *Lab) Other(n *Node) *Node {
	if n == l.Tokyo {
		return l.Osaka
	}
	return l.Tokyo
}

// Multipath returns a FIB condition: the route is present with exactly the
// given gateways.
func Multipath(via ...string) func(netlab.FIBRoute) bool {
	return func(r netlab.FIBRoute) bool {
		got := r.Via()
		if !r.Present || len(got) != len(via) {
			return false
		}
		for i, v := range via {
			if got[i].String() != v {
				return false
			}
		}
		return true
	}
}

// Absent is the FIB condition "no route".
func Absent(r netlab.FIBRoute) bool { return !r.Present }

// Gateways4 and Gateways6 return the node addresses the routers use as
// next hops for nodes (sorted as netlab.FIBRoute.Via sorts).
func Gateways4(nodes ...*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Addr4)
	}
	return sortAddrs(out)
}

func Gateways6(nodes ...*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Addr6)
	}
	return sortAddrs(out)
}

// WaitRouted waits until the upstream routes Prefix4 and the backend routes
// Pseudo over exactly the given nodes (none: withdrawn everywhere), in their
// kernel FIBs, and returns when both hold.
func (l *Lab) WaitRouted(t netlab.TB, timeout time.Duration, nodes ...*Node) {
	t.Helper()
	what := "routed over " + names(nodes)
	if len(nodes) == 0 {
		l.Upstream.WaitFIB(t, Prefix4, timeout, "absent", Absent)
		l.Backend.WaitFIB(t, Pseudo, timeout, "absent", Absent)
		return
	}
	l.Upstream.WaitFIB(t, Prefix4, timeout, what, Multipath(Gateways4(nodes...)...))
	l.Backend.WaitFIB(t, Pseudo, timeout, what, Multipath(Gateways6(nodes...)...))
}

// WaitConverged waits until both routers route both prefixes over both
// nodes.
func (l *Lab) WaitConverged(t netlab.TB, timeout time.Duration) {
	t.Helper()
	l.WaitRouted(t, timeout, l.Nodes...)
}

func names(nodes []*Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	if len(s) == 0 {
		return "nobody"
	}
	return strings.Join(s, "+")
}
