package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/map646/map646/health"
)

// check0 starts a [[health.check]] on line 6, its keys from line 7 on.
const check0 = "\n[[health.check]]\n"

func TestHealthDefault(t *testing.T) {
	c, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	want := []health.Check{{Name: "dataplane", Kind: health.DataPlane, Interval: time.Second,
		Timeout: 500 * time.Millisecond, Rise: 3, Fall: 3, Withdraws: health.Both}}
	if !reflect.DeepEqual(c.Health.Checks, want) {
		t.Errorf("without [health]: %+v, want %+v", c.Health.Checks, want)
	}
	// A check written with only its name and type gets the same defaults.
	c, msg = parse(t, base+check0+"name = \"dataplane\"\ntype = \"dataplane\"\n")
	if msg != "" {
		t.Fatal(msg)
	}
	if !reflect.DeepEqual(c.Health.Checks, want) {
		t.Errorf("minimal check: %+v, want %+v", c.Health.Checks, want)
	}
}

// TestHealthEveryKey: each type with its target, every key set to
// something other than its default.
func TestHealthEveryKey(t *testing.T) {
	c, msg := parse(t, bgpBase+neighbor0+`
[[bgp.neighbor]]
address = "2001:db8:ffff::1"
peer_as = 64514

[[health.check]]
name = "dp"
type = "dataplane"
interval = "200ms"
rise = 1
fall = 100
withdraw = "ipv6"

[[health.check]]
name = "ping.web-1"
type = "icmp6"
target = "2001:db8:1::10"
interval = "5s"
timeout = "2s"

[[health.check]]
name = "tcp"
type = "tcp"
target = "[2001:db8:1::10]:443"

[[health.check]]
name = "http"
type = "http"
target = "https://www.example.com:8443/health?full=1"

[[health.check]]
name = "http6"
type = "http"
target = "http://[2001:db8:1::10]/"

[[health.check]]
name = "sessions"
type = "bgp"
neighbors = ["2001:db8:ffff::1", "192.0.2.254"]
withdraw = "ipv4"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	def := health.Check{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 3, Fall: 3}
	with := func(c health.Check, f func(*health.Check)) health.Check { f(&c); return c }
	want := []health.Check{
		// The default timeout is half an interval shorter than a second.
		{Name: "dp", Kind: health.DataPlane, Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond,
			Rise: 1, Fall: 100, Withdraws: health.IPv6Side},
		with(def, func(c *health.Check) {
			c.Name, c.Kind, c.Addr = "ping.web-1", health.ICMPv6, netip.MustParseAddr("2001:db8:1::10")
			c.Interval, c.Timeout = 5*time.Second, 2*time.Second
		}),
		with(def, func(c *health.Check) {
			c.Name, c.Kind, c.AddrPort = "tcp", health.TCP, netip.MustParseAddrPort("[2001:db8:1::10]:443")
		}),
		with(def, func(c *health.Check) {
			c.Name, c.Kind, c.URL = "http", health.HTTP, "https://www.example.com:8443/health?full=1"
		}),
		with(def, func(c *health.Check) { c.Name, c.Kind, c.URL = "http6", health.HTTP, "http://[2001:db8:1::10]/" }),
		with(def, func(c *health.Check) {
			c.Name, c.Kind, c.Withdraws = "sessions", health.BGP, health.IPv4Side
			c.Neighbors = []netip.Addr{netip.MustParseAddr("2001:db8:ffff::1"), netip.MustParseAddr("192.0.2.254")}
		}),
	}
	if !reflect.DeepEqual(c.Health.Checks, want) {
		t.Errorf("\n got %+v\nwant %+v", c.Health.Checks, want)
	}
}

// TestHealthProblems checks the exact text of each problem of [health] and
// [[health.check]].
func TestHealthProblems(t *testing.T) {
	dp := check0 + "name = \"dp\"\ntype = \"dataplane\"\n" // keys from line 9 on
	for _, tc := range []struct {
		name string
		conf string
		want string
	}{
		{"empty [health]", base + "\n[health]\n",
			`test.toml:6: health.check: missing; [health] needs at least one [[health.check]] (leave [health] out for the default: one dataplane check)`},
		{"health unknown key", base + "\n[health]\ninterval = \"1s\"\n" + dp,
			`test.toml:7: health.interval = "1s": unknown key; accepted: check`},
		{"check a table", base + "\n[health.check]\nname = \"dp\"\n",
			`test.toml:6: health.check = {name = "dp"}: must be an array of tables ([[health.check]]), not a table`},
		{"check empty", base + check0, `test.toml:6: health.check[0].name: missing; this key is required, e.g. name = "web"
test.toml:6: health.check[0].type: missing; this key is required, e.g. type = "dataplane"`},
		{"check unknown key", base + dp + "retries = 3\n",
			`test.toml:9: health.check[0].retries = 3: unknown key; accepted: name, type, target, neighbors, interval, timeout, rise, fall, withdraw`},
		{"check misspelt key", base + dp + "intreval = \"2s\"\n",
			`test.toml:9: health.check[0].intreval = "2s": unknown key; did you mean interval?`},
		{"name syntax", base + check0 + "name = \"web server\"\ntype = \"dataplane\"\n",
			`test.toml:7: health.check[0].name = "web server": must be 1 to 64 letters, digits, "-", "_" or ".", starting with a letter or digit`},
		{"name twice", base + dp + dp,
			`test.toml:11: health.check[1].name = "dp": already the name of health.check[0] (line 6); names must be unique`},
		{"type unknown", base + check0 + "name = \"x\"\ntype = \"ping\"\ntarget = \"2001:db8:1::10\"\n",
			`test.toml:8: health.check[0].type = "ping": must be one of "dataplane", "icmp6", "tcp", "http", "bgp"`},
		{"dataplane target", base + dp + "target = \"2001:db8:1::10\"\n",
			`test.toml:9: health.check[0].target = "2001:db8:1::10": a dataplane check has no target: it probes the node's own translation path; leave it out`},
		{"dataplane neighbors", base + dp + "neighbors = [\"192.0.2.254\"]\n",
			`test.toml:9: health.check[0].neighbors = ["192.0.2.254"]: only a bgp check has neighbors; this dataplane check has no target`},
		{"icmp6 no target", base + check0 + "name = \"x\"\ntype = \"icmp6\"\n",
			`test.toml:6: health.check[0].target: missing; this key is required, e.g. target = "2001:db8:1::10"`},
		{"icmp6 IPv4", base + check0 + "name = \"x\"\ntype = \"icmp6\"\ntarget = \"198.51.100.10\"\n",
			`test.toml:9: health.check[0].target = "198.51.100.10": is IPv4; the backends are checked over IPv6, the side the translated traffic takes (the datacenter is IPv6-only); accepted: an IPv6 address`},
		{"icmp6 garbage", base + check0 + "name = \"x\"\ntype = \"icmp6\"\ntarget = \"web1\"\n",
			`test.toml:9: health.check[0].target = "web1": not an IPv6 address; accepted: e.g. "2001:db8:1::10"`},
		{"icmp6 multicast", base + check0 + "name = \"x\"\ntype = \"icmp6\"\ntarget = \"ff02::1\"\n",
			`test.toml:9: health.check[0].target = "ff02::1": lies in ff00::/8 (multicast); accepted: unicast addresses only`},
		{"icmp6 neighbors", base + check0 + "name = \"x\"\ntype = \"icmp6\"\ntarget = \"2001:db8:1::10\"\nneighbors = []\n",
			`test.toml:10: health.check[0].neighbors = []: only a bgp check has neighbors; this icmp6 check has a target`},
		{"tcp without port", base + check0 + "name = \"x\"\ntype = \"tcp\"\ntarget = \"2001:db8:1::10\"\n",
			`test.toml:9: health.check[0].target = "2001:db8:1::10": has no port; accepted: "[IPV6]:PORT", e.g. "[2001:db8:1::10]:80"`},
		{"tcp garbage", base + check0 + "name = \"x\"\ntype = \"tcp\"\ntarget = \"web1:80\"\n",
			`test.toml:9: health.check[0].target = "web1:80": not "[IPV6]:PORT"; accepted: e.g. "[2001:db8:1::10]:80"`},
		{"tcp IPv4", base + check0 + "name = \"x\"\ntype = \"tcp\"\ntarget = \"198.51.100.10:80\"\n",
			`test.toml:9: health.check[0].target = "198.51.100.10:80": is IPv4; the backends are checked over IPv6, the side the translated traffic takes (the datacenter is IPv6-only); accepted: an IPv6 address`},
		{"tcp port 0", base + check0 + "name = \"x\"\ntype = \"tcp\"\ntarget = \"[2001:db8:1::10]:0\"\n",
			`test.toml:9: health.check[0].target = "[2001:db8:1::10]:0": port 0 cannot be connected to; accepted: a port from 1 to 65535`},
		{"http IPv4", base + check0 + "name = \"x\"\ntype = \"http\"\ntarget = \"http://198.51.100.10/\"\n",
			`test.toml:9: health.check[0].target = "http://198.51.100.10/": is IPv4; the backends are checked over IPv6, the side the translated traffic takes (the datacenter is IPv6-only); accepted: a URL with an IPv6 literal or a name`},
		{"http scheme", base + check0 + "name = \"x\"\ntype = \"http\"\ntarget = \"ftp://[2001:db8:1::10]/\"\n",
			`test.toml:9: health.check[0].target = "ftp://[2001:db8:1::10]/": not an http or https URL; accepted: e.g. "http://[2001:db8:1::10]/health" or "https://www.example.com/health"`},
		{"http no scheme", base + check0 + "name = \"x\"\ntype = \"http\"\ntarget = \"www.example.com/health\"\n",
			`test.toml:9: health.check[0].target = "www.example.com/health": not an http or https URL; accepted: e.g. "http://[2001:db8:1::10]/health" or "https://www.example.com/health"`},
		{"http bad port", base + check0 + "name = \"x\"\ntype = \"http\"\ntarget = \"http://[2001:db8:1::10]:99999/\"\n",
			`test.toml:9: health.check[0].target = "http://[2001:db8:1::10]:99999/": has an invalid port; accepted: e.g. "http://[2001:db8:1::10]/health" or "https://www.example.com/health"`},
		{"http numeric host", base + check0 + "name = \"x\"\ntype = \"http\"\ntarget = \"http://3325256714/\"\n",
			`test.toml:9: health.check[0].target = "http://3325256714/": the host is not a valid address or name; accepted: e.g. "http://[2001:db8:1::10]/health" or "https://www.example.com/health"`},
		{"bgp without [bgp]", base + check0 + "name = \"x\"\ntype = \"bgp\"\nneighbors = [\"192.0.2.254\"]\n",
			`test.toml:9: health.check[0].neighbors = ["192.0.2.254"]: this node has no [bgp] section: there are no sessions to check`},
		{"bgp no neighbors", bgpBase + neighbor0 + check0 + "name = \"x\"\ntype = \"bgp\"\n",
			`test.toml:13: health.check[0].neighbors: missing; this key is required, e.g. neighbors = ["2001:db8:ffff::1"]`},
		{"bgp empty neighbors", bgpBase + neighbor0 + check0 + "name = \"x\"\ntype = \"bgp\"\nneighbors = []\n",
			`test.toml:16: health.check[0].neighbors = []: must name at least one [[bgp.neighbor]] address`},
		{"bgp unknown neighbor", bgpBase + neighbor0 + check0 + "name = \"x\"\ntype = \"bgp\"\nneighbors = [\"192.0.2.253\"]\n",
			`test.toml:16: health.check[0].neighbors = "192.0.2.253": is not the address of a [[bgp.neighbor]]`},
		{"bgp neighbor garbage", bgpBase + neighbor0 + check0 + "name = \"x\"\ntype = \"bgp\"\nneighbors = [\"upstream\"]\n",
			`test.toml:16: health.check[0].neighbors = "upstream": not an IP address; accepted: the address of a [[bgp.neighbor]]`},
		{"bgp neighbor twice", bgpBase + neighbor0 + check0 + "name = \"x\"\ntype = \"bgp\"\nneighbors = [\"192.0.2.254\", \"192.0.2.254\"]\n",
			`test.toml:16: health.check[0].neighbors = "192.0.2.254": is listed twice`},
		{"bgp target", bgpBase + neighbor0 + check0 + "name = \"x\"\ntype = \"bgp\"\ntarget = \"192.0.2.254\"\nneighbors = [\"192.0.2.254\"]\n",
			`test.toml:16: health.check[0].target = "192.0.2.254": a bgp check has neighbors, not a target; e.g. neighbors = ["2001:db8:ffff::1"]`},
		{"interval short", base + dp + "interval = \"10ms\"\n",
			`test.toml:9: health.check[0].interval = "10ms": must be from 100ms to 1h`},
		{"interval integer", base + dp + "interval = 1\n",
			`test.toml:9: health.check[0].interval = 1: must be a duration string such as "3s" or "100ms", not an integer`},
		{"timeout not below interval", base + dp + "timeout = \"1s\"\n",
			`test.toml:9: health.check[0].timeout = "1s": must be shorter than interval (1s): one probe ends before the next starts`},
		{"timeout short", base + dp + "timeout = \"1ms\"\n",
			`test.toml:9: health.check[0].timeout = "1ms": must be from 10ms to 1h`},
		{"rise zero", base + dp + "rise = 0\n",
			`test.toml:9: health.check[0].rise = 0: must be from 1 to 100 (passes that make a down check up)`},
		{"fall high", base + dp + "fall = 101\n",
			`test.toml:9: health.check[0].fall = 101: must be from 1 to 100 (failures that make an up check down)`},
		{"withdraw", base + dp + "withdraw = \"both\"\n",
			`test.toml:9: health.check[0].withdraw = "both": must be one of "all", "ipv4", "ipv6"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, tc.conf)
			if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
		})
	}
}
