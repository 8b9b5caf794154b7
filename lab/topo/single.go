package topo

import (
	"strings"

	"github.com/map646/map646/lab/netlab"
)

// Single is the single-node lab: one node (map646, TAYGA or the kernel)
// between an IPv4 client and IPv6 servers, each on a veth of its own, as
// lab/lab_test.go, the failover prober's tests and each of the bench's
// subjects use it:
//
//	client  c4 ──── x4  node  x6 ──── s6  server (Servers[0])
//	                          x6b ─── s6b server b (Servers[1], with Options.Servers 2)
//
// NewSingle builds the namespaces and links and sets the sysctls every lab
// needs; addresses, routes and what runs in the node are the caller's (the
// labs differ there), named by the link names below.
type Single struct {
	Client, Node *netlab.NS
	Servers      []*netlab.NS
}

// The links of a Single: client side, node's client side, node's server
// side and server side, then the second server's pair.
const (
	ClientLink  = "c4"
	NodeLink4   = "x4"
	NodeLink6   = "x6"
	ServerLink  = "s6"
	NodeLink6b  = "x6b"
	ServerLinkB = "s6b"
)

// SingleOptions shape a Single.
type SingleOptions struct {
	// Name, when set, starts every namespace's role ("kernel4-client"),
	// so that the labs of several subjects can be told apart.
	Name string
	// Servers is 1 (server6) or 2 (and server6b); 0 is 1.
	Servers int
	// ChecksumOffload leaves the node's veths as the kernel sets them up.
	// By default their checksum offload is off (tx and rx) and generic
	// receive offload on: the node's kernel computes every checksum in
	// software before a packet leaves for a receiver, and the receivers
	// verify it, so a wrong checksum shows up in their nstat counters; TCP
	// still reaches the node as super-packets.
	ChecksumOffload bool
}

// NewSingle builds a Single; everything is removed when t ends.
func NewSingle(t netlab.TB, o SingleOptions) *Single {
	t.Helper()
	netlab.RequireRoot(t)
	netlab.Need(t, "ip", "ethtool")
	role := func(r string) string {
		if o.Name == "" {
			return r
		}
		return o.Name + "-" + r
	}
	l := &Single{Client: netlab.NewNS(t, role("client4")), Node: netlab.NewNS(t, role("xlat"))}
	l.Servers = []*netlab.NS{netlab.NewNS(t, role("server6"))}
	if o.Servers == 2 {
		l.Servers = append(l.Servers, netlab.NewNS(t, role("server6b")))
	}
	for _, ns := range append([]*netlab.NS{l.Client, l.Node}, l.Servers...) {
		// Before the links exist, so that they inherit "default": no
		// reverse-path filter (a translator's errors come from the RFC
		// 6791 pool, which no route leads back to), no duplicate address
		// detection, no ICMP rate limits in the kernels (traceroute and
		// path MTU discovery must not depend on a token bucket).
		ns.Sysctl(t, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
	}
	l.Node.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	netlab.Veth(t, l.Client, ClientLink, l.Node, NodeLink4)
	netlab.Veth(t, l.Node, NodeLink6, l.Servers[0], ServerLink)
	nodeLinks := []string{NodeLink4, NodeLink6}
	if len(l.Servers) == 2 {
		netlab.Veth(t, l.Node, NodeLink6b, l.Servers[1], ServerLinkB)
		nodeLinks = append(nodeLinks, NodeLink6b)
	}
	if !o.ChecksumOffload {
		for _, dev := range nodeLinks {
			l.Node.Ethtool(t, "-K", dev, "tx", "off", "rx", "off", "gro", "on")
			k := l.Node.Ethtool(t, "-k", dev)
			for _, want := range []string{"rx-checksumming: off", "tx-checksumming: off", "generic-receive-offload: on"} {
				if !strings.Contains(k, "\n"+want) {
					t.Fatalf("topo: ethtool -k %s: no %q:\n%s", dev, want, k)
				}
			}
		}
	}
	return l
}
