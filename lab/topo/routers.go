package topo

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The routers' BIRD configurations. Verified snippets: ROUTING-NOTES.md.
// BIRD has no built-in GRACEFUL_SHUTDOWN handling (RFC 8326): the import
// filter sets local preference 0 on routes that carry 65535:0, so that a
// draining node's routes lose to the other node's at once.

func (l *Lab) upstreamConf() string {
	return l.routerConf("192.0.2.17", UpstreamAS, "ipv4", PeerRoute4, Prefix4, func(n *Node) string { return n.Addr4 })
}

func (l *Lab) backendConf() string {
	// The backend's router id: an IPv4 address it does not otherwise use.
	return l.routerConf("192.0.2.33", BackendAS, "ipv6", PeerRoute6, Pseudo, func(n *Node) string { return n.Addr6 })
}

// routerConf is a router that learns prefix from the nodes (by BGP, or
// statically with Options.NoBGP) and installs it in its kernel FIB as one
// multipath route.
func (l *Lab) routerConf(id string, as uint32, family, peerRoute, prefix string, addr func(*Node) string) string {
	o := l.Opts
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("router id %s;\n", id)
	w("protocol device { scan time 10; }\n")
	w("protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP || proto = \"nodes\"; }; merge paths on limit 4; }\n")
	w("protocol kernel k6 { ipv6 { import none; export where source = RTS_BGP || proto = \"nodes\"; }; merge paths on limit 4; }\n")
	if o.NoBGP {
		w("protocol static nodes { %s; route %s", family, prefix)
		for _, n := range l.Nodes {
			w(" via %s", addr(n))
		}
		w("; }\n")
		return b.String()
	}
	birdBFD := o.BFD && !o.RouterBFDByTest
	if birdBFD {
		w("protocol bfd { interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }\n")
	}
	export := "none"
	if o.PeerRoutes {
		// A route the nodes must keep out of their RIBs.
		w("protocol static peerroutes { %s; route %s blackhole; }\n", family, peerRoute)
		export = "where proto = \"peerroutes\""
	}
	w("filter from_xlat {\n  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n  accept;\n}\n")
	w("template bgp xlatpeer {\n  local as %d;\n  hold time %d; keepalive time %d; connect retry time 1; error wait time 1, 10;\n",
		as, int(o.HoldTime.Seconds()), int(o.KeepaliveTime.Seconds()))
	if birdBFD {
		w("  bfd on;\n")
	}
	// The nodes are directly connected and run GTSM (RFC 5082) by default.
	w("  ttl security on;\n")
	if o.Password != "" {
		w("  password %q;\n", o.Password)
	}
	w("  %s { import filter from_xlat; export %s; };\n}\n", family, export)
	for _, n := range l.Nodes {
		w("protocol bgp %s from xlatpeer { neighbor %s as %d; }\n", n.Name, addr(n), NodeAS)
	}
	return b.String()
}

func sortAddrs(s []string) []string {
	slices.SortFunc(s, func(a, b string) int {
		return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b))
	})
	return s
}
