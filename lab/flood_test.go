package lab

// The flood test: packets that each earn an ICMP error, sent as fast as one
// socket can in each direction, at the first lab's translator while
// legitimate traffic flows. It proves two things of the rate limit
// (translator.icmp_error_rate, icmp_error_burst; one token bucket per node,
// translator/dataplane/limiter.go): the translator emits no more errors than
// burst + rate x duration, and the flood does not starve the legitimate
// traffic (every echo answered, TCP still moving, its content intact).
//
// The flood packets are UDP datagrams with TTL (hop limit) 2: the xlat
// kernel forwards them into the tun with 1 left, and the translator, which
// decrements as a router does, answers each with Time Exceeded from its own
// address (own4 to the client, own6 to server6), as hop 2 of testTraceroute.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
)

// Limits of the flood test's configuration (map646's defaults, written out
// so that the bound below does not depend on them).
const (
	floodRate  = 100 // ICMP errors per second
	floodBurst = 50
	floodFor   = 4 * time.Second
)

// TestFlood: a flood of TTL-2 datagrams from the IPv4 client to server6 and
// of hop-limit-2 datagrams from server6 to the client, for floodFor, while
// the client pings server6 every 10 ms, server6 pings the client every 10 ms
// and a TCP transfer runs (SHA-256 checked). The ICMP errors the translator
// emitted (its metrics, the probe's own left out, and what the receivers
// counted) stay within burst + rate x window + 1, where window is from just
// before the first flood packet to the moment the counters stopped moving
// after the last (every rate-limit decision lies inside it; the +1 is the
// token bucket's boundary: it grants one at each whole interval, the first
// at time 0). The flood costs the translator one refusal (a load and a
// compare) per packet, but on this shared 2-CPU machine it reads about
// 370k packets/s, and what it cannot read in time the xlat kernel drops at
// the tun device's queue (its tx_dropped, printed) without looking at what
// it drops: echoes included. An echo crosses that queue twice (request and
// reply), so the echoes may lose about twice the queue's drop fraction: the
// bound is ceil(2 x fraction x 300) + 3 echoes each way (the 3 for the
// drops' coming in bursts while the queue is full), and none when the queue
// dropped nothing; anything above it would be the translator's doing, or
// starvation. The TCP throughput during the flood is printed as a ratio to
// the one before it; below minTCPShare the flood starves it (measured:
// 0.18 to 0.53).
const minTCPShare = 0.05

func TestFlood(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the namespace lab takes about 20 s")
	}
	netlab.Need(t, "ip", "nstat", "ethtool", "ping")
	l := newLab(t, netlab.BuildMap646(t), true, 2, 0)
	l.csumGuard(t)
	cfg := l.cfg
	cfg.Translator = fmt.Sprintf("icmp_error_rate = %d\nicmp_error_burst = %d", floodRate, floodBurst)
	l.m.Reload(t, cfg)

	ln := l.srv.Listen(t, "tcp6", "["+server6+"]:7800")
	before := floodTCP(t, l.client, public6+":7800", ln, 2*time.Second)
	t.Logf("TCP before the flood: %.0f Mbit/s, SHA-256 equal", before)

	// Receivers: every Time Exceeded from the translator's own addresses.
	var got4, got6 atomic.Uint64
	icmp4 := l.client.ListenPacket(t, "ip4:icmp", client4)
	icmp6 := l.srv.ListenPacket(t, "ip6:ipv6-icmp", server6)
	setRcvBuf(t, icmp4, 16<<20)
	setRcvBuf(t, icmp6, 16<<20)
	go floodCount(icmp4, own4, 11, &got4)
	go floodCount(icmp6, own6, 3, &got6)

	m0 := l.m.SettledMetrics(t)
	tun0 := floodTunDropped(t, l)
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent4, sent6 uint64
	wg.Add(2)
	go func() {
		defer wg.Done()
		sent4 = floodSend(t, l.client, "udp4", client4, public6+":9", stop)
	}()
	go func() {
		defer wg.Done()
		sent6 = floodSend(t, l.srv, "udp6", server6, "["+client6+"]:9", stop)
	}()

	// Legitimate traffic, started once the flood runs: 300 echoes each way
	// at 10 ms (3 s) and a 2 s TCP transfer.
	time.Sleep(200 * time.Millisecond) // the flood under way; not a synchronisation
	ping4 := l.client.Start(t, "ping", "-n", "-i", "0.01", "-c", "300", "-W", "2", public6)
	ping6 := l.srv.Start(t, "ping", "-6", "-n", "-i", "0.01", "-c", "300", "-W", "2", client6)
	during := floodTCP(t, l.client, public6+":7800", ln, 2*time.Second)
	for _, p := range []*netlab.Proc{ping4, ping6} {
		if err := p.Wait(30 * time.Second); err != nil {
			t.Errorf("%s: %v\n%s", p.Name, err, p.Output())
		}
	}
	if rest := floodFor - time.Since(start); rest > 0 {
		time.Sleep(rest) // the flood's length; the pings and TCP took most of it
	}
	close(stop)
	wg.Wait()
	floodEnd := time.Since(start)

	// Wait until the translator has handled everything: two scrapes 200 ms
	// apart that agree on the packets read.
	var m1 netlab.Metrics
	prev := -1.0
	poll.Until(10*time.Second, 200*time.Millisecond, func() bool {
		m1 = l.m.Metrics(t)
		n := m1.Sum("map646_packets_total") - m1.Get("map646_probe_packets_total")
		still := n == prev
		prev = n
		return still
	})
	window := time.Since(start)
	d := m1.Sub(m0)
	time.Sleep(300 * time.Millisecond) // the last errors' way to the receivers

	expired := d.Get("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "ttl-expired") +
		d.Get("map646_packets_total", "direction", "6to4", "verdict", "icmp-error", "reason", "ttl-expired")
	probes := d.Get("map646_probe_packets_total") // exempt from the limit, answered and counted as sent
	sentErr := d.Get("map646_icmp_errors_sent_total") - probes
	suppressed := d.Get("map646_icmp_errors_suppressed_total")
	bound := floodBurst + floodRate*window.Seconds() + 1
	received := got4.Load() + got6.Load()
	pps := float64(sent4+sent6) / floodEnd.Seconds()
	t.Logf("flood: %d + %d datagrams in %v (%.0f/s); the translator read %.0f that earned Time Exceeded (probes left out: %.0f)",
		sent4, sent6, floodEnd.Round(time.Millisecond), pps, expired-probes, probes)
	tunDrops := floodTunDropped(t, l) - tun0
	dropFrac := float64(tunDrops) / float64(sent4+sent6+600)
	allowed := 0
	if tunDrops > 0 {
		allowed = int(math.Ceil(2*dropFrac*300)) + 3
	}
	t.Logf("the xlat kernel dropped %d packets (%.1f %%) at the tun device's queue (map646 did not read them in time): up to %d echoes of 300 may be lost each way",
		tunDrops, 100*dropFrac, allowed)
	t.Logf("ICMP errors: %.0f sent, %.0f suppressed by the limit; received: %d by the client, %d by server6; bound %d + %d/s x %.2f s + 1 = %.0f",
		sentErr, suppressed, got4.Load(), got6.Load(), floodBurst, floodRate, window.Seconds(), bound)
	if expired-probes < 10*bound {
		t.Errorf("only %v flood packets reached the translator: not a flood (want at least 10 x the bound %.0f)", expired-probes, bound)
	}
	if sentErr > bound {
		t.Errorf("the translator sent %v ICMP errors in %.2f s, more than burst + rate x window + 1 = %.0f", sentErr, window.Seconds(), bound)
	}
	if float64(received) > bound || float64(received) > sentErr {
		t.Errorf("the receivers got %d Time Exceeded (bound %.0f, the translator counts %v sent)", received, bound, sentErr)
	}
	if sentErr+probes+suppressed != expired {
		t.Errorf("ICMP errors sent %v + suppressed %v != ttl-expired verdicts %v (probes included)", sentErr+probes, suppressed, expired)
	}
	// The limit must have been the one to act: most of the window's tokens
	// were used (the receivers saw at least the burst).
	if sentErr < floodBurst || float64(received) < floodBurst {
		t.Errorf("the translator sent %v errors and the receivers saw %d: fewer than the burst %d, the test did not reach the limit", sentErr, received, floodBurst)
	}
	for _, p := range []*netlab.Proc{ping4, ping6} {
		tx, rx := floodPing(p.Output())
		t.Logf("%s during the flood: %d sent, %d answered", p.Name, tx, rx)
		if tx != 300 || tx-rx > allowed {
			t.Errorf("%s lost %d echoes to the flood, more than %d:\n%s", p.Name, tx-rx, allowed, p.Output())
		}
	}
	t.Logf("TCP during the flood: %.0f Mbit/s, SHA-256 equal; %.2f of the throughput before it", during, during/before)
	if during < minTCPShare*before {
		t.Errorf("TCP starved during the flood: %.2f of the throughput before it, want at least %.2f", during/before, minTCPShare)
	}
}

// floodSend sends small datagrams with TTL (hop limit) 2 from local to
// remote in ns, as fast as it can, until stop is closed, and returns how many
// went out. Errors from the socket (an ICMP error reported back) are
// ignored: it is a flood.
func floodSend(t *testing.T, ns *netlab.NS, network, local, remote string, stop <-chan struct{}) uint64 {
	c, err := ns.Dial(network, local, remote, time.Second)
	if err != nil {
		t.Errorf("flood %s -> %s: %v", local, remote, err)
		return 0
	}
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Errorf("flood: %v", err)
		return 0
	}
	var serr error
	raw.Control(func(fd uintptr) {
		if network == "udp6" {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 2)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 2)
		}
	})
	if serr != nil {
		t.Errorf("flood: set TTL 2: %v", serr)
		return 0
	}
	payload := make([]byte, 32)
	var n uint64
	for {
		for range 64 { // check stop every 64 datagrams: a channel poll per packet costs throughput
			if _, err := c.Write(payload); err == nil {
				n++
			}
		}
		select {
		case <-stop:
			return n
		default:
		}
	}
}

// floodTunDropped returns the packets the xlat kernel dropped on their way
// into map646's device (tx_dropped of the tun).
func floodTunDropped(t *testing.T, l *lab) uint64 {
	out := l.xlat.IP(t, "-s", "-j", "link", "show", "dev", l.m.Device)
	var links []struct {
		Stats64 struct {
			Tx struct{ Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show dev %s: %v\n%s", l.m.Device, err, out)
	}
	return links[0].Stats64.Tx.Dropped
}

// floodCount counts the ICMP messages of type typ from from read on c, until
// c is closed.
func floodCount(c net.PacketConn, from string, typ byte, n *atomic.Uint64) {
	buf := make([]byte, 2048)
	for {
		k, a, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if k > 0 && buf[0] == typ && a.(*net.IPAddr).IP.String() == from {
			n.Add(1)
		}
	}
}

// floodPing returns the echoes a ping sent and got answered (its summary
// line; 0, 0 without one).
func floodPing(out string) (tx, rx int) {
	if s := pingSummary.FindStringSubmatch(out); s != nil {
		tx, _ = strconv.Atoi(s[1])
		rx, _ = strconv.Atoi(s[2])
	}
	return tx, rx
}

// floodTCP connects from ns to remote (whose server accepts on ln), sends a
// pseudo-random stream for d, half-closes, and checks that the server got
// every byte with the same SHA-256, which it sends back. It returns the
// throughput in Mbit/s; any failure fails t.
func floodTCP(t *testing.T, ns *netlab.NS, remote string, ln net.Listener, d time.Duration) float64 {
	t.Helper()
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	srv := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srv <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(d + 30*time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		r.n, r.err = n, err
		copy(r.sum[:], h.Sum(nil))
		if err == nil {
			_, r.err = c.Write(r.sum[:])
		}
		srv <- r
	}()
	c, err := ns.Dial("tcp", "", remote, 5*time.Second)
	if err != nil {
		t.Fatalf("TCP to %s: %v", remote, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d + 30*time.Second))
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var sent int64
	start := time.Now()
	for block := uint64(0); time.Since(start) < d; block++ {
		floodFill(buf, block)
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("TCP to %s: write after %d bytes: %v", remote, sent, err)
		}
		h.Write(buf)
		sent += int64(len(buf))
	}
	c.(*net.TCPConn).CloseWrite()
	var back [32]byte
	if _, err := io.ReadFull(c, back[:]); err != nil {
		t.Fatalf("TCP to %s: no SHA-256 back from the server: %v", remote, err)
	}
	took := time.Since(start)
	r := <-srv
	if r.err != nil {
		t.Fatalf("TCP to %s: server: %v", remote, r.err)
	}
	if r.n != sent || [32]byte(h.Sum(nil)) != r.sum || back != r.sum {
		t.Fatalf("TCP to %s: sent %d bytes, the server got %d with another SHA-256", remote, sent, r.n)
	}
	return float64(sent) * 8 / took.Seconds() / 1e6
}

// floodFill fills buf with bytes that depend on block: a transfer whose
// every block differs, so that a misplaced segment changes the SHA-256.
func floodFill(buf []byte, block uint64) {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], block)
	s := sha256.Sum256(seed[:])
	for i := 0; i < len(buf); i += len(s) {
		copy(buf[i:], s[:])
		s[0]++
	}
}
