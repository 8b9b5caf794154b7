package lab

// The lab: four network namespaces, the real map646 binary in the middle,
// documentation addresses only.
//
//	client4                  xlat                                    server6
//	c4 192.0.2.7/24 ──────── x4 192.0.2.1/24
//	route 198.51.100.0/24    x6 2001:db8:1::1/64 ─────────────────── s6 2001:db8:1::10/64
//	  via 192.0.2.1          x6b 2001:db8:2::1/64 ──┐                route 64:ff9b::/96
//	                         forwarding on          │ MTU 1280         via 2001:db8:1::1
//	                         map646 run: tun map646 │
//	                         routes (proto 246):    │                server6b
//	                           198.51.100.10/31     └─────────────── s6b 2001:db8:2::11/64
//	                           64:ff9b::/96                          route 64:ff9b::/96
//	                                                                   via 2001:db8:2::1 advmss 1440
//
//	mappings  198.51.100.10 <-> 2001:db8:1::10 (server6)
//	          198.51.100.11 <-> 2001:db8:2::11 (server6b)
//	own addresses 198.51.100.1 / 2001:db8:64::1, rfc6791_pool 203.0.113.1,
//	pseudo prefix 64:ff9b::/96: the client is 64:ff9b::c000:207 to the servers.
//
// The translator's own IPv4 address is not one of the node's: an ICMP error
// the translator writes into its device with a source that is local to the
// node is a martian to the node's kernel (net.ipv4.conf.*.accept_local=0)
// and is dropped. And so traceroute tells the translator's hop from the
// kernel's.
//
// The servers route 64:ff9b::/96 via the xlat node. server6b sits behind a
// 1280-byte link, and its route advertises an MSS of 1440 (advmss), as a
// server on a 1500-byte access link behind a 1280-byte hop would: a client's
// full-size segments are too big for the last link, and only path MTU
// discovery through the translator (the xlat kernel's ICMPv6 Packet Too Big,
// translated to ICMPv4 Fragmentation Needed from the RFC 6791 pool) lets a
// transfer through.
//
// Checksum offload is off on the xlat node's veths (tx and rx): the kernel
// computes every checksum in software before a packet leaves for a
// receiver, and the receivers verify it, so a wrong checksum (a wrong
// partial checksum handed to the kernel by the offload device included)
// shows up in their nstat counters, which every data test checks. Generic
// receive offload is on there, so that TCP reaches the offload device as
// super-packets. Each test runs with each device back-end: offload = true
// (multiqueue, virtio header, super-packets) and offload = false (plain),
// and on each again with the kernel fast path ([fastpath] mode =
// "required"): the same tests, the same results, the same checksum checks;
// the fast path translates what it takes, the tun path the rest.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
	pt "github.com/map646/map646/translator/packettest"
)

// Addresses of the drawing.
const (
	client4  = "192.0.2.7"
	xlat4    = "192.0.2.1"
	xlat6    = "2001:db8:1::1"
	xlat6b   = "2001:db8:2::1"
	server6  = "2001:db8:1::10"
	server6b = "2001:db8:2::11"
	public6  = "198.51.100.10"  // server6 to the IPv4 world
	public6b = "198.51.100.11"  // server6b
	own4     = "198.51.100.1"   // the translator's own IPv4 address
	own6     = "2001:db8:64::1" // the translator's own IPv6 address
	pool4    = "203.0.113.1"    // RFC 6791 pool

	client6   = "64:ff9b::c000:207" // 192.0.2.7 to the servers
	pseudo6   = "64:ff9b::c633:640a"
	pseudo6b  = "64:ff9b::c633:640b"
	transfer  = 20 << 20 // bytes each way of a TCP transfer
	pingCount = "5"
)

// csumCounters are the receivers' checksum-error counters: none may grow
// in a data test.
var csumCounters = []string{"TcpInCsumErrors", "UdpInCsumErrors", "Udp6InCsumErrors", "IcmpInCsumErrors", "Icmp6InCsumErrors"}

// lab is one topology with map646 running.
type lab struct {
	offload                 bool
	fastPath                bool // [fastpath] mode = "required"
	client, xlat, srv, srvB *netlab.NS
	m                       *netlab.Map646
	cfg                     netlab.Config
	x4MAC, x6MAC            net.HardwareAddr
}

// TestLab runs every end-to-end test with each device back-end (two
// queues), and with the offload device busy polling on one queue, as
// map646 run advises: a queue per CPU, each spinning, would leave no CPU to
// the kernel and the senders, and BusyPollReload's measure would depend on
// which queues the kernel steers the echoes and replies to.
func TestLab(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the namespace lab takes about 30 s")
	}
	netlab.Need(t, "ip", "nstat", "ethtool", "ping", "traceroute", "iperf3")
	bin := netlab.BuildMap646(t)
	for _, backend := range []struct {
		name     string
		offload  bool
		queues   int
		busyPoll time.Duration
		fastPath bool
	}{{"offload", true, 2, 0, false}, {"plain", false, 2, 0, false}, {"offload-busypoll", true, 1, 2 * time.Millisecond, false},
		{"offload-fastpath", true, 2, 0, true}, {"plain-fastpath", false, 2, 0, true}} {
		t.Run(backend.name, func(t *testing.T) {
			l := newLabWith(t, bin, backend.offload, backend.queues, backend.busyPoll, func(t netlab.TB, ns *netlab.NS, bin string, c netlab.Config) *netlab.Map646 {
				if backend.fastPath {
					c.FastPath = "required"
				}
				return netlab.StartMap646(t, ns, bin, c)
			})
			l.fastPath = backend.fastPath
			if backend.fastPath {
				l.cfg.FastPath = "required" // for the reloads' configurations
				t.Run("FastPathAttached", l.testFastPathAttached)
			}
			t.Run("ChecksumGuard", l.testChecksumGuard)
			t.Run("PathMTU", l.testPathMTU)
			t.Run("Ping", l.testPing)
			t.Run("TCP", l.testTCP)
			t.Run("TCPFromIPv6", l.testTCPFromIPv6)
			t.Run("Iperf3", l.testIperf3)
			t.Run("UDP", l.testUDP)
			t.Run("Traceroute", l.testTraceroute)
			t.Run("Hairpin", l.testHairpin)
			t.Run("Malformed", l.testMalformed)
			t.Run("ReloadUnderLoad", l.testReloadUnderLoad)
			if backend.busyPoll > 0 {
				t.Run("BusyPollReload", l.testBusyPollReload)
			}
			t.Run("Terminate", func(t *testing.T) { l.m.Terminate(t) })
		})
	}
}

func newLab(t *testing.T, bin string, offload bool, queues int, busyPoll time.Duration) *lab {
	return newLabWith(t, bin, offload, queues, busyPoll, netlab.StartMap646)
}

// newLabWith is newLab with map646 started by start.
func newLabWith(t *testing.T, bin string, offload bool, queues int, busyPoll time.Duration,
	start func(t netlab.TB, ns *netlab.NS, bin string, c netlab.Config) *netlab.Map646) *lab {
	// The links (topo.Single) are named as in the drawing.
	s := topo.NewSingle(t, topo.SingleOptions{Servers: 2})
	l := &lab{offload: offload, client: s.Client, xlat: s.Node, srv: s.Servers[0], srvB: s.Servers[1]}
	l.xlat.IP(t, "link", "set", "x6b", "mtu", "1280")
	l.srvB.IP(t, "link", "set", "s6b", "mtu", "1280")
	l.client.AddAddr(t, "c4", client4+"/24")
	l.xlat.AddAddr(t, "x4", xlat4+"/24")
	l.xlat.AddAddr(t, "x6", xlat6+"/64")
	l.xlat.AddAddr(t, "x6b", xlat6b+"/64")
	l.srv.AddAddr(t, "s6", server6+"/64")
	l.srvB.AddAddr(t, "s6b", server6b+"/64")
	l.client.AddRoute(t, "198.51.100.0/24", xlat4)
	l.srv.AddRoute(t, "64:ff9b::/96", xlat6)
	l.srvB.AddRoute(t, "64:ff9b::/96", xlat6b, "advmss", "1440")
	l.x4MAC, l.x6MAC = l.xlat.MAC(t, "x4"), l.xlat.MAC(t, "x6")

	l.cfg = netlab.Config{
		IPv4Address: own4,
		IPv6Address: own6,
		RFC6791Pool: []string{pool4},
		Mappings:    []netlab.Mapping{{IPv4: public6, IPv6: server6}, {IPv4: public6b, IPv6: server6b}},
		Offload:     offload,
		Queues:      queues,
		BusyPoll:    busyPoll,
	}
	l.m = start(t, l.xlat, bin, l.cfg)
	if got := l.m.Started["busy_poll"]; got != busyPoll.String() {
		t.Fatalf("map646 started with busy_poll %v, want %v", got, busyPoll)
	}
	want := []string{"198.51.100.10/31 dev map646 scope link", "64:ff9b::/96 dev map646 metric 1024 pref medium"}
	if got := l.m.Routes(t); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("map646's routes: %q, want %q", got, want)
	}
	return l
}

// testFastPathAttached: with [fastpath] mode = "required", map646 started
// with the program attached; a ping each way goes through it (its counters
// move) and it loses nothing.
func (l *lab) testFastPathAttached(t *testing.T) {
	if got := l.m.Started["fastpath"]; got != "attached" {
		t.Fatalf("map646 started with fastpath %v, want attached", got)
	}
	l.csumGuard(t)
	before := l.m.Metrics(t)
	ping(t, l.client, public6, "-c", pingCount, "-i", "0.05", public6)
	ping(t, l.srv, client6, "-6", "-c", pingCount, "-i", "0.05", client6)
	d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool {
		return d.Get("map646_fastpath_packets_total", "direction", "4to6") >= 10 && d.Get("map646_fastpath_packets_total", "direction", "6to4") >= 10
	})
	for _, dir := range []string{"4to6", "6to4"} {
		if got := d.Get("map646_fastpath_packets_total", "direction", dir); got < 10 {
			t.Errorf("the fast path translated %v packets %s, want at least 10 (5 echoes and 5 replies)", got, dir)
		}
	}
	m := l.m.Metrics(t)
	if m.Get("map646_fastpath_attached") != 1 || m.Get("map646_fastpath_internal_errors_total") != 0 {
		t.Errorf("map646_fastpath_attached %v, internal errors %v; want 1 and 0", m.Get("map646_fastpath_attached"), m.Get("map646_fastpath_internal_errors_total"))
	}
}

// csumGuard reads the receivers' checksum-error counters now and checks at
// the end of the test that none has grown.
func (l *lab) csumGuard(t *testing.T) {
	t.Helper()
	before := map[*netlab.NS]map[string]uint64{}
	for _, ns := range []*netlab.NS{l.client, l.srv, l.srvB} {
		before[ns] = ns.Nstat(t, csumCounters...)
	}
	t.Cleanup(func() {
		for ns, b := range before {
			after := ns.Nstat(t, csumCounters...)
			for _, c := range csumCounters {
				if after[c] != b[c] {
					t.Errorf("%s: %s grew by %d: a packet arrived with a wrong checksum", ns.Role, c, after[c]-b[c])
				}
			}
		}
	})
}

// testChecksumGuard: the receivers verify checksums in software and count
// the wrong ones, so the checks of the data tests can fail: a UDP datagram
// with a wrong checksum, sent to each receiver from the xlat node's end of
// its link, raises its nstat counter by one.
func (l *lab) testChecksumGuard(t *testing.T) {
	for _, r := range []struct {
		ns      *netlab.NS
		dev     string
		peerDev string
		pkt     []byte
		counter string
	}{
		{l.client, "x4", "c4", pt.UDP4(pt.IPv4{TTL: 64, Src: addr(public6), Dst: addr(client4)}, 9, 9, []byte("wrong checksum")), "UdpInCsumErrors"},
		{l.srv, "x6", "s6", pt.UDP6(pt.IPv6{Hop: 64, Src: addr(client6), Dst: addr(server6)}, 9, 9, []byte("wrong checksum")), "Udp6InCsumErrors"},
		{l.srvB, "x6b", "s6b", pt.UDP6(pt.IPv6{Hop: 64, Src: addr(client6), Dst: addr(server6b)}, 9, 9, []byte("wrong checksum")), "Udp6InCsumErrors"},
	} {
		r.pkt[len(r.pkt)-1] ^= 0xff // the checksum no longer matches
		b := r.ns.Nstat(t, r.counter)[r.counter]
		sendFrames(t, l.xlat, r.dev, r.ns.MAC(t, r.peerDev), r.pkt)
		poll.Until(5*time.Second, 20*time.Millisecond, func() bool { return r.ns.Nstat(t, r.counter)[r.counter] != b })
		if a := r.ns.Nstat(t, r.counter)[r.counter]; a != b+1 {
			t.Errorf("%s: %s went from %d to %d after one datagram with a wrong checksum, want +1: the checksum checks would see nothing", r.ns.Role, r.counter, b, a)
		}
	}
}

// --- Ping ---

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// ping runs ping in ns and returns its output; every echo must be answered
// by from. The deadline (-w) makes ping wait for every reply: with -c alone
// it waits for the last one only max(2 x the slowest RTT, the interval),
// 50 ms at -i 0.05, and a reply delayed on a loaded machine counted as lost
// (seen in CI runs with other work on the 2 CPUs).
func ping(t *testing.T, ns *netlab.NS, from string, args ...string) string {
	t.Helper()
	out := ns.Run(t, append([]string{"ping", "-n", "-W", "2", "-w", "20"}, args...)...)
	s := pingSummary.FindStringSubmatch(out)
	if s == nil || s[1] != s[2] || s[1] == "0" {
		t.Errorf("ping %s in %s: not every echo answered:\n%s", strings.Join(args, " "), ns.Role, out)
	}
	if !strings.Contains(out, "bytes from "+from+": icmp_seq=") {
		t.Errorf("ping %s in %s: no reply from %s:\n%s", strings.Join(args, " "), ns.Role, from, out)
	}
	return out
}

// testPing: echo both ways: the IPv4 client pings both servers' public
// addresses, each server pings the client at its pseudo-prefix address,
// with small and full-size packets (a 1472-byte echo would need IPv6 1520:
// 1452 is the largest that fits, and 1232 the largest through server6b's
// 1280-byte link).
func (l *lab) testPing(t *testing.T) {
	l.csumGuard(t)
	before := l.m.Metrics(t)
	ping(t, l.client, public6, "-c", pingCount, "-i", "0.05", public6)
	ping(t, l.client, public6, "-c", pingCount, "-i", "0.05", "-s", "1452", "-M", "do", public6)
	ping(t, l.client, public6b, "-c", pingCount, "-i", "0.05", "-s", "1232", "-M", "do", public6b)
	ping(t, l.srv, client6, "-6", "-c", pingCount, "-i", "0.05", client6)
	ping(t, l.srv, client6, "-6", "-c", pingCount, "-i", "0.05", "-s", "1452", "-M", "do", client6)
	ping(t, l.srvB, client6, "-6", "-c", pingCount, "-i", "0.05", client6)
	// 3 x 5 echoes and 3 x 5 replies each way: at least 30 packets each way
	// went through map646 (a late packet of an earlier test may add some).
	forwarded := func(d netlab.Metrics, dir string) float64 {
		return d.Get("map646_packets_total", "direction", dir, "verdict", "forward", "reason", "")
	}
	d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool { return forwarded(d, "4to6") >= 30 && forwarded(d, "6to4") >= 30 })
	for _, dir := range []string{"4to6", "6to4"} {
		if got := forwarded(d, dir); got < 30 {
			t.Errorf("forwarded %s: %v packets, want at least 30", dir, got)
		}
	}
}

// testBusyPollReload: a reload applies [tun] busy_poll, as the daemon's
// CPU time during a ping every millisecond shows: a worker that polls
// stays on the CPU between the echoes, one that sleeps does not.
func (l *lab) testBusyPollReload(t *testing.T) {
	cpu := func(what string) float64 {
		t.Helper()
		before, err := netlab.CPUTime(l.m.PID())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ping(t, l.client, public6, "-c", "500", "-i", "0.001", public6)
		after, err := netlab.CPUTime(l.m.PID())
		if err != nil {
			t.Fatal(err)
		}
		pct := 100 * (after - before).Seconds() / time.Since(start).Seconds()
		t.Logf("%s: map646 used %.0f%% of a CPU", what, pct)
		return pct
	}
	polling := l.cfg.BusyPoll
	if on := cpu(fmt.Sprintf("busy_poll %v", polling)); on < 50 {
		t.Errorf("busy_poll %v: %.0f%% of a CPU, want at least 50%%: the worker sleeps", polling, on)
	}
	off := l.cfg
	off.BusyPoll = 0
	l.m.Reload(t, off)
	if p := cpu("reloaded with busy_poll 0s"); p > 30 {
		t.Errorf("after a reload to busy_poll 0s: %.0f%% of a CPU, want at most 30%%: still polling", p)
	}
	l.m.Reload(t, l.cfg)
	if p := cpu(fmt.Sprintf("reloaded with busy_poll %v", polling)); p < 50 {
		t.Errorf("after a reload back to busy_poll %v: %.0f%% of a CPU, want at least 50%%", polling, p)
	}
}

// --- Path MTU ---

// testPathMTU: a DF packet too big for the IPv6 side gets Fragmentation
// Needed from the translator (MTU = 1500 - 20), after which the client's
// kernel knows the path MTU; a TCP transfer to server6b, behind a 1280-byte
// IPv6 link, completes only through path MTU discovery: the xlat kernel's
// Packet Too Big (MTU 1280) comes back through the translator as
// Fragmentation Needed (MTU 1260) from the RFC 6791 pool address.
func (l *lab) testPathMTU(t *testing.T) {
	l.csumGuard(t)
	l.client.IP(t, "route", "flush", "cache")
	before := l.m.SettledMetrics(t)
	out, err := l.client.Exec(netlab.DefaultTimeout, "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", public6)
	if err == nil || !strings.Contains(out, "From "+own4+" icmp_seq=1 Frag needed and DF set (mtu = 1480)") {
		t.Errorf("a 1500-byte DF echo to %s: want Fragmentation Needed (mtu 1480) from %s, got (%v):\n%s", public6, own4, err, out)
	}
	if r := l.client.IP(t, "route", "get", public6); !strings.Contains(r, "mtu 1480") {
		t.Errorf("the client's kernel has not learnt the path MTU 1480:\n%s", r)
	}
	tooBig := func(d netlab.Metrics) float64 {
		return d.Get("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "too-big")
	}
	if d := tooBig(l.m.MetricsSince(t, before, func(d netlab.Metrics) bool { return tooBig(d) >= 1 })); d != 1 {
		t.Errorf("too-big counted %v times, want 1", d)
	}

	// The client sees every ICMP message that reaches it.
	icmp := l.client.ListenPacket(t, "ip4:icmp", client4)
	fragNeeded := make(chan string, 100)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := icmp.ReadFrom(buf)
			if err != nil {
				close(fragNeeded)
				return
			}
			if n >= 8 && buf[0] == 3 && buf[1] == 4 {
				fragNeeded <- fmt.Sprintf("%v mtu %d", from, binary.BigEndian.Uint16(buf[6:]))
			}
		}
	}()
	xb := l.xlat.Nstat(t, "Icmp6OutPktTooBigs")
	ln := l.srvB.Listen(t, "tcp6", "["+server6b+"]:7200")
	l.tcpTransfer(t, l.client, client4, public6b+":7200", ln, client6)
	if r := l.client.IP(t, "route", "get", public6b); !strings.Contains(r, "mtu 1260") {
		t.Errorf("the client's kernel has not learnt the path MTU 1260 to %s (Packet Too Big translated):\n%s", public6b, r)
	}
	if xa := l.xlat.Nstat(t, "Icmp6OutPktTooBigs"); xa["Icmp6OutPktTooBigs"] == xb["Icmp6OutPktTooBigs"] {
		t.Errorf("the xlat kernel sent no Packet Too Big: the transfer did not test path MTU discovery")
	}
	icmp.Close()
	var got []string
	wrong := false
	for f := range fragNeeded {
		got = append(got, f)
		wrong = wrong || f != pool4+" mtu 1260"
	}
	if len(got) == 0 || wrong {
		t.Errorf("Fragmentation Needed messages the client received: %q, want %s mtu 1260 (Packet Too Big from the xlat kernel, translated)", got, pool4)
	}
}

// --- TCP ---

// tcpTransfer connects from ns (source local) to remote, whose server
// accepts on ln and must see the client as peer; it sends transfer random
// bytes each way (first up, then down) and compares their SHA-256 on the
// other side. It logs the rate of each direction.
func (l *lab) tcpTransfer(t *testing.T, ns *netlab.NS, local, remote string, ln net.Listener, peer string) {
	t.Helper()
	up, down := make([]byte, transfer), make([]byte, transfer)
	rand.Read(up)
	rand.Read(down)
	type result struct {
		got  [32]byte
		peer string
		err  error
		took time.Duration
	}
	srvDone := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		var r result
		r.peer = c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
		start := time.Now()
		h := sha256.New()
		n, err := io.CopyN(h, c, transfer)
		r.took = time.Since(start)
		if err != nil {
			r.err = fmt.Errorf("server: read %d of %d bytes: %w", n, transfer, err)
			srvDone <- r
			return
		}
		copy(r.got[:], h.Sum(nil))
		if _, err := c.Write(down); err != nil {
			r.err = fmt.Errorf("server: write: %w", err)
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c) // until the client closes
		srvDone <- r
	}()

	c, err := ns.Dial("tcp", local, remote, 5*time.Second)
	if err != nil {
		t.Fatalf("TCP %s -> %s: %v", local, remote, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	if _, err := c.Write(up); err != nil {
		t.Fatalf("TCP %s -> %s: write: %v", local, remote, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, c)
	took := time.Since(start)
	c.Close()
	r := <-srvDone
	if r.err != nil {
		t.Fatalf("TCP %s -> %s: %v", local, remote, r.err)
	}
	if err != nil || n != transfer {
		t.Fatalf("TCP %s -> %s: client read %d of %d bytes: %v", local, remote, n, transfer, err)
	}
	if r.got != sha256.Sum256(up) {
		t.Errorf("TCP %s -> %s: the server received %d bytes whose SHA-256 differs from those sent", local, remote, transfer)
	}
	if !bytes.Equal(h.Sum(nil), func() []byte { s := sha256.Sum256(down); return s[:] }()) {
		t.Errorf("TCP %s -> %s: the client received %d bytes whose SHA-256 differs from those sent", local, remote, transfer)
	}
	if r.peer != peer {
		t.Errorf("TCP %s -> %s: the server saw the client as %s, want %s", local, remote, r.peer, peer)
	}
	downTook := took - r.took
	t.Logf("TCP %s -> %s: %d MB up in %v (%.0f Mbit/s), down in about %v (%.0f Mbit/s), SHA-256 equal",
		local, remote, transfer>>20, r.took.Round(time.Millisecond), mbps(transfer, r.took),
		downTook.Round(time.Millisecond), mbps(transfer, downTook))
}

func mbps(n int, d time.Duration) float64 { return float64(n) * 8 / d.Seconds() / 1e6 }

// testTCP: the IPv4 client transfers 20 MB to server6 and back, contents
// compared by SHA-256; the server sees it at its pseudo-prefix address. On
// the offload device the kernel hands over super-packets, translated whole.
func (l *lab) testTCP(t *testing.T) {
	l.csumGuard(t)
	before := l.m.Metrics(t)
	ln := l.srv.Listen(t, "tcp6", "["+server6+"]:7100")
	l.tcpTransfer(t, l.client, client4, public6+":7100", ln, client6)
	d := l.m.Metrics(t).Sub(before)
	whole, split := d.Get("map646_gso_packets_total", "path", "whole"), d.Get("map646_gso_packets_total", "path", "segmented")
	t.Logf("map646: %v packets 4to6, %v 6to4; super-packets: %v translated whole, %v split",
		d.Get("map646_packets_total", "direction", "4to6", "verdict", "forward", "reason", ""),
		d.Get("map646_packets_total", "direction", "6to4", "verdict", "forward", "reason", ""), whole, split)
	if fp := d.Get("map646_fastpath_packets_total", "direction", "4to6"); l.fastPath && fp == 0 {
		t.Errorf("the fast path translated nothing of the transfer")
	} else if l.fastPath {
		t.Logf("the fast path translated %v packets 4to6, %v 6to4", fp, d.Get("map646_fastpath_packets_total", "direction", "6to4"))
	}
	if l.offload && whole == 0 && !l.fastPath {
		t.Errorf("the offload device translated no super-packet whole: GRO on the xlat veths should make them")
	}
	if !l.offload && whole+split != 0 {
		t.Errorf("the plain device saw super-packets: %v whole, %v split", whole, split)
	}
}

// testTCPFromIPv6: server6 opens a connection to the IPv4 host through the
// pseudo prefix; the client sees it as its public address.
func (l *lab) testTCPFromIPv6(t *testing.T) {
	l.csumGuard(t)
	ln := l.client.Listen(t, "tcp4", client4+":7300")
	l.tcpTransfer(t, l.srv, server6, "["+client6+"]:7300", ln, public6)
}

// testIperf3: iperf3 through the translator, 2 s each way: figures for the
// log, and each run must move data without a checksum error.
func (l *lab) testIperf3(t *testing.T) {
	l.csumGuard(t)
	srv := l.srv.Start(t, "iperf3", "-s", "-B", server6, "-p", "5201", "--forceflush")
	srv.WaitLine(t, 0, 10*time.Second, func(s string) bool { return strings.Contains(s, "Server listening on 5201") })
	for _, reverse := range []bool{false, true} {
		args := []string{"iperf3", "-c", public6, "-p", "5201", "-t", "2", "-J"}
		what := "client4 -> server6"
		if reverse {
			args, what = append(args, "-R"), "server6 -> client4"
		}
		out := l.client.Run(t, args...)
		var r struct {
			End struct {
				SumSent struct {
					Bytes       float64 `json:"bytes"`
					BitsPerSec  float64 `json:"bits_per_second"`
					Retransmits float64 `json:"retransmits"`
				} `json:"sum_sent"`
				SumReceived struct {
					Bytes      float64 `json:"bytes"`
					BitsPerSec float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Error != "" || r.End.SumReceived.Bytes == 0 {
			t.Errorf("iperf3 %s: %v %s:\n%s", what, err, r.Error, out)
			continue
		}
		t.Logf("iperf3 %s: %.0f Mbit/s received, %.0f retransmits", what, r.End.SumReceived.BitsPerSec/1e6, r.End.SumSent.Retransmits)
	}
}

// --- UDP ---

// udpEchoServer echoes every datagram on c and reports its sender.
func udpEchoServer(c net.PacketConn) <-chan string {
	from := make(chan string, 1000)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, a, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case from <- a.(*net.UDPAddr).AddrPort().Addr().Unmap().String():
			default:
			}
			c.WriteTo(buf[:n], a)
		}
	}()
	return from
}

// udpEcho sends payload from c and waits for it back, sending again up to
// tries times (path MTU discovery may eat the first); it returns how many
// sends it took.
func udpEcho(t *testing.T, c net.Conn, payload []byte, tries int) int {
	t.Helper()
	buf := make([]byte, 65536)
	for i := 1; i <= tries; i++ {
		if _, err := c.Write(payload); err != nil {
			t.Fatalf("UDP to %v: %v", c.RemoteAddr(), err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			if !bytes.Equal(buf[:n], payload) {
				t.Fatalf("UDP to %v: %d bytes came back, not the %d sent", c.RemoteAddr(), n, len(payload))
			}
			return i
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			if i < tries && strings.Contains(err.Error(), "message too long") {
				continue // the kernel learnt a smaller path MTU: send again
			}
			t.Fatalf("UDP to %v: %v", c.RemoteAddr(), err)
		}
	}
	t.Fatalf("UDP to %v: %d bytes, no echo after %d tries", c.RemoteAddr(), len(payload), tries)
	return 0
}

// testUDP: datagrams both ways, payload compared: 100 bytes, 1452 (the
// largest unfragmented), 3000 and 20000 (fragmented by the client without
// DF, each fragment translated on its own, and the echoes fragmented by the
// IPv6 server); 1400 bytes to server6b behind the 1280-byte link (the
// client fragments them once it knows the path MTU, from PathMTU or from a
// translated Fragmentation Needed after a first datagram is lost); one from
// server6 to the client; and one with checksum zero, which must arrive with
// its checksum computed (an IPv6 host drops a zero UDP checksum).
func (l *lab) testUDP(t *testing.T) {
	l.csumGuard(t)
	echo := l.srv.ListenPacket(t, "udp6", "["+server6+"]:7400")
	from := udpEchoServer(echo)
	echoB := l.srvB.ListenPacket(t, "udp6", "["+server6b+"]:7400")
	fromB := udpEchoServer(echoB)

	c, err := l.client.Dial("udp4", client4, public6+":7400", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, size := range []int{100, 1452, 3000, 20000} {
		p := make([]byte, size)
		rand.Read(p)
		udpEcho(t, c, p, 3)
		if f := <-from; f != client6 {
			t.Errorf("server6 saw the UDP client as %s, want %s", f, client6)
		}
	}

	cb, err := l.client.Dial("udp4", client4, public6b+":7400", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	p := make([]byte, 1400)
	rand.Read(p)
	tries := udpEcho(t, cb, p, 5)
	<-fromB
	t.Logf("UDP 1400 bytes to server6b behind the 1280-byte link: echoed after %d sends", tries)

	// From the IPv6 side: server6 to the client's pseudo-prefix address.
	cl := l.client.ListenPacket(t, "udp4", client4+":7401")
	fromC := udpEchoServer(cl)
	c6, err := l.srv.Dial("udp6", server6, "["+client6+"]:7401", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	udpEcho(t, c6, []byte("from the IPv6 side"), 3)
	if f := <-fromC; f != public6 {
		t.Errorf("the client saw server6 as %s, want %s", f, public6)
	}

	// Checksum zero, crafted in the client namespace and sent on its link.
	zc := l.srv.ListenPacket(t, "udp6", "["+server6+"]:7402")
	payload := []byte("IPv4 UDP with checksum zero")
	before := l.m.SettledMetrics(t)
	sendFrames(t, l.client, "c4", l.x4MAC, pt.UDP4NoChecksum(pt.IPv4{TTL: 64, Src: addr(client4), Dst: addr(public6)}, 7403, 7402, payload))
	buf := make([]byte, 100)
	zc.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, src, err := zc.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], payload) {
		t.Errorf("UDP with checksum zero: %q from %v, %v; want %q (an IPv6 receiver drops a zero checksum: map646 must compute it)", buf[:n], src, err, payload)
	}
	fwd := func(d netlab.Metrics) float64 {
		return d.Get("map646_packets_total", "direction", "4to6", "verdict", "forward", "reason", "")
	}
	if d := fwd(l.m.MetricsSince(t, before, func(d netlab.Metrics) bool { return fwd(d) >= 1 })); d != 1 {
		t.Errorf("UDP with checksum zero: %v packets forwarded 4to6, want 1", d)
	}
}

// --- Traceroute ---

// traceroute runs Debian's traceroute (UDP probes to port 33434 and up, one
// at a time, one per hop) and returns the address of each hop, "*" for
// none; it tries up to 3 times to get every hop to answer.
func traceroute(t *testing.T, ns *netlab.NS, args ...string) []string {
	t.Helper()
	var hops []string
	for try := 0; try < 3; try++ {
		out := ns.Run(t, append([]string{"traceroute", "-n", "-q", "1", "-N", "1", "-w", "2", "-m", "8"}, args...)...)
		hops = nil
		for _, line := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 2 {
				hops = append(hops, f[1])
			}
		}
		if !strings.Contains(strings.Join(hops, " "), "*") {
			break
		}
		t.Logf("traceroute %s: a hop did not answer, again:\n%s", strings.Join(args, " "), out)
	}
	return hops
}

// testTraceroute: traceroute through the translator each way. From the
// IPv4 client: hop 1 the xlat kernel, hop 2 the translator (TTL expired
// after its decrement: Time Exceeded from its own IPv4 address), hop 3 the
// xlat kernel's ICMPv6 Time Exceeded, translated, from the RFC 6791 pool,
// hop 4 server6's port unreachable, translated. From server6 likewise: the
// xlat kernel, the translator's own IPv6 address, the xlat kernel's ICMPv4
// error translated (192.0.2.1 in the pseudo prefix), the client.
func (l *lab) testTraceroute(t *testing.T) {
	l.csumGuard(t)
	before := l.m.Metrics(t)
	want := []string{xlat4, own4, pool4, public6}
	if got := traceroute(t, l.client, public6); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("traceroute %s: hops %q, want %q", public6, got, want)
	}
	want = []string{xlat6, own6, "64:ff9b::c000:201", client6}
	if got := traceroute(t, l.srv, "-6", "-s", server6, client6); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("traceroute -6 %s: hops %q, want %q", client6, got, want)
	}
	expired := func(d netlab.Metrics, dir string) float64 {
		return d.Get("map646_packets_total", "direction", dir, "verdict", "icmp-error", "reason", "ttl-expired")
	}
	d := l.m.MetricsSince(t, before, func(d netlab.Metrics) bool { return expired(d, "4to6") >= 1 && expired(d, "6to4") >= 1 })
	for _, dir := range []string{"4to6", "6to4"} {
		if expired(d, dir) < 1 {
			t.Errorf("no %s packet counted as ttl-expired", dir)
		}
	}
}

// --- Hairpin ---

// testHairpin: server6 reaches server6b through its public IPv4 address
// (64:ff9b::198.51.100.11) and the reverse; each sees the other at its
// public address in the pseudo prefix. The TCP transfer from server6 also
// needs the xlat kernel's Packet Too Big (server6b is behind the 1280-byte
// link) to hairpin back to server6: translated to IPv4 and back, its MTU
// 1280 -> 1260 -> 1280.
func (l *lab) testHairpin(t *testing.T) {
	l.csumGuard(t)
	ping(t, l.srv, pseudo6b, "-6", "-c", pingCount, "-i", "0.05", pseudo6b)
	ping(t, l.srvB, pseudo6, "-6", "-c", pingCount, "-i", "0.05", pseudo6)
	ln := l.srvB.Listen(t, "tcp6", "["+server6b+"]:7500")
	l.tcpTransfer(t, l.srv, server6, "["+pseudo6b+"]:7500", ln, pseudo6)
	if r := l.srv.IP(t, "-6", "route", "get", pseudo6b); !strings.Contains(r, "mtu 1280") {
		t.Errorf("server6 has not learnt the path MTU 1280 to %s (Packet Too Big through the hairpin):\n%s", pseudo6b, r)
	}
	ln = l.srv.Listen(t, "tcp6", "["+server6+"]:7501")
	l.tcpTransfer(t, l.srvB, server6b, "["+pseudo6+"]:7501", ln, pseudo6b)
}

// --- Malformed packets ---

// frame is a packet for sendFrames with its EtherType.
type frame struct {
	etype uint16
	pkt   []byte
}

func ip4(p []byte) frame { return frame{unix.ETH_P_IP, p} }
func ip6(p []byte) frame { return frame{unix.ETH_P_IPV6, p} }

// sendFrames sends raw IP packets from dev in ns to the link-layer address
// dst (a packet socket: the sending kernel checks nothing).
func sendFrames(t *testing.T, ns *netlab.NS, dev string, dst net.HardwareAddr, pkts ...[]byte) {
	t.Helper()
	var fs []frame
	for _, p := range pkts {
		if p[0]>>4 == 6 {
			fs = append(fs, ip6(p))
		} else {
			fs = append(fs, ip4(p))
		}
	}
	sendRaw(t, ns, dev, dst, fs...)
}

func sendRaw(t *testing.T, ns *netlab.NS, dev string, dst net.HardwareAddr, fs ...frame) {
	t.Helper()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, f := range fs {
			sa := &unix.SockaddrLinklayer{Protocol: htons(f.etype), Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], dst)
			if err := unix.Sendto(fd, f.pkt, 0, sa); err != nil {
				return fmt.Errorf("send %d bytes: %w", len(f.pkt), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw send in %s: %v", ns.Role, err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// testMalformed: packets map646 must not translate, crafted in the client
// and server namespaces and sent at the translator while a ping runs each
// way every 10 ms. Each is counted under its reason (and nothing else is
// dropped), and no echo is lost. IPv4 packets whose header itself is broken
// (wrong header checksum, header cut short, total length longer than the
// packet, IHL below 5) never reach map646: the xlat kernel drops them on
// receipt and counts them (nstat in the xlat namespace), and map646 must
// see none of them.
func (l *lab) testMalformed(t *testing.T) {
	l.csumGuard(t)
	c4, s6 := addr(client4), addr(server6)
	dst4, dst6 := addr(public6), addr(client6)
	h4 := pt.IPv4{TTL: 64, Src: c4, Dst: dst4}
	h6 := pt.IPv6{Hop: 64, Src: s6, Dst: dst6}
	payload := []byte("malformed")
	udpLen0 := pt.UDP4(h4, 7600, 7601, payload)
	binary.BigEndian.PutUint16(udpLen0[24:], 0) // UDP length 0
	tcpOffset := pt.TCP4(h4, pt.TCP{Sport: 7600, Dport: 7601, Flags: pt.ACK, Window: 1000}, payload)
	tcpOffset[32] = 0xf0 // data offset 60 bytes, beyond the segment
	spoof := h4
	spoof.Src = addr(public6b)
	frag := h4
	frag.MF, frag.ID = true, 4242
	h6spoof := h6
	h6spoof.Src = addr("64:ff9b::c000:263") // 192.0.2.99, a client, posing as such
	h6unmapped := h6
	h6unmapped.Src = addr("2001:db8:1::99")
	h6frag := h6
	h6frag.Ext = []pt.Ext{pt.Fragment(0, true, 4242)}
	h6rh := h6
	h6rh.Ext = []pt.Ext{pt.Routing(0, 1, dst6)}
	h6rh.Dst = addr("64:ff9b::c000:208")

	type bad struct {
		name            string
		f               frame
		ns              *netlab.NS
		dir             string // map646_packets_total labels
		verdict, reason string
	}
	cases := []bad{
		{"IPv4 source one of our mapped addresses", ip4(pt.UDP4(spoof, 7600, 7601, payload)), l.client, "4to6", "drop", "spoofed-mapped-source"},
		{"UDP length 0", ip4(udpLen0), l.client, "4to6", "drop", "bad-transport-header"},
		{"TCP data offset beyond the segment", ip4(tcpOffset), l.client, "4to6", "drop", "bad-transport-header"},
		{"TCP header cut short", ip4(pt.Raw4(h4, pt.ProtoTCP, []byte{0x1d, 0xb0, 0x1d, 0xb1, 0, 0})), l.client, "4to6", "drop", "truncated"},
		{"fragment of UDP with checksum zero", ip4(pt.UDP4NoChecksum(frag, 7600, 7601, payload)), l.client, "4to6", "icmp-error", "udp-zero-checksum-fragment"},
		{"fragmented ICMP echo", ip4(pt.ICMP4(frag, 8, 0, pt.Rest16(1, 1), payload)), l.client, "4to6", "drop", "fragmented-icmp"},
		{"ICMPv6 inside IPv4", ip4(pt.Raw4(h4, pt.ProtoICMPv6, []byte{128, 0, 0, 0, 0, 1, 0, 1})), l.client, "4to6", "drop", "foreign-protocol"},
		{"ICMP timestamp request", ip4(pt.ICMP4(h4, 13, 0, pt.Rest16(1, 1), make([]byte, 12))), l.client, "4to6", "drop", "icmp-untranslatable"},
		{"IPv6 source inside the pseudo prefix", ip6(pt.UDP6(h6spoof, 7600, 7601, payload)), l.srv, "6to4", "drop", "spoofed-pseudo-source"},
		{"IPv6 source not mapped", ip6(pt.UDP6(h6unmapped, 7600, 7601, payload)), l.srv, "6to4", "icmp-error", "no-mapping-src"},
		{"fragmented ICMPv6 echo", ip6(pt.ICMP6(h6frag, 128, 0, pt.Rest16(1, 1), payload)), l.srv, "6to4", "drop", "fragmented-icmp"},
		{"routing header with segments left", ip6(pt.UDP6(h6rh, 7600, 7601, payload)), l.srv, "6to4", "icmp-error", "routing-header"},
		{"ICMPv4 inside IPv6", ip6(pt.Raw6(h6, pt.ProtoICMP, []byte{8, 0, 0, 0, 0, 1, 0, 1})), l.srv, "6to4", "drop", "foreign-protocol"},
	}
	badSum := h4
	badSum.BadChecksum = true
	long := h4
	long.TotalLen = 200
	ihl := pt.UDP4(h4, 7600, 7601, payload)
	ihl[0] = 0x44 // IHL 4
	kernelDrops := []frame{
		ip4(pt.UDP4(badSum, 7600, 7601, payload)),
		ip4(pt.UDP4(h4, 7600, 7601, payload)[:12]),
		ip4(pt.UDP4(long, 7600, 7601, payload)),
		ip4(ihl),
	}
	const rounds = 5

	xb := l.xlat.Nstat(t, "IpInHdrErrors", "IpExtInCsumErrors", "IpExtInTruncatedPkts")
	before := l.m.SettledMetrics(t)
	// 300 echoes each way at 10 ms, while the packets go at the translator.
	ping4 := l.client.Start(t, "ping", "-n", "-i", "0.01", "-c", "300", "-W", "2", public6)
	ping6 := l.srv.Start(t, "ping", "-6", "-n", "-i", "0.01", "-c", "300", "-W", "2", client6)
	want := map[string]float64{}
	for range rounds {
		for _, c := range cases {
			sendRaw(t, c.ns, map[*netlab.NS]string{l.client: "c4", l.srv: "s6"}[c.ns],
				map[*netlab.NS]net.HardwareAddr{l.client: l.x4MAC, l.srv: l.x6MAC}[c.ns], c.f)
		}
		sendRaw(t, l.client, "c4", l.x4MAC, kernelDrops...)
		time.Sleep(100 * time.Millisecond) // spread over the pings' 3 s
	}
	names := map[string][]string{}
	for _, c := range cases {
		k := netlab.SeriesKey("map646_packets_total", "direction", c.dir, "verdict", c.verdict, "reason", c.reason)
		want[k] += rounds
		names[k] = append(names[k], c.name)
	}
	for _, p := range []*netlab.Proc{ping4, ping6} {
		if err := p.Wait(30 * time.Second); err != nil {
			t.Errorf("%s: %v\n%s", p.Name, err, p.Output())
		}
		s := pingSummary.FindStringSubmatch(p.Output())
		if s == nil || s[1] != "300" || s[2] != "300" {
			t.Errorf("%s lost echoes while malformed packets arrived:\n%s", p.Name, p.Output())
		}
	}

	// Each icmp-error verdict made one ICMP error, sent or held back by the
	// rate limit.
	var errs float64
	for _, c := range cases {
		if c.verdict == "icmp-error" {
			errs += rounds
		}
	}
	// The dataplane health check's probes (one TTL-1 datagram per interval,
	// answered with Time Exceeded) run meanwhile: they are counted as
	// ttl-expired with an ICMP error each, and apart in
	// map646_probe_packets_total, which is added to what is expected.
	probeKey := netlab.SeriesKey("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "ttl-expired")
	// With the fast path, its check's probe (every 10 s) earns an ICMPv6
	// Time Exceeded from the xlat kernel toward the node itself, which
	// map646 drops as local-destination, counted apart too.
	echoKey := netlab.SeriesKey("map646_packets_total", "direction", "6to4", "verdict", "drop", "reason", "local-destination")
	expect := func(d netlab.Metrics) (map[string]float64, float64) {
		w := maps.Clone(want)
		probes := d.Get("map646_probe_packets_total")
		if probes > 0 {
			w[probeKey] += probes
		}
		if echoes := d.Get("map646_fastpath_probe_errors_total"); echoes > 0 {
			w[echoKey] += echoes
		}
		return w, errs + probes
	}
	// Counters are published per batch: wait until they add up.
	var d netlab.Metrics
	var w map[string]float64
	var wantErrs float64
	poll.Until(5*time.Second, 50*time.Millisecond, func() bool {
		d = l.m.Metrics(t).Sub(before)
		w, wantErrs = expect(d)
		ok := d.Get("map646_icmp_errors_sent_total")+d.Get("map646_icmp_errors_suppressed_total") == wantErrs
		for k, v := range w {
			ok = ok && d[k] == v
		}
		return ok
	})
	for k, v := range w {
		if d[k] != v {
			t.Errorf("%s grew by %v, want %v (%d each of: %s; probes %v)", k, d[k], v, rounds, strings.Join(names[k], "; "), d.Get("map646_probe_packets_total"))
		}
	}
	for k, v := range d {
		if strings.HasPrefix(k, "map646_packets_total{") && !strings.Contains(k, `verdict="forward"`) && v != 0 && w[k] == 0 {
			t.Errorf("%s grew by %v: a packet dropped for a reason not sent", k, v)
		}
	}
	if s := d.Get("map646_icmp_errors_sent_total") + d.Get("map646_icmp_errors_suppressed_total"); s != wantErrs {
		t.Errorf("ICMP errors sent + suppressed: %v, want %v (%v of them the probes')", s, wantErrs, wantErrs-errs)
	}
	xa := l.xlat.Nstat(t, "IpInHdrErrors", "IpExtInCsumErrors", "IpExtInTruncatedPkts")
	t.Logf("the xlat kernel dropped on receipt: IpInHdrErrors +%d, IpExtInCsumErrors +%d, IpExtInTruncatedPkts +%d",
		xa["IpInHdrErrors"]-xb["IpInHdrErrors"], xa["IpExtInCsumErrors"]-xb["IpExtInCsumErrors"], xa["IpExtInTruncatedPkts"]-xb["IpExtInTruncatedPkts"])
	if xa["IpExtInCsumErrors"]-xb["IpExtInCsumErrors"] != rounds || xa["IpInHdrErrors"]-xb["IpInHdrErrors"] < 2*rounds ||
		xa["IpExtInTruncatedPkts"]-xb["IpExtInTruncatedPkts"] < rounds {
		t.Errorf("the xlat kernel did not drop the broken IPv4 headers as expected")
	}
}

// --- Reload under load ---

// testReloadUnderLoad: a numbered UDP stream from the client to server6,
// echoed back, runs while map646 is reloaded 40 times (each reload adds or
// removes a third mapping, so routes change and a new table is swapped in,
// and changes the ICMP error rate): no datagram may be lost, duplicated or
// changed, either way, and datagrams must have been in flight during the
// reloads.
func (l *lab) testReloadUnderLoad(t *testing.T) {
	l.csumGuard(t)
	echo := l.srv.ListenPacket(t, "udp6", "["+server6+"]:7700")
	setRcvBuf(t, echo, 8<<20)
	var srvGot, srvBad atomic.Uint64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			srvGot.Add(1)
			if !netlab.CheckDatagram(buf[:n]) {
				srvBad.Add(1)
			}
			echo.WriteTo(buf[:n], a)
		}
	}()
	c, err := l.client.Dial("udp4", client4, public6+":7700", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setRcvBuf(t, c, 8<<20)

	// The sender keeps at most window datagrams unanswered and sends at
	// most one every 200 us: continuous, without overrunning a busy machine
	// (a loss must be the translator's, not a full socket buffer's).
	const window = 64
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	var sent, got, bad, dup atomic.Uint64
	stop := make(chan struct{})
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-credits:
			}
			<-tick.C
			if _, err := c.Write(netlab.Datagram(seq)); err != nil {
				t.Errorf("UDP send %d: %v", seq, err)
				return
			}
			sent.Add(1)
		}
	}()
	go func() {
		seen := map[uint64]bool{}
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return // closed
			}
			if !netlab.CheckDatagram(buf[:n]) {
				bad.Add(1)
				continue
			}
			seq := binary.BigEndian.Uint64(buf)
			if seen[seq] {
				dup.Add(1)
			}
			seen[seq] = true
			got.Add(1)
			select {
			case credits <- struct{}{}:
			default:
			}
		}
	}()

	cfg := l.cfg
	extra := netlab.Mapping{IPv4: "198.51.100.12", IPv6: "2001:db8:1::12"}
	const reloads = 40
	busy := 0 // reloads during which datagrams were sent
	start := time.Now()
	for i := range reloads {
		cfg.Mappings, cfg.Translator = l.cfg.Mappings, "icmp_error_rate = 100"
		if i%2 == 0 {
			cfg.Mappings = append(append([]netlab.Mapping(nil), l.cfg.Mappings...), extra)
			cfg.Translator = "icmp_error_rate = 200"
		}
		s0 := sent.Load()
		rec := l.m.Reload(t, cfg)
		if sent.Load() > s0 {
			busy++
		}
		if want := float64(len(cfg.Mappings)); rec["mappings"] != want {
			t.Errorf("reload %d: %v mappings, want %v", i, rec["mappings"], want)
		}
		// Let the stream flow between reloads: wait for 20 more echoes.
		g := got.Load()
		poll.Until(30*time.Second-time.Since(start), time.Millisecond, func() bool { return got.Load() >= g+20 })
	}
	took := time.Since(start)
	close(stop)
	<-sendDone
	n := sent.Load()
	poll.Until(3*time.Second, 5*time.Millisecond, func() bool { return got.Load()+bad.Load() >= n })
	c.Close()
	t.Logf("%d reloads in %v, %d of them with datagrams in flight; %d datagrams each way (%.0f/s): server received %d, client %d echoes",
		reloads, took.Round(time.Millisecond), busy, n, float64(n)/took.Seconds(), srvGot.Load(), got.Load())
	if busy < reloads/2 {
		t.Errorf("datagrams were in flight during only %d of %d reloads: not a reload under load", busy, reloads)
	}
	if srvGot.Load() != n || srvBad.Load() != 0 || got.Load() != n || bad.Load() != 0 || dup.Load() != 0 {
		t.Errorf("across %d reloads: %d sent, server received %d (%d damaged), client got %d echoes (%d damaged, %d duplicated)",
			reloads, n, srvGot.Load(), srvBad.Load(), got.Load(), bad.Load(), dup.Load())
	}
	if m := l.m.Metrics(t); m.Get("map646_reloads_total", "result", "ok") < reloads {
		t.Errorf("map646_reloads_total{result=ok} = %v, want at least %d", m.Get("map646_reloads_total", "result", "ok"), reloads)
	}
	l.m.Reload(t, l.cfg) // back to the lab's configuration
}

// setRcvBuf sets the socket's receive buffer past net.core.rmem_max
// (SO_RCVBUFFORCE, root).
func setRcvBuf(t *testing.T, c any, n int) {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no raw connection", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) }); err != nil || serr != nil {
		t.Fatalf("SO_RCVBUFFORCE: %v %v", err, serr)
	}
}
