package topo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
)

// Node is one map646 node of the lab.
type Node struct {
	Name         string
	NS           *netlab.NS
	Addr4, Addr6 string // on sw4 and sw6
	Port4, Port6 string // its ports on the bridges (in Lab.Switch)
	// Config is written to the node's file by Start; change it before.
	Config     NodeConfig
	ConfigPath string
	// M is the running process (nil before the first Start); after Stop
	// it is the exited one, its log still readable.
	M       *netlab.Map646
	stopped bool // SIGSTOPped by KillSilently
	lab     *Lab
}

// nodeConfig is a node's configuration from the lab's options: the same
// table on every node; eBGP to the routers, iBGP to the other nodes.
func (l *Lab) nodeConfig(n *Node) NodeConfig {
	o := l.Opts
	i := 18 + slices.Index(l.Nodes, n) // as its address on sw4
	c := NodeConfig{
		PseudoPrefix: Pseudo,
		IPv4Address:  fmt.Sprintf("203.0.113.%d", i),
		IPv6Address:  fmt.Sprintf("2001:db8:64::%d", i),
		Mappings:     []netlab.Mapping{{IPv4: Public10, IPv6: Server10}, {IPv4: Public11, IPv6: Server11}},
		Offload:      o.Offload,
		Queues:       1,
		StateDir:     filepath.Join(l.dir, n.Name+"-state"),
		Linger:       o.Linger,
		DrainTimeout: o.DrainTimeout,
		DrainIdlePPS: o.DrainIdlePPS,
		// A single socket per node in the lab's short directory.
		ControlSocket: filepath.Join(l.dir, n.Name+".sock"),
		LogLevel:      "debug",
	}
	// The data plane's own check, fast, so that a node announces within
	// a fraction of a second of starting; then the test's checks.
	c.Checks = append([]Check{{Name: "dataplane", Type: "dataplane", Interval: 100 * time.Millisecond,
		Timeout: 50 * time.Millisecond, Rise: 1, Fall: 2}}, o.Checks...)
	if o.NoBGP {
		return c
	}
	router := func(addr string, as uint32, desc, family string) Neighbor {
		return Neighbor{Address: addr, PeerAS: as, Description: desc, Role: "router", Families: []string{family},
			Password: o.Password, HoldTime: o.HoldTime, KeepaliveTime: o.KeepaliveTime, ConnectRetry: time.Second,
			BFD: o.BFD, BFDInterval: 100 * time.Millisecond, BFDMultiplier: 3}
	}
	c.BGP = &BGPConfig{
		LocalAS:  NodeAS,
		RouterID: n.Addr4,
		MED:      100,
		DrainMED: 1000,
		Neighbors: []Neighbor{
			router(Upstream4, UpstreamAS, "upstream", "ipv4-unicast"),
			router(Backend6, BackendAS, "backend", "ipv6-unicast"),
		},
	}
	for _, other := range l.Nodes {
		if other != n {
			c.BGP.Neighbors = append(c.BGP.Neighbors, Neighbor{Address: other.Addr4, PeerAS: NodeAS, Description: other.Name,
				Role: "partner", HoldTime: o.HoldTime, KeepaliveTime: o.KeepaliveTime, ConnectRetry: time.Second, NextHopIPv6: n.Addr6})
		}
	}
	if o.GRPC {
		c.BGP.GRPCSocket = filepath.Join(l.dir, n.Name+".grpc")
	}
	return c
}

// Start writes the node's Config and starts `map646 run` with it; it waits
// (30 s at most) until map646 logs "started" (device up, kernel routes in).
// Whether routers route over it yet is WaitRouted's to say.
func (n *Node) Start(t netlab.TB) {
	t.Helper()
	if n.M != nil {
		select {
		case <-n.M.Done():
		default:
			t.Fatalf("topo: %s: Start while map646 runs (PID %d)", n.Name, n.M.PID())
		}
	}
	if err := os.MkdirAll(n.Config.StateDir, 0o700); err != nil {
		t.Fatalf("topo: %v", err)
	}
	n.ConfigPath = filepath.Join(n.lab.dir, n.Name+".toml")
	if err := os.WriteFile(n.ConfigPath, []byte(n.Config.TOML()), 0o600); err != nil {
		t.Fatalf("topo: %v", err)
	}
	m := &netlab.Map646{NS: n.NS, ConfigPath: n.ConfigPath}
	m.Proc = n.NS.Start(t, n.lab.Bin, "run", "-config", n.ConfigPath)
	n.M = m
	m.LogOnFailure(t, "map646 log ("+n.Name+")")
	rec, _ := m.WaitLog(t, 30*time.Second, "started")
	m.Started = rec
	m.Device, _ = rec["device"].(string)
	if addr, _ := rec["metrics"].(string); addr != "" {
		m.MetricsURL = "http://" + addr + "/metrics"
	}
}

// Stop sends SIGTERM and waits (30 s at most: withdraw, linger, stop) for
// map646 to exit, which must be clean.
func (n *Node) Stop(t netlab.TB) {
	t.Helper()
	if n.stopped {
		n.M.Signal(syscall.SIGCONT)
		n.stopped = false
	}
	if err := n.M.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("topo: %s: SIGTERM: %v", n.Name, err)
	}
	if err := n.M.Wait(30 * time.Second); err != nil {
		t.Fatalf("topo: %s: map646 after SIGTERM: %v", n.Name, err)
	}
}

// Kill ends map646 with SIGKILL: no withdrawal, but the kernel closes its
// TCP sessions, so the routers notice at once.
func (n *Node) Kill(t netlab.TB) {
	t.Helper()
	if err := n.M.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("topo: %s: SIGKILL: %v", n.Name, err)
	}
	n.M.Wait(10 * time.Second)
	n.stopped = false
}

// KillSilently cuts the node off without a word: its two bridge ports go
// down (the routers keep their carrier and hear nothing more), and with
// freeze its map646 is stopped (SIGSTOP) as a hung machine would be. Only
// BFD or the hold timer tells the routers. It returns the time the ports
// went down.
func (n *Node) KillSilently(t netlab.TB, freeze bool) time.Time {
	t.Helper()
	if freeze {
		if err := n.M.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("topo: %s: SIGSTOP: %v", n.Name, err)
		}
		n.stopped = true
	}
	// One ip -batch: both ports go down together.
	n.lab.Switch.IP(t, "-batch", n.portBatch("down"))
	return time.Now()
}

// Revive undoes KillSilently: SIGCONT, then the bridge ports up.
func (n *Node) Revive(t netlab.TB) {
	t.Helper()
	if n.stopped {
		if err := n.M.Signal(syscall.SIGCONT); err != nil {
			t.Fatalf("topo: %s: SIGCONT: %v", n.Name, err)
		}
		n.stopped = false
	}
	n.lab.Switch.IP(t, "-batch", n.portBatch("up"))
}

func (n *Node) portBatch(state string) string {
	f, err := os.CreateTemp(n.lab.dir, "batch")
	if err != nil {
		return "/nonexistent" // ip fails, naming the file
	}
	fmt.Fprintf(f, "link set %s %s\nlink set %s %s\n", n.Port4, state, n.Port6, state)
	f.Close()
	return f.Name()
}

// Ctl runs `map646 ARGS... -socket SOCK` in the node's namespace and
// returns its combined output and error (a command that exits non-zero is
// an error, its output the reason).
func (n *Node) Ctl(timeout time.Duration, args ...string) (string, error) {
	full := append([]string{n.lab.Bin}, args...)
	full = append(full, "-socket", n.Config.ControlSocket)
	return n.NS.Exec(timeout, full...)
}

// Drain runs `map646 drain [-force]` and returns its output and error.
func (n *Node) Drain(force bool) (string, error) {
	args := []string{"drain"}
	if force {
		args = append(args, "-force")
	}
	return n.Ctl(2*time.Minute, args...)
}

// Undrain runs `map646 undrain`.
func (n *Node) Undrain() (string, error) { return n.Ctl(time.Minute, "undrain") }

// Status is what `map646 status -json` says (the daemon's control.Status)
// and the JSON text it was read from, to show in a failure.
type Status struct {
	control.Status
	Raw string `json:"-"`
}

// Announces tells whether the node announces prefix now.
func (s Status) Announces(prefix string) bool {
	for _, a := range s.Announced {
		if a.Prefix == prefix {
			return true
		}
	}
	return false
}

// Status runs `map646 status -json`; a failure fails t.
func (n *Node) Status(t netlab.TB) Status {
	t.Helper()
	out, err := n.Ctl(30*time.Second, "status", "-json")
	if !StatusAnswered(err) {
		t.Fatalf("topo: %s: map646 status -json: %v\n%s", n.Name, err, out)
	}
	var s Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("topo: %s: map646 status -json: %v\n%s", n.Name, err, out)
	}
	s.Raw = out
	return s
}

// StatusAnswered tells, from the error of a `map646 status` run, whether
// the node answered: status exits 0, 1 (WARNING) or 2 (CRITICAL) by the
// node's state, 3 (UNKNOWN) when no answer came.
func StatusAnswered(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode() == 1 || ee.ExitCode() == 2
	}
	return err == nil
}

// WaitState waits until the node's state is state, asking every 50 ms
// (the control socket has no push).
func (n *Node) WaitState(t netlab.TB, state string, timeout time.Duration) Status {
	t.Helper()
	var s Status
	if !poll.Until(timeout, 50*time.Millisecond, func() bool { s = n.Status(t); return s.Node.State == state }) {
		t.Fatalf("topo: %s: state %q, not %q, after %v:\n%s", n.Name, s.Node.State, state, timeout, s.Raw)
	}
	return s
}

// Packets returns how many packets the node's data plane has read in each
// direction (map646_packets_total by direction: 4to6, 6to4).
func (n *Node) Packets(t netlab.TB) (in4to6, in6to4 float64) {
	t.Helper()
	m := n.M.Metrics(t)
	for k, v := range m {
		if !strings.HasPrefix(k, "map646_packets_total{") {
			continue
		}
		switch {
		case strings.Contains(k, `direction="4to6"`):
			in4to6 += v
		case strings.Contains(k, `direction="6to4"`):
			in6to4 += v
		}
	}
	return in4to6, in6to4
}

// MappingPackets returns how many packets the node translated for the
// mapping whose IPv4 side is addr ("198.51.100.10"), in direction "4to6"
// or "6to4" (map646_mapping_packets_total): which node carried a flow to
// that server.
func (n *Node) MappingPackets(t netlab.TB, addr, direction string) float64 {
	t.Helper()
	var sum float64
	for k, v := range n.M.Metrics(t) {
		if !strings.HasPrefix(k, "map646_mapping_packets_total{") || !strings.Contains(k, `direction="`+direction+`"`) {
			continue
		}
		if strings.Contains(k, `entry="`+addr+`"`) || strings.Contains(k, `entry="`+addr+`/32"`) {
			sum += v
		}
	}
	return sum
}
