package topo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// NodeConfig is a map646 node's configuration file, as this lab writes it.
// New fills one per node from Options; a test may change Node.Config and
// restart the node (Node.Start) to run it with another.
type NodeConfig struct {
	PseudoPrefix string // "64:ff9b::/96"
	// IPv4Address and IPv6Address are the translator's own addresses (the
	// sources of its ICMP errors); not the node's interface addresses.
	IPv4Address, IPv6Address string
	Mappings                 []netlab.Mapping
	// MappingFile is translator.mapping_file ("": none): where `map646
	// mapping add|del` writes.
	MappingFile string
	Offload     bool
	Queues      int

	BGP    *BGPConfig // nil: no [bgp] section
	Checks []Check    // [[health.check]]

	StateDir      string // [node] state_dir
	Linger        time.Duration
	DrainTimeout  time.Duration
	DrainIdlePPS  int
	ControlSocket string // [control] socket

	LogLevel string // "info" unless set
	// MetricsListen is [metrics] listen; "" is a free loopback port.
	// netlab finds the address in the log either way. Another address
	// than a loopback one is allowed (allow_remote).
	MetricsListen string
	// Extra is raw TOML appended to the file (sections of its own).
	Extra string
}

// BGPConfig is the [bgp] section.
type BGPConfig struct {
	LocalAS     uint32
	RouterID    string
	ListenPort  int    // 0: map646's default (179)
	GRPCSocket  string // "": no gRPC API
	MED         uint32
	DrainMED    uint32 // 0: map646's default
	Communities []string
	Neighbors   []Neighbor
}

// Neighbor is one [[bgp.neighbor]].
type Neighbor struct {
	Address     string
	PeerAS      uint32
	Description string
	Role        string   // "router" or "partner"
	Families    []string // nil: map646's default for the role and address
	Password    string
	// HoldTime, KeepaliveTime, ConnectRetry: 0 leaves map646's default.
	HoldTime, KeepaliveTime, ConnectRetry time.Duration
	Passive                               bool
	BFD                                   bool
	BFDInterval                           time.Duration // 0: map646's default
	BFDMultiplier                         int
	NextHopIPv4, NextHopIPv6              string
}

// Check is one [[health.check]].
type Check struct {
	Name string
	Type string // dataplane, icmp6, tcp, http, bgp
	// Target by kind: Addr (icmp6: "2001:db8:1::10"; tcp:
	// "[2001:db8:1::10]:80"), URL (http), Neighbors (bgp).
	Addr      string
	URL       string
	Neighbors []string
	// Interval, Timeout, Rise, Fall: zero leaves map646's default.
	Interval, Timeout time.Duration
	Rise, Fall        int
	Withdraw          string // "all", "ipv4" or "ipv6"; "" leaves the default
}

// TOML renders the configuration file.
func (c NodeConfig) TOML() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	dur := func(key string, d time.Duration) {
		if d != 0 {
			w("%s = %q\n", key, d.String())
		}
	}
	list := func(key string, v []string) {
		if v == nil {
			return
		}
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = strconv.Quote(s)
		}
		w("%s = [%s]\n", key, strings.Join(q, ", "))
	}
	w("[translator]\npseudo_prefix = %q\nipv4_address = %q\nipv6_address = %q\n", c.PseudoPrefix, c.IPv4Address, c.IPv6Address)
	if c.MappingFile != "" {
		w("mapping_file = %q\n", c.MappingFile)
	}
	w("\n[tun]\nname = \"map646\"\noffload = %v\n", c.Offload)
	if c.Queues != 0 {
		w("queues = %d\n", c.Queues)
	}
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	// StartMap646's conventions: metrics on a free loopback port unless
	// set (logged either way), JSON logs (read by WaitLog).
	if c.MetricsListen == "" {
		w("\n[metrics]\nlisten = \"127.0.0.1:0\"\n")
	} else {
		w("\n[metrics]\nlisten = %q\nallow_remote = true\n", c.MetricsListen)
	}
	w("\n[log]\nformat = \"json\"\nlevel = %q\n", level)
	for _, m := range c.Mappings {
		w("\n[[mapping]]\nipv4 = %q\nipv6 = %q\n", m.IPv4, m.IPv6)
	}
	if c.BGP != nil {
		g := c.BGP
		w("\n[bgp]\nlocal_as = %d\nrouter_id = %q\n", g.LocalAS, g.RouterID)
		if g.ListenPort != 0 {
			w("listen_port = %d\n", g.ListenPort)
		}
		if g.GRPCSocket != "" {
			w("grpc_socket = %q\n", g.GRPCSocket)
		}
		w("med = %d\n", g.MED)
		if g.DrainMED != 0 {
			w("drain_med = %d\n", g.DrainMED)
		}
		list("communities", g.Communities)
		for _, n := range g.Neighbors {
			w("\n[[bgp.neighbor]]\naddress = %q\npeer_as = %d\n", n.Address, n.PeerAS)
			if n.Description != "" {
				w("description = %q\n", n.Description)
			}
			if n.Role != "" {
				w("role = %q\n", n.Role)
			}
			list("families", n.Families)
			if n.Password != "" {
				w("password = %q\n", n.Password)
			}
			dur("hold_time", n.HoldTime)
			dur("keepalive_time", n.KeepaliveTime)
			dur("connect_retry", n.ConnectRetry)
			if n.Passive {
				w("passive = true\n")
			}
			if n.BFD {
				w("bfd = true\n")
				dur("bfd_interval", n.BFDInterval)
				if n.BFDMultiplier != 0 {
					w("bfd_multiplier = %d\n", n.BFDMultiplier)
				}
			}
			if n.NextHopIPv4 != "" {
				w("next_hop_ipv4 = %q\n", n.NextHopIPv4)
			}
			if n.NextHopIPv6 != "" {
				w("next_hop_ipv6 = %q\n", n.NextHopIPv6)
			}
		}
	}
	for _, k := range c.Checks {
		w("\n[[health.check]]\nname = %q\ntype = %q\n", k.Name, k.Type)
		switch {
		case k.Addr != "":
			w("target = %q\n", k.Addr)
		case k.URL != "":
			w("target = %q\n", k.URL)
		}
		list("neighbors", k.Neighbors)
		dur("interval", k.Interval)
		dur("timeout", k.Timeout)
		if k.Rise != 0 {
			w("rise = %d\n", k.Rise)
		}
		if k.Fall != 0 {
			w("fall = %d\n", k.Fall)
		}
		if k.Withdraw != "" {
			w("withdraw = %q\n", k.Withdraw)
		}
	}
	if c.StateDir != "" || c.Linger != 0 || c.DrainTimeout != 0 || c.DrainIdlePPS != 0 {
		w("\n[node]\n")
		if c.StateDir != "" {
			w("state_dir = %q\n", c.StateDir)
		}
		dur("linger", c.Linger)
		dur("drain_timeout", c.DrainTimeout)
		if c.DrainIdlePPS != 0 {
			w("drain_idle_pps = %d\n", c.DrainIdlePPS)
		}
	}
	if c.ControlSocket != "" {
		w("\n[control]\nsocket = %q\n", c.ControlSocket)
	}
	if c.Extra != "" {
		w("\n%s\n", strings.TrimSpace(c.Extra))
	}
	return b.String()
}
