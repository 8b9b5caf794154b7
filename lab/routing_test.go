package lab

// Routing with BIRD 2 as the routers and the real map646 as both nodes, in
// the two-node lab of lab/topo (drawn in its package comment):
//
//	client4 ── upstream (BIRD) ──[sw4]──┬── tokyo (map646) ──[sw6]──┬── backend (BIRD) ── srv10, srv11
//	                                    └── osaka (map646) ─────────┘
//
// What each test proves is said above it; the figures (times to withdraw,
// BFD detection, packets) are printed with t.Logf. Run as root (about a
// minute; -short skips it):
//
//	go test ./lab -run TestRouting -v

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
)

// TestRouting runs the routing lab: each subtest builds its own two-node
// lab (about 3 s each) with the options it needs.
func TestRouting(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the routing lab takes about a minute")
	}
	netlab.Need(t, "ip", "bird", "birdc", "ping", "nstat")
	bin := netlab.BuildMap646(t)
	t.Run("Announce", func(t *testing.T) { testAnnounce(t, bin) })
	t.Run("MD5", func(t *testing.T) { testMD5(t, bin) })
	t.Run("BFD", func(t *testing.T) { testBFD(t, bin) })
	t.Run("Drain", func(t *testing.T) { testDrain(t, bin) })
}

// healthPort is the TCP port of tokyo's backend check on srv10.
const healthPort = "8080"

// testAnnounce: both nodes' prefixes reach the routers' BIRD tables (one
// path per node, MED 100, no GRACEFUL_SHUTDOWN) and kernel FIBs (one
// multipath route); a route BIRD sends reaches the node's Adj-RIB-In and
// not its RIB; a failing health check withdraws the node within fall x
// interval and its recovery re-announces; SIGTERM withdraws before the
// process stops, losing no ping.
func testAnnounce(t *testing.T, bin string) {
	l := topo.New(t, topo.Options{Bin: bin, PeerRoutes: true, GRPC: true, NoStart: true})
	// tokyo alone checks a backend server (TCP to srv10): its failure
	// must withdraw tokyo and leave osaka serving.
	var hl healthListener
	hl.listen(t, l.Servers[0])
	l.Tokyo.Config.Checks = append(l.Tokyo.Config.Checks, topo.Check{Name: "srv10", Type: "tcp",
		Addr: "[" + topo.Server10 + "]:" + healthPort, Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Rise: 2, Fall: 2})
	for _, n := range l.Nodes {
		n.Start(t)
	}
	l.WaitConverged(t, 30*time.Second)

	// BIRD's tables: one path from each node with the serving attributes.
	for _, c := range []struct {
		bird   *netlab.Bird
		prefix string
	}{{l.Up, topo.Prefix4}, {l.Back, topo.Pseudo}} {
		r := c.bird.WaitRoute(t, c.prefix, 10*time.Second, "a path from each node", func(r netlab.BirdRoute) bool {
			return len(r.From("tokyo")) == 1 && len(r.From("osaka")) == 1
		})
		for _, p := range r.Paths {
			if med, ok := p.MED(); !ok || med != 100 || p.HasCommunity("65535:0") {
				t.Errorf("%s in %s from %s: MED %d (%v), communities %q; want MED 100, no GRACEFUL_SHUTDOWN", c.prefix, c.bird.NS.Role, p.Protocol, med, ok, p.Communities())
			}
		}
	}
	if f := l.Up.Route(t, topo.PeerRoute4); !f.Present() {
		t.Errorf("the upstream's own route %s is not in its table:\n%s", topo.PeerRoute4, f.Raw)
	}

	// The route BIRD sent: exported by BIRD, received by map646, not in its RIB.
	p := l.Up.Protocol(t, "tokyo")
	if !strings.Contains(p.Raw, "1 exported") {
		t.Errorf("BIRD did not export its route to tokyo:\n%s", p.Raw)
	}
	st := l.Tokyo.Status(t)
	var got []string
	for _, a := range st.Announced {
		got = append(got, a.Prefix)
	}
	if want := []string{topo.Prefix4, topo.Pseudo}; !slices.Equal(got, want) {
		t.Errorf("tokyo announces %q, want %q", got, want)
	}
	for _, nb := range st.Neighbors {
		if nb.Address == topo.Upstream4 && nb.Received < 1 {
			t.Errorf("tokyo's status shows nothing received from the upstream (it sent %s): %+v", topo.PeerRoute4, nb)
		}
	}
	if gobgp := buildGobgp(t); gobgp != "" {
		target := "unix://" + l.Tokyo.Config.BGP.GRPCSocket
		adjIn := l.Tokyo.NS.Run(t, gobgp, "--target", target, "neighbor", topo.Upstream4, "adj-in", "-a", "ipv4")
		rib := l.Tokyo.NS.Run(t, gobgp, "--target", target, "global", "rib", "-a", "ipv4")
		if !strings.Contains(adjIn, topo.PeerRoute4) {
			t.Errorf("gobgp: %s is not in tokyo's Adj-RIB-In from the upstream (was it sent?):\n%s", topo.PeerRoute4, adjIn)
		}
		if strings.Contains(rib, topo.PeerRoute4) || !strings.Contains(rib, topo.Prefix4) {
			t.Errorf("gobgp: tokyo's RIB must hold %s and not %s:\n%s", topo.Prefix4, topo.PeerRoute4, rib)
		}
		t.Logf("gobgp global rib (tokyo):\n%s", rib)
	}
	for _, n := range l.Nodes {
		if f := n.NS.FIB(t, topo.PeerRoute4); f.Present {
			t.Errorf("%s's kernel has %v", n.Name, f)
		}
	}

	// Health failure: srv10 refuses connections; tokyo withdraws within
	// fall x interval (plus a probe's timeout), osaka keeps serving.
	start := hl.stop(t)
	_, at := l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr4))
	l.Backend.WaitFIB(t, topo.Pseudo, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr6))
	t.Logf("health check failure (srv10:%s closed) -> upstream FIB without tokyo: %v (interval 100ms, fall 2)", healthPort, at.Sub(start).Round(time.Millisecond))
	if d := at.Sub(start); d > time.Second {
		t.Errorf("withdrawal after a health failure took %v, want within about fall x interval (200 ms)", d)
	}
	if s := l.Tokyo.WaitState(t, "failed", 5*time.Second); len(s.Announced) != 0 {
		t.Errorf("tokyo failed but announces %+v", s.Announced)
	}
	// Recovery: after rise passes, tokyo is back in both FIBs.
	start = time.Now()
	hl.listen(t, l.Servers[0])
	_, at = l.Upstream.WaitFIB(t, topo.Prefix4, 10*time.Second, "via both nodes", topo.Multipath(topo.Gateways4(l.Nodes...)...))
	l.WaitConverged(t, 10*time.Second)
	t.Logf("health check recovery -> upstream FIB with tokyo again: %v (rise 2)", at.Sub(start).Round(time.Millisecond))
	l.Tokyo.WaitState(t, "serving", 5*time.Second)

	// SIGTERM: the withdrawal reaches the routers while tokyo still
	// translates; a ping every 10 ms across it loses nothing.
	ping := l.Client.Start(t, "ping", "-n", "-i", "0.01", "-c", "300", "-W", "1", topo.Public10)
	waitPinging(t, ping)
	start = time.Now()
	if err := l.Tokyo.M.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, at = l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr4))
	l.Backend.WaitFIB(t, topo.Pseudo, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr6))
	t.Logf("SIGTERM -> upstream FIB without tokyo: %v", at.Sub(start).Round(100*time.Microsecond))
	if err := l.Tokyo.M.Wait(30 * time.Second); err != nil {
		t.Errorf("tokyo after SIGTERM: %v", err)
	}
	stopped := time.Since(start)
	if stopped < l.Tokyo.Config.Linger {
		t.Errorf("tokyo exited %v after SIGTERM, before its linger (%v)", stopped, l.Tokyo.Config.Linger)
	}
	sent, recv := pingResult(t, ping)
	t.Logf("SIGTERM: tokyo exited after %v; ping every 10 ms: %d sent, %d received", stopped.Round(time.Millisecond), sent, recv)
	if sent == 0 || sent != recv {
		t.Errorf("ping across tokyo's SIGTERM: %d sent, %d received, want no loss", sent, recv)
	}
	l.Up.WaitProtocol(t, "tokyo", 10*time.Second, "down", func(p netlab.BirdProtocol) bool { return !p.Established() })
	for _, c := range []struct {
		bird   *netlab.Bird
		prefix string
	}{{l.Up, topo.Prefix4}, {l.Back, topo.Pseudo}} {
		c.bird.WaitRoute(t, c.prefix, 5*time.Second, "osaka's path alone", func(r netlab.BirdRoute) bool {
			return len(r.Paths) == 1 && len(r.From("osaka")) == 1
		})
	}
}

// healthListener is a TCP server on srv10 that accepts and closes
// connections: the target of tokyo's health check.
type healthListener struct{ ln net.Listener }

func (h *healthListener) listen(t *testing.T, srv *netlab.NS) {
	h.ln = srv.Listen(t, "tcp", "["+topo.Server10+"]:"+healthPort)
	ln := h.ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// stop closes the listener: connections are refused from now on.
func (h *healthListener) stop(t *testing.T) time.Time {
	if err := h.ln.Close(); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// buildGobgp installs the gobgp CLI of the speaker's major version (v4.9.0)
// into a temporary directory; "" (logged) if that is not possible here
// (no module download): the RIB check through gRPC is then skipped, except
// under CI, where the test fails instead (labreq.Required).
func buildGobgp(t *testing.T) string {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0")
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		if labreq.Required() {
			t.Fatalf("gobgp CLI not available (%v): the RIB check through gRPC cannot run, and labs are required under CI=true or MAP646_REQUIRE_LABS=1:\n%s", err, out)
		}
		t.Logf("gobgp CLI not available (%v), RIB check through gRPC skipped:\n%s", err, out)
		return ""
	}
	return filepath.Join(dir, "gobgp")
}

// testMD5: sessions with TCP-MD5 on both ends come up (BIRD drops a
// session without the right signature); a node with a wrong password never
// establishes, and its log says why in a line that names the neighbor and
// the password.
func testMD5(t *testing.T, bin string) {
	l := topo.New(t, topo.Options{Bin: bin, Password: "m646-lab-secret"})
	for _, n := range l.Nodes {
		l.Up.WaitEstablished(t, n.Name, 5*time.Second)
		l.Back.WaitEstablished(t, n.Name, 5*time.Second)
	}
	l.Tokyo.Stop(t)
	l.WaitRouted(t, 10*time.Second, l.Osaka)
	l.Tokyo.Config.BGP.Neighbors[0].Password = "wrong-password"
	l.Tokyo.Start(t)
	rec, _ := l.Tokyo.M.WaitLog(t, 30*time.Second, "cannot connect to neighbor")
	line := fmt.Sprint(rec)
	if !strings.Contains(line, topo.Upstream4) || !regexp.MustCompile(`(?i)md5|password`).MatchString(line) {
		t.Errorf("tokyo's log line about the wrong password does not name the neighbor and the password: %v", rec)
	}
	t.Logf("wrong password, tokyo logs: %v", rec)
	// The backend session (right password) is up; the upstream one is not.
	l.Back.WaitEstablished(t, "tokyo", 10*time.Second)
	if p := l.Up.Protocol(t, "tokyo"); p.Established() {
		t.Errorf("the upstream established a session with a wrong password:\n%s", p.Raw)
	}
	if f := l.Upstream.FIB(t, topo.Prefix4); !topo.Multipath(l.Osaka.Addr4)(f) {
		t.Errorf("upstream FIB %v, want via osaka alone", f)
	}
}

// testBFD: with BFD (100 ms x 3) on both ends, the upstream's FIB drops a
// node that died silently (bridge ports down, process frozen) in under
// 0.5 s; median of three deaths.
func testBFD(t *testing.T, bin string) {
	l := topo.New(t, topo.Options{Bin: bin, BFD: true})
	var times []time.Duration
	for i := range 3 {
		for _, n := range l.Nodes {
			if s := n.Status(t); !bfdUp(s, topo.Upstream4) {
				t.Logf("%s: BFD with the upstream not up yet: %s", n.Name, s.Raw)
			}
		}
		waitBIRDBFD(t, l.Up, 2)
		dead := l.Nodes[i%2]
		other := l.Other(dead)
		start := dead.KillSilently(t, true)
		_, at := l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "without "+dead.Name, topo.Multipath(other.Addr4))
		d := at.Sub(start)
		times = append(times, d)
		p := l.Up.WaitProtocol(t, dead.Name, 5*time.Second, "down", func(p netlab.BirdProtocol) bool { return !p.Established() })
		t.Logf("death %d (%s): upstream FIB changed after %v; BIRD: %s / %s", i+1, dead.Name, d.Round(time.Millisecond), p.Info, p.LastError)
		// Back for the next round: the same process, thawed. Its sessions
		// come back within about a connect retry (map646 sets GoBGP's idle
		// hold time after a BFD reset to the connect retry, not 30 s).
		revived := time.Now()
		dead.Revive(t)
		l.WaitConverged(t, 30*time.Second)
		t.Logf("death %d (%s): back in both routers' FIBs %v after the revival", i+1, dead.Name, time.Since(revived).Round(time.Millisecond))
	}
	slices.Sort(times)
	t.Logf("BFD 100 ms x 3: silent death detected by the upstream in %v (median of %d: %v)", times[len(times)/2].Round(time.Millisecond), len(times), times)
	if times[len(times)/2] >= 500*time.Millisecond {
		t.Errorf("median detection %v, want under 0.5 s", times[len(times)/2])
	}
}

func bfdUp(s topo.Status, peer string) bool {
	for _, n := range s.Neighbors {
		if n.Address == peer {
			return n.BFD == "up"
		}
	}
	return false
}

// waitBIRDBFD waits until BIRD has n BFD sessions Up.
func waitBIRDBFD(t *testing.T, b *netlab.Bird, n int) {
	var out string
	if !poll.Until(20*time.Second, 50*time.Millisecond, func() bool {
		out = b.Cmd(t, "show", "bfd", "sessions")
		return strings.Count(out, " Up ") >= n
	}) {
		t.Fatalf("BIRD in %s: fewer than %d BFD sessions up:\n%s", b.NS.Role, n, out)
	}
}

// testDrain: a drain of the node that carries a ping every 10 ms and TCP
// transfers loses no packet and no byte: the routers first see
// GRACEFUL_SHUTDOWN and the drain MED on the node's routes, then the
// withdrawal; the node ends drained. The other node, now the last one,
// refuses a drain without -force. The drained state survives a restart;
// undrain puts the node back in both FIBs.
func testDrain(t *testing.T, bin string) {
	l := topo.New(t, topo.Options{Bin: bin})
	// TCP: servers on srv11 that hash what they read and send the hash back.
	ln := l.Servers[1].Listen(t, "tcp", "["+topo.Server11+"]:5001")
	go serveHash(ln)
	ping := l.Client.Start(t, "ping", "-n", "-i", "0.01", "-c", "1000", "-W", "1", topo.Public10)
	waitPinging(t, ping)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tcpErrs := make([]error, 4)
	tcpBytes := make([]int, 4)
	for i := range tcpErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tcpBytes[i], tcpErrs[i] = hashTransfer(l.Client, topo.Public11+":5001", stop)
		}()
	}

	// Drain the node that carries the ping (to srv10); the TCP flows (to
	// srv11) are hashed over both nodes.
	count := func(addr string) map[*topo.Node]float64 {
		m := map[*topo.Node]float64{}
		for _, n := range l.Nodes {
			m[n] = n.MappingPackets(t, addr, "4to6")
		}
		return m
	}
	ping0, tcp0 := count(topo.Public10), count(topo.Public11)
	time.Sleep(500 * time.Millisecond) // traffic to count: half a second of it
	ping1, tcp1 := count(topo.Public10), count(topo.Public11)
	drained := l.Tokyo
	if ping1[l.Osaka]-ping0[l.Osaka] > ping1[l.Tokyo]-ping0[l.Tokyo] {
		drained = l.Osaka
	}
	other := l.Other(drained)
	t.Logf("draining %s; in 0.5 s it carried %v ping and %v TCP packets, %s %v and %v", drained.Name,
		ping1[drained]-ping0[drained], tcp1[drained]-tcp0[drained], other.Name, ping1[other]-ping0[other], tcp1[other]-tcp0[other])
	if ping1[drained]-ping0[drained] < 20 {
		t.Fatalf("no node carries the ping (10 ms interval): %v -> %v", ping0, ping1)
	}

	// Watch the upstream's table during the drain: the drained node's path
	// must carry GRACEFUL_SHUTDOWN and the drain MED before it goes.
	watchDone := make(chan struct{})
	var sawGSHUT bool
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := l.Up.TryRoute(topo.Prefix4)
			if err == nil {
				for _, p := range r.From(drained.Name) {
					if med, _ := p.MED(); med == 1000 && p.HasCommunity("65535:0") {
						sawGSHUT = true
						return
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	out, err := drained.Drain(false)
	took := time.Since(start)
	t.Logf("map646 drain (%s, %v):\n%s", drained.Name, took.Round(time.Millisecond), out)
	if err != nil {
		t.Errorf("drain of %s: %v", drained.Name, err)
	}
	l.WaitRouted(t, 10*time.Second, other)
	drained.WaitState(t, "drained", 10*time.Second)
	if ping.Wait(0) == nil {
		t.Errorf("the ping ended before the drain did: the drain was not under traffic")
	}
	sent, recv := pingResult(t, ping)
	close(stop)
	wg.Wait()
	<-watchDone
	ping2 := count(topo.Public10)
	t.Logf("drain under traffic: ping every 10 ms %d sent, %d received; TCP bytes sent and verified per connection %v; ping packets carried in all: %s %v, %s %v",
		sent, recv, tcpBytes, drained.Name, ping2[drained], other.Name, ping2[other])
	if ping2[other] <= ping1[other] {
		t.Errorf("the ping did not move to %s (%v -> %v packets)", other.Name, ping1[other], ping2[other])
	}
	if sent == 0 || sent != recv {
		t.Errorf("ping through the drain: %d sent, %d received, want no loss", sent, recv)
	}
	for i, err := range tcpErrs {
		if err != nil {
			t.Errorf("TCP transfer %d: %v", i, err)
		}
	}
	if !sawGSHUT {
		t.Errorf("the upstream never saw %s's routes with GRACEFUL_SHUTDOWN and MED 1000 before the withdrawal", drained.Name)
	}

	// The other node is the last one: a drain is refused, nothing changes.
	out, err = other.Drain(false)
	t.Logf("map646 drain on the last node (%s): %v\n%s", other.Name, err, out)
	if err == nil {
		t.Errorf("the last node accepted a drain without -force:\n%s", out)
	}
	if s := other.Status(t); s.Node.State != "serving" || !s.Announces(topo.Prefix4) {
		t.Errorf("%s after a refused drain: state %s, announced %+v", other.Name, s.Node.State, s.Announced)
	}

	// Drained survives a restart.
	drained.Stop(t)
	drained.Start(t)
	drained.WaitState(t, "drained", 10*time.Second)
	l.Up.WaitEstablished(t, drained.Name, 15*time.Second)
	l.Back.WaitEstablished(t, drained.Name, 15*time.Second)
	if r := l.Up.Route(t, topo.Prefix4); len(r.From(drained.Name)) != 0 {
		t.Errorf("%s restarted drained but announces:\n%s", drained.Name, r.Raw)
	}
	if out, err := drained.Undrain(); err != nil {
		t.Errorf("undrain: %v\n%s", err, out)
	}
	l.WaitConverged(t, 10*time.Second)
	drained.WaitState(t, "serving", 5*time.Second)
}

// waitPinging waits for ping's first reply.
func waitPinging(t *testing.T, ping *netlab.Proc) {
	ping.WaitLine(t, 0, 10*time.Second, func(l string) bool { return strings.Contains(l, "bytes from") })
}

// pingResult waits for ping to end and returns its counts.
func pingResult(t *testing.T, ping *netlab.Proc) (sent, recv int) {
	ping.Wait(60 * time.Second)
	if !pingSummary.MatchString(ping.Output()) {
		t.Fatalf("no ping summary:\n%s", ping.Output())
	}
	return floodPing(ping.Output())
}

// serveHash answers each connection with the SHA-256 of what it read.
func serveHash(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			h := sha256.New()
			io.Copy(h, c)
			c.Write(h.Sum(nil))
		}()
	}
}

// hashTransfer sends random data at about 2 MB/s until stop, then checks
// the server's hash of it.
func hashTransfer(client *netlab.NS, addr string, stop <-chan struct{}) (int, error) {
	c, err := client.Dial("tcp", "", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	h := sha256.New()
	buf := make([]byte, 16<<10)
	n := 0
	tick := time.NewTicker(8 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-stop:
			done = true
			continue
		case <-tick.C:
		}
		rand.Read(buf)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return n, fmt.Errorf("write after %d bytes: %w", n, err)
		}
		h.Write(buf)
		n += len(buf)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return n, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("reading the hash: %w", err)
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		return n, fmt.Errorf("%d bytes sent, the server's SHA-256 %x differs from ours %x", n, got, h.Sum(nil))
	}
	return n, nil
}
