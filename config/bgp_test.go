package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/routing"
)

// bgpBase adds a [bgp] section to base: its own keys from line 9 on.
const bgpBase = base + `
[bgp]
local_as = 64512
router_id = "192.0.2.2"
`

// neighbor0 is a minimal [[bgp.neighbor]]: appended to bgpBase, its header
// is on line 9 and its own keys follow from line 12 on.
const neighbor0 = `[[bgp.neighbor]]
address = "192.0.2.254"
peer_as = 64513
`

var (
	a4 = netip.MustParseAddr
	p4 = netip.MustParsePrefix
)

func TestBGPAbsent(t *testing.T) {
	c, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	if !reflect.DeepEqual(c.BGP, BGP{}) {
		t.Errorf("without [bgp]: %+v, want the zero BGP (no speaker)", c.BGP)
	}
}

func TestBGPDefaults(t *testing.T) {
	c, msg := parse(t, bgpBase+neighbor0+`
[[bgp.neighbor]]
address = "2001:db8:ffff::1"
peer_as = 64514
hold_time = "10s"

[[bgp.neighbor]]
address = "192.0.2.3"
peer_as = 64512
role = "partner"

[[bgp.neighbor]]
address = "2001:db8:ffff::3"
peer_as = 64512
role = "partner"
hold_time = "30s"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	timers := func(n routing.Neighbor, hold, keepalive time.Duration) routing.Neighbor {
		n.HoldTime, n.KeepaliveTime, n.ConnectRetry = hold, keepalive, 5*time.Second
		n.BFD = routing.BFD{Interval: 300 * time.Millisecond, Multiplier: 3}
		// Directly connected: GTSM; no mappings: a limit of 1000.
		n.TTLSecurity, n.MaxPrefixes = true, 1000
		return n
	}
	want := BGP{
		Enabled: true,
		Config: routing.Config{
			LocalAS:         64512,
			RouterID:        a4("192.0.2.2"),
			ListenAddresses: []netip.Addr{a4("0.0.0.0"), a4("::")},
			ListenPort:      179,
			Neighbors: []routing.Neighbor{
				timers(routing.Neighbor{Address: a4("192.0.2.254"), PeerAS: 64513,
					Families: []routing.Family{routing.IPv4Unicast}}, 90*time.Second, 30*time.Second),
				// A third of 10 s, cut to whole seconds.
				timers(routing.Neighbor{Address: a4("2001:db8:ffff::1"), PeerAS: 64514,
					Families: []routing.Family{routing.IPv6Unicast}}, 10*time.Second, 3*time.Second),
				// A partner carries both families; the other family's next
				// hop is the translator's own address.
				timers(routing.Neighbor{Address: a4("192.0.2.3"), PeerAS: 64512, Role: routing.Partner,
					Families:    []routing.Family{routing.IPv4Unicast, routing.IPv6Unicast},
					NextHopIPv6: a4("2001:db8:64::1")}, 90*time.Second, 30*time.Second),
				timers(routing.Neighbor{Address: a4("2001:db8:ffff::3"), PeerAS: 64512, Role: routing.Partner,
					Families:    []routing.Family{routing.IPv4Unicast, routing.IPv6Unicast},
					NextHopIPv4: a4("192.0.2.1")}, 30*time.Second, 10*time.Second),
			},
		},
		DrainMED: 1000,
	}
	if !reflect.DeepEqual(c.BGP, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c.BGP, want)
	}
}

// TestBGPEveryKey sets every key of [bgp] and [[bgp.neighbor]] to
// something other than its default.
func TestBGPEveryKey(t *testing.T) {
	c, msg := parse(t, base+`
[[mapping]]
ipv4 = "198.51.100.10"
ipv6 = "2001:db8:1::10"

[[mapping]]
ipv4 = "198.51.100.16/28"
ipv6 = "2001:db8:2::/124"

[bgp]
local_as = 4200000000
router_id = "192.0.2.9"
listen_port = 1179
listen_addresses = ["192.0.2.9", "2001:db8:64::9"]
grpc_socket = "/run/map646-gobgp.sock"
med = 10
drain_med = 11
communities = ["64512:100", "65535:65281", "1:0"]
aggregates = ["198.51.100.0/24"]

[[bgp.neighbor]]
address = "192.0.2.254"
peer_as = 64513
port = 1179
description = "upstream, rack 7"
role = "router"
families = ["ipv6-unicast", "ipv4-unicast"]
password = "s3cret with spaces"
hold_time = "3s"
keepalive_time = "1s"
connect_retry = "1s"
passive = true
multihop_ttl = 0
ttl_security = false
max_prefixes = 50
bfd = true
bfd_interval = "100ms"
bfd_multiplier = 5
next_hop_ipv4 = "192.0.2.9"
next_hop_ipv6 = "2001:db8:64::9"

[[bgp.neighbor]]
address = "2001:db8:ffff::1"
peer_as = 64514
multihop_ttl = 2
max_prefixes = 0
families = ["ipv4-unicast"]
next_hop_ipv4 = "192.0.2.9"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	want := BGP{
		Enabled: true,
		Config: routing.Config{
			LocalAS:         4200000000,
			RouterID:        a4("192.0.2.9"),
			ListenAddresses: []netip.Addr{a4("192.0.2.9"), a4("2001:db8:64::9")},
			ListenPort:      1179,
			GRPCSocket:      "/run/map646-gobgp.sock",
			Neighbors: []routing.Neighbor{{
				Address:       a4("192.0.2.254"),
				PeerAS:        64513,
				Port:          1179,
				Description:   "upstream, rack 7",
				Role:          routing.Router,
				Families:      []routing.Family{routing.IPv4Unicast, routing.IPv6Unicast},
				Password:      "s3cret with spaces",
				HoldTime:      3 * time.Second,
				KeepaliveTime: time.Second,
				ConnectRetry:  time.Second,
				Passive:       true,
				MaxPrefixes:   50,
				BFD:           routing.BFD{Enabled: true, Interval: 100 * time.Millisecond, Multiplier: 5},
				NextHopIPv4:   a4("192.0.2.9"),
				NextHopIPv6:   a4("2001:db8:64::9"),
			}, {
				Address:       a4("2001:db8:ffff::1"),
				PeerAS:        64514,
				Families:      []routing.Family{routing.IPv4Unicast},
				HoldTime:      90 * time.Second,
				KeepaliveTime: 30 * time.Second,
				ConnectRetry:  5 * time.Second,
				MultihopTTL:   2,
				BFD:           routing.BFD{Interval: 300 * time.Millisecond, Multiplier: 3},
				NextHopIPv4:   a4("192.0.2.9"),
			}},
		},
		MED:         10,
		DrainMED:    11,
		Communities: []uint32{64512<<16 | 100, 0xFFFFFF01, 1 << 16},
		Aggregates:  []netip.Prefix{p4("198.51.100.0/24")},
	}
	if !reflect.DeepEqual(c.BGP, want) {
		t.Errorf("\n got %+v\nwant %+v", c.BGP, want)
	}

	// No listener.
	c, msg = parse(t, bgpBase+"listen_port = -1\n"+neighbor0)
	if msg != "" {
		t.Fatal(msg)
	}
	if c.BGP.ListenPort != -1 || c.BGP.ListenAddresses != nil {
		t.Errorf("listen_port = -1: port %d, addresses %v; want -1 and none", c.BGP.ListenPort, c.BGP.ListenAddresses)
	}
}

// TestBGPAggregateEqualToMapping: an aggregate may be exactly a mapped
// prefix (it covers the whole mapping); one a bit shorter that covers two
// mappings is accepted beside it.
func TestBGPAggregateEqualToMapping(t *testing.T) {
	c, msg := parse(t, base+`
[[mapping]]
ipv4 = "198.51.100.16/28"
ipv6 = "2001:db8:2::/124"

[[mapping]]
ipv4 = "198.51.100.40"
ipv6 = "2001:db8:1::40"

[[mapping]]
ipv4 = "198.51.100.41"
ipv6 = "2001:db8:1::41"

[bgp]
local_as = 64512
router_id = "192.0.2.2"
aggregates = ["198.51.100.16/28", "198.51.100.40/31"]
`+neighbor0)
	if msg != "" {
		t.Fatal(msg)
	}
	want := []netip.Prefix{p4("198.51.100.16/28"), p4("198.51.100.40/31")}
	if !reflect.DeepEqual(c.BGP.Aggregates, want) {
		t.Errorf("aggregates %v, want %v", c.BGP.Aggregates, want)
	}
}

// TestBGPProblems checks the exact text of each problem of [bgp] and
// [[bgp.neighbor]].
func TestBGPProblems(t *testing.T) {
	const m = "\n[[mapping]]\nipv4 = \"198.51.100.16/28\"\nipv6 = \"2001:db8:2::/124\"\n" // lines 6 to 8
	for _, tc := range []struct {
		name string
		conf string
		want string
	}{
		// [bgp] itself.
		{"no keys", base + "[bgp]\n", `test.toml:5: bgp.local_as: missing; this key is required, e.g. local_as = 64512
test.toml:5: bgp.router_id: missing; this key is required, e.g. router_id = "192.0.2.2"
test.toml:5: bgp.neighbor: missing; [bgp] needs at least one [[bgp.neighbor]] to announce to (leave [bgp] out to run without BGP)`},
		{"not a table", "bgp = true\n" + base, `test.toml:1: bgp = true: must be a table ([bgp]), not a boolean`},
		{"no neighbors", bgpBase + "neighbor = []\n",
			`test.toml:6: bgp.neighbor: missing; [bgp] needs at least one [[bgp.neighbor]] to announce to (leave [bgp] out to run without BGP)`},
		{"neighbor a table", bgpBase + "[bgp.neighbor]\naddress = \"192.0.2.254\"\n",
			`test.toml:9: bgp.neighbor = {address = "192.0.2.254"}: must be an array of tables ([[bgp.neighbor]]), not a table`},
		{"unknown key", bgpBase + "asn = 64512\n" + neighbor0,
			`test.toml:9: bgp.asn = 64512: unknown key; accepted: local_as, router_id, listen_port, listen_addresses, grpc_socket, med, drain_med, communities, aggregates, neighbor`},
		{"misspelt key", bgpBase + "drain_mde = 2000\n" + neighbor0,
			`test.toml:9: bgp.drain_mde = 2000: unknown key; did you mean drain_med?`},
		{"local_as zero", base + "[bgp]\nlocal_as = 0\nrouter_id = \"192.0.2.2\"\n" + neighbor0,
			`test.toml:6: bgp.local_as = 0: must be from 1 to 4294967295`},
		{"local_as too big", base + "[bgp]\nlocal_as = 4294967296\nrouter_id = \"192.0.2.2\"\n" + neighbor0,
			`test.toml:6: bgp.local_as = 4294967296: must be from 1 to 4294967295`},
		{"local_as AS_TRANS", base + "[bgp]\nlocal_as = 23456\nrouter_id = \"192.0.2.2\"\n" + neighbor0,
			`test.toml:6: bgp.local_as = 23456: 23456 is AS_TRANS (RFC 6793), a placeholder, not an AS; accepted: 1 to 4294967295 except 23456`},
		{"local_as string", base + "[bgp]\nlocal_as = \"AS64512\"\nrouter_id = \"192.0.2.2\"\n" + neighbor0,
			`test.toml:6: bgp.local_as = "AS64512": must be an integer from 1 to 4294967295, not a string`},
		{"router_id IPv6", base + "[bgp]\nlocal_as = 64512\nrouter_id = \"2001:db8::2\"\n" + neighbor0,
			`test.toml:7: bgp.router_id = "2001:db8::2": not an IPv4 address; accepted: an IPv4 address unique to this node, e.g. "192.0.2.2" (the BGP identifier, RFC 6286)`},
		{"router_id zero", base + "[bgp]\nlocal_as = 64512\nrouter_id = \"0.0.0.0\"\n" + neighbor0,
			`test.toml:7: bgp.router_id = "0.0.0.0": must not be 0.0.0.0 (RFC 6286 §2.1); accepted: an IPv4 address unique to this node, e.g. "192.0.2.2"`},
		{"listen_port zero", bgpBase + "listen_port = 0\n" + neighbor0,
			`test.toml:9: bgp.listen_port = 0: 0 is not a port; accepted: 1 to 65535, or -1 for no listener`},
		{"listen_port high", bgpBase + "listen_port = 65536\n" + neighbor0,
			`test.toml:9: bgp.listen_port = 65536: must be from -1 to 65535 (-1: no listener)`},
		{"listen_addresses without listener", bgpBase + "listen_port = -1\nlisten_addresses = [\"::\"]\n" + neighbor0,
			`test.toml:10: bgp.listen_addresses = ["::"]: has no effect with listen_port = -1 (no listener); leave it out`},
		{"listen_addresses empty", bgpBase + "listen_addresses = []\n" + neighbor0,
			`test.toml:9: bgp.listen_addresses = []: must list at least one address; for no listener set listen_port = -1`},
		{"listen_addresses host:port", bgpBase + "listen_addresses = [\"192.0.2.2:179\"]\n" + neighbor0,
			`test.toml:9: bgp.listen_addresses = "192.0.2.2:179": not an IP address; accepted: addresses of this node, or "0.0.0.0" and "::" for all`},
		{"listen_addresses twice", bgpBase + "listen_addresses = [\"::\", \"::0\"]\n" + neighbor0,
			`test.toml:9: bgp.listen_addresses = "::0": is listed twice`},
		{"grpc_socket host:port", bgpBase + "grpc_socket = \"127.0.0.1:50051\"\n" + neighbor0,
			`test.toml:9: bgp.grpc_socket = "127.0.0.1:50051": not an absolute path; accepted: the path of a unix socket, e.g. "/run/map646-gobgp.sock", never a network address: the gRPC API has no authentication`},
		{"grpc_socket comma", bgpBase + "grpc_socket = \"/run/a,b.sock\"\n" + neighbor0,
			`test.toml:9: bgp.grpc_socket = "/run/a,b.sock": contains ","; accepted: a path without commas (GoBGP reads a comma as a list of addresses)`},
		{"grpc_socket relative", bgpBase + "grpc_socket = \"gobgp.sock\"\n" + neighbor0,
			`test.toml:9: bgp.grpc_socket = "gobgp.sock": not an absolute path; accepted: the path of a unix socket, e.g. "/run/map646-gobgp.sock", never a network address: the gRPC API has no authentication`},
		{"grpc_socket unclean", bgpBase + "grpc_socket = \"/run//gobgp.sock\"\n" + neighbor0,
			`test.toml:9: bgp.grpc_socket = "/run//gobgp.sock": not a clean path; did you mean "/run/gobgp.sock"?`},
		{"grpc_socket too long", bgpBase + "grpc_socket = \"/" + string(make108('x')) + "\"\n" + neighbor0,
			`test.toml:9: bgp.grpc_socket = "/` + string(make108('x')) + `": is 109 bytes long; a unix socket path holds at most 107`},
		{"grpc_socket directory too long", bgpBase + "grpc_socket = \"/" + strings.Repeat("d", 88) + "/s\"\n" + neighbor0,
			`test.toml:9: bgp.grpc_socket = "/` + strings.Repeat("d", 88) + `/s": its directory is 89 bytes long; the socket is first bound in a private directory inside it (/` + strings.Repeat("d", 88) + `/.gobgpNNNNNNNNNN/s, so that it is 0600 before anyone can reach it), which leaves at most 88 bytes for the directory`},
		{"grpc_socket is the control socket", bgpBase + "grpc_socket = \"/run/map646/map646.sock\"\n" + neighbor0,
			`test.toml: control.socket = "/run/map646/map646.sock": is also bgp.grpc_socket; the control socket and the gRPC API need a path each`},
		{"med high", bgpBase + "med = 4294967296\n" + neighbor0,
			`test.toml:9: bgp.med = 4294967296: must be from 0 to 4294967295`},
		{"med above the default drain_med", bgpBase + "med = 1000\n" + neighbor0,
			`test.toml:9: bgp.med = 1000: must be less than drain_med (1000, the default): a draining node must look worse than a serving one; set drain_med higher`},
		{"drain_med not above med", bgpBase + "med = 50\ndrain_med = 50\n" + neighbor0,
			`test.toml:10: bgp.drain_med = 50: must be greater than med (50): a draining node must look worse than a serving one`},
		{"drain_med not above default med", bgpBase + "drain_med = 0\n" + neighbor0,
			`test.toml:9: bgp.drain_med = 0: must be greater than med (0): a draining node must look worse than a serving one`},
		{"community syntax", bgpBase + "communities = [\"64512\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "64512": not a community; accepted: "ASN:VALUE" with each part from 0 to 65535, e.g. "65000:100"`},
		{"community large", bgpBase + "communities = [\"4200000000:1\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "4200000000:1": not a community; accepted: "ASN:VALUE" with each part from 0 to 65535, e.g. "65000:100"`},
		{"community GRACEFUL_SHUTDOWN", bgpBase + "communities = [\"65535:0\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "65535:0": GRACEFUL_SHUTDOWN (RFC 8326) is added by map646 itself while the node drains; attached always, it would drain the node for good`},
		{"community BLACKHOLE", bgpBase + "communities = [\"65535:666\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "65535:666": BLACKHOLE (RFC 7999) would make routers drop the traffic to the mapped prefixes`},
		{"community well-known", bgpBase + "communities = [\"65535:1\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "65535:1": lies in the well-known range 65535:x (RFC 1997); accepted there: 65535:65281 (NO_EXPORT), 65535:65282 (NO_ADVERTISE), 65535:65283 (NO_EXPORT_SUBCONFED)`},
		{"community reserved", bgpBase + "communities = [\"0:100\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "0:100": lies in the reserved range 0:x (RFC 1997); accepted: "ASN:VALUE" with each part from 0 to 65535, e.g. "65000:100"`},
		{"community twice", bgpBase + "communities = [\"64512:1\", \"64512:01\"]\n" + neighbor0,
			`test.toml:9: bgp.communities = "64512:01": is listed twice`},
		{"aggregate IPv6", bgpBase + "aggregates = [\"2001:db8::/32\"]\n" + neighbor0,
			`test.toml:9: bgp.aggregates = "2001:db8::/32": is not IPv4; accepted: an IPv4 address or prefix, e.g. 198.51.100.0/24`},
		{"aggregate host bits", bgpBase + "aggregates = [\"198.51.100.1/24\"]\n" + neighbor0,
			`test.toml:9: bgp.aggregates = "198.51.100.1/24": has host bits set; did you mean 198.51.100.0/24?`},
		{"aggregate covers nothing", base + m + "\n[bgp]\nlocal_as = 64512\nrouter_id = \"192.0.2.2\"\naggregates = [\"203.0.113.0/24\"]\n" + neighbor0,
			`test.toml:13: bgp.aggregates = "203.0.113.0/24": covers no mapped IPv4 prefix; it would attract traffic the node cannot translate`},
		{"aggregate inside a mapping", base + m + "\n[bgp]\nlocal_as = 64512\nrouter_id = \"192.0.2.2\"\naggregates = [\"198.51.100.16/29\"]\n" + neighbor0,
			`test.toml:13: bgp.aggregates = "198.51.100.16/29": covers only part of the mapped prefix 198.51.100.16/28 (test.toml:6: mapping[0]); an aggregate must cover whole mappings`},
		{"aggregates overlap", base + m + "\n[bgp]\nlocal_as = 64512\nrouter_id = \"192.0.2.2\"\naggregates = [\"198.51.100.0/24\", \"198.51.100.0/25\"]\n" + neighbor0,
			`test.toml:13: bgp.aggregates = "198.51.100.0/25": overlaps the aggregate 198.51.100.0/24; aggregates must not overlap`},

		// [[bgp.neighbor]].
		{"neighbor empty", bgpBase + "[[bgp.neighbor]]\n", `test.toml:9: bgp.neighbor[0].address: missing; this key is required, e.g. address = "192.0.2.254"
test.toml:9: bgp.neighbor[0].peer_as: missing; this key is required, e.g. peer_as = 64496`},
		{"neighbor unknown key", bgpBase + neighbor0 + "remote_as = 64513\n",
			`test.toml:12: bgp.neighbor[0].remote_as = 64513: unknown key; accepted: address, peer_as, port, description, role, families, password, hold_time, keepalive_time, connect_retry, passive, multihop_ttl, ttl_security, max_prefixes, bfd, bfd_interval, bfd_multiplier, next_hop_ipv4, next_hop_ipv6`},
		{"neighbor misspelt key", bgpBase + neighbor0 + "hold_tme = \"3s\"\n",
			`test.toml:12: bgp.neighbor[0].hold_tme = "3s": unknown key; did you mean hold_time?`},
		{"address garbage", bgpBase + "[[bgp.neighbor]]\naddress = \"router1\"\npeer_as = 64513\n",
			`test.toml:10: bgp.neighbor[0].address = "router1": not an IP address; accepted: the neighbor's IPv4 or IPv6 address, e.g. "192.0.2.254" or "2001:db8:ffff::1"`},
		{"address link-local", bgpBase + "[[bgp.neighbor]]\naddress = \"fe80::1\"\npeer_as = 64513\n",
			`test.toml:10: bgp.neighbor[0].address = "fe80::1": link-local neighbors are not supported; accepted: a global or unique-local address of the neighbor`},
		{"address zone", bgpBase + "[[bgp.neighbor]]\naddress = \"fe80::1%eth0\"\npeer_as = 64513\n",
			`test.toml:10: bgp.neighbor[0].address = "fe80::1%eth0": not an IP address; accepted: the neighbor's IPv4 or IPv6 address, e.g. "192.0.2.254" or "2001:db8:ffff::1"`},
		{"address multicast", bgpBase + "[[bgp.neighbor]]\naddress = \"224.0.0.5\"\npeer_as = 64513\n",
			`test.toml:10: bgp.neighbor[0].address = "224.0.0.5": lies in 224.0.0.0/4 (multicast); accepted: unicast addresses only`},
		{"address twice", bgpBase + neighbor0 + "\n" + neighbor0,
			`test.toml:14: bgp.neighbor[1].address = "192.0.2.254": already the address of bgp.neighbor[0] (line 9); each neighbor may be listed once`},
		{"peer_as AS_TRANS", bgpBase + "[[bgp.neighbor]]\naddress = \"192.0.2.254\"\npeer_as = 23456\n",
			`test.toml:11: bgp.neighbor[0].peer_as = 23456: 23456 is AS_TRANS (RFC 6793), a placeholder, not an AS; accepted: 1 to 4294967295 except 23456`},
		{"peer_as negative", bgpBase + "[[bgp.neighbor]]\naddress = \"192.0.2.254\"\npeer_as = -1\n",
			`test.toml:11: bgp.neighbor[0].peer_as = -1: must be from 1 to 4294967295`},
		{"port zero", bgpBase + neighbor0 + "port = 0\n",
			`test.toml:12: bgp.neighbor[0].port = 0: must be from 1 to 65535 (the neighbor's BGP port)`},
		{"port high", bgpBase + neighbor0 + "port = 65536\n",
			`test.toml:12: bgp.neighbor[0].port = 65536: must be from 1 to 65535 (the neighbor's BGP port)`},
		{"role", bgpBase + neighbor0 + "role = \"upstream\"\n",
			`test.toml:12: bgp.neighbor[0].role = "upstream": must be one of "router", "partner"`},
		{"families unknown", bgpBase + neighbor0 + "families = [\"ipv4\"]\n",
			`test.toml:12: bgp.neighbor[0].families = "ipv4": unknown family; accepted: "ipv4-unicast", "ipv6-unicast"`},
		{"families empty", bgpBase + neighbor0 + "families = []\n",
			`test.toml:12: bgp.neighbor[0].families = []: must list at least one of "ipv4-unicast", "ipv6-unicast"`},
		{"families twice", bgpBase + neighbor0 + "families = [\"ipv4-unicast\", \"ipv4-unicast\"]\n",
			`test.toml:12: bgp.neighbor[0].families = "ipv4-unicast": is listed twice`},
		{"partner with one family", bgpBase + neighbor0 + "role = \"partner\"\nfamilies = [\"ipv4-unicast\"]\n",
			`test.toml:13: bgp.neighbor[0].families = ["ipv4-unicast"]: a partner must carry both "ipv4-unicast" and "ipv6-unicast": it reports every prefix it announces, and the node checks them all before a drain; leave the key out`},
		{"IPv6 over IPv4 without next hop", bgpBase + neighbor0 + "families = [\"ipv4-unicast\", \"ipv6-unicast\"]\n",
			`test.toml:9: bgp.neighbor[0].next_hop_ipv6: missing; "ipv6-unicast" over an IPv4 session needs next_hop_ipv6, a global IPv6 address of this node (without one, the session's IPv4 address is sent as the next hop and routers drop the route), e.g. next_hop_ipv6 = "2001:db8:64::2"`},
		{"IPv4 over IPv6 without next hop", bgpBase + "[[bgp.neighbor]]\naddress = \"2001:db8:ffff::1\"\npeer_as = 64514\nfamilies = [\"ipv4-unicast\"]\n",
			`test.toml:9: bgp.neighbor[0].next_hop_ipv4: missing; "ipv4-unicast" over an IPv6 session needs next_hop_ipv4, an IPv4 address of this node, e.g. next_hop_ipv4 = "192.0.2.2"`},
		{"next_hop_ipv6 link-local", bgpBase + neighbor0 + "families = [\"ipv6-unicast\"]\nnext_hop_ipv6 = \"fe80::2\"\n",
			`test.toml:13: bgp.neighbor[0].next_hop_ipv6 = "fe80::2": lies in fe80::/10 (link-local); accepted: unicast addresses only`},
		{"next_hop_ipv6 IPv4", bgpBase + neighbor0 + "families = [\"ipv6-unicast\"]\nnext_hop_ipv6 = \"192.0.2.2\"\n",
			`test.toml:13: bgp.neighbor[0].next_hop_ipv6 = "192.0.2.2": not an IPv6 address; accepted: a unicast IPv6 address such as 2001:db8:64::2`},
		{"next_hop_ipv6 in the pseudo prefix", bgpBase + neighbor0 + "families = [\"ipv6-unicast\"]\nnext_hop_ipv6 = \"64:ff9b::c000:202\"\n",
			`test.toml:13: bgp.neighbor[0].next_hop_ipv6 = "64:ff9b::c000:202": lies in the pseudo prefix 64:ff9b::/96, which this node announces; accepted: a global unicast address of this node outside it`},
		{"next_hop_ipv6 unused", bgpBase + neighbor0 + "next_hop_ipv6 = \"2001:db8:64::2\"\n",
			`test.toml:12: bgp.neighbor[0].next_hop_ipv6 = "2001:db8:64::2": has no effect: the neighbor does not carry "ipv6-unicast"; leave it out or add the family`},
		{"next_hop_ipv4 unused", bgpBase + "[[bgp.neighbor]]\naddress = \"2001:db8:ffff::1\"\npeer_as = 64514\nnext_hop_ipv4 = \"192.0.2.2\"\n",
			`test.toml:12: bgp.neighbor[0].next_hop_ipv4 = "192.0.2.2": has no effect: the neighbor does not carry "ipv4-unicast"; leave it out or add the family`},
		{"next_hop_ipv4 broadcast", bgpBase + neighbor0 + "next_hop_ipv4 = \"255.255.255.255\"\n",
			`test.toml:12: bgp.neighbor[0].next_hop_ipv4 = "255.255.255.255": lies in 255.255.255.255/32 (limited broadcast); accepted: unicast addresses only`},
		{"password empty", bgpBase + neighbor0 + "password = \"\"\n",
			`test.toml:12: bgp.neighbor[0].password: must be 1 to 80 bytes long, not 0 (TCP-MD5 key, RFC 2385); to use none, leave the key out`},
		{"password too long, not echoed", bgpBase + neighbor0 + "password = \"" + string(make108('p')) + "\"\n",
			`test.toml:12: bgp.neighbor[0].password: must be 1 to 80 bytes long, not 108 (TCP-MD5 key, RFC 2385); to use none, leave the key out`},
		{"password not a string, not echoed", bgpBase + neighbor0 + "password = 123456\n",
			`test.toml:12: bgp.neighbor[0].password: must be a string, not an integer`},
		{"hold_time integer", bgpBase + neighbor0 + "hold_time = 90\n",
			`test.toml:12: bgp.neighbor[0].hold_time = 90: must be a duration string such as "3s" or "100ms", not an integer`},
		{"hold_time no unit", bgpBase + neighbor0 + "hold_time = \"90\"\n",
			`test.toml:12: bgp.neighbor[0].hold_time = "90": not a duration; accepted: a number with a unit (ms, s, m, h), e.g. "3s" or "100ms"`},
		{"hold_time fraction", bgpBase + neighbor0 + "hold_time = \"3500ms\"\n",
			`test.toml:12: bgp.neighbor[0].hold_time = "3500ms": must be whole seconds from 3s to 65535s (BGP counts in seconds)`},
		{"hold_time 2s", bgpBase + neighbor0 + "hold_time = \"2s\"\n",
			`test.toml:12: bgp.neighbor[0].hold_time = "2s": must be whole seconds from 3s to 65535s (BGP counts in seconds)`},
		{"hold_time zero", bgpBase + neighbor0 + "hold_time = \"0s\"\n",
			`test.toml:12: bgp.neighbor[0].hold_time = "0s": must be whole seconds from 3s to 65535s (BGP counts in seconds)`},
		{"hold_time too long", bgpBase + neighbor0 + "hold_time = \"24h\"\n",
			`test.toml:12: bgp.neighbor[0].hold_time = "24h": must be whole seconds from 3s to 65535s (BGP counts in seconds)`},
		{"keepalive not below hold", bgpBase + neighbor0 + "hold_time = \"3s\"\nkeepalive_time = \"3s\"\n",
			`test.toml:13: bgp.neighbor[0].keepalive_time = "3s": must be less than hold_time (3s), a third of it by custom (RFC 4271 §10)`},
		{"keepalive not below default hold", bgpBase + neighbor0 + "keepalive_time = \"2m\"\n",
			`test.toml:12: bgp.neighbor[0].keepalive_time = "2m": must be less than hold_time (90s), a third of it by custom (RFC 4271 §10)`},
		{"keepalive zero", bgpBase + neighbor0 + "keepalive_time = \"0s\"\n",
			`test.toml:12: bgp.neighbor[0].keepalive_time = "0s": must be whole seconds from 1s to 65535s (BGP counts in seconds)`},
		{"connect_retry fraction", bgpBase + neighbor0 + "connect_retry = \"500ms\"\n",
			`test.toml:12: bgp.neighbor[0].connect_retry = "500ms": must be whole seconds from 1s to 65535s (BGP counts in seconds)`},
		{"passive without listener", bgpBase + "listen_port = -1\n" + neighbor0 + "passive = true\n",
			`test.toml:13: bgp.neighbor[0].passive = true: a passive neighbor must connect to this node, but bgp.listen_port = -1 (no listener); set a listen_port or passive = false`},
		{"multihop_ttl high", bgpBase + neighbor0 + "multihop_ttl = 256\n",
			`test.toml:12: bgp.neighbor[0].multihop_ttl = 256: must be from 0 to 255 (0: directly connected)`},
		{"bfd multihop", bgpBase + neighbor0 + "multihop_ttl = 2\nbfd = true\n",
			`test.toml:13: bgp.neighbor[0].bfd = true: the speaker's BFD is single-hop (RFC 5881) and this neighbor is set multihop (multihop_ttl = 2); set bfd = false or multihop_ttl = 0`},
		{"ttl_security multihop", bgpBase + neighbor0 + "multihop_ttl = 2\nttl_security = true\n",
			`test.toml:13: bgp.neighbor[0].ttl_security = true: GTSM (RFC 5082) accepts only packets sent from one hop away (TTL 255), and this neighbor is set multihop (multihop_ttl = 2); set ttl_security = false or multihop_ttl = 0`},
		{"ttl_security string", bgpBase + neighbor0 + "ttl_security = \"on\"\n",
			`test.toml:12: bgp.neighbor[0].ttl_security = "on": must be true or false, not a string`},
		{"max_prefixes negative", bgpBase + neighbor0 + "max_prefixes = -1\n",
			`test.toml:12: bgp.neighbor[0].max_prefixes = -1: must be from 0 to 4294967295 (0: no limit)`},
		{"bfd multihop 1", bgpBase + neighbor0 + "multihop_ttl = 1\nbfd = true\n",
			`test.toml:13: bgp.neighbor[0].bfd = true: the speaker's BFD is single-hop (RFC 5881) and this neighbor is set multihop (multihop_ttl = 1); set bfd = false or multihop_ttl = 0`},
		{"bfd_interval short", bgpBase + neighbor0 + "bfd = true\nbfd_interval = \"10ms\"\n",
			`test.toml:13: bgp.neighbor[0].bfd_interval = "10ms": must be from 50ms to 10s`},
		{"bfd_interval long", bgpBase + neighbor0 + "bfd = true\nbfd_interval = \"1m\"\n",
			`test.toml:13: bgp.neighbor[0].bfd_interval = "1m": must be from 50ms to 10s`},
		{"bfd_multiplier zero", bgpBase + neighbor0 + "bfd = true\nbfd_multiplier = 0\n",
			`test.toml:13: bgp.neighbor[0].bfd_multiplier = 0: must be from 1 to 255`},
		{"bfd settings without bfd", bgpBase + neighbor0 + "bfd_interval = \"100ms\"\nbfd_multiplier = 3\n",
			`test.toml:12: bgp.neighbor[0].bfd_interval = "100ms": has no effect without bfd = true; set bfd = true or leave the key out
test.toml:13: bgp.neighbor[0].bfd_multiplier = 3: has no effect without bfd = true; set bfd = true or leave the key out`},
		{"bfd type", bgpBase + neighbor0 + "bfd = \"on\"\n",
			`test.toml:12: bgp.neighbor[0].bfd = "on": must be true or false, not a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, tc.conf)
			if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
		})
	}
}

func make108(c byte) []byte {
	b := make([]byte, 108)
	for i := range b {
		b[i] = c
	}
	return b
}

// TestBGPMaxPrefixesDefault: the default prefix limit leaves room for a
// partner sending back every mapping, and GTSM is on for a directly
// connected neighbor only.
func TestBGPMaxPrefixesDefault(t *testing.T) {
	var m strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&m, "[[mapping]]\nipv4 = \"198.51.%d.%d\"\nipv6 = \"2001:db8:1::%x\"\n", 100+i/250, i%250, i)
	}
	c, msg := parse(t, base+m.String()+`
[bgp]
local_as = 64512
router_id = "192.0.2.2"
`+neighbor0+`
[[bgp.neighbor]]
address = "192.0.2.3"
peer_as = 64512
role = "partner"
multihop_ttl = 2
`)
	if msg != "" {
		t.Fatal(msg)
	}
	for i, want := range []struct {
		maxPrefixes uint32
		gtsm        bool
	}{{2500, true}, {2500, false}} {
		n := c.BGP.Neighbors[i]
		if n.MaxPrefixes != want.maxPrefixes || n.TTLSecurity != want.gtsm {
			t.Errorf("neighbor %s: max_prefixes %d, ttl_security %v; want %d and %v", n.Address, n.MaxPrefixes, n.TTLSecurity, want.maxPrefixes, want.gtsm)
		}
	}
}

// TestBGPListenEverywhereWarning: `map646 check` says loudly when port 179
// is open on every address (the default), and not otherwise.
func TestBGPListenEverywhereWarning(t *testing.T) {
	const warning = "  WARNING: port 179 is open on every address of this node: set bgp.listen_addresses to the addresses the neighbors reach\n"
	for _, c := range []struct {
		keys string
		warn bool
	}{
		{"", true},
		{`listen_addresses = ["192.0.2.2", "::"]` + "\n", true},
		{`listen_addresses = ["192.0.2.2"]` + "\n", false},
		{"listen_port = -1\n", false},
	} {
		conf, msg := parse(t, bgpBase+c.keys+neighbor0)
		if msg != "" {
			t.Fatal(msg)
		}
		var b strings.Builder
		conf.Describe(&b)
		if strings.Contains(b.String(), warning) != c.warn {
			t.Errorf("%q: warning shown %v, want %v:\n%s", c.keys, !c.warn, c.warn, b.String())
		}
	}
}
