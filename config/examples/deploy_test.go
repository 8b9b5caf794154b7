package examples_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// TestTwoNodeDeploymentRuns builds the network the two-node example
// describes, in namespaces, and runs it with the example files themselves:
// BIRD with bird.conf as the router, map646 with tokyo.toml and osaka.toml
// (and mappings.txt). Only what the files leave to the host is added: the
// node's state directory and control socket in a temporary directory (the
// defaults, /var/lib/map646 and /run/map646.sock, would be shared by the
// two nodes on one machine) and JSON logs, which netlab reads. It proves
// that the example, not only its syntax, works: the four sessions
// Established with BFD up, one multipath route over both nodes for each
// family in the router's kernel, an IPv4 client reaching a mapped IPv6
// server and back, and a drain of tokyo moving both routes to osaka alone
// while the client keeps its answers.
//
//	client4 192.0.2.34 ── router (bird.conf) ── br: tokyo, osaka ── router ── server6 2001:db8:1::10
//	        192.0.2.33/28       192.0.2.1/28, 2001:db8:100::1/64      2001:db8:1::1/64
func TestTwoNodeDeploymentRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("a lab: -short skips it")
	}
	netlab.RequireRoot(t)
	netlab.Need(t, "ip", "bird", "birdc", "ping")
	bin := netlab.BuildMap646(t)

	router := netlab.NewNS(t, "router")
	client := netlab.NewNS(t, "client4")
	server := netlab.NewNS(t, "server6")
	nodes := map[string]*netlab.NS{"tokyo": netlab.NewNS(t, "tokyo"), "osaka": netlab.NewNS(t, "osaka")}
	all := []*netlab.NS{router, client, server, nodes["tokyo"], nodes["osaka"]}
	for _, ns := range all {
		// Before the links exist, so that they inherit it: no duplicate
		// address detection to wait for, no reverse-path filter (ECMP).
		ns.Sysctl(t, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	for _, ns := range []*netlab.NS{router, nodes["tokyo"], nodes["osaka"]} {
		ns.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}

	// The link of the drawing in tokyo.toml: a bridge, lan, in the router.
	router.IP(t, "link", "add", "lan", "type", "bridge", "mcast_snooping", "0")
	router.IP(t, "link", "set", "lan", "up")
	router.AddAddr(t, "lan", "192.0.2.1/28", "2001:db8:100::1/64")
	for name, last := range map[string]string{"tokyo": "2", "osaka": "3"} {
		ns := nodes[name]
		netlab.Veth(t, ns, "eth0", router, "p-"+name)
		router.IP(t, "link", "set", "p-"+name, "master", "lan")
		ns.AddAddr(t, "eth0", "192.0.2."+last+"/28", "2001:db8:100::"+last+"/64")
		ns.AddRoute(t, "default", "192.0.2.1")
		ns.AddRoute(t, "default", "2001:db8:100::1")
	}
	netlab.Veth(t, client, "eth0", router, "c0")
	client.AddAddr(t, "eth0", "192.0.2.34/28")
	router.AddAddr(t, "c0", "192.0.2.33/28")
	client.AddRoute(t, "default", "192.0.2.33")
	netlab.Veth(t, server, "eth0", router, "s0")
	server.AddAddr(t, "eth0", "2001:db8:1::10/64")
	router.AddAddr(t, "s0", "2001:db8:1::1/64")
	server.AddRoute(t, "default", "2001:db8:1::1")

	bird := netlab.StartBird(t, router, readFile(t, "two-node/bird.conf"))

	// Unix socket paths are short: a directory of its own.
	dir, err := os.MkdirTemp("", "twonode")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "mappings.txt"), []byte(readFile(t, "two-node/mappings.txt")), 0o644); err != nil {
		t.Fatal(err)
	}
	socket := map[string]string{}
	for _, name := range []string{"tokyo", "osaka"} {
		socket[name] = filepath.Join(dir, name+".sock")
		conf := readFile(t, "two-node/"+name+".toml") +
			"\n[node]\nstate_dir = " + quote(filepath.Join(dir, name+"-state")) +
			"\n\n[control]\nsocket = " + quote(socket[name]) +
			"\n\n[log]\nformat = \"json\"\n"
		path := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		m := &netlab.Map646{NS: nodes[name], ConfigPath: path}
		m.Proc = nodes[name].Start(t, bin, "run", "-config", path)
		m.LogOnFailure(t, "map646 log ("+name+")")
		m.WaitLog(t, 60*time.Second, "started")
	}

	for _, p := range []string{"tokyo4", "tokyo6", "osaka4", "osaka6"} {
		bird.WaitEstablished(t, p, 30*time.Second)
	}
	const (
		mapped4 = "198.51.100.10/31" // mappings.txt's two servers, merged
		pseudo  = "64:ff9b::/96"
	)
	both4, both6 := []string{"192.0.2.2", "192.0.2.3"}, []string{"2001:db8:100::2", "2001:db8:100::3"}
	router.WaitFIB(t, mapped4, 30*time.Second, "multipath over both nodes", via(both4...))
	router.WaitFIB(t, pseudo, 30*time.Second, "multipath over both nodes", via(both6...))
	if out := bird.Cmd(t, "show", "bfd", "sessions"); strings.Count(out, " Up ") != 4 {
		t.Errorf("BIRD's BFD sessions: want 4 up (a session per node and family)\n%s", out)
	}

	// An IPv4 client reaches the IPv6 server through the nodes, and the
	// server reaches the client through the pseudo prefix.
	client.Run(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.10")
	server.Run(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", "64:ff9b::192.0.2.34")

	// A drain of tokyo: GRACEFUL_SHUTDOWN (the router's filter), then the
	// withdrawal; osaka, its partner, keeps both routes.
	if out, err := nodes["tokyo"].Exec(2*time.Minute, bin, "drain", "-socket", socket["tokyo"]); err != nil {
		t.Fatalf("map646 drain on tokyo: %v\n%s", err, out)
	}
	router.WaitFIB(t, mapped4, 30*time.Second, "over osaka alone", via("192.0.2.3"))
	router.WaitFIB(t, pseudo, 30*time.Second, "over osaka alone", via("2001:db8:100::3"))
	client.Run(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.10")
	if out, err := nodes["tokyo"].Exec(time.Minute, bin, "undrain", "-socket", socket["tokyo"]); err != nil {
		t.Fatalf("map646 undrain on tokyo: %v\n%s", err, out)
	}
	router.WaitFIB(t, mapped4, 30*time.Second, "multipath over both nodes again", via(both4...))
}

// via is the FIB condition "present, with exactly these gateways".
func via(gateways ...string) func(netlab.FIBRoute) bool {
	want := make([]netip.Addr, len(gateways))
	for i, g := range gateways {
		want[i] = netip.MustParseAddr(g)
	}
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	return func(r netlab.FIBRoute) bool { return r.Present && slices.Equal(r.Via(), want) }
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
