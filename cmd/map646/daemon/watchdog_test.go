package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/translator/tun"
)

// watchdogChildEnv names the directory of the child process of
// TestWatchdogFollowsDataPlane.
const watchdogChildEnv = "MAP646_TEST_WATCHDOG_CHILD"

// TestWatchdogFollowsDataPlane: systemd's watchdog is pinged while the data
// plane runs, not while it is dead. The device is deleted under the
// daemon and its re-creation held (the offload self-test's packets held a
// second each): no WATCHDOG=1 arrives meanwhile, and the pings resume once
// the data plane is back. The daemon runs whole (Run) in a child process
// of the test binary inside a fresh namespace, as in
// TestRecoveryLoopAnswers.
func TestWatchdogFollowsDataPlane(t *testing.T) {
	if dir := os.Getenv(watchdogChildEnv); dir != "" {
		watchdogChild(t, dir)
		return
	}
	netlab.RequireRoot(t)
	ns := netlab.NewNS(t, "watchdog")
	// Forwarding on: the offload self-test (held below) runs only then.
	ns.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	ns.IP(t, "addr", "add", "192.0.2.1/32", "dev", "lo")
	dir, err := os.MkdirTemp("", "m646w") // unix socket paths: at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestWatchdogFollowsDataPlane$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), watchdogChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

func watchdogChild(t *testing.T, dir string) {
	notify := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pings atomic.Int64 // the WATCHDOG=1 messages received
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			if string(buf[:k]) == "WATCHDOG=1" {
				pings.Add(1)
			}
		}
	}()
	t.Setenv("NOTIFY_SOCKET", notify)
	t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100 ms

	text := stuckConfig + fmt.Sprintf(`
[tun]
name = "m646w"
offload = true

[health]
[[health.check]]
name = "dp"
type = "dataplane"
interval = "100ms"
rise = 1
fall = 2

[node]
state_dir = %q

[control]
socket = %q
`, dir, filepath.Join(dir, "ctl.sock"))
	cfg, err := config.Parse([]byte(text), "test.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	const hold = time.Second
	var held atomic.Int32
	var armed atomic.Bool
	tun.SetSelfTestHook(func(string, []byte) {
		if armed.Load() {
			held.Add(1)
			time.Sleep(hold)
			held.Add(-1)
		}
	})
	t.Cleanup(func() { tun.SetSelfTestHook(nil) })
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(filepath.Join(dir, "test.toml"), cfg, slog.New(slog.NewJSONHandler(&logs, nil)), "test")
	}()
	defer func() {
		armed.Store(false)
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	logged := func(msg string) bool { return strings.Contains(logs.String(), `"msg":"`+msg) }
	if !poll.Until(20*time.Second, 20*time.Millisecond, func() bool { return logged("started") }) {
		t.Fatal("not started after 20 s")
	}
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool { return pings.Load() >= 3 }) {
		t.Fatalf("%d WATCHDOG=1 within 5 s of the start, pinging every 100 ms", pings.Load())
	}

	armed.Store(true)
	link, err := netlink.LinkByName("m646w")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	// The self-test holds the new device: the old one's workers are gone,
	// the new ones not started.
	if !poll.Until(10*time.Second, time.Millisecond, func() bool { return held.Load() > 0 }) {
		t.Fatal("the recovery's self-test did not start within 10 s")
	}
	before := pings.Load()
	time.Sleep(600 * time.Millisecond) // six ping intervals
	during := pings.Load() - before
	if held.Load() == 0 || logged("recovery: device created") {
		t.Fatal("the recovery went on during the window: hold longer")
	}
	if during != 0 {
		t.Errorf("%d WATCHDOG=1 in 600 ms while the data plane was dead", during)
	}
	if !logged("systemd watchdog: no more pings") {
		t.Error("no log line saying the pings stopped")
	}

	armed.Store(false)
	if !poll.Until(30*time.Second, 20*time.Millisecond, func() bool { return logged("recovery: data plane back") }) {
		t.Fatal("the data plane did not come back within 30 s")
	}
	back := pings.Load()
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool { return pings.Load()-back >= 3 }) {
		t.Errorf("%d WATCHDOG=1 within 5 s of the data plane's return", pings.Load()-back)
	}
	t.Logf("pings: %d before the deletion, %d in 600 ms with the data plane dead, %d since (the data plane back)", before, during, pings.Load()-back)
}

// TestPingDuring: while the loop is busy (a long reload), the watchdog is
// pinged from a goroutine, as long as the data plane is alive; stop ends
// the pings.
func TestPingDuring(t *testing.T) {
	dir, err := os.MkdirTemp("", "m646p")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pings atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			if string(buf[:k]) == "WATCHDOG=1" {
				pings.Add(1)
			}
		}
	}()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000") // a ping every 10 ms
	s := newServiceManager(slog.New(slog.DiscardHandler))
	var dead atomic.Bool
	alive := func() error {
		if dead.Load() {
			return fmt.Errorf("dead")
		}
		return nil
	}
	stop := s.pingDuring(alive)
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { return pings.Load() >= 3 }) {
		t.Fatalf("%d pings in 5 s from pingDuring with the data plane alive", pings.Load())
	}
	dead.Store(true)
	time.Sleep(20 * time.Millisecond) // a ping under way arrives
	before := pings.Load()
	time.Sleep(100 * time.Millisecond)
	if n := pings.Load() - before; n != 0 {
		t.Errorf("%d pings in 100 ms with the data plane dead", n)
	}
	dead.Store(false)
	stop()
	time.Sleep(20 * time.Millisecond)
	before = pings.Load()
	time.Sleep(100 * time.Millisecond)
	if n := pings.Load() - before; n != 0 {
		t.Errorf("%d pings in 100 ms after stop", n)
	}
}
