package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/routing"
)

func TestNodeControlDefaults(t *testing.T) {
	c, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	if want := (Node{StateDir: "/var/lib/map646", Linger: 2 * time.Second, DrainTimeout: 30 * time.Second, DrainIdlePPS: 10}); c.Node != want {
		t.Errorf("[node] defaults %+v, want %+v", c.Node, want)
	}
	if want := (Control{Socket: "/run/map646/map646.sock"}); c.Control != want {
		t.Errorf("[control] defaults %+v, want %+v", c.Control, want)
	}
}

func TestNodeControlEveryKey(t *testing.T) {
	c, msg := parse(t, base+`
[node]
state_dir = "/srv/map646/state"
linger = "0s"
drain_timeout = "2m30s"
drain_idle_pps = 0

[control]
socket = "/run/map646/control.sock"
status_socket = "/run/map646/status.sock"
status_group = "nagios"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	if want := (Node{StateDir: "/srv/map646/state", Linger: 0, DrainTimeout: 150 * time.Second, DrainIdlePPS: 0}); c.Node != want {
		t.Errorf("[node] %+v, want %+v", c.Node, want)
	}
	if want := (Control{Socket: "/run/map646/control.sock", StatusSocket: "/run/map646/status.sock", StatusGroup: "nagios"}); c.Control != want {
		t.Errorf("[control] %+v, want %+v", c.Control, want)
	}
}

// TestNodeControlProblems: keys from line 7 on (line 6 is the header).
func TestNodeControlProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf string
		want string
	}{
		{"state_dir relative", "\n[node]\nstate_dir = \"var/lib/map646\"\n",
			`test.toml:7: node.state_dir = "var/lib/map646": not an absolute path; accepted: a directory such as "/var/lib/map646"`},
		{"state_dir unclean", "\n[node]\nstate_dir = \"/var/lib/map646/\"\n",
			`test.toml:7: node.state_dir = "/var/lib/map646/": not a clean path; did you mean "/var/lib/map646"?`},
		{"state_dir type", "\n[node]\nstate_dir = 1\n",
			`test.toml:7: node.state_dir = 1: must be a string, not an integer`},
		{"linger negative", "\n[node]\nlinger = \"-1s\"\n",
			`test.toml:7: node.linger = "-1s": must be from 0s to 1h (translating on after a withdrawal)`},
		{"linger integer", "\n[node]\nlinger = 2\n",
			`test.toml:7: node.linger = 2: must be a duration string such as "3s" or "100ms", not an integer (translating on after a withdrawal)`},
		{"drain_timeout long", "\n[node]\ndrain_timeout = \"2h\"\n",
			`test.toml:7: node.drain_timeout = "2h": must be from 0s to 1h`},
		{"drain_timeout unit", "\n[node]\ndrain_timeout = \"30 s\"\n",
			`test.toml:7: node.drain_timeout = "30 s": not a duration; accepted: a number with a unit (ms, s, m, h), e.g. "3s" or "100ms"`},
		{"drain_idle_pps negative", "\n[node]\ndrain_idle_pps = -1\n",
			`test.toml:7: node.drain_idle_pps = -1: must be from 0 to 1073741824 (packets per second through the tun device)`},
		{"node unknown key", "\n[node]\nstatedir = \"/var/lib/map646\"\n",
			`test.toml:7: node.statedir = "/var/lib/map646": unknown key; did you mean state_dir?`},
		{"socket relative", "\n[control]\nsocket = \"map646.sock\"\n",
			`test.toml:7: control.socket = "map646.sock": not an absolute path; accepted: the path of a unix socket, e.g. "/run/map646.sock"`},
		{"socket address", "\n[control]\nsocket = \"127.0.0.1:9647\"\n",
			`test.toml:7: control.socket = "127.0.0.1:9647": not an absolute path; accepted: the path of a unix socket, e.g. "/run/map646.sock"`},
		{"socket too long", "\n[control]\nsocket = \"/run/" + strings.Repeat("m", 103) + "\"\n",
			`test.toml:7: control.socket = "/run/` + strings.Repeat("m", 103) + `": is 108 bytes long; a unix socket path holds at most 107`},
		{"control unknown key", "\n[control]\nmode = \"0600\"\n",
			`test.toml:7: control.mode = "0600": unknown key; accepted: socket, status_socket, status_group`},
		{"status_socket relative", "\n[control]\nstatus_socket = \"status.sock\"\n",
			`test.toml:7: control.status_socket = "status.sock": not an absolute path; accepted: the path of a unix socket, e.g. "/run/map646.sock"`},
		{"status_socket is the control socket", "\n[control]\nstatus_socket = \"/run/map646/map646.sock\"\n",
			`test.toml:7: control.status_socket = "/run/map646/map646.sock": is also control.socket; the read-only socket needs a path of its own`},
		{"status_group without status_socket", "\n[control]\nstatus_group = \"nagios\"\n",
			`test.toml:7: control.status_group = "nagios": has no effect without status_socket; set status_socket = "/run/map646-status.sock" too, or leave it out`},
		{"status_group numeric", "\n[control]\nstatus_socket = \"/run/s.sock\"\nstatus_group = \"1000\"\n",
			`test.toml:8: control.status_group = "1000": not a group name; accepted: a group of the system (letters, digits, "_", "-", "."; not starting with "-"), e.g. "map646-status"`},
		{"status_group spaces", "\n[control]\nstatus_socket = \"/run/s.sock\"\nstatus_group = \"a b\"\n",
			`test.toml:8: control.status_group = "a b": not a group name; accepted: a group of the system (letters, digits, "_", "-", "."; not starting with "-"), e.g. "map646-status"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, base+tc.conf)
			if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
		})
	}
	// The longest path a socket can take is accepted.
	longest := "/run/" + strings.Repeat("m", 102)
	if c, msg := parse(t, base+"[control]\nsocket = \""+longest+"\"\n"); msg != "" || c.Control.Socket != longest {
		t.Errorf("a socket path of 107 bytes: %s", msg)
	}
}

// TestExampleLifeCycle: example.toml shows every key of [bgp],
// [[bgp.neighbor]], [[health.check]], [node] and [control] (optional ones
// may be commented out), with the defaults where it sets them.
func TestExampleLifeCycle(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	if c.Node != d.Node || c.Control != d.Control {
		t.Errorf("example.toml does not show the defaults of [node] and [control]: %+v %+v", c.Node, c.Control)
	}
	b := c.BGP
	if !b.Enabled || b.ListenPort != DefaultBGPPort || len(b.ListenAddresses) != 2 || b.GRPCSocket != "" ||
		b.MED != 0 || b.DrainMED != DefaultDrainMED || len(b.Communities) != 0 || len(b.Aggregates) != 0 {
		t.Errorf("example.toml does not show the defaults of [bgp]: %+v", b)
	}
	if len(b.Neighbors) != 3 || b.Neighbors[2].Role != routing.Partner {
		t.Fatalf("example.toml: neighbors %+v, want 3, the last a partner", b.Neighbors)
	}
	n := b.Neighbors[0]
	if n.HoldTime != DefaultHoldTime || n.KeepaliveTime != DefaultHoldTime/3 || n.ConnectRetry != DefaultConnectRetry ||
		n.Passive || n.MultihopTTL != 0 || n.BFD != (routing.BFD{Interval: DefaultBFDInterval, Multiplier: DefaultBFDMultiplier}) {
		t.Errorf("example.toml: the first neighbor does not show the defaults: %+v", n)
	}
	if !reflect.DeepEqual(c.Health.Checks[0], DefaultCheck()) {
		t.Errorf("example.toml: the first check %+v is not the default %+v", c.Health.Checks[0], DefaultCheck())
	}

	example, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ section, conf string }{
		{"bgp", bgpBase + "zzz = 1\n" + neighbor0},
		{"bgp.neighbor", bgpBase + neighbor0 + "zzz = 1\n"},
		{"health.check", base + "[[health.check]]\nname = \"x\"\ntype = \"dataplane\"\nzzz = 1\n"},
		{"node", base + "[node]\nzzz = 1\n"},
		{"control", base + "[control]\nzzz = 1\n"},
	} {
		header := `\[` + regexp.QuoteMeta(tc.section) + `\]`
		if strings.Contains(tc.section, ".") {
			header = `\[` + header + `\]`
		}
		if !regexp.MustCompile(`(?m)^` + header + `$`).Match(example) {
			t.Errorf("example.toml has no %s section", header)
		}
		_, msg := parse(t, tc.conf)
		_, list, ok := strings.Cut(msg, "; accepted: ")
		if !ok {
			t.Fatalf("no list of accepted keys in %q", msg)
		}
		for _, k := range strings.Split(list, ", ") {
			if k == "neighbor" {
				continue // [[bgp.neighbor]], checked as a section
			}
			if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(k) + ` = `).Match(example) {
				t.Errorf("example.toml does not show %s.%s", tc.section, k)
			}
		}
	}
}

// TestDescribeLifeCycle: what check prints for [node], [control], [bgp]
// and [health]; a password is never printed.
func TestDescribeLifeCycle(t *testing.T) {
	c, msg := parse(t, base+`
[[mapping]]
ipv4 = "198.51.100.10"
ipv6 = "2001:db8:1::10"

[bgp]
local_as = 64512
router_id = "192.0.2.2"
listen_addresses = ["192.0.2.2"]
grpc_socket = "/run/map646-gobgp.sock"
med = 100
communities = ["64512:100", "65535:65281"]
aggregates = ["198.51.100.0/24"]

[[bgp.neighbor]]
address = "192.0.2.254"
peer_as = 64513
port = 1179
description = "upstream"
password = "hunter2"
hold_time = "3s"
bfd = true
bfd_interval = "100ms"
passive = true

[[bgp.neighbor]]
address = "2001:db8:ffff::1"
peer_as = 64514
multihop_ttl = 2

[[bgp.neighbor]]
address = "192.0.2.3"
peer_as = 64512
role = "partner"

[[health.check]]
name = "web"
type = "tcp"
target = "[2001:db8:1::10]:80"
interval = "2s"
rise = 2
fall = 5
withdraw = "ipv4"

[[health.check]]
name = "fate"
type = "bgp"
neighbors = ["2001:db8:ffff::1"]

[node]
linger = "500ms"
drain_idle_pps = 0

[control]
socket = "/run/map646/ctl.sock"
status_socket = "/run/map646/status.sock"
status_group = "nagios"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	var b strings.Builder
	c.Describe(&b)
	out := b.String()
	start := strings.Index(out, "  state directory")
	end := strings.Index(out, "\nmappings:")
	if start < 0 || end < start {
		t.Fatalf("no life-cycle part in:\n%s", out)
	}
	want := `  state directory      /var/lib/map646 (the drained flag survives restarts there)
  drain                withdraw when tun traffic is at or under 0 packets/s, or after 30s; then translate on for 500ms
  control socket       /run/map646/ctl.sock (mode 0600: status, drain, undrain, reload)
  status socket        /run/map646/status.sock (mode 0660, group nagios: status only)

bgp: AS 64512, router id 192.0.2.2, listening on 192.0.2.2 port 179
  announcements        MED 100, communities 64512:100, 65535:65281; draining: MED 1000 and GRACEFUL_SHUTDOWN
  aggregates           198.51.100.0/24
  gRPC API             unix socket /run/map646-gobgp.sock (gobgp --target unix:///run/map646-gobgp.sock ...)
  neighbor             192.0.2.254 AS 64513 port 1179 router "upstream": ipv4-unicast; hold 3s, keepalive 1s; TCP-MD5; BFD 100ms x 3; passive; GTSM (TTL 255); at most 1001 prefixes per family
  neighbor             2001:db8:ffff::1 AS 64514 router: ipv6-unicast; hold 90s, keepalive 30s; multihop TTL 2; at most 1001 prefixes per family
  neighbor             192.0.2.3 AS 64512 (iBGP) partner: ipv4-unicast, ipv6-unicast (next hop 2001:db8:64::1); hold 90s, keepalive 30s; GTSM (TTL 255); at most 1001 prefixes per family

health: 2 checks
  web                  tcp [2001:db8:1::10]:80 every 2s, timeout 500ms, up after 2, down after 5; withdraws ipv4
  fate                 bgp 2001:db8:ffff::1 (fails when none is established) every 1s, timeout 500ms, up after 3, down after 3; withdraws all
`
	if got := out[start:end]; got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("the description shows the password:\n%s", out)
	}
}
