package lab

// Issue 13 against the real binary, in the first lab's topology
// (lab_test.go):
//
//   - PMTUUnderTTLFlood (point 5): a flood of TTL-1 packets at about 1000
//     per second, whose Time Exceeded errors use up the ICMP error bucket
//     (100/s), does not hold back the translator's Fragmentation Needed:
//     DF echoes too big for the IPv6 side each get one, and a TCP transfer
//     whose segments are too big for the IPv6 side (server6's route
//     advertises an MSS of 1460: 1500-byte IPv4 packets, 1520 as IPv6, over
//     the xlat node's IPv6 MTU of 1500) completes through path MTU
//     discovery. With one bucket for all errors, about nine in ten of them
//     were held back.
//   - PMTULimitReload: that bucket limits too, and a reload sets it.
//   - LocalDestinations (point 1): server6 tries TCP to port 179 (a
//     listener on the xlat node would accept it) and an echo at the
//     pseudo-prefix form of the translator's own IPv4 address, of the RFC
//     6791 pool address (both put on the xlat node's loopback for the test,
//     so that a packet that got through would be answered), of the node's
//     address 192.0.2.1 and of an address added to the node while map646
//     runs; the IPv4 client tries the same at a mapped address whose IPv6
//     side is the node's 2001:db8:1::1. Nothing reaches the node, and each
//     packet is counted once as local-destination. With
//     allow_local_destinations = true every one of them is answered, so
//     the first half can fail.

import (
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
)

// TestExposure runs both with each device back-end (two queues).
func TestExposure(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the namespace lab takes about 25 s")
	}
	netlab.Need(t, "ip", "nstat", "ethtool", "ping")
	bin := netlab.BuildMap646(t)
	for _, backend := range []struct {
		name    string
		offload bool
	}{{"offload", true}, {"plain", false}} {
		t.Run(backend.name, func(t *testing.T) {
			l := newLab(t, bin, backend.offload, 2, 0)
			t.Run("PMTUUnderTTLFlood", l.testPMTUUnderTTLFlood)
			t.Run("PMTULimitReload", l.testPMTULimitReload)
			t.Run("LocalDestinations", l.testLocalDestinations)
			t.Run("Terminate", func(t *testing.T) { l.m.Terminate(t) })
		})
	}
}

// ttlFlood sends UDP datagrams with TTL 2 from the client to a mapped
// address, one a millisecond, until stop: the xlat kernel forwards them
// into the device with TTL 1, and the translator answers each with Time
// Exceeded. It returns the count sent.
func ttlFlood(t *testing.T, ns *netlab.NS, remote string, stop <-chan struct{}) uint64 {
	c, err := ns.Dial("udp4", client4, remote, time.Second)
	if err != nil {
		t.Errorf("flood: %v", err)
		return 0
	}
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Errorf("flood: %v", err)
		return 0
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 2) })
	if serr != nil {
		t.Errorf("flood: set TTL 2: %v", serr)
		return 0
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 32)
	var n uint64
	for {
		select {
		case <-stop:
			return n
		case <-tick.C:
			if _, err := c.Write(payload); err == nil {
				n++
			}
		}
	}
}

func (l *lab) testPMTUUnderTTLFlood(t *testing.T) {
	l.csumGuard(t)
	l.srv.IP(t, "route", "change", "64:ff9b::/96", "via", xlat6, "advmss", "1460")
	t.Cleanup(func() { l.srv.IP(t, "route", "change", "64:ff9b::/96", "via", xlat6) })
	before := l.m.SettledMetrics(t)

	stop := make(chan struct{})
	sent := make(chan uint64, 1)
	go func() { sent <- ttlFlood(t, l.client, public6+":33434", stop) }()
	stopped := false
	stopFlood := func() uint64 {
		if stopped {
			return 0
		}
		stopped = true
		close(stop)
		return <-sent
	}
	defer stopFlood()
	suppressed := func(d netlab.Metrics, kind string) float64 {
		return d.Get("map646_icmp_errors_suppressed_by_kind_total", "kind", kind)
	}
	// The flood has used up the general bucket once Time Exceeded errors
	// are being held back.
	if d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool { return suppressed(d, "other") >= 100 }); suppressed(d, "other") < 100 {
		t.Fatalf("after 5 s of flood, %v Time Exceeded held back, want 100 or more: the flood does not reach the limit", suppressed(d, "other"))
	}

	// Each DF echo too big for the IPv6 side gets Fragmentation Needed;
	// the client forgets the path MTU before each.
	const echoes = 5
	for i := range echoes {
		l.client.IP(t, "route", "flush", "cache")
		out, err := l.client.Exec(netlab.DefaultTimeout, "ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", public6)
		if err == nil || !strings.Contains(out, "From "+own4+" icmp_seq=1 Frag needed and DF set (mtu = 1480)") {
			t.Errorf("DF echo %d during the flood: want Fragmentation Needed (mtu 1480) from %s, got (%v):\n%s", i+1, own4, err, out)
		}
	}

	// A transfer whose full-size segments only path MTU discovery fits.
	l.client.IP(t, "route", "flush", "cache")
	ln := l.srv.Listen(t, "tcp6", "["+server6+"]:7400")
	l.tcpTransfer(t, l.client, client4, public6+":7400", ln, client6)
	if r := l.client.IP(t, "route", "get", public6); !strings.Contains(r, "mtu 1480") {
		t.Errorf("the client's kernel has not learnt the path MTU 1480 to %s:\n%s", public6, r)
	}
	flood := stopFlood()

	d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool {
		return d.Get("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "ttl-expired") >= float64(flood)
	})
	expired := d.Get("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "ttl-expired")
	tooBig := d.Get("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "too-big")
	pmtuSent := d.Get("map646_icmp_errors_sent_by_kind_total", "kind", "pmtu")
	t.Logf("flood: %d datagrams with TTL 2 sent; map646: %v ttl-expired (%v Time Exceeded held back), %v too-big, %v Fragmentation Needed sent, %v held back",
		flood, expired, suppressed(d, "other"), tooBig, pmtuSent, suppressed(d, "pmtu"))
	if suppressed(d, "pmtu") != 0 || pmtuSent != tooBig || tooBig < echoes+1 {
		t.Errorf("path MTU signals: %v too-big verdicts, %v sent, %v held back; want every one sent, at least %d", tooBig, pmtuSent, suppressed(d, "pmtu"), echoes+1)
	}
	if expired < float64(flood)*9/10 || suppressed(d, "other") < expired/2 {
		t.Errorf("%v of %d flood datagrams answered with Time Exceeded, %v held back: the flood did not exhaust the general bucket",
			expired, flood, suppressed(d, "other"))
	}
}

// testPMTULimitReload: the path MTU signals' bucket is a limit too, and a
// reload sets it: with icmp_pmtu_error_rate = 1 and a burst of 1, of five
// DF echoes too big for the IPv6 side in quick succession one gets
// Fragmentation Needed and four are held back.
func (l *lab) testPMTULimitReload(t *testing.T) {
	tight := l.cfg
	tight.Translator = "icmp_pmtu_error_rate = 1\nicmp_pmtu_error_burst = 1"
	l.m.Reload(t, tight)
	t.Cleanup(func() { l.m.Reload(t, l.cfg) })
	time.Sleep(time.Second) // the bucket, emptied or not before, holds its one token again
	before := l.m.SettledMetrics(t)
	answered := 0
	for range 5 {
		l.client.IP(t, "route", "flush", "cache")
		out, _ := l.client.Exec(netlab.DefaultTimeout, "ping", "-n", "-c", "1", "-W", "0.2", "-M", "do", "-s", "1472", public6)
		if strings.Contains(out, "Frag needed and DF set (mtu = 1480)") {
			answered++
		}
	}
	pmtu := func(d netlab.Metrics, m string) float64 { return d.Get(m, "kind", "pmtu") }
	d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool {
		return pmtu(d, "map646_icmp_errors_sent_by_kind_total")+pmtu(d, "map646_icmp_errors_suppressed_by_kind_total") >= 5
	})
	sent, held := pmtu(d, "map646_icmp_errors_sent_by_kind_total"), pmtu(d, "map646_icmp_errors_suppressed_by_kind_total")
	if answered != 1 || sent != 1 || held != 4 {
		t.Errorf("with icmp_pmtu_error_rate 1, burst 1: %d of 5 DF echoes answered, %v sent, %v held back; want 1, 1, 4", answered, sent, held)
	}
}

// Addresses of the local-destination test: put on the xlat node's
// loopback, and the node's own address the IPv4 client reaches through a
// mapping.
const (
	nodeExtra4  = "203.0.113.99"  // added to the node while map646 runs
	public6Node = "198.51.100.12" // mapped to xlat6, the node's address on server6's link
)

// nodeTarget is one address a tenant tries to reach the node at.
type nodeTarget struct {
	name     string
	from     *netlab.NS
	local    string // the source address
	dst      string // the address tried
	network  string
	wantPeer string // the source the node's listener sees when allowed
}

func (l *lab) nodeTargets() []nodeTarget {
	pseudo := func(a string) string {
		b := net.ParseIP(a).To4()
		ip := net.ParseIP("64:ff9b::")
		copy(ip[12:], b)
		return ip.String()
	}
	var ts []nodeTarget
	for _, c := range []struct{ name, addr string }{
		{"own-ipv4", own4}, {"rfc6791-pool", pool4}, {"node-ipv4", xlat4}, {"node-ipv4-added", nodeExtra4},
	} {
		ts = append(ts, nodeTarget{c.name, l.srv, server6, pseudo(c.addr), "tcp6", public6})
	}
	return append(ts, nodeTarget{"node-ipv6-mapped", l.client, client4, public6Node, "tcp4", client6})
}

// try makes one TCP connection attempt to port 179 and sends one echo
// request; it reports whether each was answered. The dial gives up before
// the kernel's first SYN retransmission (1 s), so that it sends one SYN.
func (tg nodeTarget) try(t *testing.T) (connected, echoed bool) {
	c, err := tg.from.Dial(tg.network, tg.local, net.JoinHostPort(tg.dst, "179"), 800*time.Millisecond)
	if err == nil {
		c.Close()
		connected = true
	}
	args := []string{"ping", "-n", "-c", "1", "-W", "1", tg.dst}
	if tg.network == "tcp6" {
		args = append(args[:1], append([]string{"-6"}, args[1:]...)...)
	}
	out, err := tg.from.Exec(netlab.DefaultTimeout, args...)
	echoed = err == nil && strings.Contains(out, "1 received")
	return connected, echoed
}

func (l *lab) testLocalDestinations(t *testing.T) {
	cfg := l.cfg
	cfg.Mappings = append(append([]netlab.Mapping(nil), cfg.Mappings...), netlab.Mapping{IPv4: public6Node, IPv6: xlat6})
	l.m.Reload(t, cfg)
	t.Cleanup(func() { l.m.Reload(t, l.cfg) })

	// The BGP port of the node, open to all: what a tenant must not reach.
	ln := l.xlat.Listen(t, "tcp", ":179")
	var accepted atomic.Int64
	peers := make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
			c.Close()
		}
	}()

	// The translator's own addresses become the node's too (so that a
	// packet let through is answered), and one more, added while map646
	// runs, which it must learn.
	localAddrs := func() float64 {
		return l.m.Metrics(t).Get("map646_local_addresses", "family", "ipv4")
	}
	n4 := localAddrs()
	for _, a := range []string{own4, pool4, nodeExtra4} {
		l.xlat.IP(t, "addr", "add", a+"/32", "dev", "lo")
	}
	for deadline := time.Now().Add(5 * time.Second); localAddrs() != n4+3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("map646_local_addresses{family=ipv4}: %v, want %v after 3 addresses were added to the node", localAddrs(), n4+3)
		}
	}

	echoCounters := []string{"IcmpInEchos", "Icmp6InEchos"}
	nodeEchoes := l.xlat.Nstat(t, echoCounters...)
	before := l.m.SettledMetrics(t)
	targets := l.nodeTargets()
	for _, tg := range targets {
		if connected, echoed := tg.try(t); connected || echoed {
			t.Errorf("%s (%s): connected to port 179 %v, echo answered %v; want neither", tg.name, tg.dst, connected, echoed)
		}
	}
	local := func(d netlab.Metrics, dir string) float64 {
		return d.Get("map646_packets_total", "direction", dir, "verdict", "drop", "reason", "local-destination")
	}
	want6to4, want4to6 := float64(2*(len(targets)-1)), 2.0 // a SYN and an echo each
	d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool {
		return local(d, "6to4") >= want6to4 && local(d, "4to6") >= want4to6
	})
	time.Sleep(200 * time.Millisecond) // a late retransmission would show here
	d = l.m.Metrics(t).Sub(before)
	if local(d, "6to4") != want6to4 || local(d, "4to6") != want4to6 {
		t.Errorf("local-destination drops: 6to4 %v, 4to6 %v; want %v, %v (one per SYN and echo)", local(d, "6to4"), local(d, "4to6"), want6to4, want4to6)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the node's port 179 accepted %d connections through the translator", n)
	}
	after := l.xlat.Nstat(t, echoCounters...)
	for _, c := range echoCounters {
		if after[c] != nodeEchoes[c] {
			t.Errorf("the node received %d echo requests (%s)", after[c]-nodeEchoes[c], c)
		}
	}

	// Allowed: every attempt reaches the node, which answers.
	allow := cfg
	allow.Translator = "allow_local_destinations = true"
	l.m.Reload(t, allow)
	before = l.m.SettledMetrics(t)
	for _, tg := range targets {
		connected, echoed := tg.try(t)
		if !connected || !echoed {
			t.Errorf("allowed: %s (%s): connected to port 179 %v, echo answered %v; want both", tg.name, tg.dst, connected, echoed)
			continue
		}
		if p := <-peers; p != tg.wantPeer {
			t.Errorf("allowed: %s: the node saw the connection from %s, want %s", tg.name, p, tg.wantPeer)
		}
	}
	if d := l.m.Metrics(t).Sub(before); local(d, "6to4")+local(d, "4to6") != 0 {
		t.Errorf("allowed: %v local-destination drops, want none", local(d, "6to4")+local(d, "4to6"))
	}
	for _, a := range []string{own4, pool4, nodeExtra4} {
		l.xlat.IP(t, "addr", "del", a+"/32", "dev", "lo")
	}
}
