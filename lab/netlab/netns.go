package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/map646/map646/lab/labreq"
)

// TB is what netlab needs of a test, benchmark or program: *testing.T and
// *testing.B satisfy it, and so does *Script.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
	TempDir() string
}

// Prefix starts the name of every namespace netlab creates.
const Prefix = "m646l"

// DefaultTimeout bounds every command netlab runs unless told otherwise.
const DefaultTimeout = 30 * time.Second

// RequireRoot ends the test unless it runs as root with /dev/net/tun, with
// a message that says why: a skip, or a failure under CI (see labreq). A
// program (a Script), which cannot skip, fails. It adds the sbin
// directories to PATH if they are missing (see Need).
func RequireRoot(t TB) {
	t.Helper()
	sbinPath()
	const needs = "build network namespaces and run map646 in them"
	if lt, ok := t.(labreq.TB); ok {
		labreq.Root(lt, needs)
		labreq.Tun(lt)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("netlab: needs root to %s: run it as root", needs)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Fatalf("netlab: no /dev/net/tun (modprobe tun): %v", err)
	}
}

// NS is a network namespace that netlab created.
type NS struct {
	Name string // m646lXXXXXXXX-role
	Role string
}

func (n *NS) String() string { return n.Name }

// NewNS creates a network namespace named Prefix + 8 random hex digits +
// "-" + role, with its loopback up, and registers its deletion on t: the
// processes netlab started in it are stopped first (their cleanups were
// registered later, so they run earlier), then any process still in it is
// killed by PID (only netlab's own can be there), then the namespace is
// deleted, which deletes its links. The first NewNS of a process deletes
// the namespaces left by netlab processes that died (see SweepStale).
func NewNS(t TB, role string) *NS {
	t.Helper()
	sweepOnce.Do(func() {
		swept, err := SweepStale()
		if len(swept) > 0 {
			t.Logf("netlab: deleted namespaces left by processes that died without cleaning up: %s", strings.Join(swept, " "))
		}
		if err != nil {
			t.Logf("%v", err)
		}
	})
	var b [4]byte
	rand.Read(b[:])
	n := &NS{Name: Prefix + hex.EncodeToString(b[:]) + "-" + role, Role: role}
	if err := recordOwner(n.Name); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	if out, err := command(DefaultTimeout, nil, "ip", "netns", "add", n.Name); err != nil {
		forgetOwner(n.Name)
		t.Fatalf("netlab: ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// Delete kills whatever still runs in the namespace and deletes it. NewNS
// registers it as a cleanup; it is safe to call again.
func (n *NS) Delete() error {
	if _, err := os.Stat("/run/netns/" + n.Name); errors.Is(err, os.ErrNotExist) {
		forgetOwner(n.Name)
		return nil
	}
	var errs []error
	if out, err := command(DefaultTimeout, nil, "ip", "netns", "pids", n.Name); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL) // a process in our own namespace: ours
			}
		}
	}
	if out, err := command(DefaultTimeout, nil, "ip", "netns", "del", n.Name); err != nil {
		errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n.Name, err, out))
	} else {
		forgetOwner(n.Name)
	}
	return errors.Join(errs...)
}

// IP runs `ip -n NS ARGS...` and returns its output; a failure fails t.
func (n *NS) IP(t TB, args ...string) string {
	t.Helper()
	out, err := command(DefaultTimeout, nil, "ip", append([]string{"-n", n.Name}, args...)...)
	if err != nil {
		t.Fatalf("netlab: ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs ARGS in the namespace (ip netns exec) with DefaultTimeout and
// returns its combined output; a failure or timeout fails t.
func (n *NS) Run(t TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(DefaultTimeout, args...)
	if err != nil {
		t.Fatalf("netlab: in %s: %s: %v\n%s", n.Role, strings.Join(args, " "), err, out)
	}
	return out
}

// Exec runs ARGS in the namespace and returns its combined output and
// error; after timeout the command and its process group are killed.
func (n *NS) Exec(timeout time.Duration, args ...string) (string, error) {
	out, err := command(timeout, nil, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
	return string(out), err
}

// Command returns a command that runs ARGS in the namespace; the caller
// starts it. ip netns exec execs ARGS[0], so the command's PID is the tool's.
func (n *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// command runs name with a timeout in a process group of its own, killed
// whole (by its id) when the timeout passes, or when this process dies.
func command(timeout time.Duration, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := spawn(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v (killed): %w", timeout, err)
	}
	return out.Bytes(), err
}

// Sysctl sets sysctls in the namespace, given as "key=value" with the key
// in dotted form (net.ipv4.ip_forward=1).
func (n *NS) Sysctl(t TB, settings ...string) {
	t.Helper()
	err := n.Do(func() error {
		for _, s := range settings {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return fmt.Errorf("sysctl %q: want key=value", s)
			}
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("netlab: in %s: %v", n.Role, err)
	}
}

// Do runs f on an OS thread that has entered the namespace: sockets f
// creates belong to it and keep working from any goroutine afterwards. The
// thread is never handed back to the Go scheduler (it ends with f), so no
// other goroutine ever runs in the namespace by accident.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		h, err := netns.GetFromName(n.Name)
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", n.Name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Listen is net.Listen in the namespace.
func (n *NS) Listen(t TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := n.Do(func() (err error) { ln, err = net.Listen(network, addr); return err })
	if err != nil {
		t.Fatalf("netlab: in %s: listen %s %s: %v", n.Role, network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket is net.ListenPacket in the namespace.
func (n *NS) ListenPacket(t TB, network, addr string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	err := n.Do(func() (err error) { c, err = net.ListenPacket(network, addr); return err })
	if err != nil {
		t.Fatalf("netlab: in %s: listen %s %s: %v", n.Role, network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Dial dials from the namespace; local may be "" (any source address).
func (n *NS) Dial(network, local, remote string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if local != "" {
		a, err := localAddr(network, local)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = a
	}
	var c net.Conn
	err := n.Do(func() (err error) { c, err = d.Dial(network, remote); return err })
	return c, err
}

func localAddr(network, local string) (net.Addr, error) {
	ip := net.ParseIP(local)
	if ip == nil {
		return nil, fmt.Errorf("local address %q: not an IP address", local)
	}
	if strings.HasPrefix(network, "udp") {
		return &net.UDPAddr{IP: ip}, nil
	}
	return &net.TCPAddr{IP: ip}, nil
}

// Veth creates a veth pair: link aName in a and bName in b, both up.
// Names are at most 15 bytes; both ends are deleted with their namespaces.
func Veth(t TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	a.IP(t, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.IP(t, "link", "set", aName, "up")
	b.IP(t, "link", "set", bName, "up")
}

// AddAddr adds addresses (prefix form, 192.0.2.7/24) to dev; IPv6 ones
// without duplicate address detection, so they are usable at once.
func (n *NS) AddAddr(t TB, dev string, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		args := []string{"addr", "add", p, "dev", dev}
		if strings.Contains(p, ":") {
			args = append(args, "nodad")
		}
		n.IP(t, args...)
	}
}

// AddRoute adds a route to dst via gateway via, with optional further
// `ip route` arguments (dev, mtu, advmss, ...).
func (n *NS) AddRoute(t TB, dst, via string, more ...string) {
	t.Helper()
	args := []string{"route", "add", dst}
	if via != "" {
		args = append(args, "via", via)
	}
	n.IP(t, append(args, more...)...)
}

// MAC returns the hardware address of dev.
func (n *NS) MAC(t TB, dev string) net.HardwareAddr {
	t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	out := n.IP(t, "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("netlab: in %s: ip -j link show dev %s: %v: %s", n.Role, dev, err, out)
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatalf("netlab: in %s: MAC of %s: %v", n.Role, dev, err)
	}
	return mac
}

// Ethtool runs `ethtool ARGS...` in the namespace (Need "ethtool" first).
func (n *NS) Ethtool(t TB, args ...string) string {
	t.Helper()
	return n.Run(t, append([]string{"ethtool"}, args...)...)
}

// Nstat returns the kernel's absolute SNMP counters of the namespace
// (nstat -asz: absolute, history untouched, zeros included), or only the
// named ones (TcpInCsumErrors, Udp6InCsumErrors, ...). A named counter the
// kernel does not have fails t.
func (n *NS) Nstat(t TB, names ...string) map[string]uint64 {
	t.Helper()
	out := n.Run(t, append([]string{"nstat", "-asz"}, names...)...)
	m := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	for _, name := range names {
		if _, ok := m[name]; !ok {
			t.Fatalf("netlab: in %s: nstat has no counter %s:\n%s", n.Role, name, out)
		}
	}
	return m
}
