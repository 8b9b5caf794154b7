package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/cmd/map646/daemon"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
)

// runConfig is a configuration for `map646 run` tests: documentation
// addresses only; %q is the device name, %v offload, then the control
// socket and the state directory (%q, in the test's directory, so tests
// never meet a real map646's), %s more [[mapping]] entries. The tests'
// one namespace holds the IPv4 client and the server both, so the client's
// address is the node's: a reply to it is translated toward the node,
// which map646 refuses unless allow_local_destinations.
const runConfig = `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8:64::1"
allow_local_destinations = true

[tun]
name = %q
offload = %v
queues = 2

[metrics]
listen = "127.0.0.1:0"

[log]
format = "json"

[control]
socket = %q

[node]
state_dir = %q
linger = "0s"

[[mapping]]
ipv4 = "198.51.100.16/28"
ipv6 = "2001:db8:2::/124"
%s`

func writeConfig(t *testing.T, path, dev string, offload bool, mappings string) {
	t.Helper()
	dir := filepath.Dir(path)
	conf := fmt.Appendf(nil, runConfig, dev, offload, filepath.Join(dir, "map646.sock"), filepath.Join(dir, "state"), mappings)
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mappingTOML(pairs ...string) string {
	var b strings.Builder
	for i := 0; i < len(pairs); i += 2 {
		fmt.Fprintf(&b, "\n[[mapping]]\nipv4 = %q\nipv6 = %q\n", pairs[i], pairs[i+1])
	}
	return b.String()
}

// TestRunRefusals: run refuses to start, saying why, before it touches
// anything. None of these needs root.
func TestRunRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map646.toml")
	writeConfig(t, path, "map646", true, "")
	restore := func(caps func() (daemon.CapSet, error), dev string) { effectiveCaps, tunDevice = caps, dev }
	defer restore(effectiveCaps, tunDevice)
	capsOf := func(caps ...int) func() (daemon.CapSet, error) {
		var s daemon.CapSet
		for _, c := range caps {
			s |= 1 << c
		}
		return func() (daemon.CapSet, error) { return s, nil }
	}

	// Not root is not a refusal; a missing capability is, named.
	effectiveCaps = capsOf(unix.CAP_NET_RAW)
	code, stdout, stderr := runCmd(t, "run", "-config", path)
	want := "map646 run: missing capability CAP_NET_ADMIN: needed to create the tun device and route the mapped prefixes into it\n" +
		"  run it as root, or grant them: systemd AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE (the packaged unit does), or setpriv --inh-caps=+net_admin,+net_raw,+net_bind_service --ambient-caps=+net_admin,+net_raw,+net_bind_service\n"
	if code != exitError || stdout != "" || stderr != want {
		t.Errorf("without CAP_NET_ADMIN: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	effectiveCaps = capsOf(unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_NET_BIND_SERVICE)
	tunDevice = filepath.Join(t.TempDir(), "tun")
	code, _, stderr = runCmd(t, "run", "-config", path)
	want = "map646 run: " + tunDevice + " is missing: the kernel has no tun support or the device node is absent (modprobe tun; mknod " + tunDevice + " c 10 200): "
	if code != exitError || !strings.HasPrefix(stderr, want) {
		t.Errorf("no tun device: exit %d, stderr %q", code, stderr)
	}

	// Every network namespace has a "lo".
	tunDevice = path // exists
	writeConfig(t, path, "lo", true, "")
	code, _, stderr = runCmd(t, "run", "-config", path)
	want = `map646 run: a network interface named "lo" exists already (device): map646 creates its own tun device and does not take over an existing interface; choose another tun.name or remove the interface` + "\n"
	if code != exitError || stderr != want {
		t.Errorf("name taken: exit %d, stderr %q", code, stderr)
	}

	// An invalid configuration is reported as check reports it, before
	// anything else.
	if err := os.WriteFile(path, []byte("[translator]\npseudo_prefix = \"64:ff9b::/80\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	effectiveCaps = capsOf()
	code, _, stderr = runCmd(t, "run", "-config", path)
	if code != exitError || !strings.HasPrefix(stderr, "map646: config "+path+" is invalid:\n") ||
		!strings.Contains(stderr, "\n"+path+`:2: translator.pseudo_prefix = "64:ff9b::/80": RFC 6052 allows`) {
		t.Errorf("invalid config: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = runCmd(t, "run")
	if code != exitUsage || stderr != "map646 run: -config is required\nRun 'map646 run -h' for usage.\n" {
		t.Errorf("no -config: exit %d, stderr %q", code, stderr)
	}
}

// --- Root tests: map646 run as a process in a network namespace. ---

// newNetns creates a network namespace named m646d + a random suffix with
// its loopback up, deleted when the test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "m646d" + hex.EncodeToString(b[:])
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// ip runs the ip command and returns its output; a failure fails the test.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNS runs f on a thread in the network namespace ns: sockets made in f
// belong to it.
func inNS(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot return to the original network namespace: " + err.Error())
		}
	}()
	f()
}

// buildMap646 builds the command into a temporary directory.
func buildMap646(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "map646")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is map646 run in a namespace, its JSON log lines collected.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	raw  []string
	done chan struct{}
	err  error
}

func startMap646(t *testing.T, bin, ns, conf string) *proc {
	t.Helper()
	return startMap646Env(t, bin, ns, conf, nil)
}

// startMap646Env is startMap646 with more environment variables (KEY=VALUE).
func startMap646Env(t *testing.T, bin, ns, conf string, env []string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "run", "-config", conf) // ip execs map646: same PID
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			line := sc.Text()
			p.mu.Lock()
			p.raw = append(p.raw, line)
			if json.Unmarshal([]byte(line), &m) == nil {
				p.logs = append(p.logs, m)
			}
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill() // by PID: the process this test started
			<-p.done
		}
		if t.Failed() {
			t.Logf("map646 log:\n%s", strings.Join(p.lines(), "\n"))
		}
	})
	return p
}

func (p *proc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.raw...)
}

// wait returns the first log line from index from on whose msg starts with
// msg, and the index after it.
func (p *proc) wait(msg string, from int) (map[string]any, int) {
	p.t.Helper()
	var rec map[string]any
	n := from
	logged := poll.Until(20*time.Second, 10*time.Millisecond, func() bool {
		p.mu.Lock()
		for ; n < len(p.logs); n++ {
			if m, _ := p.logs[n]["msg"].(string); strings.HasPrefix(m, msg) {
				rec = p.logs[n] // read under the lock: the reader appends to p.logs
				p.mu.Unlock()
				return true
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.t.Fatalf("map646 exited (%v) before logging %q", p.err, msg)
		default:
		}
		return false
	})
	if !logged {
		p.t.Fatalf("no %q in the log after 20 s (%d lines)", msg, n)
	}
	return rec, n + 1
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// routes returns the destinations of the protocol-246 routes in ns.
func routes(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, family := range []string{"-4", "-6"} {
		for _, line := range strings.Split(strings.TrimSpace(ip(t, "-n", ns, family, "route", "show", "proto", "246")), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				out = append(out, f[0]+" "+f[1]+" "+f[2])
			}
		}
	}
	return out
}

// udpEcho sends a datagram from the IPv4 client to a server's public
// address and expects it back, echoed by the server on IPv6, which must
// see the client as its pseudo-prefix address.
func udpEcho(t *testing.T, ns string, public string, server6 *net.UDPConn) {
	t.Helper()
	var c *net.UDPConn
	var err error
	inNS(t, ns, func() {
		c, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.100")}, &net.UDPAddr{IP: net.ParseIP(public), Port: 7007})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("map646 " + public)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("UDP to %s: read %q, %v", public, buf[:n], err)
	}
}

// TestRunInNetns runs map646 in a network namespace of its own and checks
// what it does to the kernel: the device and its routes appear, traffic
// crosses it both ways (UDP and a TCP transfer through the offloads), a
// SIGHUP with changed mappings changes exactly the routes that differ, a
// SIGHUP with a broken configuration changes nothing, and SIGTERM removes
// every route and the device.
//
// The namespace holds both ends: 192.0.2.100 (an IPv4 client) and
// 2001:db8:1::10 (a server mapped to 198.51.100.10) on a veth. A packet
// from the client to 198.51.100.10 goes into the tun device, comes back as
// IPv6 to the server, whose answer to 64:ff9b::192.0.2.100 goes into the
// device again and comes back as IPv4 to the client.
func TestRunInNetns(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	t.Run("offload", func(t *testing.T) { testRunInNetns(t, bin, true, false) })
	t.Run("plain", func(t *testing.T) { testRunInNetns(t, bin, false, false) })
	t.Run("offload+fastpath", func(t *testing.T) { testRunInNetns(t, bin, true, true) })
}

// testRunInNetns runs the daemon with the offloads or not, and with the
// kernel fast path required or off: the same traffic, reloads and stop,
// with the same results.
func testRunInNetns(t *testing.T, bin string, offload, fastPath bool) {
	ns := newNetns(t)
	ip(t, "-n", ns, "link", "add", "m646v0", "type", "veth", "peer", "name", "m646v1")
	ip(t, "-n", ns, "link", "set", "m646v0", "up")
	ip(t, "-n", ns, "link", "set", "m646v1", "up")
	ip(t, "-n", ns, "addr", "add", "192.0.2.100/24", "dev", "m646v0")
	ip(t, "-n", ns, "addr", "add", "2001:db8:1::10/64", "dev", "m646v0", "nodad")

	conf := filepath.Join(t.TempDir(), "map646.toml")
	write := func(mappings string) {
		t.Helper()
		writeConfig(t, conf, "m646t0", offload, mappings)
		if fastPath {
			f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteString("\n[fastpath]\nmode = \"required\"\n")
				f.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	write(mappingTOML("198.51.100.10", "2001:db8:1::10", "198.51.100.11", "2001:db8:1::11"))
	p := startMap646(t, bin, ns, conf)
	serving, next := p.wait("started", 0)
	queues := 2
	kind := "tun type tun pi off vnet_hdr on multi_queue numqueues 2"
	if !offload {
		queues, kind = 1, "tun type tun pi off vnet_hdr off"
	}
	wantFastPath := "off, not attached"
	if fastPath {
		wantFastPath = "attached"
	}
	if serving["device"] != "m646t0" || serving["queues"] != float64(queues) || serving["mappings"] != float64(3) || serving["fastpath"] != wantFastPath {
		t.Errorf("serving: %v; want fastpath %q", serving, wantFastPath)
	}

	// The device: a tun (multiqueue with the virtio header, or plain), up,
	// MTU 1500.
	link := ip(t, "-n", ns, "-d", "link", "show", "m646t0")
	for _, want := range []string{"mtu 1500", ",UP,", kind, "qlen 10000"} {
		if !strings.Contains(link, want) {
			t.Errorf("ip -d link show m646t0: no %q in\n%s", want, link)
		}
	}
	// ICMPv4 errors from an own address of the node must not be dropped as
	// martians when they come out of the device.
	if out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/conf/m646t0/accept_local").Output(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("accept_local on the device: %q, %v; want 1", out, err)
	}
	// .10 and .11 are adjacent and aligned: one /31.
	wantRoutes := "198.51.100.10/31 dev m646t0,198.51.100.16/28 dev m646t0,64:ff9b::/96 dev m646t0"
	if got := strings.Join(routes(t, ns), ","); got != wantRoutes {
		t.Errorf("routes %s, want %s", got, wantRoutes)
	}

	// Traffic both ways: a UDP echo, then a TCP transfer echoed back.
	var srv *net.UDPConn
	var ln net.Listener
	var err error
	inNS(t, ns, func() {
		if srv, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("2001:db8:1::10"), Port: 7007}); err != nil {
			return
		}
		ln, err = net.Listen("tcp6", "[2001:db8:1::10]:7008")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer ln.Close()
	clients := make(chan netip.Addr, 10)
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			clients <- from.Addr()
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	udpEcho(t, ns, "198.51.100.10", srv)
	if from := <-clients; from != netip.MustParseAddr("64:ff9b::192.0.2.100") {
		t.Errorf("the server saw the client as %v, want 64:ff9b::192.0.2.100", from)
	}
	tcpEcho(t, ns, ln, 8<<20)

	m := scrape(t, ns, serving["metrics"].(string))
	for _, series := range []string{
		`map646_packets_total{direction="4to6",reason="",verdict="forward"}`,
		`map646_packets_total{direction="6to4",reason="",verdict="forward"}`,
		`map646_mapping_packets_total{direction="4to6",entry="198.51.100.10"}`,
		`map646_gso_packets_total{path="whole"}`,
		`map646_fastpath_packets_total{direction="4to6"}`,
		`map646_fastpath_packets_total{direction="6to4"}`,
	} {
		switch {
		case !offload && strings.Contains(series, "gso"):
			continue // the plain device hands over no super-packets
		case fastPath && strings.Contains(series, "gso"):
			continue // the fast path takes the super-packets: the workers read few or none
		case !fastPath && strings.Contains(series, "fastpath"):
			if m[series] != 0 {
				t.Errorf("%s is %v with the fast path off", series, m[series])
			}
			continue
		}
		if m[series] == 0 {
			t.Errorf("%s is 0 after the traffic", series)
		}
	}
	if want := map[bool]float64{true: 1}[fastPath]; m["map646_fastpath_attached"] != want || m["map646_fastpath_internal_errors_total"] != 0 {
		t.Errorf("map646_fastpath_attached %v (want %v), map646_fastpath_internal_errors_total %v (want 0)",
			m["map646_fastpath_attached"], want, m["map646_fastpath_internal_errors_total"])
	}
	t.Logf("after 8 MB each way: %v packets 4to6 (%v super-packets translated whole, %v split), %v packets 6to4",
		m[`map646_packets_total{direction="4to6",reason="",verdict="forward"}`], m[`map646_gso_packets_total{path="whole"}`],
		m[`map646_gso_packets_total{path="segmented"}`], m[`map646_packets_total{direction="6to4",reason="",verdict="forward"}`])

	// Ten reloads during a transfer: it goes on unharmed.
	transfer := make(chan error)
	go func() { transfer <- tcpTransfer(t, ns, ln, 64<<20) }()
	for range 10 {
		p.signal(syscall.SIGHUP)
		_, next = p.wait("reloaded", next)
	}
	if err := <-transfer; err != nil {
		t.Errorf("transfer during reloads: %v", err)
	}

	// Reload: .11 goes, .12 comes; the /31 splits.
	write(mappingTOML("198.51.100.10", "2001:db8:1::10", "198.51.100.12", "2001:db8:1::12"))
	p.signal(syscall.SIGHUP)
	reloaded, next := p.wait("reloaded", next)
	if reloaded["routes_added"] != float64(2) || reloaded["routes_removed"] != float64(1) {
		t.Errorf("reloaded: %v; want 2 routes added (.10/32, .12/32), 1 removed (.10/31)", reloaded)
	}
	wantRoutes = "198.51.100.10 dev m646t0,198.51.100.12 dev m646t0,198.51.100.16/28 dev m646t0,64:ff9b::/96 dev m646t0"
	if got := strings.Join(routes(t, ns), ","); got != wantRoutes {
		t.Errorf("after the reload: routes %s, want %s", got, wantRoutes)
	}
	udpEcho(t, ns, "198.51.100.10", srv)
	<-clients

	// A broken configuration is refused, its problem logged; nothing
	// changes, traffic goes on.
	if err := os.WriteFile(conf, []byte("[translator]\npseudo_prefix = \"64:ff9b::/80\"\nipv4_address = \"192.0.2.1\"\nipv6_address = \"2001:db8:64::1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	refused, next := p.wait("reload refused", next)
	if e, _ := refused["err"].(string); !strings.Contains(e, `translator.pseudo_prefix = "64:ff9b::/80": RFC 6052 allows`) {
		t.Errorf("the refusal does not give the reason: %v", refused)
	}
	if got := strings.Join(routes(t, ns), ","); got != wantRoutes {
		t.Errorf("after the refused reload: routes %s, want %s", got, wantRoutes)
	}
	udpEcho(t, ns, "198.51.100.10", srv)
	<-clients
	m = scrape(t, ns, serving["metrics"].(string))
	if m[`map646_reloads_total{result="ok"}`] != 11 || m[`map646_reloads_total{result="invalid"}`] != 1 {
		t.Errorf("reloads: ok %v, invalid %v; want 11, 1", m[`map646_reloads_total{result="ok"}`], m[`map646_reloads_total{result="invalid"}`])
	}

	if fastPath {
		// The device deleted under the daemon: the recovery makes a new
		// one and attaches the fast path to it again.
		ip(t, "-n", ns, "link", "del", "m646t0")
		_, next = p.wait("recovery: data plane back", next)
		before := scrape(t, ns, serving["metrics"].(string))
		udpEcho(t, ns, "198.51.100.10", srv)
		<-clients
		after := scrape(t, ns, serving["metrics"].(string))
		key := `map646_fastpath_packets_total{direction="4to6"}`
		if after["map646_fastpath_attached"] != 1 || after[key] <= before[key] {
			t.Errorf("after the recovery: map646_fastpath_attached %v, %s %v -> %v; want attached, translating",
				after["map646_fastpath_attached"], key, before[key], after[key])
		}
	}

	// SIGTERM: every route and the device go, exit 0.
	p.signal(syscall.SIGTERM)
	p.wait("stopped", next)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("map646 still running 10 s after SIGTERM")
	}
	if p.err != nil {
		t.Errorf("map646 exited with %v, want 0", p.err)
	}
	if got := routes(t, ns); len(got) != 0 {
		t.Errorf("routes left after SIGTERM: %q", got)
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "show", "m646t0").CombinedOutput(); err == nil {
		t.Errorf("the device is still there after SIGTERM:\n%s", out)
	}
}

// tcpEcho sends n random bytes from the IPv4 client to 198.51.100.10, which
// the server (listening on ln) echoes back, and compares them.
func tcpEcho(t *testing.T, ns string, ln net.Listener, n int) {
	t.Helper()
	start := time.Now()
	if err := tcpTransfer(t, ns, ln, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("TCP: %d MB each way through the translator in %v", n>>20, time.Since(start).Round(time.Millisecond))
}

// tcpTransfer is tcpEcho without the test: it may run in a goroutine.
func tcpTransfer(t *testing.T, ns string, ln net.Listener, n int) error {
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	var c net.Conn
	var err error
	inNS(t, ns, func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("192.0.2.100")}, Timeout: 3 * time.Second}
		c, err = d.Dial("tcp4", "198.51.100.10:7008")
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("TCP echo: %v after %d bytes", err, len(got))
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		return fmt.Errorf("TCP echo: %d bytes back, not the %d sent", len(got), len(data))
	}
	return nil
}

// scrape reads the metrics at addr in ns: series name{labels} -> value.
func scrape(t *testing.T, ns, addr string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var c net.Conn
			var err error
			inNS(t, ns, func() { c, err = (&net.Dialer{}).DialContext(ctx, network, a) })
			return c, err
		},
	}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	line := regexp.MustCompile(`^(\S+) (\S+)$`)
	for _, l := range strings.Split(string(body), "\n") {
		if f := line.FindStringSubmatch(l); f != nil {
			v, _ := strconv.ParseFloat(f[2], 64)
			m[f[1]] = v
		}
	}
	return m
}

// TestOneMap646PerNamespace: a second map646 in the network namespace of a
// running one, with a device and a control socket of its own, refuses to
// start, naming the first one's PID, and leaves its routes and device
// alone (before, it removed the first's routes as leftovers). The claim
// ends with its holder: after a SIGTERM, and after a kill -9, which no
// lock file would survive cleanly, the other one starts.
func TestOneMap646PerNamespace(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	confA := filepath.Join(t.TempDir(), "map646.toml")
	confB := filepath.Join(t.TempDir(), "map646.toml")
	writeConfig(t, confA, "m646a0", false, mappingTOML("198.51.100.10", "2001:db8:1::10"))
	writeConfig(t, confB, "m646b0", false, mappingTOML("198.51.100.40", "2001:db8:1::40"))

	a := startMap646(t, bin, ns, confA)
	a.wait("started", 0)
	before := strings.Join(routes(t, ns), ",")

	// A second map646 that is not refused runs on: 10 s end it (by PID:
	// the process this test started) and the test fails.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "run", "-config", confB).CombinedOutput()
	want := fmt.Sprintf("another map646 runs in this network namespace (it holds the abstract socket @map646 by pid %d)", a.cmd.Process.Pid)
	if code := exitCode(err); code != exitError || !strings.Contains(string(out), want) {
		t.Errorf("second map646: exit %d, output:\n%s\nwant exit %d and %q", code, out, exitError, want)
	}
	if after := strings.Join(routes(t, ns), ","); after != before {
		t.Errorf("routes after the refused start: %s, want the first one's untouched: %s", after, before)
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "show", "m646b0").CombinedOutput(); err == nil {
		t.Errorf("the refused map646 created its device:\n%s", out)
	}

	a.signal(syscall.SIGTERM)
	<-a.done
	b := startMap646(t, bin, ns, confB)
	b.wait("started", 0)
	b.cmd.Process.Kill() // kill -9, by PID: the process this test started
	<-b.done
	a = startMap646(t, bin, ns, confA)
	a.wait("started", 0)
	if got := strings.Join(routes(t, ns), ","); got != before {
		t.Errorf("routes after the restart: %s, want %s", got, before)
	}
}

// exitCode is the exit status in err from exec (0 for nil, -1 if it is
// no exit status).
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
