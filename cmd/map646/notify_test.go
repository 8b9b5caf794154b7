package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
)

// notifySocket is a NOTIFY_SOCKET as systemd makes it: a unix datagram
// socket whose every datagram is one sd_notify message.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "m646n") // a unix socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// wait returns the index of the first message from index from on that
// starts with prefix.
func (n *notifySocket) wait(t *testing.T, prefix string, from int, within time.Duration) int {
	t.Helper()
	at := -1
	poll.Until(within, 5*time.Millisecond, func() bool {
		for i, m := range n.all()[from:] {
			if strings.HasPrefix(m, prefix) {
				at = from + i
				return true
			}
		}
		return false
	})
	if at < 0 {
		t.Fatalf("no %q message within %v after message %d; messages: %q", prefix, within, from, n.all())
	}
	return at
}

// count counts the messages from index from to index to (excluded; -1:
// the end) equal to msg.
func (n *notifySocket) count(msg string, from, to int) int {
	all := n.all()
	if to < 0 {
		to = len(all)
	}
	k := 0
	for _, m := range all[from:to] {
		if m == msg {
			k++
		}
	}
	return k
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock of
// MONOTONIC_USEC.
func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestRunNotify runs map646 as systemd runs a Type=notify service with
// WatchdogSec: NOTIFY_SOCKET and WATCHDOG_USEC in its environment. It must
// send READY=1 once started (the control socket answers by then), STATUS=
// with the node's state when it changes, ping
// WATCHDOG=1 every half of WATCHDOG_USEC, wrap each reload (SIGHUP, and
// 'map646 reload' of an invalid file, which exits 1) in RELOADING=1 with
// MONOTONIC_USEC and READY=1, and say STOPPING=1 at SIGTERM, after which
// nothing pings.
func TestRunNotify(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	// An IPv4 address for the data plane's probe: the node can serve.
	ip(t, "-n", ns, "link", "add", "m646v0", "type", "veth", "peer", "name", "m646v1")
	ip(t, "-n", ns, "link", "set", "m646v0", "up")
	ip(t, "-n", ns, "link", "set", "m646v1", "up")
	ip(t, "-n", ns, "addr", "add", "192.0.2.100/24", "dev", "m646v0")
	notify := newNotifySocket(t)
	conf := filepath.Join(t.TempDir(), "map646.toml")
	writeConfig(t, conf, "m646n0", false, "")
	sock := filepath.Join(filepath.Dir(conf), "map646.sock")
	const watchdog = 400 * time.Millisecond
	p := startMap646Env(t, bin, ns, conf, []string{"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=" + strconv.Itoa(int(watchdog/time.Microsecond))})

	ready := notify.wait(t, "READY=1\n", 0, 30*time.Second)
	if ready != 0 {
		t.Errorf("messages before READY=1: %q", notify.all()[:ready])
	}
	if r, err := control.Call(sock, control.Request{Command: "status"}, 5*time.Second, nil); err != nil || r.Status == nil {
		t.Errorf("READY=1 sent, but the control socket does not answer status: %+v, %v", r, err)
	}
	if m := notify.all()[ready]; !strings.Contains(m, "\nSTATUS=") {
		t.Errorf("READY=1 without STATUS=: %q", m)
	}

	// The node's state follows, as STATUS=, once its check has risen.
	notify.wait(t, "STATUS=serving", ready, 20*time.Second)

	// The pings: every 200 ms, so at least 3 in 1.2 s on a loaded machine.
	time.Sleep(1200 * time.Millisecond)
	if n := notify.count("WATCHDOG=1", ready, -1); n < 3 {
		t.Errorf("%d WATCHDOG=1 in 1.2 s with WATCHDOG_USEC %v; want at least 3", n, watchdog)
	}

	// A reload by SIGHUP.
	before := monotonicUsec(t)
	from := len(notify.all())
	p.signal(syscall.SIGHUP)
	reloading := notify.wait(t, "RELOADING=1\n", from, 10*time.Second)
	after := monotonicUsec(t)
	done := notify.wait(t, "READY=1\n", reloading, 10*time.Second)
	m := notify.all()[reloading]
	f := strings.Split(m, "\n")
	if len(f) < 2 || !strings.HasPrefix(f[1], "MONOTONIC_USEC=") {
		t.Fatalf("RELOADING=1 without MONOTONIC_USEC on its second line: %q", m)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(f[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC %d (%v): not between the signal (%d) and the message's arrival (%d)", usec, err, before, after)
	}
	t.Logf("SIGHUP: RELOADING=1 (message %d), READY=1 (message %d)", reloading, done)

	// An invalid file, reloaded by the client: exit 1, and still
	// RELOADING=1 then READY=1 (the daemon runs on with the old file).
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("[translator]\npseudo_prefix = \"64:ff9b::/80\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from = len(notify.all())
	out, err := exec.Command(bin, "reload", "-socket", sock).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitError {
		t.Errorf("map646 reload of an invalid file: %v, want exit %d: %s", err, exitError, out)
	}
	reloading = notify.wait(t, "RELOADING=1\n", from, 10*time.Second)
	notify.wait(t, "READY=1\n", reloading, 10*time.Second)
	if err := os.WriteFile(conf, good, 0o644); err != nil {
		t.Fatal(err)
	}

	// The stop.
	from = len(notify.all())
	p.signal(syscall.SIGTERM)
	stopping := notify.wait(t, "STOPPING=1", from, 10*time.Second)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("map646 did not exit within 20 s of SIGTERM")
	}
	if p.err != nil {
		t.Errorf("map646 exited with %v after SIGTERM", p.err)
	}
	t.Logf("messages: %q", notify.all())
	if n := notify.count("WATCHDOG=1", stopping, -1); n != 0 {
		t.Errorf("%d WATCHDOG=1 after STOPPING=1", n)
	}
	for _, m := range notify.all()[stopping+1:] {
		if strings.HasPrefix(m, "READY=1") || strings.HasPrefix(m, "RELOADING=1") {
			t.Errorf("%q after STOPPING=1", m)
		}
	}
}
