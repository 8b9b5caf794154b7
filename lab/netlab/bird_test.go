package netlab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// birdShowRoute is `birdc show route 198.51.100.0/24 all` with two BGP
// paths (BIRD 2.0.12), a static one first for the prefix-less path lines.
const birdShowRoute = `BIRD 2.0.12 ready.
Table master4:
198.51.100.0/24      unicast [a4 20:54:18.489] * (100) [AS65001i]
	via 192.0.2.2 on r-a
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 65001
	BGP.next_hop: 192.0.2.2
	BGP.med: 10
	BGP.local_pref: 100
	BGP.community: (65001,7) (65535,0)
                     unicast [b4 20:54:19.001] (100) [AS65001i]
	via 192.0.2.6 on r-b weight 1
	via 192.0.2.10 on r-c weight 2
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 65001
	BGP.next_hop: 192.0.2.6
	BGP.local_pref: 100
198.51.100.0/25      unicast [b4 20:54:19.001] * (100) [AS65001i]
	via 192.0.2.6 on r-b
	Type: BGP univ
`

// TestParseBirdRoute: the paths of one prefix are read with their best
// mark, next hops (multipath included), MED and communities; another
// prefix's lines are not mixed in; "Network not found" is absence.
func TestParseBirdRoute(t *testing.T) {
	r := ParseBirdRoute(birdShowRoute, netip.MustParsePrefix("198.51.100.0/24"))
	if len(r.Paths) != 2 {
		t.Fatalf("paths: %+v, want 2", r.Paths)
	}
	a, b := r.Paths[0], r.Paths[1]
	if !a.Best || b.Best || a.Protocol != "a4" || b.Protocol != "b4" || a.Preference != 100 || a.Type != "unicast" {
		t.Errorf("path lines: %+v / %+v", a, b)
	}
	if best, ok := r.Best(); !ok || best.Protocol != "a4" {
		t.Errorf("Best: %+v %v", best, ok)
	}
	if med, ok := a.MED(); !ok || med != 10 {
		t.Errorf("MED of a: %d %v, want 10", med, ok)
	}
	if _, ok := b.MED(); ok {
		t.Errorf("b has no MED, got one")
	}
	if c := a.Communities(); !slices.Equal(c, []string{"65001:7", "65535:0"}) || !a.HasCommunity("65535:0") || b.HasCommunity("65535:0") {
		t.Errorf("communities: %q / %q", c, b.Communities())
	}
	want := []NextHop{{netip.MustParseAddr("192.0.2.6"), "r-b"}, {netip.MustParseAddr("192.0.2.10"), "r-c"}}
	if !slices.Equal(b.NextHops, want) || len(a.NextHops) != 1 || a.NextHops[0].Dev != "r-a" {
		t.Errorf("next hops: %v / %v", a.NextHops, b.NextHops)
	}
	if len(r.From("b4")) != 1 || len(r.From("x")) != 0 {
		t.Errorf("From")
	}
	if r := ParseBirdRoute("BIRD 2.0.12 ready.\nNetwork not found\n", netip.MustParsePrefix("198.51.100.0/24")); r.Present() {
		t.Errorf("not found parsed as present: %+v", r)
	}
	if r := ParseBirdRoute(birdShowRoute, netip.MustParsePrefix("198.51.100.0/25")); len(r.Paths) != 1 || r.Paths[0].Attrs["Type"] != "BGP univ" {
		t.Errorf("/25: %+v", r.Paths)
	}
}

// TestParseBirdProtocol: the summary line (with and without a date in
// Since) and the BGP state and last error of `show protocols all`.
func TestParseBirdProtocol(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
tokyo      BGP        ---        start  2026-11-22 20:54:18  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 192.0.2.18
    Last error:       Socket: Connection refused
`
	p, ok := ParseBirdProtocol(out, "tokyo")
	if !ok || p.Proto != "BGP" || p.State != "start" || p.Info != "Active Socket: Connection refused" ||
		p.BGPState != "Active" || p.LastError != "Socket: Connection refused" || p.Established() {
		t.Errorf("%+v %v", p, ok)
	}
	p, ok = ParseBirdProtocol("Name Proto Table State Since Info\nosaka      BGP        ---        up     20:54:18.489  Established\n  BGP state:          Established\n", "osaka")
	if !ok || p.Info != "Established" || !p.Established() {
		t.Errorf("%+v %v", p, ok)
	}
	if _, ok := ParseBirdProtocol(out, "osaka"); ok {
		t.Errorf("found a protocol that is not there")
	}
}

// TestBird: three BIRDs in namespaces; r learns the same IPv4 and IPv6
// prefixes from a and b over eBGP and merges them into one multipath kernel
// route each; a's MED and community are seen in r's table; when a's session
// is disabled the kernel route keeps b alone, and when b's goes too the
// prefix leaves both the table and the FIB.
func TestBird(t *testing.T) {
	RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: starts three BIRDs")
	}
	Need(t, "ip", "bird", "birdc")
	r, a, b := NewNS(t, "r"), NewNS(t, "a"), NewNS(t, "b")
	Veth(t, r, "r-a", a, "a-r")
	Veth(t, r, "r-b", b, "b-r")
	r.AddAddr(t, "r-a", "192.0.2.1/30", "2001:db8:a::1/64")
	a.AddAddr(t, "a-r", "192.0.2.2/30", "2001:db8:a::2/64")
	r.AddAddr(t, "r-b", "192.0.2.5/30", "2001:db8:b::1/64")
	b.AddAddr(t, "b-r", "192.0.2.6/30", "2001:db8:b::2/64")

	router := StartBird(t, r, `router id 192.0.2.1;
protocol device { scan time 10; }
protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on limit 4; }
protocol kernel k6 { ipv6 { import none; export where source = RTS_BGP; }; merge paths on limit 4; }
template bgp peer {
  local as 65000; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 10;
}
protocol bgp a4 from peer { neighbor 192.0.2.2 as 65001; ipv4 { import all; export none; }; }
protocol bgp b4 from peer { neighbor 192.0.2.6 as 65001; ipv4 { import all; export none; }; }
protocol bgp a6 from peer { neighbor 2001:db8:a::2 as 65001; ipv6 { import all; export none; }; }
protocol bgp b6 from peer { neighbor 2001:db8:b::2 as 65001; ipv6 { import all; export none; }; }
`)
	edge := func(id, peer4, peer6 string) string {
		return `router id ` + id + `;
protocol device { scan time 10; }
protocol static s4 { ipv4; route 198.51.100.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:ff::/48 blackhole; }
template bgp up {
  local as 65001; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 10;
}
protocol bgp r4 from up { neighbor ` + peer4 + ` as 65000;
  ipv4 { import none; export filter { bgp_med = 10; bgp_community.add((65001,7)); accept; }; }; }
protocol bgp r6 from up { neighbor ` + peer6 + ` as 65000;
  ipv6 { import none; export filter { bgp_med = 10; accept; }; }; }
`
	}
	ba := StartBird(t, a, edge("192.0.2.2", "192.0.2.1", "2001:db8:a::1"))
	StartBird(t, b, edge("192.0.2.6", "192.0.2.5", "2001:db8:b::1"))
	for _, p := range []string{"a4", "b4", "a6", "b6"} {
		if got := router.WaitEstablished(t, p, 20*time.Second); got.State != "up" {
			t.Errorf("%s established but state %q", p, got.State)
		}
	}

	rt := router.WaitRoute(t, "198.51.100.0/24", 10*time.Second, "two paths", func(r BirdRoute) bool { return len(r.Paths) == 2 })
	for _, p := range rt.Paths {
		if med, ok := p.MED(); !ok || med != 10 || !p.HasCommunity("65001:7") || len(p.NextHops) != 1 {
			t.Errorf("path %+v: want MED 10, community 65001:7, one next hop", p)
		}
	}
	ecmp := func(n int) func(FIBRoute) bool {
		return func(f FIBRoute) bool { return f.Present && f.Protocol == "bird" && len(f.NextHops) == n }
	}
	f, _ := r.WaitFIB(t, "198.51.100.0/24", 10*time.Second, "multipath over a and b", ecmp(2))
	if got := f.Via(); len(got) != 2 || got[0] != netip.MustParseAddr("192.0.2.2") || got[1] != netip.MustParseAddr("192.0.2.6") {
		t.Errorf("IPv4 multipath gateways %v, want 192.0.2.2 and 192.0.2.6 (%v)", got, f)
	}
	f6, _ := r.WaitFIB(t, "2001:db8:ff::/48", 10*time.Second, "multipath over a and b", ecmp(2))
	if got := f6.Via(); len(got) != 2 || got[0] != netip.MustParseAddr("2001:db8:a::2") || got[1] != netip.MustParseAddr("2001:db8:b::2") {
		t.Errorf("IPv6 multipath gateways %v (%v)", got, f6)
	}
	if f := r.FIB(t, "198.51.100.0/25"); f.Present {
		t.Errorf("FIB has a route to a prefix nobody sent: %v", f)
	}

	// a withdraws: r keeps b alone, in the table and the FIB.
	start := time.Now()
	ba.Cmd(t, "disable", "r4")
	f, at := r.WaitFIB(t, "198.51.100.0/24", 10*time.Second, "single path via b", ecmp(1))
	if f.NextHops[0].Via != netip.MustParseAddr("192.0.2.6") || f.NextHops[0].Dev != "r-b" {
		t.Errorf("after a's withdrawal: %v, want via 192.0.2.6 dev r-b", f)
	}
	t.Logf("a's session disabled -> r's FIB single path in %v", at.Sub(start).Round(100*time.Microsecond))
	if p := router.WaitProtocol(t, "a4", 10*time.Second, "down", func(p BirdProtocol) bool { return !p.Established() }); !strings.Contains(p.Raw, "a4") {
		t.Errorf("protocol output %q", p.Raw)
	}
	router.WaitRoute(t, "198.51.100.0/24", 10*time.Second, "one path from b4", func(r BirdRoute) bool {
		return len(r.Paths) == 1 && r.Paths[0].Protocol == "b4"
	})

	// Everything goes: the prefix leaves the table and the FIB.
	router.Cmd(t, "disable", "b4")
	router.WaitRouteAbsent(t, "198.51.100.0/24", 10*time.Second)
	r.WaitFIB(t, "198.51.100.0/24", 10*time.Second, "absent", func(f FIBRoute) bool { return !f.Present })
	if f := r.FIB(t, "2001:db8:ff::/48"); len(f.NextHops) != 2 {
		t.Errorf("the IPv6 route changed with the IPv4 sessions: %v", f)
	}
}
