package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
)

// partnerBGP is the [bgp] and [health] of a node whose partner is at
// peer: iBGP over the link, a fast data-plane check.
const partnerBGP = `
[bgp]
local_as = 64512
router_id = %q

[[bgp.neighbor]]
address = %q
peer_as = 64512
role = "partner"
hold_time = "3s"
keepalive_time = "1s"
connect_retry = "1s"

[health]
[[health.check]]
name = "dp"
type = "dataplane"
interval = "100ms"
rise = 1
fall = 2
`

// ctlStatus asks the node behind sock for its status; ok false when it
// does not answer.
func ctlStatus(t *testing.T, sock string) (control.Status, bool) {
	t.Helper()
	r, err := control.Call(sock, control.Request{Command: "status"}, 10*time.Second, nil)
	if err != nil || r.Status == nil {
		return control.Status{}, false
	}
	return *r.Status, true
}

// waitStatus polls the node's status until cond holds (20 s at most).
func waitStatus(t *testing.T, sock, what string, cond func(control.Status) bool) control.Status {
	t.Helper()
	var s control.Status
	if !poll.Until(20*time.Second, 20*time.Millisecond, func() bool {
		var ok bool
		s, ok = ctlStatus(t, sock)
		return ok && cond(s)
	}) {
		b, _ := json.MarshalIndent(s, "", "  ")
		t.Fatalf("%s: not %s after 20 s; status:\n%s", sock, what, b)
	}
	return s
}

func received(s control.Status) int {
	if len(s.Neighbors) != 1 || !s.Neighbors[0].Established {
		return -1
	}
	return s.Neighbors[0].Received
}

// TestRunPartners runs two real map646 nodes as BGP partners in two
// namespaces and drives their life cycle over the control socket: both
// serve and see each other's two prefixes; one drains (GRACEFUL_SHUTDOWN,
// then withdrawn: its partner sees nothing from it); the other then refuses
// to drain, being the last node; the drained one restarts drained and
// undrains; SIGTERM withdraws before the session closes.
func TestRunPartners(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	nsA, nsB := netlab.NewNS(t, "tokyo"), netlab.NewNS(t, "osaka")
	netlab.Veth(t, nsA, "p0", nsB, "p0")
	nsA.AddAddr(t, "p0", "203.0.113.1/24")
	nsB.AddAddr(t, "p0", "203.0.113.2/24")

	type node struct {
		conf, sock string
		p          *proc
	}
	mk := func(ns *netlab.NS, self, peer, linger string) *node {
		dir := t.TempDir()
		n := &node{conf: filepath.Join(dir, "map646.toml"), sock: filepath.Join(dir, "map646.sock")}
		writeConfig(t, n.conf, "m646x", false, fmt.Sprintf(partnerBGP, self, peer))
		b, _ := os.ReadFile(n.conf)
		os.WriteFile(n.conf, []byte(strings.Replace(string(b), `linger = "0s"`, `linger = "`+linger+`"`, 1)), 0o644)
		n.p = startMap646(t, bin, ns.Name, n.conf)
		return n
	}
	a := mk(nsA, "203.0.113.1", "203.0.113.2", "0s")
	b := mk(nsB, "203.0.113.2", "203.0.113.1", "2s")
	for _, n := range []*node{a, b} {
		n.p.wait("started", 0)
		waitStatus(t, n.sock, "serving with both prefixes sent to and received from the partner", func(s control.Status) bool {
			return s.Node.State == "serving" && len(s.Announced) == 2 && received(s) == 2
		})
	}

	// Drain a: the partner announces everything, so it proceeds.
	code, stdout, stderr := runCmd(t, "drain", "-socket", a.sock)
	if code != exitOK || !strings.Contains(stdout, "GRACEFUL_SHUTDOWN and MED 1000") || !strings.Contains(stdout, "drained:") {
		t.Fatalf("drain a: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if s, _ := ctlStatus(t, a.sock); s.Node.State != "drained" || len(s.Announced) != 0 {
		t.Errorf("a after the drain: %s, announcing %v", s.Node.State, s.Announced)
	}
	waitStatus(t, b.sock, "receiving nothing from the drained partner", func(s control.Status) bool { return received(s) == 0 })

	// b is now the last node: its drain is refused, and changes nothing.
	code, _, stderr = runCmd(t, "drain", "-socket", b.sock)
	if code != exitError || !strings.Contains(stderr, "refusing to drain: no established partner node announces 198.51.100.16/28, 64:ff9b::/96") {
		t.Errorf("drain b: exit %d, stderr %q", code, stderr)
	}
	if s, _ := ctlStatus(t, b.sock); s.Node.State != "serving" || len(s.Announced) != 2 {
		t.Errorf("b after the refused drain: %s, announcing %v", s.Node.State, s.Announced)
	}

	// a restarts drained.
	a.p.signal(syscall.SIGTERM)
	<-a.p.done
	a.p = startMap646(t, bin, nsA.Name, a.conf)
	a.p.wait("started", 0)
	s := waitStatus(t, a.sock, "up again", func(s control.Status) bool { return received(s) == 2 })
	if s.Node.State != "drained" || !strings.HasPrefix(s.Node.Cause, "drained by an operator at ") || len(s.Announced) != 0 {
		t.Errorf("a after the restart: %+v, announcing %v", s.Node, s.Announced)
	}

	// Reload over the socket, then undrain: a serves again.
	if code, stdout, stderr := runCmd(t, "reload", "-socket", a.sock); code != exitOK || !strings.HasPrefix(stdout, "reloaded ") {
		t.Errorf("reload: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(t, "undrain", "-socket", a.sock); code != exitOK || !strings.HasPrefix(stdout, "undrained: serving") {
		t.Errorf("undrain: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	waitStatus(t, b.sock, "receiving a's prefixes again", func(s control.Status) bool { return received(s) == 2 })

	// SIGTERM b: its prefixes are withdrawn while the session stays up
	// (the linger), and only then is the session closed.
	b.p.signal(syscall.SIGTERM)
	waitStatus(t, a.sock, "seeing b's withdrawal on a live session", func(s control.Status) bool { return received(s) == 0 })
	<-b.p.done
	if b.p.err != nil {
		t.Errorf("b exited with %v", b.p.err)
	}
	waitStatus(t, a.sock, "seeing b's session closed", func(s control.Status) bool { return len(s.Neighbors) == 1 && !s.Neighbors[0].Established })
}
