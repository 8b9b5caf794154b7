package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/map646/map646/config"
	"github.com/map646/map646/health"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

// TestDataPlaneDownWithdraws: a data plane lost under the node withdraws
// everything at once, whatever the checks say; the checks being up does
// not bring it back, only the recovery's Ready does.
func TestDataPlaneDownWithdraws(t *testing.T) {
	tc := newTestCtl(t, t.TempDir())
	ctx := context.Background()
	if err := tc.DataPlaneDown(ctx, "data plane stopped: device deleted"); err != nil {
		t.Fatal(err)
	}
	if a := tc.sp.Announced(); len(a) != 0 {
		t.Fatalf("announced with the data plane down: %v", prefixesOf(a))
	}
	st := tc.Status()
	if st.Node.State != "failed" || !strings.Contains(st.Node.Cause, "device deleted") {
		t.Errorf("status %s (%s); want failed naming the device", st.Node.State, st.Node.Cause)
	}
	if err := tc.Reconcile(ctx); err != nil { // every check up
		t.Fatal(err)
	}
	if a := tc.sp.Announced(); len(a) != 0 || tc.state() != Failed {
		t.Fatalf("checks up with the data plane down: %s, announced %v", tc.state(), prefixesOf(a))
	}
	if err := tc.Ready(ctx, tc.Plan()); err != nil {
		t.Fatal(err)
	}
	if a := tc.sp.Announced(); len(a) != 3 || tc.state() != Serving {
		t.Fatalf("after the recovery: %s, announced %v; want serving with 3 prefixes", tc.state(), prefixesOf(a))
	}
}

// TestUndrainWhileFailed: undrain on a node that is failed (a check down),
// not drained, says so and changes nothing: no flag, the state, the
// announcements.
func TestUndrainWhileFailed(t *testing.T) {
	dir := t.TempDir()
	tc := newTestCtl(t, dir)
	tc.hm.set(false, true)
	if err := tc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tc.state() != Failed {
		t.Fatalf("state %s with a check down", tc.state())
	}
	before, calls := prefixesOf(tc.sp.Announced()), len(tc.sp.history())
	msg, err := tc.Undrain(context.Background())
	if err != nil || !strings.HasPrefix(msg, "not drained: the node is failed since") || !strings.Contains(msg, "nothing changed") {
		t.Errorf("undrain while failed: %q, %v", msg, err)
	}
	if tc.state() != Failed || len(tc.sp.history()) != calls || fmt.Sprint(prefixesOf(tc.sp.Announced())) != fmt.Sprint(before) {
		t.Errorf("undrain changed something: %s, %d announces (was %d), announced %v (was %v)",
			tc.state(), len(tc.sp.history()), calls, prefixesOf(tc.sp.Announced()), before)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("state_dir holds %d files after an undrain that changed nothing", len(ents))
	}
}

// TestStateDirStatus: the status names a state_dir that cannot be written,
// logs the change once each way, and the node keeps serving.
func TestStateDirStatus(t *testing.T) {
	tc := newTestCtl(t, t.TempDir())
	if s := tc.Status().Node.StateDir; s != "ok" {
		t.Errorf("state_dir %q before any problem; want ok", s)
	}
	enospc := fmt.Errorf("write x: %w", syscall.ENOSPC)
	tc.SetStateDir(enospc)
	tc.SetStateDir(enospc)
	st := tc.Status()
	if st.Node.StateDir != "not writable: write x: no space left on device" || st.Node.State != "serving" || len(st.Announced) != 3 {
		t.Errorf("status with a full state_dir: %q, %s, %d announced", st.Node.StateDir, st.Node.State, len(st.Announced))
	}
	tc.SetStateDir(nil)
	if s := tc.Status().Node.StateDir; s != "ok" {
		t.Errorf("state_dir %q once writable again", s)
	}
	logs := tc.log.buf.String()
	if n := strings.Count(logs, "state_dir is not writable"); n != 1 {
		t.Errorf("%d log lines for the state_dir going bad; want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "writable again"); n != 1 {
		t.Errorf("%d log lines for the state_dir coming back; want 1", n)
	}
	// Writable on a directory that cannot be written.
	if err := (drainFlag{dir: "/proc/self"}).Writable(); err == nil {
		t.Error("Writable in /proc/self: no error")
	}
	dir := t.TempDir()
	if err := (drainFlag{dir: dir}).Writable(); err != nil {
		t.Errorf("Writable in a temporary directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Writable left %d files", len(ents))
	}
}

// nsProber runs the data plane's probe on a thread in the network
// namespace ns, as the daemon's health monitor does in its own namespace.
type nsProber struct {
	ns netns.NsHandle
	dp *dataplane.DataPlane
}

func (p nsProber) Probe(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		// The thread ends with the goroutine (not unlocked): it is never
		// given back to the runtime in the wrong namespace.
		runtime.LockOSThread()
		if err := netns.Set(p.ns); err != nil {
			errc <- err
			return
		}
		errc <- p.dp.Probe(ctx)
	}()
	return <-errc
}

// stuckConfig is the translator of TestStuckWorkerWithdraws:
// documentation addresses only.
const stuckConfig = `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8:64::1"

[[mapping]]
ipv4 = "198.51.100.16/28"
ipv6 = "2001:db8:2::/124"
`

// TestStuckWorkerWithdraws: a worker held inside a batch makes the data
// plane check fail (naming the stuck worker) and the node withdraw; once
// released, the check rises and the node announces again. Real parts: tun
// device, data plane, health monitor, lifecycle; only the speaker is a
// fake. Times are logged, hold to withdrawal and release to
// re-announcement, and bounded by stuckBound: both measured about 200 ms
// here (stuck_after 50 ms, then fall or rise 2 x 100 ms), with room for a
// loaded machine.
func TestStuckWorkerWithdraws(t *testing.T) {
	const stuckBound = 2 * time.Second
	netlab.RequireRoot(t)
	ns := netlab.NewNS(t, "stuck")
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(stuckConfig), "test.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.NewTranslator()
	if err != nil {
		t.Fatal(err)
	}
	var dp *dataplane.DataPlane
	err = ns.Do(func() error {
		dev, err := tun.OpenPlain("m646s", 1500)
		if err != nil {
			return err
		}
		dp = dataplane.New(tr, dev, dataplane.Options{ICMPErrorRate: cfg.Translator.ICMPErrorRate, ICMPErrorBurst: cfg.Translator.ICMPErrorBurst})
		l, err := netlink.LinkByName("m646s")
		if err != nil {
			return err
		}
		r, err := dataplane.NewRoutes(l.Attrs().Name, nil)
		if err != nil {
			return err
		}
		defer r.Close()
		return r.Add(dataplane.Prefixes(dp.Translator()))
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.IP(t, "addr", "add", "192.0.2.2/32", "dev", "m646s")
	var hold atomic.Bool
	release := make(chan struct{})
	var released atomic.Bool
	free := func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}
	dp.SetStuckAfter(50 * time.Millisecond)
	dp.SetBatchHook(func(int) {
		if hold.Load() {
			<-release
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	dpDone := make(chan error, 1)
	go func() { dpDone <- dp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-dpDone; err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("data plane: %v", err)
		}
	})
	t.Cleanup(free) // runs first: a held worker would never stop

	nsh, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	hm, err := health.NewMonitor([]health.Check{{Name: "dataplane", Kind: health.DataPlane,
		Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond, Rise: 2, Fall: 2}},
		nsProber{nsh, dp}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCtl(t, dir)
	tc.SetMonitor(healthMonitor{hm})
	tc.Reconcile(ctx) // every check starts down
	go hm.Run(ctx)
	go func() {
		for {
			select {
			case <-hm.Changes():
				tc.Reconcile(context.Background())
			case <-ctx.Done():
				return
			}
		}
	}()
	wait := func(what string, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		if !poll.Until(10*time.Second, 5*time.Millisecond, cond) {
			t.Fatalf("no %s after 10 s: %+v", what, tc.Status())
		}
		return time.Since(start)
	}
	wait("serving with the check up", func() bool {
		return tc.state() == Serving && len(tc.sp.Announced()) == 3 && tc.Status().Health[0].Up
	})

	hold.Store(true) // the next batch (a probe's at the latest) is held
	took := wait("withdrawal", func() bool { return len(tc.sp.Announced()) == 0 })
	st := tc.Status()
	if st.Node.State != "failed" || len(st.Health) != 1 || st.Health[0].Up || !strings.Contains(st.Health[0].LastError, "the worker of queue 0 has been stuck in one batch") {
		t.Errorf("status while the worker is stuck: %s, %+v; want failed, the check down naming the worker", st.Node.State, st.Health)
	}
	t.Logf("worker held: withdrawn after %v (stuck_after 50ms, interval 100ms, fall 2): %s", took.Round(time.Millisecond), st.Health[0].LastError)
	if took > stuckBound {
		t.Errorf("worker held: withdrawn after %v, bound %v", took.Round(time.Millisecond), stuckBound)
	}

	hold.Store(false)
	free()
	took = wait("re-announcement", func() bool { return len(tc.sp.Announced()) == 3 })
	if st := tc.Status(); st.Node.State != "serving" || !st.Health[0].Up {
		t.Errorf("after the release: %s, check up %v", st.Node.State, st.Health[0].Up)
	}
	t.Logf("worker released: announced again after %v (rise 2)", took.Round(time.Millisecond))
	if took > stuckBound {
		t.Errorf("worker released: announced again after %v, bound %v", took.Round(time.Millisecond), stuckBound)
	}
}
