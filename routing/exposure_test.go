package routing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Proves: with TTLSecurity a neighbor whose packets arrive with a TTL
// below 255 (one that is more than one hop away, or lies about its
// address from afar) cannot even open the TCP connection: the listener's
// minimum TTL drops its SYN (GoBGP alone would set it on the accepted
// socket only, after reading an OPEN sent at once; see gtsm.go). The same
// peer sending with TTL 255 (directly connected) gets its session. On
// loopback the TTL arrives as sent.
func TestTTLSecurity(t *testing.T) {
	port := freePort(t)
	far, near := netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("127.0.2.2")
	var neighbors []Neighbor
	for _, a := range []netip.Addr{far, near} {
		n := testNeighbor(a, 65000, port, IPv4Unicast)
		n.Passive, n.TTLSecurity = true, true
		neighbors = append(neighbors, n)
	}
	s := newTestSpeaker(t, addrS, 65001, port, neighbors...)

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: far.AsSlice()}, Timeout: 3 * time.Second,
		Control: func(_, _ string, c syscall.RawConn) error {
			return setsockopts(c, [][3]int{{syscall.IPPROTO_IP, syscall.IP_TTL, 254}}) // as if one router away
		}}
	c, err := d.Dial("tcp", netip.AddrPortFrom(addrS, uint16(port)).String())
	if err == nil {
		c.Close()
		t.Fatalf("a peer sending with TTL 254 opened a TCP connection to the listener under TTL security")
	}
	if s.Established(far) {
		t.Errorf("session with a peer sending with TTL 254 Established under TTL security")
	}
	dialRawTTL(t, s, near, port, 255)
	t.Logf("TTL 254: %v; TTL 255: Established", err)
}

// Proves: the listener demands TTL 255 only when every neighbor has TTL
// security: one multihop or unprotected neighbor must still reach it.
func TestListenerMinTTL(t *testing.T) {
	gtsm := Neighbor{TTLSecurity: true}
	for _, c := range []struct {
		neighbors []Neighbor
		want      int
	}{
		{nil, 0},
		{[]Neighbor{gtsm}, 255},
		{[]Neighbor{gtsm, gtsm}, 255},
		{[]Neighbor{gtsm, {MultihopTTL: 2}}, 0},
		{[]Neighbor{{}}, 0},
	} {
		if got := listenerMinTTL(c.neighbors); got != c.want {
			t.Errorf("listenerMinTTL(%+v) = %d, want %d", c.neighbors, got, c.want)
		}
	}
}

// dialRawTTL is dialRaw with the raw peer's packets sent with ttl.
func dialRawTTL(t *testing.T, s *Speaker, addr netip.Addr, port, ttl int) *rawPeer {
	t.Helper()
	p := connectRaw(t, addr, port, ttl)
	p.open()
	waitEstablished(t, s, addr)
	return p
}

// Proves: a neighbor that sends more prefixes than MaxPrefixes gets a
// Cease "Maximum Number of Prefixes Reached" (RFC 4486 subcode 1) and its
// connection is closed, what it sent is dropped (the Adj-RIB-In is
// empty), the other session is untouched, the neighbor is refused until
// prefixLimitRestart has passed and then gets a session again.
func TestPrefixLimit(t *testing.T) {
	defer func(d time.Duration) { prefixLimitRestart = d }(prefixLimitRestart)
	prefixLimitRestart = 2 * time.Second

	port := freePort(t)
	leaky := netip.MustParseAddr("127.0.2.3")
	n := testNeighbor(leaky, 65000, port, IPv4Unicast)
	n.Passive, n.HoldTime, n.KeepaliveTime, n.MaxPrefixes = true, 90*time.Second, 30*time.Second, 1000
	s, logs := newLoggedSpeaker(t, Config{
		LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port,
		Neighbors: []Neighbor{n, testNeighbor(addrR3, 65003, port, IPv4Unicast)},
	})
	newTestRouter(t, addrR3, 65003, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR3)
	r3Since := neighborStatus(t, s, addrR3).Since

	p := dialRaw(t, s, leaky, port)
	sent := sendPrefixes(p, 10000)
	deadline := time.After(testWait)
	for {
		if m, closed := p.notification(); m != nil && closed {
			if m.body[0] != bgp.BGP_ERROR_CEASE || m.body[1] != bgp.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED {
				t.Fatalf("the speaker sent %v; want Cease / Maximum Number of Prefixes Reached", m)
			}
			break
		}
		select {
		case <-p.notify:
		case <-deadline:
			m, closed := p.notification()
			t.Fatalf("after %d prefixes: NOTIFICATION %v, closed %v; want Cease 6/1 and the connection closed", sent, m, closed)
		}
	}
	waitDown(t, s, leaky)
	if in := adjInPaths(t, s.bgp, leaky, bgp.RF_IPv4_UC); len(in) != 0 {
		t.Errorf("%d prefixes of the closed session still in its Adj-RIB-In", len(in))
	}
	if ns := neighborStatus(t, s, leaky); !strings.Contains(ns.LastError, "prefixes") {
		t.Errorf("LastError %q does not say why", ns.LastError)
	}
	if len(logs.await("more prefixes than max_prefixes", "peer="+leaky.String())) == 0 {
		t.Errorf("no warning about the prefix limit in the log")
	}
	closedAt := time.Now()
	if tryRaw(s, leaky, port) {
		t.Errorf("the neighbor got a session again at once, before the restart delay")
	}
	// Back after the restart delay and GoBGP's idle hold (up to 5 s).
	for !tryRaw(s, leaky, port) {
		if time.Since(closedAt) > testWait {
			t.Fatalf("no session with %s %v after its prefix limit (restart delay %v)", leaky, testWait, prefixLimitRestart)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ns := neighborStatus(t, s, addrR3); !ns.Established || !ns.Since.Equal(r3Since) {
		t.Errorf("the other session changed: %+v", ns)
	}
	t.Logf("%d prefixes sent; Cease 6/1; session back %v after the close", sent, time.Since(closedAt).Round(100*time.Millisecond))
}

// sendPrefixes sends n distinct /32 routes in UPDATEs of at most 800
// prefixes (within the 4096-byte message limit) and returns how many went
// out before the speaker closed the connection.
func sendPrefixes(p *rawPeer, n int) int {
	attrs := concat(attrOrigin, attrASPath, attrNextHop(p.addr))
	sent := 0
	for sent < n {
		var nlri []byte
		for i := 0; i < 800 && sent+i < n; i++ {
			k := sent + i
			nlri = append(nlri, nlri4(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}), 32))...)
		}
		if _, err := p.conn.Write(update(nil, attrs, nlri)); err != nil {
			return sent
		}
		sent += len(nlri) / 5
	}
	return sent
}

// Proves: connections from addresses that are not neighbors are logged at
// most once per address and refusedLinesPerWindow times in all per
// window: 20 connections from one address and one from each of 19 others
// make 10 lines, not 39.
func TestRefusedConnectionsLogged(t *testing.T) {
	port := freePort(t)
	s, logs := newLoggedSpeaker(t, Config{
		LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port,
		Neighbors: []Neighbor{testNeighbor(addrR3, 65003, port, IPv4Unicast)},
	})
	_ = s
	stranger := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 3, byte(100 + i)}) }
	var from []netip.Addr
	for range 20 {
		from = append(from, stranger(0))
	}
	for i := 1; i < 20; i++ {
		from = append(from, stranger(i))
	}
	for _, a := range from {
		// GoBGP logs, then closes: EOF means the line is written.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: a.AsSlice()}, Timeout: testWait}
		c, err := d.Dial("tcp", netip.AddrPortFrom(addrS, uint16(port)).String())
		if err != nil {
			t.Fatalf("connect from %s: %v", a, err)
		}
		c.SetReadDeadline(time.Now().Add(testWait))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection from %s: %v; want it closed by the speaker", a, err)
		}
		c.Close()
	}
	lines := logs.grep(gobgpRefusedMsg)
	if len(lines) != refusedLinesPerWindow {
		t.Fatalf("%d lines about refused connections, want %d:\n%s", len(lines), refusedLinesPerWindow, strings.Join(lines, "\n"))
	}
	if n := len(logs.grep(gobgpRefusedMsg, "Key="+stranger(0).String())); n != 1 {
		t.Errorf("%d lines for %s, want 1", n, stranger(0))
	}
	t.Logf("%d connections from %d addresses: %d lines", len(from), 20, len(lines))
}

// Proves: what the window left out is summed up in one line when it ends,
// and the next window logs again.
func TestRefusedLogSummary(t *testing.T) {
	var out []string
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var pending func()
	l := newRefusedLog(func(r slog.Record) {
		line := r.Message
		r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
		out = append(out, line)
	})
	l.now = func() time.Time { return now }
	l.after = func(d time.Duration, f func()) {
		if d != refusedWindow-time.Second {
			t.Errorf("summary scheduled in %v, want at the end of the window (%v)", d, refusedWindow-time.Second)
		}
		pending = f
	}
	rec := func(a string) {
		r := slog.NewRecord(now, slog.LevelInfo, gobgpRefusedMsg, 0)
		r.AddAttrs(slog.String("Key", a))
		from, ok := refusedSource(r)
		if !ok || from.String() != a {
			t.Fatalf("refusedSource = %v %v", from, ok)
		}
		l.refused(r, from)
	}
	rec("192.0.2.1")
	now = now.Add(time.Second)
	for i := range 30 {
		rec(fmt.Sprintf("198.51.100.%d", i%15)) // 9 new ones logged, the rest counted
	}
	if len(out) != refusedLinesPerWindow || pending == nil {
		t.Fatalf("%d lines, summary scheduled %v; want %d and a summary:\n%s", len(out), pending != nil, refusedLinesPerWindow, strings.Join(out, "\n"))
	}
	now = now.Add(refusedWindow)
	pending()
	if want := "not_logged=21"; !strings.Contains(out[len(out)-1], want) {
		t.Errorf("summary %q, want %s", out[len(out)-1], want)
	}
	rec("192.0.2.1")
	if len(out) != refusedLinesPerWindow+2 {
		t.Errorf("the next window did not log the address again: %q", out)
	}
}

// Proves: the prefix limit bounds the memory a neighbor can make GoBGP
// hold. A peer sends 10,000 routes to a neighbor without a limit and to
// one with MaxPrefixes 1000; GoBGP's heap (after a GC) grows by what the
// routes cost in the first case and by little in the second.
func TestPrefixLimitMemory(t *testing.T) {
	growth := map[uint32]float64{}
	for _, limit := range []uint32{0, 1000} {
		port := freePort(t)
		a := netip.MustParseAddr("127.0.2.50")
		n := testNeighbor(a, 65000, port, IPv4Unicast)
		n.Passive, n.HoldTime, n.KeepaliveTime, n.MaxPrefixes = true, 90*time.Second, 30*time.Second, limit
		s, _ := newLoggedSpeaker(t, Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{n}})
		before := heapBytes()
		p := dialRaw(t, s, a, port)
		sent := sendPrefixes(p, 10000)
		var held int
		if limit == 0 {
			pollUntil(t, "10,000 routes in the Adj-RIB-In", func() bool { return len(adjInPaths(t, s.bgp, a, bgp.RF_IPv4_UC)) == sent })
			held = sent
		} else {
			pollUntil(t, "the session closed", func() bool { _, closed := p.notification(); return closed })
			waitDown(t, s, a)
		}
		growth[limit] = float64(heapBytes()-before) / (1 << 20)
		t.Logf("max_prefixes %d: %d routes sent, %d held, GoBGP's heap +%.1f MB", limit, sent, held, growth[limit])
		p.conn.Close()
		s.Close(context.Background())
	}
	if growth[0] < 2 || growth[1000] > growth[0]/3 {
		t.Errorf("heap growth: %.1f MB without a limit, %.1f MB with max_prefixes 1000; want the routes to cost megabytes and the limit to keep most of it away", growth[0], growth[1000])
	}
}

func heapBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// Proves: the listener's GTSM works for IPv6 too (IPV6_MINHOPCOUNT): a
// neighbor whose packets arrive with hop limit 254 cannot connect, with
// 255 it can. The neighbor is ::1, the speaker listens on ::1.
func TestTTLSecurityIPv6(t *testing.T) {
	port := freePort(t)
	lo6 := netip.IPv6Loopback()
	n := testNeighbor(lo6, 65000, port, IPv6Unicast)
	n.Passive, n.TTLSecurity = true, true
	s, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{lo6}, ListenPort: port, Neighbors: []Neighbor{n}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	dial := func(hops int) (net.Conn, error) {
		d := net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			return setsockopts(c, [][3]int{{syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, hops}})
		}}
		return d.Dial("tcp6", netip.AddrPortFrom(lo6, uint16(port)).String())
	}
	if c, err := dial(254); err == nil {
		c.Close()
		t.Fatalf("a peer sending with hop limit 254 connected under TTL security")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("hop limit 254: %v; want a timeout (SYN dropped)", err)
	}
	c, err := dial(255)
	if err != nil {
		t.Fatalf("hop limit 255: %v", err)
	}
	c.Close()
}

// Proves: a reload that adds a neighbor without TTL security opens the
// listener to any TTL (that neighbor must be able to connect), and one
// that removes it closes it again.
func TestListenerGTSMReload(t *testing.T) {
	port := freePort(t)
	gtsm := testNeighbor(netip.MustParseAddr("127.0.2.60"), 65000, port, IPv4Unicast)
	gtsm.Passive, gtsm.TTLSecurity = true, true
	plain := testNeighbor(netip.MustParseAddr("127.0.2.61"), 65000, port, IPv4Unicast)
	plain.Passive = true
	cfg := Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: []Neighbor{gtsm}}
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	opens := func() bool {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: plain.Address.AsSlice()}, Timeout: time.Second}
		c, err := d.Dial("tcp", netip.AddrPortFrom(addrS, uint16(port)).String()) // TTL 64
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if opens() {
		t.Fatalf("TTL 64 connection opened while every neighbor has TTL security")
	}
	cfg.Neighbors = []Neighbor{gtsm, plain}
	if err := s.Reconfigure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !opens() {
		t.Fatalf("after adding a neighbor without TTL security, its TTL 64 connection does not open")
	}
	cfg.Neighbors = []Neighbor{gtsm}
	if err := s.Reconfigure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if opens() {
		t.Fatalf("after removing it, a TTL 64 connection opens again")
	}
}
