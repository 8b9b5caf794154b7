package lab

// BGP exposure against the real daemon, in the two-node lab of lab/topo
// (drawn in lab/peers_test.go), whose routers are BIRD 2 with
// `ttl security on` and the nodes with map646's defaults (GTSM on for
// directly connected neighbors, max_prefixes 1000 + the mappings):
//
//   - GTSM: tokyo gets one more neighbor, the client's address, passive.
//     The client is two hops away (behind the upstream): its connection to
//     port 179 must not even open (the listener's minimum TTL drops the
//     SYN, which arrives with TTL 63), while the BIRD sessions, sent with
//     TTL 255, are Established.
//   - Prefix limit: the upstream exports 10,000 routes to tokyo. tokyo
//     must close the session with a Cease "Maximum Number of Prefixes
//     Reached" (BIRD's last error says so), hold none of them, keep its
//     resident memory bounded, and keep serving: its other sessions stay
//     up and pings across the lab are answered. With the flood gone the
//     session comes back once the one-minute restart delay is over.
//
// Run as root (about two minutes; -short skips it):
//
//	go test ./lab -run TestBGPExposure -v

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

const floodRoutes = 10000

func TestBGPExposure(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the exposure lab takes about two minutes")
	}
	netlab.Need(t, "ip", "bird", "birdc", "ping")
	l := topo.New(t, topo.Options{NoStart: true})
	// A configured neighbor two hops away: the client, behind the upstream.
	l.Tokyo.Config.Extra = fmt.Sprintf("[[bgp.neighbor]]\naddress = %q\npeer_as = 64999\ndescription = \"two hops away\"\npassive = true\n", topo.Client4)
	for _, n := range l.Nodes {
		n.Start(t)
	}
	l.WaitConverged(t, 30*time.Second)

	testGTSMTwoHops(t, l)
	testPrefixFlood(t, l)
}

func testGTSMTwoHops(t *testing.T, l *topo.Lab) {
	for _, p := range []string{"tokyo", "osaka"} {
		if pr := l.Up.Protocol(t, p); !pr.Established() {
			t.Fatalf("upstream's session %s with ttl security on both ends: %s (%s)", p, pr.BGPState, pr.LastError)
		}
	}
	c, err := l.Client.Dial("tcp", topo.Client4, l.Tokyo.Addr4+":179", 3*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("the client, a configured neighbor two hops away, opened a TCP connection to tokyo's port 179 under GTSM")
	}
	// Dropped SYNs: a timeout, not a refusal or an unreachable route.
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("connecting from two hops away to tokyo: %v; want a timeout (SYN dropped for its TTL)", err)
	}
	// The control: the client reaches tokyo (ICMP both ways), so only the
	// TTL stops the connection.
	if out, err := l.Client.Exec(5*time.Second, "ping", "-n", "-c", "1", "-W", "2", l.Tokyo.Addr4); err != nil {
		t.Fatalf("control: the client cannot ping tokyo (%v), so the GTSM check proves nothing:\n%s", err, out)
	}
	t.Logf("GTSM: a configured neighbor two hops away connecting to tokyo's port 179: %v (tokyo answers its ping)", err)
}

func testPrefixFlood(t *testing.T, l *topo.Lab) {
	before := rssKB(t, l.Tokyo.M.PID())
	orig := birdConf(t, l.Up)
	protoLine := fmt.Sprintf("protocol bgp tokyo from xlatpeer { neighbor %s as %d; }", l.Tokyo.Addr4, topo.NodeAS)
	if !strings.Contains(orig, protoLine) {
		t.Fatalf("the upstream's configuration has no line %q:\n%s", protoLine, orig)
	}
	// 10,000 /32s of 198.18.0.0/15 (RFC 2544, never routed), blackholes
	// in BIRD only: the kernel protocol does not export them.
	var flood strings.Builder
	flood.WriteString("protocol static flood { ipv4;\n")
	for i := range floodRoutes {
		fmt.Fprintf(&flood, "  route 198.18.%d.%d/32 blackhole;\n", i/250, i%250)
	}
	flood.WriteString("}\n")
	conf := strings.Replace(orig, protoLine, fmt.Sprintf(
		"protocol bgp tokyo from xlatpeer { neighbor %s as %d; ipv4 { import filter from_xlat; export where proto = \"flood\"; }; }",
		l.Tokyo.Addr4, topo.NodeAS), 1) + flood.String()
	ping := l.Client.Start(t, "ping", "-n", "-i", "0.05", "-W", "1", topo.Public10)
	waitPinging(t, ping)
	flooded := time.Now()
	l.Up.Configure(t, conf)

	p := l.Up.WaitProtocol(t, "tokyo", 30*time.Second, "the session closed for the prefix limit", func(p netlab.BirdProtocol) bool {
		return strings.Contains(strings.ToLower(p.LastError), "maximum number of prefixes")
	})
	t.Logf("upstream's session with tokyo %v after the flood began: %s, last error %q", time.Since(flooded).Round(time.Millisecond), p.BGPState, p.LastError)

	// tokyo holds nothing from the upstream and keeps serving.
	time.Sleep(2 * time.Second) // BIRD retries within its error wait time; GoBGP refuses it for a minute
	st := l.Tokyo.Status(t)
	if st.Node.State != "serving" {
		t.Errorf("tokyo's state after the flood: %s, want serving", st.Node.State)
	}
	for _, n := range st.Neighbors {
		switch n.Address {
		case topo.Upstream4:
			if n.Established || n.Received != 0 || !strings.Contains(n.LastError, "Maximum Number of Prefixes") {
				t.Errorf("tokyo's upstream session after the flood: established %v, %d prefixes received, last error %q; want down, none held, the prefix limit named", n.Established, n.Received, n.LastError)
			}
		case topo.Backend6, l.Osaka.Addr4:
			if !n.Established {
				t.Errorf("tokyo's session with %s went down during the flood: %s", n.Address, n.LastError)
			}
		}
	}
	after := rssKB(t, l.Tokyo.M.PID())
	t.Logf("tokyo's resident memory: %d KiB before the flood, %d KiB after (+%d KiB)", before, after, after-before)
	// The Adj-RIB-In is dropped with the session; what may stay is Go's
	// heap grown by one limit's worth of routes (about 1,000 paths).
	if after-before > 32*1024 {
		t.Errorf("tokyo's resident memory grew by %d KiB with the flood; want under 32 MiB", after-before)
	}

	// Pings across the lab, every 50 ms from before the flood, are all
	// answered: by osaka alone from the upstream once tokyo's session is
	// down, the replies through either node.
	if err := ping.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent, recv := pingResult(t, ping)
	unanswered := unansweredEchoes(ping.Lines(), sent)
	t.Logf("ping every 50 ms across the flood: %d sent, %d received, unanswered %v", sent, recv, unanswered)
	if sent == 0 || len(unanswered) > 1 || len(unanswered) == 1 && unanswered[0] != sent {
		t.Errorf("ping: %d sent, %d received, unanswered echoes %v; want every echo answered (but the last, in flight when ping was stopped)", sent, recv, unanswered)
	}

	// The flood stops; the session comes back after the restart delay.
	l.Up.Configure(t, orig)
	up := l.Up.WaitEstablished(t, "tokyo", 100*time.Second)
	t.Logf("flood withdrawn: session Established again %v after the limit (restart delay 1 min): %s", time.Since(flooded).Round(time.Second), up.BGPState)
}

// rssKB returns the resident set size of process pid in KiB.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
