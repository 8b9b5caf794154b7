package lab

// Misbehaving peers against the real daemon, with BIRD 2 as the routers in
// the two-node lab of lab/topo (drawn in its package comment):
//
//	client4 ── upstream (BIRD) ──[sw4]──┬── tokyo (map646) ──[sw6]──┬── backend (BIRD) ── srv10, srv11
//	                                    └── osaka (map646) ─────────┘
//
// TestPeers proves, while the client pings srv10 every 10 ms through
// whichever node the upstream picks:
//
//   - Flaps: the upstream's session to tokyo is disabled and enabled three
//     times, then restarted (birdc disable / enable / restart). What must
//     hold: no ping is lost (while the session is down the upstream routes
//     over osaka alone, and tokyo still translates the replies, since the
//     backend session is untouched); after each re-establishment the
//     upstream holds from tokyo exactly tokyo's IPv4 prefix, with MED 100,
//     no community, AS path 65001 and next hop tokyo, and routes over both
//     nodes again; tokyo stays "serving" and its log has a "neighbor down"
//     line naming the upstream and the Cease for each flap.
//   - Our prefixes back: the upstream then exports its BGP routes back to
//     the nodes (each node gets the other's path to the mapped prefix, AS
//     path 65000 65001: our own AS), and the backend the pseudo prefix with
//     65001 deleted from the path (a plain route of AS 65002, no loop). The
//     nodes receive them (status: prefixes received), keep them out of
//     their RIBs (the gobgp CLI over the gRPC socket: one path, ours), and
//     their announcements and the routers' tables do not change.
//   - Security of the running daemon: its control socket refuses user
//     nobody (permission denied; with the socket made 0666 for a moment,
//     nobody connects: the control case), and in the node's namespace
//     nothing listens on TCP but BGP (179) and the metrics address: the
//     gRPC API is on its unix socket only.
//
// Run as root (about a minute; -short skips it):
//
//	go test ./lab -run TestPeers -v

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
)

func TestPeers(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the peers lab takes about a minute")
	}
	netlab.Need(t, "ip", "bird", "birdc", "ping", "nstat", "ss")
	bin := netlab.BuildMap646(t)
	gobgp := buildGobgp(t)
	start := time.Now()
	l := topo.New(t, topo.Options{Bin: bin, GRPC: true})
	t.Logf("lab up in %v", time.Since(start).Round(time.Millisecond))

	// A ping every 10 ms for the whole test, stopped with SIGINT at the end.
	ping := l.Client.Start(t, "ping", "-n", "-i", "0.01", "-W", "1", topo.Public10)
	waitPinging(t, ping)

	checkExactFromNode(t, l, l.Tokyo)
	testSessionFlaps(t, l)
	testPrefixesBack(t, l, gobgp)
	testDaemonSockets(t, l, bin)

	if err := ping.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent, recv := pingResult(t, ping)
	unanswered := unansweredEchoes(ping.Lines(), sent)
	t.Logf("ping every 10 ms across all of it: %d sent, %d received, unanswered %v", sent, recv, unanswered)
	// ping exits at SIGINT without waiting for the echo in flight, so the
	// last one may go unanswered; any other is a loss.
	if sent == 0 || len(unanswered) > 1 || len(unanswered) == 1 && unanswered[0] != sent {
		t.Errorf("ping: %d sent, %d received, unanswered echoes %v; want every echo answered (but the last, in flight when ping was stopped)", sent, recv, unanswered)
	}
	t.Logf("TestPeers took %v", time.Since(start).Round(time.Millisecond))
}

var icmpSeq = regexp.MustCompile(`bytes from .*icmp_seq=(\d+) `)

// unansweredEchoes returns the sequence numbers from 1 to sent that have
// no reply line in ping's output.
func unansweredEchoes(lines []string, sent int) []int {
	answered := make(map[int]bool)
	for _, l := range lines {
		if m := icmpSeq.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			answered[n] = true
		}
	}
	var missing []int
	for seq := 1; seq <= sent; seq++ {
		if !answered[seq] {
			missing = append(missing, seq)
		}
	}
	return missing
}

// birdPrefixes lists the prefixes BIRD holds from protocol proto.
func birdPrefixes(t *testing.T, b *netlab.Bird, proto string) []string {
	t.Helper()
	out := b.Cmd(t, "show", "route", "protocol", proto)
	var got []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		if strings.Contains(f[0], "/") {
			got = append(got, f[0])
		}
	}
	slices.Sort(got)
	return got
}

// checkExactFromNode checks that the upstream holds from node exactly its
// IPv4 prefix with the serving attributes.
func checkExactFromNode(t *testing.T, l *topo.Lab, n *topo.Node) {
	t.Helper()
	r := l.Up.WaitRoute(t, topo.Prefix4, 10*time.Second, "a path from "+n.Name, func(r netlab.BirdRoute) bool { return len(r.From(n.Name)) == 1 })
	p := r.From(n.Name)[0]
	med, ok := p.MED()
	var via []string
	for _, h := range p.NextHops {
		via = append(via, h.Via.String())
	}
	if !ok || med != 100 || len(p.Communities()) != 0 || p.Attrs["BGP.as_path"] != "65001" || !slices.Equal(via, []string{n.Addr4}) {
		t.Errorf("upstream's path from %s: MED %d (%v), communities %q, AS path %q, via %v; want MED 100, none, 65001, via %s",
			n.Name, med, ok, p.Communities(), p.Attrs["BGP.as_path"], via, n.Addr4)
	}
	if got := birdPrefixes(t, l.Up, n.Name); !slices.Equal(got, []string{topo.Prefix4}) {
		t.Errorf("upstream holds from %s %v; want exactly [%s]", n.Name, got, topo.Prefix4)
	}
}

// downLines counts the lines of node's log that say its session with peer
// went down.
func downLines(n *topo.Node, peer string) []string {
	var out []string
	for _, line := range n.M.Lines() {
		if strings.Contains(line, "neighbor down") && strings.Contains(line, peer) {
			out = append(out, line)
		}
	}
	return out
}

func testSessionFlaps(t *testing.T, l *topo.Lab) {
	steps := []struct {
		cmd    string
		reason string // in tokyo's "neighbor down" line
	}{
		{"disable", "administrative shutdown"},
		{"disable", "administrative shutdown"},
		{"disable", "administrative shutdown"},
		{"restart", "cease"},
	}
	for i, s := range steps {
		before := len(downLines(l.Tokyo, topo.Upstream4))
		t0 := time.Now()
		l.Up.Cmd(t, s.cmd, "tokyo")
		if s.cmd == "disable" {
			_, at := l.Upstream.WaitFIB(t, topo.Prefix4, 5*time.Second, "via osaka alone", topo.Multipath(l.Osaka.Addr4))
			t.Logf("flap %d: birdc disable -> upstream FIB via osaka alone in %v", i+1, at.Sub(t0).Round(time.Millisecond))
			l.Up.Cmd(t, "enable", "tokyo")
		}
		// tokyo logged the session going down, with the Cease.
		poll.Until(10*time.Second, 20*time.Millisecond, func() bool { return len(downLines(l.Tokyo, topo.Upstream4)) != before })
		lines := downLines(l.Tokyo, topo.Upstream4)
		if len(lines) != before+1 {
			t.Fatalf("flap %d (birdc %s): %d new \"neighbor down\" lines for the upstream in tokyo's log, want 1", i+1, s.cmd, len(lines)-before)
		}
		if last := lines[len(lines)-1]; !strings.Contains(strings.ToLower(last), s.reason) {
			t.Errorf("flap %d: tokyo's log line does not name the %s: %s", i+1, s.reason, last)
		}
		l.Up.WaitEstablished(t, "tokyo", 20*time.Second)
		_, at := l.Upstream.WaitFIB(t, topo.Prefix4, 10*time.Second, "via both nodes", topo.Multipath(topo.Gateways4(l.Nodes...)...))
		checkExactFromNode(t, l, l.Tokyo)
		if st := l.Tokyo.Status(t); st.Node.State != "serving" {
			t.Errorf("flap %d: tokyo is %q (%s), want serving: a router's session is not the node's health", i+1, st.Node.State, st.Node.Cause)
		}
		t.Logf("flap %d (birdc %s tokyo): back in the upstream's FIB %v after the command; tokyo logged: %s", i+1, s.cmd, at.Sub(t0).Round(time.Millisecond), lines[len(lines)-1])
	}
	// The other sessions never moved.
	if n := len(downLines(l.Tokyo, topo.Backend6)); n != 0 {
		t.Errorf("tokyo's backend session went down %d times during the upstream's flaps", n)
	}
	if n := len(downLines(l.Osaka, topo.Upstream4)); n != 0 {
		t.Errorf("osaka's upstream session went down %d times during tokyo's flaps", n)
	}
}

// birdConf returns BIRD's configuration as written by topo, without the
// log line netlab puts in front (Configure puts it back).
func birdConf(t *testing.T, b *netlab.Bird) string {
	t.Helper()
	c, err := os.ReadFile(b.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(string(c), "log stderr all;\n")
}

func testPrefixesBack(t *testing.T, l *topo.Lab, gobgp string) {
	upConf, backConf := birdConf(t, l.Up), birdConf(t, l.Back)
	if !strings.Contains(upConf, "export none;") || !strings.Contains(backConf, "export none;") {
		t.Fatalf("the routers' configurations changed shape (no \"export none;\"):\n%s\n%s", upConf, backConf)
	}
	// The upstream echoes what it learned (the other node's path, with
	// 65001 in it); the backend strips 65001, so the pseudo prefix comes
	// back as a plain route of AS 65002.
	l.Up.Configure(t, strings.Replace(upConf, "export none;", "export where source = RTS_BGP;", 1))
	l.Back.Configure(t, strings.Replace(backConf, "export none;",
		"export filter { if source != RTS_BGP then reject; bgp_path = delete(bgp_path, 65001); accept; };", 1))

	// Wait until the echoes arrived: every node's status counts what it
	// received from each router.
	received := func(peer string) (total int, by map[string]int) {
		by = map[string]int{}
		for _, n := range l.Nodes {
			for _, nb := range n.Status(t).Neighbors {
				if nb.Address == peer {
					by[n.Name] = nb.Received
					total += nb.Received
				}
			}
		}
		return total, by
	}
	var up, back map[string]int
	if !poll.Until(20*time.Second, 50*time.Millisecond, func() bool {
		var nu, nb int
		nu, up = received(topo.Upstream4)
		nb, back = received(topo.Backend6)
		return nu >= 1 && nb >= 1
	}) {
		t.Fatalf("the routers' echoes did not arrive within 20 s: received from the upstream %v, from the backend %v", up, back)
	}
	t.Logf("echoes received: from the upstream %v, from the backend %v", up, back)

	for _, n := range l.Nodes {
		st := n.Status(t)
		var got []string
		for _, a := range st.Announced {
			got = append(got, fmt.Sprintf("%s med %d %v", a.Prefix, a.MED, a.Communities))
		}
		want := []string{topo.Prefix4 + " med 100 []", topo.Pseudo + " med 100 []"}
		if !slices.Equal(got, want) || st.Node.State != "serving" {
			t.Errorf("%s with our prefixes echoed: %s, announces %q; want serving, %q", n.Name, st.Node.State, got, want)
		}
		if gobgp == "" {
			continue
		}
		target := "unix://" + n.Config.BGP.GRPCSocket
		for _, c := range []struct{ fam, prefix, peer string }{{"ipv4", topo.Prefix4, topo.Upstream4}, {"ipv6", topo.Pseudo, topo.Backend6}} {
			rib := n.NS.Run(t, gobgp, "--target", target, "global", "rib", "-a", c.fam, c.prefix)
			if k := strings.Count(rib, c.prefix); k != 1 {
				t.Errorf("gobgp: %s's RIB has %d paths to %s, want 1, its own:\n%s", n.Name, k, c.prefix, rib)
			}
			adjIn := n.NS.Run(t, gobgp, "--target", target, "neighbor", c.peer, "adj-in", "-a", c.fam)
			// Where the echo arrived, the RIB check above is the one that
			// matters: the route is there, one table away.
			if echoed := map[string]map[string]int{topo.Upstream4: up, topo.Backend6: back}[c.peer][n.Name] > 0; echoed && !strings.Contains(adjIn, c.prefix) {
				t.Errorf("gobgp: %s counts a route received from %s but its Adj-RIB-In has no %s:\n%s", n.Name, c.peer, c.prefix, adjIn)
			}
			t.Logf("%s: gobgp global rib -a %s %s:\n%s\n%s: gobgp neighbor %s adj-in -a %s:\n%s", n.Name, c.fam, c.prefix, rib, n.Name, c.peer, c.fam, adjIn)
		}
	}
	// The routers still hold exactly one path per node, unchanged, and
	// route over both.
	for _, n := range l.Nodes {
		checkExactFromNode(t, l, n)
	}
	l.Back.WaitRoute(t, topo.Pseudo, 5*time.Second, "a path from each node", func(r netlab.BirdRoute) bool {
		return len(r.From("tokyo")) == 1 && len(r.From("osaka")) == 1
	})
	l.WaitConverged(t, 5*time.Second)
	for _, n := range l.Nodes {
		for _, peer := range []string{topo.Upstream4, topo.Backend6} {
			if k := len(downLines(n, peer)); n == l.Osaka && k != 0 || n == l.Tokyo && peer == topo.Backend6 && k != 0 {
				t.Errorf("%s's session with %s went down %d times", n.Name, peer, k)
			}
		}
	}
}

// testDaemonSockets checks the running tokyo's sockets.
func testDaemonSockets(t *testing.T, l *topo.Lab, bin string) {
	// TCP listeners in tokyo's namespace: BGP and metrics only.
	out := l.Tokyo.NS.Run(t, "ss", "-Hltn")
	metrics := strings.TrimSuffix(strings.TrimPrefix(l.Tokyo.M.MetricsURL, "http://"), "/metrics")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local := f[3]
		if !strings.HasSuffix(local, ":179") && local != metrics {
			t.Errorf("tokyo's namespace listens on TCP %s (only BGP :179 and metrics %s expected; the gRPC API must be on its unix socket)", local, metrics)
		}
	}
	t.Logf("TCP listeners in tokyo's namespace:\n%s", out)

	// The control socket as user nobody. The lab's directory is 0700:
	// open it for the test so that the socket's own mode is what refuses.
	sock := l.Tokyo.Config.ControlSocket
	dir := filepath.Dir(sock)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, fi.Mode().Perm())
	if si, err := os.Stat(sock); err != nil || si.Mode().Perm() != 0o600 {
		t.Errorf("control socket %s: %v, mode %v; want 0600", sock, err, si.Mode().Perm())
	}
	nbin := copyForNobody(t, bin)
	asNobody := func() (string, error) {
		cmd := exec.Command(nbin, "status", "-socket", sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		b, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	res, err := asNobody()
	if err == nil || !strings.Contains(res, "permission denied") {
		t.Errorf("map646 status as user nobody: err %v, output %q; want permission denied", err, res)
	}
	t.Logf("map646 status as user nobody: %s", res)
	// Control case: with the socket 0666 for a moment, nobody gets an answer.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	res, err = asNobody()
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	// map646 status exits 0 to 2 when it got an answer (by the node's
	// state), 3 when it did not.
	if !topo.StatusAnswered(err) || !strings.Contains(res, "serving") {
		t.Errorf("control case: nobody with the socket 0666: err %v, output %q; want tokyo's status (the test cannot tell otherwise)", err, res)
	}
}

// copyForNobody copies bin into a directory user nobody can enter.
func copyForNobody(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "m646-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "map646")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnansweredEchoes: echoes without a reply line are found, whatever
// else ping printed.
func TestUnansweredEchoes(t *testing.T) {
	out := []string{
		"PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.",
		"64 bytes from 198.51.100.10: icmp_seq=1 ttl=62 time=0.101 ms",
		"64 bytes from 198.51.100.10: icmp_seq=2 ttl=62 time=0.093 ms",
		"64 bytes from 198.51.100.10: icmp_seq=4 ttl=62 time=0.110 ms",
		"--- 198.51.100.10 ping statistics ---",
		"5 packets transmitted, 3 received, 40% packet loss, time 41ms",
	}
	if got := unansweredEchoes(out, 5); !slices.Equal(got, []int{3, 5}) {
		t.Errorf("unanswered %v, want [3 5]", got)
	}
	if got := unansweredEchoes(out[:4], 2); got != nil {
		t.Errorf("unanswered %v, want none", got)
	}
}
