package lab

// The hostile-packet lab (issue 6): while legitimate traffic flows through
// the running daemon (a ping every 10 ms each way and a TCP upload whose
// SHA-256 is compared), scapy sends one packet of each hostile kind from the
// IPv4 client's side and from the IPv6 server's side, several rounds. The
// test asserts that the legitimate traffic is unharmed (no echo lost, the
// upload intact), that every hostile packet is counted under its reason
// (exact deltas: each kind is deterministic), that nothing but legitimate
// traffic came out on either side (captured with a packet socket in each
// receiving namespace, and every captured IP packet well formed), and that
// the daemon still runs and translates. It prints the table of kinds,
// reasons and counts.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	pt "github.com/map646/map646/translator/packettest"
)

// hostileRounds is how many times scapy sends each kind.
const hostileRounds = 12

// hostileMarker is in the payload of every hostile packet that has room
// for it: a captured packet holding it is a hostile packet that came out.
const hostileMarker = "HOSTILE-map646"

// hostileKind is one kind of hostile packet: its name in the scapy script,
// the side it is sent from, and the drop reason it must be counted under.
type hostileKind struct {
	name, side, reason string
}

// A Hop-by-Hop header out of place is not among them: it is answered with
// a Parameter Problem (translator row C11, TestHostile's
// ext-chain-hop-by-hop-not-first), and every kind here is a silent drop.
var hostileKinds = []hostileKind{
	{"udp-length-beyond-datagram", "4", "bad-transport-header"},
	{"udp-length-short-of-datagram", "4", "bad-transport-header"},
	{"tcp-data-offset-beyond-segment", "4", "bad-transport-header"},
	{"tcp-header-truncated", "4", "truncated"},
	{"tiny-first-fragment-tcp", "4", "bad-fragment"},
	{"fragment-overlapping-tcp-header", "4", "bad-fragment"},
	{"fragment-not-multiple-of-8", "4", "bad-fragment"},
	{"fragment-past-65535", "4", "bad-fragment"},
	{"icmp-error-in-icmp-error", "4", "icmp-error-in-error"},
	{"icmp-error-about-another-flow", "4", "icmp-embedded-mismatch"},
	{"source-is-our-mapped-address", "4", "spoofed-mapped-source"},
	{"martian-source-240/4", "4", "martian-source"},

	{"udp-length-beyond-datagram", "6", "bad-transport-header"},
	{"udp-length-short-of-datagram", "6", "bad-transport-header"},
	{"tcp-data-offset-beyond-segment", "6", "bad-transport-header"},
	{"tiny-first-fragment-tcp", "6", "bad-fragment"},
	{"fragment-overlapping-tcp-header", "6", "bad-fragment"},
	{"fragment-not-multiple-of-8", "6", "bad-fragment"},
	{"ext-header-chain-9", "6", "ext-header-chain"},
	{"ext-header-chain-100", "6", "ext-header-chain"},
	{"ext-header-truncated", "6", "truncated"},
	{"icmpv6-error-in-icmpv6-error", "6", "icmp-error-in-error"},
	{"icmpv6-error-about-another-flow", "6", "icmp-embedded-mismatch"},
	{"source-inside-pseudo-prefix", "6", "spoofed-pseudo-source"},
	{"destination-embeds-loopback", "6", "martian-destination"},
}

// hostileScript builds and sends the packets: argv is the side (4 or 6),
// the interface, the translator's MAC address, the rounds and the kinds.
// It prints one line per kind with the number sent.
const hostileScript = `
import sys, time
from scapy.all import Ether, IP, IPv6, UDP, TCP, ICMP, ICMPv6DestUnreach, Raw, sendp, conf
from scapy.all import IPv6ExtHdrFragment, IPv6ExtHdrDestOpt
conf.verb = 0
side, iface, mac, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kinds = sys.argv[5:]
M = b"` + hostileMarker + `"
C4, P4, P4B = "192.0.2.7", "198.51.100.10", "198.51.100.11"
S6, C6 = "2001:db8:1::10", "64:ff9b::c000:207"
tcp = bytes(TCP(sport=40002, dport=9, flags="A"))

def v4(**kw):
    return IP(src=kw.pop("src", C4), dst=kw.pop("dst", P4), ttl=64, **kw)

def v6(**kw):
    return IPv6(src=kw.pop("src", S6), dst=kw.pop("dst", C6), hlim=64, **kw)

def chain(n):
    p = v6()
    for _ in range(n):
        p = p / IPv6ExtHdrDestOpt()
    return p / UDP(sport=40002, dport=9) / M

build = {
  "4": {
    "udp-length-beyond-datagram": lambda: v4() / UDP(sport=40002, dport=9, len=200) / M,
    "udp-length-short-of-datagram": lambda: v4() / UDP(sport=40002, dport=9, len=8) / M,
    "tcp-data-offset-beyond-segment": lambda: v4() / TCP(sport=40002, dport=9, flags="A", dataofs=15) / M,
    "tcp-header-truncated": lambda: v4(proto=6) / Raw(tcp[:10]),
    "tiny-first-fragment-tcp": lambda: v4(proto=6, flags="MF", frag=0) / Raw(tcp[:16]),
    "fragment-overlapping-tcp-header": lambda: v4(proto=6, frag=1) / Raw(b"\x00" * 6 + b"\x02" + b"\x00" + M),
    "fragment-not-multiple-of-8": lambda: v4(proto=17, flags="MF", frag=8) / Raw(M[:13]),
    "fragment-past-65535": lambda: v4(proto=17, frag=8189) / Raw(M * 3),
    "icmp-error-in-icmp-error": lambda: v4() / ICMP(type=3, code=3) / IP(src=P4, dst=C4, ttl=63) / ICMP(type=3, code=3)
        / IP(src=C4, dst=P4, ttl=60) / UDP(sport=40002, dport=9) / M,
    "icmp-error-about-another-flow": lambda: v4() / ICMP(type=3, code=3) / IP(src=P4B, dst=C4, ttl=63) / UDP(sport=9, dport=40002) / M,
    "source-is-our-mapped-address": lambda: v4(src=P4B) / UDP(sport=40002, dport=9) / M,
    "martian-source-240/4": lambda: v4(src="240.0.0.1") / UDP(sport=40002, dport=9) / M,
  },
  "6": {
    "udp-length-beyond-datagram": lambda: v6() / UDP(sport=40002, dport=9, len=200) / M,
    "udp-length-short-of-datagram": lambda: v6() / UDP(sport=40002, dport=9, len=8) / M,
    "tcp-data-offset-beyond-segment": lambda: v6() / TCP(sport=40002, dport=9, flags="A", dataofs=15) / M,
    "tiny-first-fragment-tcp": lambda: v6() / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=7) / Raw(tcp[:16]),
    "fragment-overlapping-tcp-header": lambda: v6() / IPv6ExtHdrFragment(nh=6, offset=1, m=0, id=7) / Raw(b"\x00" * 6 + b"\x02" + b"\x00" + M),
    "fragment-not-multiple-of-8": lambda: v6() / IPv6ExtHdrFragment(nh=17, offset=8, m=1, id=7) / Raw(M[:13]),
    "ext-header-chain-9": lambda: chain(9),
    "ext-header-chain-100": lambda: chain(100),
    "ext-header-truncated": lambda: v6(nh=60) / Raw(b"\x11\x02" + b"\x00" * 6),
    "icmpv6-error-in-icmpv6-error": lambda: v6() / ICMPv6DestUnreach(code=4) / IPv6(src=C6, dst=S6, hlim=63) / ICMPv6DestUnreach(code=4)
        / IPv6(src=S6, dst=C6, hlim=60) / UDP(sport=40002, dport=9) / M,
    "icmpv6-error-about-another-flow": lambda: v6() / ICMPv6DestUnreach(code=4) / IPv6(src="64:ff9b::c000:208", dst=S6, hlim=63)
        / UDP(sport=9, dport=40002) / M,
    "source-inside-pseudo-prefix": lambda: v6(src="64:ff9b::c633:640b") / UDP(sport=40002, dport=9) / M,
    "destination-embeds-loopback": lambda: v6(dst="64:ff9b::7f00:1") / UDP(sport=40002, dport=9) / M,
  },
}[side]

pkts = [(k, Ether(dst=mac) / build[k]()) for k in kinds]
sent = {k: 0 for k in kinds}
for _ in range(rounds):
    for k, p in pkts:
        sendp(p, iface=iface)
        sent[k] += 1
    time.sleep(0.1)
for k in kinds:
    print("sent", k, sent[k], flush=True)
`

// TestHostilePackets runs the hostile-packet lab on the plain device back-end.
func TestHostilePackets(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the hostile-packet lab takes about 20 s")
	}
	// Debian ships scapy as python3-scapy, for its own python3 (a python3
	// earlier in PATH may be another installation without it).
	if _, ok := netlab.Packages["scapy"]; !ok {
		netlab.Packages["scapy"] = "python3-scapy"
	}
	netlab.Need(t, "ip", "nstat", "ethtool", "ping", "scapy")
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("scapy is installed for %s, which is missing: %v", python, err)
	}
	bin := netlab.BuildMap646(t)
	l := newLab(t, bin, false, 2, 0)
	l.csumGuard(t)
	script := filepath.Join(t.TempDir(), "hostile.py")
	if err := os.WriteFile(script, []byte(hostileScript), 0o644); err != nil {
		t.Fatal(err)
	}

	// The tun device's own multicast listener reports come in the first
	// seconds after it is up: one arriving between the start of the
	// captures and the snapshot below would be captured but not in the
	// difference of the counters. Start once they have stopped (their
	// counter still for 2 s).
	martian := func() float64 {
		return l.m.Metrics(t).Get("map646_packets_total", "direction", "6to4", "verdict", "drop", "reason", "martian-destination")
	}
	for last, still, deadline := martian(), time.Now(), time.Now().Add(15*time.Second); time.Since(still) < 2*time.Second; {
		if time.Now().After(deadline) {
			t.Fatalf("the tun device's multicast reports (martian-destination drops) did not stop within 15 s")
		}
		time.Sleep(100 * time.Millisecond)
		if m := martian(); m != last {
			last, still = m, time.Now()
		}
	}

	// Captures on the receiving side of each direction, and of what the
	// xlat kernel hands map646 on its own: the tun device's multicast
	// listener reports (to ff02::16), counted as martian-destination.
	capC := startCapture(t, l.client, "c4", false)
	capS := startCapture(t, l.srv, "s6", false)
	capT := startCapture(t, l.xlat, l.m.Device, true)

	before := l.m.SettledMetrics(t)
	ping4 := l.client.Start(t, "ping", "-n", "-i", "0.01", "-c", "500", "-W", "2", public6)
	ping6 := l.srv.Start(t, "ping", "-6", "-n", "-i", "0.01", "-c", "500", "-W", "2", client6)
	upload := startUpload(t, l)

	var kinds4, kinds6 []string
	for _, k := range hostileKinds {
		if k.side == "4" {
			kinds4 = append(kinds4, k.name)
		} else {
			kinds6 = append(kinds6, k.name)
		}
	}
	r := fmt.Sprint(hostileRounds)
	sc4 := l.client.Start(t, append([]string{python, script, "4", "c4", l.x4MAC.String(), r}, kinds4...)...)
	sc6 := l.srv.Start(t, append([]string{python, script, "6", "s6", l.x6MAC.String(), r}, kinds6...)...)
	sent := map[string]int{} // side/kind
	for side, p := range map[string]*netlab.Proc{"4": sc4, "6": sc6} {
		if err := p.Wait(60 * time.Second); err != nil {
			t.Fatalf("scapy (IPv%s side): %v\n%s", side, err, p.Output())
		}
		for _, line := range p.Lines() {
			var kind string
			var n int
			if _, err := fmt.Sscanf(line, "sent %s %d", &kind, &n); err == nil {
				sent[side+"/"+kind] = n
			}
		}
	}
	for _, k := range hostileKinds {
		if sent[k.side+"/"+k.name] != hostileRounds {
			t.Fatalf("scapy sent %d packets of %s from the IPv%s side, want %d:\n%s\n%s",
				sent[k.side+"/"+k.name], k.name, k.side, hostileRounds, sc4.Output(), sc6.Output())
		}
	}

	// The legitimate traffic: no echo lost, the upload intact.
	up := upload.finish(t)
	for _, p := range []*netlab.Proc{ping4, ping6} {
		if err := p.Wait(30 * time.Second); err != nil {
			t.Errorf("%s: %v\n%s", p.Name, err, p.Output())
		}
		s := pingSummary.FindStringSubmatch(p.Output())
		if s == nil || s[1] != "500" || s[2] != "500" {
			t.Errorf("%s lost echoes while hostile packets arrived:\n%s", p.Name, p.Output())
		}
	}

	// Every hostile packet counted under its reason, nothing else dropped.
	// Besides them, the tun device's own MLD reports, and the data plane's
	// self-check (a UDP datagram with TTL 1, answered with Time Exceeded)
	// every 100 ms.
	kernelMulticast := capT.stopCount(func(p []byte) bool { return len(p) >= 40 && p[0]>>4 == 6 && p[24] == 0xff })
	want := map[string]float64{
		netlab.SeriesKey("map646_packets_total", "direction", "6to4", "verdict", "drop", "reason", "martian-destination"): float64(kernelMulticast),
	}
	for _, k := range hostileKinds {
		dir := map[string]string{"4": "4to6", "6": "6to4"}[k.side]
		want[netlab.SeriesKey("map646_packets_total", "direction", dir, "verdict", "drop", "reason", k.reason)] += hostileRounds
	}
	var d netlab.Metrics
	probeKey := netlab.SeriesKey("map646_packets_total", "direction", "4to6", "verdict", "icmp-error", "reason", "ttl-expired")
	poll.Until(5*time.Second, 50*time.Millisecond, func() bool {
		d = l.m.Metrics(t).Sub(before)
		want[probeKey] = d.Get("map646_probe_packets_total")
		ok := true
		for k, v := range want {
			ok = ok && d[k] >= v
		}
		return ok
	})
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s grew by %v, want %v", k, d[k], v)
		}
	}
	for k, v := range d {
		if strings.HasPrefix(k, "map646_packets_total{") && !strings.Contains(k, `verdict="forward"`) && v != 0 && want[k] == 0 {
			t.Errorf("%s grew by %v: a packet dropped or answered for a reason not sent", k, v)
		}
	}
	if e := d.Get("map646_icmp_errors_sent_total") + d.Get("map646_icmp_errors_suppressed_total"); e != want[probeKey] {
		t.Errorf("the translator made %v ICMP errors, want %v (its self-checks'): none of the hostile kinds is answered", e, want[probeKey])
	}

	// Nothing but legitimate traffic came out on either side.
	legit4, leaks4 := capC.stop(t, classify4)
	legit6, leaks6 := capS.stop(t, classify6)
	for _, leak := range append(leaks4, leaks6...) {
		t.Errorf("came out of the translator: %s", leak)
	}
	if legit4 == 0 || legit6 == 0 {
		t.Errorf("captured %d legitimate packets on the client's side and %d on the server's: the captures saw nothing", legit4, legit6)
	}

	// The daemon still runs and translates.
	select {
	case <-l.m.Done():
		t.Fatalf("map646 exited: %v", l.m.Err())
	default:
	}
	ping(t, l.client, public6, "-c", "3", "-i", "0.05", public6)

	// The tables: each kind and its reason, then each reason's count.
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %-34s %-24s %5s\n", "side", "kind", "reason", "sent")
	for _, k := range hostileKinds {
		fmt.Fprintf(&b, "IPv%-2s %-34s %-24s %5d\n", k.side, k.name, k.reason, hostileRounds)
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(&b, "\n%-100s %8s %8s\n", "series", "expected", "counted")
	for _, k := range keys {
		fmt.Fprintf(&b, "%-100s %8v %8v\n", k, want[k], d[k])
	}
	t.Logf("hostile packets: %d kinds x %d rounds = %d sent\n%s", len(hostileKinds), hostileRounds, len(hostileKinds)*hostileRounds, b.String())
	t.Logf("legitimate traffic: 2 x 500 echoes at 10 ms, none lost; TCP upload %d bytes, SHA-256 equal; captured %d legitimate packets on the client's side, %d on the server's, nothing else; besides: %d MLD reports of the tun device (martian-destination), %v self-check probes (ttl-expired)",
		up, legit4, legit6, kernelMulticast, want[probeKey])
}

// --- The upload ---

// upload is a TCP transfer from the IPv4 client to server6, paced so that
// it runs as long as the hostile packets arrive: the client sends random
// chunks until finish, then half-closes; the server answers with the count
// and SHA-256 of what it received.
type upload struct {
	stop chan struct{}
	done chan error
	sum  [32]byte
	n    int
}

func startUpload(t *testing.T, l *lab) *upload {
	t.Helper()
	ln := l.srv.Listen(t, "tcp6", "["+server6+"]:7800")
	u := &upload{stop: make(chan struct{}), done: make(chan error, 1)}
	c, err := l.client.Dial("tcp", client4, public6+":7800", 5*time.Second)
	if err != nil {
		t.Fatalf("upload: dial: %v", err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("upload: accept: %v", err)
	}
	go func() { // the server: count and hash until EOF, then answer
		defer s.Close()
		s.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, s)
		if err != nil {
			return
		}
		var ans [40]byte
		binary.BigEndian.PutUint64(ans[:], uint64(n))
		copy(ans[8:], h.Sum(nil))
		s.Write(ans[:])
	}()
	go func() {
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		chunk := make([]byte, 32<<10)
		for {
			select {
			case <-u.stop:
				c.(*net.TCPConn).CloseWrite()
				var ans [40]byte
				if _, err := io.ReadFull(c, ans[:]); err != nil {
					u.done <- fmt.Errorf("reading the server's digest: %w", err)
					return
				}
				copy(u.sum[:], h.Sum(nil))
				if n := binary.BigEndian.Uint64(ans[:]); n != uint64(u.n) || !bytes.Equal(ans[8:], u.sum[:]) {
					u.done <- fmt.Errorf("the server received %d bytes with SHA-256 %x; sent %d with %x", n, ans[8:], u.n, u.sum)
					return
				}
				u.done <- nil
				return
			default:
			}
			rand.Read(chunk)
			if _, err := c.Write(chunk); err != nil {
				u.done <- fmt.Errorf("write after %d bytes: %w", u.n, err)
				return
			}
			h.Write(chunk)
			u.n += len(chunk)
			time.Sleep(2 * time.Millisecond) // about 15 MB/s: the upload spans the test
		}
	}()
	return u
}

// finish stops the upload and returns the number of bytes that arrived
// intact.
func (u *upload) finish(t *testing.T) int {
	t.Helper()
	close(u.stop)
	select {
	case err := <-u.done:
		if err != nil {
			t.Errorf("TCP upload during the hostile packets: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("TCP upload: no end 30 s after it was stopped")
	}
	return u.n
}

// --- Captures ---

// capture reads every packet a device of a namespace receives (a packet
// socket; outgoing packets are left out).
type capture struct {
	fd     int
	mu     sync.Mutex
	pkts   [][]byte
	stopCh chan struct{}
	done   chan struct{}
}

// With outgoing, it keeps the packets the namespace's kernel sends out of
// dev instead (on a tun device: what the kernel hands the daemon).
func startCapture(t *testing.T, ns *netlab.NS, dev string, outgoing bool) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		// A timeout, so that the reader sees stop without a signal.
		tv := unix.Timeval{Usec: 100000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", dev, ns.Role, err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, from, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && (ll.Pkttype == unix.PACKET_OUTGOING) != outgoing {
				continue
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, bytes.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-c.done
		unix.Close(c.fd)
	})
	c.stopCh = stop
	return c
}

// stopCount ends the capture and counts the packets that match.
func (c *capture) stopCount(match func([]byte) bool) int {
	close(c.stopCh)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.pkts {
		if match(p) {
			n++
		}
	}
	return n
}

// stop ends the capture and sorts what it saw with classify: the number of
// legitimate packets and a description of every other.
func (c *capture) stop(t *testing.T, classify func([]byte) (bool, string)) (int, []string) {
	t.Helper()
	close(c.stopCh)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	legit := 0
	var leaks []string
	for _, p := range c.pkts {
		if len(p) == 0 || (p[0]>>4 != 4 && p[0]>>4 != 6) {
			continue // ARP and the like: not IP
		}
		if bytes.Contains(p, []byte(hostileMarker)) {
			leaks = append(leaks, fmt.Sprintf("a packet holding the hostile marker: % x", p[:min(len(p), 96)]))
			continue
		}
		ok, why := classify(p)
		if !ok {
			leaks = append(leaks, why)
			continue
		}
		legit++
	}
	return legit, leaks
}

// classify4 accepts what the client may receive: echo replies from
// server6's public address, the upload's segments from it, and (checked
// well formed) nothing else.
func classify4(p []byte) (bool, string) {
	return classify(p, addr(public6), addr(client4))
}

// classify6 accepts what server6 may receive: echo requests and replies
// from the client's pseudo-prefix address, the upload's segments, and the
// kernel's own neighbor discovery and multicast listener reports.
func classify6(p []byte) (bool, string) {
	return classify(p, addr(client6), addr(server6))
}

func classify(p []byte, peer, self netip.Addr) (bool, string) {
	h, err := pt.Check(p)
	if err != nil {
		// The upload's segments may arrive merged by the receiver's GRO
		// with a partial checksum; they are checked by their SHA-256.
		if h2, ok := headerOnly(p); ok && h2.src == peer && h2.dst == self && h2.proto == pt.ProtoTCP && h2.port == 7800 {
			return true, ""
		}
		return false, fmt.Sprintf("a malformed packet (%v): % x", err, p[:min(len(p), 96)])
	}
	desc := fmt.Sprintf("%v -> %v protocol %d: % x", h.Src, h.Dst, h.Proto, p[:min(len(p), 96)])
	switch {
	case h.Version == 6 && h.Proto == 58 && h.ICMP != nil && (h.ICMP.Type >= 133 && h.ICMP.Type <= 137 || h.ICMP.Type == 143):
		return true, "" // neighbor discovery, MLD
	case h.Src != peer || h.Dst != self:
		return false, "a packet of another flow: " + desc
	case h.Proto == pt.ProtoTCP && (h.Sport == 7800 || h.Dport == 7800):
		return true, ""
	case h.ICMP != nil && !h.ICMP.Error && (h.ICMP.Type == 0 || h.ICMP.Type == 8 || h.ICMP.Type == 128 || h.ICMP.Type == 129):
		return true, ""
	}
	return false, "not the pings or the upload: " + desc
}

// hdrFields are the addresses, protocol and the upload's port of a packet
// read without checking anything else.
type hdrFields struct {
	src, dst netip.Addr
	proto    uint8
	port     uint16
}

func headerOnly(p []byte) (hdrFields, bool) {
	var h hdrFields
	var l4 []byte
	switch {
	case p[0]>>4 == 4 && len(p) >= 20:
		h.src, h.dst, h.proto = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), p[9]
		l4 = p[int(p[0]&0xf)*4:]
	case p[0]>>4 == 6 && len(p) >= 40:
		h.src, h.dst, h.proto = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), p[6]
		l4 = p[40:]
	default:
		return h, false
	}
	if len(l4) < 4 {
		return h, false
	}
	h.port = binary.BigEndian.Uint16(l4[2:])
	if s := binary.BigEndian.Uint16(l4); s == 7800 {
		h.port = s
	}
	return h, true
}
