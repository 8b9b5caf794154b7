package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
)

// TestFaults: the faults of issue 6 against the real daemon in the two-node
// lab (BIRD routers, BGP), on tokyo while osaka serves. Each fault shows
// in status, withdraws tokyo from the routers' FIBs, and tokyo comes back
// when it clears; the times are logged, and bounded where they matter:
//
//  1. the tun device deleted under the daemon (ip link del): withdrawn,
//     re-created, routed and announced again; no descriptor or goroutine
//     left behind;
//  2. the disk of [node] state_dir full (a 64 KB tmpfs, filled): status
//     says state_dir "not writable: ... no space left on device", a drain
//     is refused and changes nothing; the node keeps serving (a full disk
//     does not stop translation); space freed: state_dir ok, a drain works;
//  3. control-socket clients that send garbage, stop half-way through a
//     request, or disconnect in the middle of a drain; a drain of a drained
//     node; then undrain;
//  4. kill -9: the routers withdraw (the TCP sessions reset); the kernel
//     deleted the device and its routes; a restart installs exactly the
//     expected routes, once.
//
// Bounds on tokyo's reactions, asserted. Measured on the project's 2-CPU
// virtual machine beside other tests (load average above 10): 55 ms from
// the device deleted to the upstream's FIB without tokyo, 421 ms to tokyo
// routed again, 65 ms from kill -9 to the withdrawal. The bounds leave room
// for a busier machine; the withdrawal's stays well under the BGP hold
// timer (3 s in the lab), which would withdraw tokyo anyway.
const (
	faultWithdrawBound = time.Second     // fault -> upstream's FIB without tokyo
	faultBackBound     = 3 * time.Second // device deleted -> routed again (rise 5 x 100 ms)
)

func TestFaults(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short: a lab with BIRD and two map646 nodes")
	}
	netlab.Need(t, "mount", "umount")
	l := topo.New(t, topo.Options{NoStart: true})
	stateDir := tinyTmpfs(t)
	l.Tokyo.Config.StateDir = stateDir
	// A re-created device must pass the data-plane probe rise times in a
	// row before tokyo announces again: 5 x 100 ms, long enough for the
	// routers' FIBs to show the withdrawal.
	l.Tokyo.Config.Checks[0].Rise = 5
	for _, n := range l.Nodes {
		n.Start(t)
	}
	l.WaitConverged(t, 30*time.Second)

	t.Run("tun-deleted", func(t *testing.T) { faultTunDeleted(t, l) })
	t.Run("state-dir-full", func(t *testing.T) { faultStateDirFull(t, l, stateDir) })
	t.Run("control-clients", func(t *testing.T) { faultControlClients(t, l) })
	t.Run("kill-9", func(t *testing.T) { faultKill9(t, l) })
}

// tinyTmpfs mounts a 64 KB tmpfs, unmounted when the test ends.
func tinyTmpfs(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "m646state")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "m646state", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		os.Remove(dir)
	})
	return dir
}

// fdCount counts a process's open descriptors.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdSteady is the number of descriptors the process holds most of the
// time over 300 ms: some come and go (the dataplane probe's socket every
// 100 ms, the state_dir test write every 2 s), so one reading can be one
// off either way.
func fdSteady(t *testing.T, pid int) int {
	seen := map[int]int{}
	best := 0
	for range 16 {
		n := fdCount(t, pid)
		seen[n]++
		if seen[n] > seen[best] {
			best = n
		}
		time.Sleep(20 * time.Millisecond)
	}
	return best
}

// fdTargets lists what the process's descriptors point at (socket:[inode],
// anon_inode:..., paths), to name a leak.
func fdTargets(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, e.Name()+" -> "+l)
		}
	}
	return out
}

func faultTunDeleted(t *testing.T, l *topo.Lab) {
	n := l.Tokyo
	fds := fdSteady(t, n.M.PID())
	fdsBefore := fdTargets(n.M.PID())
	goroutines := n.M.Metrics(t).Get("go_goroutines")
	from := len(n.M.Lines())

	// The node is failed for about 400 ms: its status is asked from before
	// the device goes, over and over, so that one slow `map646 status`
	// cannot miss it. seen gets what the last answer said.
	seen := make(chan string, 1)
	ctx, stopAsking := context.WithCancel(context.Background())
	defer stopAsking() // a failure below ends the test before the check
	go func() {
		last := "no answer"
		defer func() { seen <- last }()
		for {
			if out, err := n.Ctl(5*time.Second, "status", "-json"); topo.StatusAnswered(err) {
				var ns control.Status
				if json.Unmarshal([]byte(out), &ns) == nil {
					last = ns.Node.State + " (" + ns.Node.Cause + ")"
					if ns.Node.State == "failed" {
						return
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	n.NS.IP(t, "link", "del", n.M.Device)
	_, at := l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr4))
	l.Backend.WaitFIB(t, topo.Pseudo, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr6))
	withdrawn := at.Sub(start)

	_, at = l.Upstream.WaitFIB(t, topo.Prefix4, 15*time.Second, "via both nodes", topo.Multipath(topo.Gateways4(l.Nodes...)...))
	back := at.Sub(start)
	l.WaitConverged(t, 10*time.Second)
	n.WaitState(t, "serving", 5*time.Second)
	stopAsking()
	if st := <-seen; !strings.HasPrefix(st, "failed (") || !strings.Contains(st, "data plane stopped") {
		t.Errorf("status during the recovery: last seen %s; want failed, the data plane named", st)
	}

	// The log tells each step, in order.
	var steps []string
	for _, line := range n.M.Lines()[from:] {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		msg, _ := rec["msg"].(string)
		if strings.HasPrefix(msg, "recovery:") || strings.HasPrefix(msg, "the data plane stopped") {
			steps = append(steps, msg)
		}
	}
	want := []string{"the data plane stopped; the node withdraws and re-creates the device", "recovery: withdrawn",
		"recovery: device created", "recovery: workers running, routes installed; proving the device", "recovery: data plane back"}
	if !slices.Equal(steps, want) {
		t.Errorf("recovery log:\n%s\nwant:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	// Exactly the expected routes again, in the new device.
	if got := n.M.Routes(t); len(got) != 2 || !strings.HasPrefix(got[0], topo.Prefix4+" ") || !strings.HasPrefix(got[1], topo.Pseudo+" ") {
		t.Errorf("routes after the recovery: %q; want %s and %s", got, topo.Prefix4, topo.Pseudo)
	}
	got := fdSteady(t, n.M.PID())
	if got > fds {
		t.Errorf("%d descriptors open after the recovery, %d before: a leak\nbefore: %s\nafter:  %s\nsockets: %s",
			got, fds, strings.Join(fdsBefore, ", "), strings.Join(fdTargets(n.M.PID()), ", "), n.NS.Run(t, "ss", "-anp"))
	}
	// The goroutines of the old workers have gone (a few of the runtime's,
	// or an HTTP connection's, come and go).
	if g := n.M.Metrics(t).Get("go_goroutines"); g > goroutines+2 {
		t.Errorf("%v goroutines after the recovery, %v before", g, goroutines)
	}
	t.Logf("tun deleted -> upstream FIB without tokyo: %v; -> tokyo routed again: %v (dataplane check rise 5 x 100 ms)",
		withdrawn.Round(time.Millisecond), back.Round(time.Millisecond))
	if withdrawn > faultWithdrawBound || back > faultBackBound {
		t.Errorf("tun deleted: withdrawn after %v (bound %v), routed again after %v (bound %v)",
			withdrawn.Round(time.Millisecond), faultWithdrawBound, back.Round(time.Millisecond), faultBackBound)
	}
	t.Logf("descriptors %d before and after; goroutines %v before", fds, goroutines)
}

func faultStateDirFull(t *testing.T, l *topo.Lab, dir string) {
	n := l.Tokyo
	fill := filepath.Join(dir, "fill")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	f.Close()
	start := time.Now()
	var ns topo.Status
	if !poll.Until(5*time.Second, 50*time.Millisecond, func() bool {
		ns = n.Status(t)
		return strings.HasPrefix(ns.Node.StateDir, "not writable")
	}) {
		t.Fatalf("state_dir %q 5 s after the disk filled", ns.Node.StateDir)
	}
	t.Logf("state_dir full -> status %q after %v (checked every 2 s)", ns.Node.StateDir, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(ns.Node.StateDir, "no space left on device") || ns.Node.State != "serving" {
		t.Errorf("status with the disk full: state %s, state_dir %q", ns.Node.State, ns.Node.StateDir)
	}
	out, err := n.Drain(true)
	if err == nil || !strings.Contains(out, "refusing to drain: cannot record the drained state") || !strings.Contains(out, "nothing changed") {
		t.Errorf("drain with the disk full: %v: %s", err, out)
	}
	if s := n.Status(t); s.Node.State != "serving" || !s.Announces(topo.Prefix4) || !s.Announces(topo.Pseudo) {
		t.Errorf("after the refused drain: %s, announced %+v", s.Node.State, s.Announced)
	}
	if f := l.Upstream.FIB(t, topo.Prefix4); !topo.Multipath(topo.Gateways4(l.Nodes...)...)(f) {
		t.Errorf("upstream FIB after the refused drain: %v", f)
	}
	if _, err := os.Stat(filepath.Join(dir, "drained")); err == nil {
		t.Error("a drained flag exists after the refused drain")
	}

	os.Remove(fill)
	start = time.Now()
	if !poll.Until(5*time.Second, 50*time.Millisecond, func() bool {
		ns = n.Status(t)
		return ns.Node.StateDir == "ok"
	}) {
		t.Fatalf("state_dir %q 5 s after space was freed", ns.Node.StateDir)
	}
	t.Logf("space freed -> state_dir ok after %v", time.Since(start).Round(time.Millisecond))
	if !waitLog(n, "[node] state_dir is not writable") || !waitLog(n, "[node] state_dir is writable again") {
		t.Error("the log does not tell the state_dir going bad and coming back")
	}
}

func waitLog(n *topo.Node, msg string) bool {
	for _, line := range n.M.Lines() {
		if strings.Contains(line, msg) {
			return true
		}
	}
	return false
}

// rawControl sends raw bytes to the node's control socket (from this
// process: the socket is a file, reachable from any namespace) and
// returns what comes back until the daemon closes the connection.
func rawControl(t *testing.T, n *topo.Node, req string, closeWrite bool) string {
	t.Helper()
	c, err := net.DialTimeout("unix", n.Config.ControlSocket, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.UnixConn).CloseWrite()
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

func faultControlClients(t *testing.T, l *topo.Lab) {
	n := l.Tokyo
	before := n.Status(t)
	for _, c := range []struct {
		name, req  string
		closeWrite bool
		want       string
	}{
		{"garbage", "\x00\xffGET / HTTP/1.1\n", false, "request is not a JSON object"},
		{"unknown command", `{"command":"reboot"}` + "\n", false, `unknown command \"reboot\"`},
		{"half a request, then EOF", `{"command":"dra`, true, "incomplete request (no end of line)"},
		{"nothing, then EOF", "", true, "connection closed before a request"},
		{"too long", strings.Repeat("x", 5000) + "\n", false, "request longer than 4096 bytes"},
	} {
		got := rawControl(t, n, c.req, c.closeWrite)
		if !strings.Contains(got, `"ok":false`) || !strings.Contains(got, c.want) {
			t.Errorf("%s: answer %q; want ok false and %q", c.name, got, c.want)
		}
	}
	if s := n.Status(t); s.Node.State != before.Node.State || len(s.Announced) != len(before.Announced) {
		t.Errorf("after bad clients: %s with %d announced; was %s with %d", s.Node.State, len(s.Announced), before.Node.State, len(before.Announced))
	}

	// A drain whose client goes away after the first progress line: the
	// drain goes on to the end (the operator asked for it; a lost
	// terminal must not leave the node half-drained).
	c, err := net.DialTimeout("unix", n.Config.ControlSocket, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"command":"drain"}` + "\n"))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.Contains(line, "progress") {
		t.Fatalf("first line of a drain: %q, %v", line, err)
	}
	start := time.Now()
	n.WaitState(t, "drained", 20*time.Second)
	l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr4))
	t.Logf("drain with its client gone after the first progress line: drained %v later", time.Since(start).Round(time.Millisecond))
	if !waitLog(n, "control socket: the client went away") {
		t.Error("the log does not say the drain's client went away")
	}

	// Drain of a drained node: a clear answer, nothing changes.
	out, err := n.Drain(false)
	if err != nil || !strings.Contains(out, "already drained since") || !strings.Contains(out, "nothing changed") {
		t.Errorf("drain of a drained node: %v: %s", err, out)
	}
	if s := n.Status(t); s.Node.State != "drained" || len(s.Announced) != 0 {
		t.Errorf("after the second drain: %s, announced %+v", s.Node.State, s.Announced)
	}
	if out, err := n.Undrain(); err != nil || !strings.Contains(out, "undrained: serving") {
		t.Errorf("undrain: %v: %s", err, out)
	}
	l.WaitConverged(t, 10*time.Second)
}

func faultKill9(t *testing.T, l *topo.Lab) {
	n := l.Tokyo
	start := time.Now()
	n.Kill(t)
	_, at := l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr4))
	l.Backend.WaitFIB(t, topo.Pseudo, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr6))
	t.Logf("kill -9 -> upstream FIB without tokyo: %v (TCP reset)", at.Sub(start).Round(time.Millisecond))
	if d := at.Sub(start); d > faultWithdrawBound {
		t.Errorf("kill -9: withdrawn after %v, bound %v", d.Round(time.Millisecond), faultWithdrawBound)
	}

	// The kernel deleted the device, and its routes with it.
	if out, _ := n.NS.Exec(5*time.Second, "ip", "link", "show", "map646"); !strings.Contains(out, "does not exist") {
		t.Errorf("the device outlived map646: %s", out)
	}
	if out := n.NS.IP(t, "route", "show", "proto", "246"); strings.TrimSpace(out) != "" {
		t.Errorf("IPv4 routes left by the killed map646:\n%s", out)
	}
	if out := n.NS.IP(t, "-6", "route", "show", "proto", "246"); strings.TrimSpace(out) != "" {
		t.Errorf("IPv6 routes left by the killed map646:\n%s", out)
	}

	start = time.Now()
	n.Start(t)
	_, at = l.Upstream.WaitFIB(t, topo.Prefix4, 15*time.Second, "via both nodes", topo.Multipath(topo.Gateways4(l.Nodes...)...))
	l.WaitConverged(t, 10*time.Second)
	t.Logf("restart -> tokyo routed again: %v", at.Sub(start).Round(time.Millisecond))
	routes := append(strings.Fields(n.NS.IP(t, "route", "show", "proto", "246")), strings.Fields(n.NS.IP(t, "-6", "route", "show", "proto", "246"))...)
	var dsts []string
	for _, line := range strings.Split(n.NS.IP(t, "route", "show", "proto", "246")+n.NS.IP(t, "-6", "route", "show", "proto", "246"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			dsts = append(dsts, f[0])
		}
	}
	if !slices.Equal(dsts, []string{topo.Prefix4, topo.Pseudo}) {
		t.Errorf("routes after the restart: %q; want exactly %s and %s once each (%q)", dsts, topo.Prefix4, topo.Pseudo, routes)
	}
}
