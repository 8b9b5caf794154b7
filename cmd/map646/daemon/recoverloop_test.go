package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/translator/tun"
)

// recoveryChildEnv names the state directory of the child process of
// TestRecoveryLoopAnswers.
const recoveryChildEnv = "MAP646_TEST_RECOVERY_CHILD"

// recoverySlowTest is how long each offload's self-test packet is held
// (the hook sleeps), as a self-test whose loop loses packets waits
// selfTestWait for each: five offloads make the re-created device take
// that long five times.
const recoverySlowTest = 400 * time.Millisecond

// recoveryAnswerBound: the daemon loop answers a command within this
// while the recovery's self-test is under way. A command the loop serves
// takes microseconds; the bound leaves room for a loaded machine, and is
// well under recoverySlowTest, which a loop blocked by the self-test
// would take at least.
const recoveryAnswerBound = 250 * time.Millisecond

// TestRecoveryLoopAnswers: while a recovery re-creates the deleted device
// and its offload self-test is slow (a hook holds each packet), the daemon
// loop still answers the control socket's commands at once: the device is
// created off the loop. The daemon runs whole (Run) in a child process of
// the test binary inside a fresh namespace, as the goroutine that creates
// the device must be in the namespace too.
func TestRecoveryLoopAnswers(t *testing.T) {
	if dir := os.Getenv(recoveryChildEnv); dir != "" {
		recoveryChild(t, dir)
		return
	}
	netlab.RequireRoot(t)
	ns := netlab.NewNS(t, "recover")
	ns.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// translator.ipv4_address local: the data plane's probe sends from it.
	ns.IP(t, "addr", "add", "192.0.2.1/32", "dev", "lo")
	cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestRecoveryLoopAnswers$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), recoveryChildEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

// recoveryChild runs the daemon, deletes its device, and times undrain
// (served by the loop: "not drained") while the recovery's self-test is
// held.
func recoveryChild(t *testing.T, dir string) {
	sock := filepath.Join(dir, "ctl.sock")
	text := stuckConfig + fmt.Sprintf(`
[tun]
name = "m646r"
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
`, dir, sock)
	cfg, err := config.Parse([]byte(text), "test.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	var held atomic.Int32 // self-test packets being held now
	var armed atomic.Bool
	tun.SetSelfTestHook(func(string, []byte) {
		if armed.Load() {
			held.Add(1)
			time.Sleep(recoverySlowTest)
			held.Add(-1)
		}
	})
	t.Cleanup(func() { tun.SetSelfTestHook(nil) })
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(filepath.Join(dir, "test.toml"), cfg, slog.New(slog.NewJSONHandler(&logs, nil)), "test")
	}()
	// stop ends Run (SIGTERM, as an operator would); the log is read only
	// after it.
	stop := sync.OnceFunc(func() {
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	state := func() string {
		r, err := control.Call(sock, control.Request{Command: "status"}, 5*time.Second, nil)
		if err != nil || r.Status == nil {
			return ""
		}
		return r.Status.Node.State
	}
	logged := func(msg string) bool { return strings.Contains(logs.String(), `"msg":"`+msg+`"`) }
	if !poll.Until(20*time.Second, 20*time.Millisecond, func() bool { return logged("started") }) {
		t.Fatalf("not started after 20 s (state %q)", state())
	}
	armed.Store(true)
	link, err := netlink.LinkByName("m646r")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	var asked, whileHeld int
	var slowest time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for !logged("recovery: data plane back") || asked == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not recover within 30 s (state %q)", state())
		}
		during := held.Load() > 0
		start := time.Now()
		r, err := control.Call(sock, control.Request{Command: "undrain"}, 10*time.Second, nil)
		took := time.Since(start)
		if err != nil || !strings.HasPrefix(r.Message, "not drained") {
			t.Fatalf("undrain during the recovery: %+v, %v", r, err)
		}
		asked++
		if during {
			whileHeld++
			slowest = max(slowest, took)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d undrains during the recovery, %d while the self-test held a packet; the slowest of those answered in %v",
		asked, whileHeld, slowest.Round(time.Millisecond))
	if whileHeld == 0 {
		t.Fatal("no command was sent while the self-test held a packet: the hook never ran")
	}
	if slowest > recoveryAnswerBound {
		t.Errorf("a command during the self-test was answered in %v, want under %v: the self-test blocks the loop", slowest, recoveryAnswerBound)
	}

	// Stopped while a recovery creates the device: the daemon waits for
	// it and closes it, so the kernel deletes it; none is left behind.
	if link, err = netlink.LinkByName("m646r"); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	if !poll.Until(10*time.Second, time.Millisecond, func() bool { return held.Load() > 0 }) {
		t.Fatal("the second recovery's self-test did not start within 10 s")
	}
	stop()
	if _, err := netlink.LinkByName("m646r"); err == nil {
		t.Error("m646r still exists after Run returned: the device the recovery was creating was not closed")
	}
}

// lockedBuffer is a log the test reads while the daemon writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
