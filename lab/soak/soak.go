package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
)

var (
	duration = flag.Duration("duration", 10*time.Minute, "how long the traffic runs")
	period   = flag.Duration("period", time.Minute, "one reload of both nodes and one drain/undrain per period")
	outDir   = flag.String("out", "", "directory for report.md (the report is printed in any case)")
)

const (
	pingInterval = 100 * time.Millisecond
	tcpSize      = 8 << 20 // bytes each way per transfer
	udpInterval  = time.Millisecond
	udpWindow    = 64
	slackCount   = 2 // goroutines and fds above the warm-up value still "back"
)

// csumCounters are the receivers' checksum-error counters.
var csumCounters = []string{"TcpInCsumErrors", "UdpInCsumErrors", "Udp6InCsumErrors", "IcmpInCsumErrors", "Icmp6InCsumErrors"}

// Two mapping sets: the traffic's mappings in both, 64 others that differ.
func mappingSet(i int) []netlab.Mapping {
	ms := []netlab.Mapping{{IPv4: topo.Public10, IPv6: topo.Server10}, {IPv4: topo.Public11, IPv6: topo.Server11}}
	base := 64 + 64*i // 198.51.100.64-127 or .128-191
	for j := range 64 {
		ms = append(ms, netlab.Mapping{IPv4: fmt.Sprintf("198.51.100.%d", base+j), IPv6: fmt.Sprintf("2001:db8:%d::%x", 2+i, base+j)})
	}
	return ms
}

// sample is one reading of a node's process.
type sample struct {
	At         time.Duration
	RSS        int64 // kB
	Goroutines float64
	FDs        int
}

type nodeRec struct {
	n                *topo.Node
	start, warm, end sample
	series           []sample
}

// check is one assertion of the report.
type check struct {
	ok   bool
	what string
}

type soak struct {
	t     netlab.TB
	l     *topo.Lab
	start time.Time
	nodes []*nodeRec

	mu       sync.Mutex
	timeline []string
	checks   []check
	reloads  []time.Duration
	drains   []time.Duration
	undrains []time.Duration

	tcpOK, tcpBytes atomic.Int64
	tcpErrs         []string // under mu

	udpSent, udpSrvGot, udpSrvBad, udpGot, udpBad, udpDup atomic.Uint64

	pingOut          []string
	csumBefore       map[string]map[string]uint64
	identities       []string
	warmedUp, ending time.Duration
}

// run is the soak of the package comment. s.t is a netlab.Stoppable: a
// Fatalf ends the run, and main still writes the report (the figures so
// far).
func (s *soak) run() {
	t := s.t
	s.l = topo.New(t, topo.Options{})
	s.start = time.Now()
	for _, n := range s.l.Nodes {
		r := &nodeRec{n: n}
		r.start = s.sample(n)
		s.nodes = append(s.nodes, r)
	}
	s.csumBefore = map[string]map[string]uint64{}
	for _, ns := range append([]*netlab.NS{s.l.Client}, s.l.Servers...) {
		s.csumBefore[ns.Role] = ns.Nstat(t, csumCounters...)
	}
	s.event("lab up, both nodes serving and routed over both; traffic starts")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	pings := s.startPings()
	wg.Add(3)
	go func() { defer wg.Done(); s.tcpLoop(stop) }()
	go func() { defer wg.Done(); s.udpStream(stop) }()
	go func() { defer wg.Done(); s.sampler(stop) }()

	for k := 0; time.Since(s.start) < *duration; k++ {
		at := s.start.Add(time.Duration(k) * *period)
		s.sleepUntil(at.Add(*period / 3))
		s.reloadBoth(k % 2)
		s.sleepUntil(at.Add(2 * *period / 3))
		s.drainCycle(s.l.Nodes[k%2])
		s.sleepUntil(at.Add(*period))
		if k == 0 {
			s.warmedUp = time.Since(s.start)
			for _, r := range s.nodes {
				r.warm = s.sample(r.n)
			}
			s.event("warm-up over: baseline taken")
		}
	}
	close(stop)
	wg.Wait()
	for _, p := range pings {
		if err := p.Wait(time.Minute); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		s.pingOut = append(s.pingOut, p.Name+": "+lastLines(p.Output(), 2))
	}
	s.ending = time.Since(s.start)
	s.event("traffic stopped")
	s.finalChecks()
}

func (s *soak) event(format string, args ...any) {
	line := fmt.Sprintf("%7.1f s  ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.timeline = append(s.timeline, line)
	s.mu.Unlock()
	s.t.Logf("%s", line)
}

func (s *soak) expect(ok bool, format string, args ...any) {
	what := strings.ReplaceAll(strings.TrimSpace(fmt.Sprintf(format, args...)), "\n", "; ")
	s.mu.Lock()
	s.checks = append(s.checks, check{ok, what})
	s.mu.Unlock()
	if !ok {
		s.t.Errorf("FAIL: %s", what)
	}
}

func (s *soak) sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d) // the soak's schedule, not a synchronisation
	}
}

// --- The process ---

// quiet is a netlab.TB for other goroutines than the test's: a failure is
// remembered, not fatal.
type quiet struct {
	netlab.TB
	err error
}

func (q *quiet) Fatalf(format string, args ...any) { q.err = fmt.Errorf(format, args...) }
func (q *quiet) Errorf(format string, args ...any) { q.err = fmt.Errorf(format, args...) }

func (s *soak) sample(n *topo.Node) sample {
	pid := n.M.PID()
	sm := sample{At: time.Since(s.start).Round(time.Second)}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				sm.RSS, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		sm.FDs = len(fds)
	}
	q := &quiet{TB: s.t}
	sm.Goroutines = n.M.Metrics(q).Get("go_goroutines")
	return sm
}

func (s *soak) sampler(stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		for _, r := range s.nodes {
			sm := s.sample(r.n)
			s.mu.Lock()
			r.series = append(r.series, sm)
			s.mu.Unlock()
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// --- Operations ---

// reloadBoth gives both nodes mapping set i and reloads them (SIGHUP),
// one after the other, waiting for each one's "reloaded".
func (s *soak) reloadBoth(i int) {
	t := s.t
	for _, n := range s.l.Nodes {
		n.Config.Mappings = mappingSet(i)
		if err := os.WriteFile(n.ConfigPath, []byte(n.Config.TOML()), 0o600); err != nil {
			t.Fatalf("soak: %v", err)
		}
		start := time.Now()
		if err := n.M.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("soak: %s: SIGHUP: %v", n.Name, err)
		}
		rec, msg := n.M.WaitLog(t, 30*time.Second, "reloaded", "reload refused")
		took := time.Since(start)
		s.expect(msg == "reloaded" && rec["level"] == "INFO" && rec["mappings"] == float64(66),
			"%s: reload to set %d: %s with %v mappings in %v", n.Name, i, msg, rec["mappings"], took.Round(time.Millisecond))
		s.mu.Lock()
		s.reloads = append(s.reloads, took)
		s.mu.Unlock()
	}
	s.event("reloaded both nodes to mapping set %d", i)
}

// drainCycle drains n (the other still serves), waits until the routers
// route over the other node alone, undrains n and waits until they route
// over both again.
func (s *soak) drainCycle(n *topo.Node) {
	t := s.t
	other := s.l.Other(n)
	start := time.Now()
	out, err := n.Drain(false)
	took := time.Since(start)
	s.expect(err == nil, "%s: drain in %v: %s%s", n.Name, took.Round(time.Millisecond), errText(err), strings.TrimSpace(out))
	n.WaitState(t, "drained", 30*time.Second)
	s.l.WaitRouted(t, 10*time.Second, other)
	s.event("%s drained in %v; routers route over %s alone", n.Name, took.Round(time.Millisecond), other.Name)
	time.Sleep(2 * time.Second) // traffic runs over the other node alone for a while
	start = time.Now()
	out, err = n.Undrain()
	s.expect(err == nil, "%s: undrain: %s%s", n.Name, errText(err), strings.TrimSpace(out))
	s.l.WaitConverged(t, 30*time.Second)
	n.WaitState(t, "serving", 10*time.Second)
	utook := time.Since(start)
	s.event("%s undrained; routed over both again in %v", n.Name, utook.Round(time.Millisecond))
	s.mu.Lock()
	s.drains = append(s.drains, took)
	s.undrains = append(s.undrains, utook)
	s.mu.Unlock()
}

// --- Traffic ---

func (s *soak) startPings() []*netlab.Proc {
	count := strconv.Itoa(int(*duration / pingInterval))
	iv := strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64)
	return []*netlab.Proc{
		s.l.Client.Start(s.t, "ping", "-n", "-i", iv, "-c", count, "-W", "2", topo.Public10),
		s.l.Servers[0].Start(s.t, "ping", "-6", "-n", "-i", iv, "-c", count, "-W", "2", topo.Client6),
	}
}

// tcpLoop runs transfers one after the other until stop: the client to
// srv10 and srv11 to the client in turn, a second apart.
func (s *soak) tcpLoop(stop <-chan struct{}) {
	ln10 := s.l.Servers[0].Listen(s.t, "tcp6", "["+topo.Server10+"]:8000")
	lnC := s.l.Client.Listen(s.t, "tcp4", topo.Client4+":8001")
	for i := uint64(0); ; i++ {
		var err error
		if i%2 == 0 {
			err = transfer(s.l.Client, topo.Public10+":8000", ln10, i)
		} else {
			err = transfer(s.l.Servers[1], "["+topo.Client6+"]:8001", lnC, i)
		}
		if err != nil {
			s.mu.Lock()
			s.tcpErrs = append(s.tcpErrs, fmt.Sprintf("%.1f s: transfer %d: %v", time.Since(s.start).Seconds(), i, err))
			s.mu.Unlock()
		} else {
			s.tcpOK.Add(1)
			s.tcpBytes.Add(2 * tcpSize)
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// transfer connects from ns to remote (accepted on ln), sends tcpSize bytes
// of stream 2*seed, receives tcpSize bytes of stream 2*seed+1, and checks
// both by SHA-256 against what was generated.
func transfer(ns *netlab.NS, remote string, ln net.Listener, seed uint64) error {
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		if err := receive(c, 2*seed); err != nil {
			srvErr <- fmt.Errorf("server: %w", err)
			return
		}
		if err := send(c, 2*seed+1); err != nil {
			srvErr <- fmt.Errorf("server: %w", err)
			return
		}
		srvErr <- nil
	}()
	c, err := ns.Dial("tcp", "", remote, 5*time.Second)
	if err != nil {
		ln.(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Now()) // the server's Accept ends
		<-srvErr
		ln.(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Time{})
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if err := send(c, 2*seed); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := receive(c, 2*seed+1); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return <-srvErr
}

func send(c net.Conn, stream uint64) error {
	buf := make([]byte, 64<<10)
	for b := uint64(0); b*uint64(len(buf)) < tcpSize; b++ {
		fill(buf, stream, b)
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("write block %d: %w", b, err)
		}
	}
	return nil
}

func receive(c net.Conn, stream uint64) error {
	got, want := sha256.New(), sha256.New()
	n, err := io.CopyN(got, c, tcpSize)
	if err != nil {
		return fmt.Errorf("read %d of %d bytes: %w", n, tcpSize, err)
	}
	buf := make([]byte, 64<<10)
	for b := uint64(0); b*uint64(len(buf)) < tcpSize; b++ {
		fill(buf, stream, b)
		want.Write(buf)
	}
	if !equalSum(got, want) {
		return fmt.Errorf("%d bytes received, SHA-256 differs from those sent", tcpSize)
	}
	return nil
}

func equalSum(a, b hash.Hash) bool { return string(a.Sum(nil)) == string(b.Sum(nil)) }

// fill fills buf with block b of stream: every block of every stream
// differs, so a misplaced segment changes the SHA-256.
func fill(buf []byte, stream, b uint64) {
	var seed [16]byte
	binary.BigEndian.PutUint64(seed[:], stream)
	binary.BigEndian.PutUint64(seed[8:], b)
	x := sha256.Sum256(seed[:])
	for i := 0; i < len(buf); i += len(x) {
		copy(buf[i:], x[:])
		x[0]++
	}
}

// udpStream runs the numbered stream until stop, then waits up to 3 s for
// the last echoes.
func (s *soak) udpStream(stop <-chan struct{}) {
	t := s.t
	echo := s.l.Servers[1].ListenPacket(t, "udp6", "["+topo.Server11+"]:7700")
	setRcvBuf(echo, 8<<20)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			s.udpSrvGot.Add(1)
			if !netlab.CheckDatagram(buf[:n]) {
				s.udpSrvBad.Add(1)
			}
			echo.WriteTo(buf[:n], a)
		}
	}()
	c, err := s.l.Client.Dial("udp4", topo.Client4, topo.Public11+":7700", time.Second)
	if err != nil {
		s.expect(false, "UDP stream: %v", err)
		return
	}
	defer c.Close()
	setRcvBuf(c, 8<<20)
	credits := make(chan struct{}, udpWindow)
	for range udpWindow {
		credits <- struct{}{}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[uint64]bool{}
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // an ICMP error reported on the socket: the datagram counts as lost
			}
			if !netlab.CheckDatagram(buf[:n]) {
				s.udpBad.Add(1)
				continue
			}
			seq := binary.BigEndian.Uint64(buf)
			if seen[seq] {
				s.udpDup.Add(1)
			}
			seen[seq] = true
			s.udpGot.Add(1)
			select {
			case credits <- struct{}{}:
			default:
			}
		}
	}()
	tick := time.NewTicker(udpInterval)
	defer tick.Stop()
send:
	for seq := uint64(0); ; seq++ {
		select {
		case <-stop:
			break send
		case <-credits:
		case <-time.After(time.Second):
			// No credit for a second: a datagram of the window was lost
			// for good (it never returns its credit); send on regardless.
		}
		<-tick.C
		if _, err := c.Write(netlab.Datagram(seq)); err == nil {
			s.udpSent.Add(1)
		}
	}
	poll.Until(3*time.Second, 10*time.Millisecond, func() bool { return s.udpGot.Load()+s.udpBad.Load() >= s.udpSent.Load() })
	c.Close()
	<-done
}

func setRcvBuf(c any, n int) {
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) })
		}
	}
}

// --- The end ---

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func (s *soak) finalChecks() {
	t := s.t
	// Traffic.
	for _, out := range s.pingOut {
		m := pingSummary.FindStringSubmatch(out)
		s.expect(m != nil && m[1] == m[2] && m[1] != "0", "ping: every echo answered: %s", out)
	}
	s.mu.Lock()
	tcpErrs := append([]string(nil), s.tcpErrs...)
	s.mu.Unlock()
	s.expect(len(tcpErrs) == 0 && s.tcpOK.Load() > 0, "TCP: %d transfers of %d MB each way complete, SHA-256 equal both ways; %d failed %v",
		s.tcpOK.Load(), tcpSize>>20, len(tcpErrs), tcpErrs)
	sent := s.udpSent.Load()
	s.expect(s.udpBad.Load() == 0 && s.udpSrvBad.Load() == 0 && s.udpDup.Load() == 0,
		"UDP: no datagram damaged (server %d, client %d) or duplicated (%d)", s.udpSrvBad.Load(), s.udpBad.Load(), s.udpDup.Load())
	s.expect(sent > 0 && s.udpSrvGot.Load() == sent && s.udpGot.Load() == sent,
		"UDP: %d sent, %d received by srv11, %d echoes back: lost %d", sent, s.udpSrvGot.Load(), s.udpGot.Load(), sent-s.udpGot.Load())
	for _, ns := range append([]*netlab.NS{s.l.Client}, s.l.Servers...) {
		after := ns.Nstat(t, csumCounters...)
		var grew []string
		for _, c := range csumCounters {
			if d := after[c] - s.csumBefore[ns.Role][c]; d != 0 {
				grew = append(grew, fmt.Sprintf("%s +%d", c, d))
			}
		}
		s.expect(len(grew) == 0, "%s: no checksum error counted by its kernel %v", ns.Role, grew)
	}

	// Process: goroutines and fds back, memory flat.
	for _, r := range s.nodes {
		var end sample
		poll.Until(15*time.Second, 500*time.Millisecond, func() bool {
			end = s.sample(r.n)
			return end.Goroutines <= r.warm.Goroutines+slackCount && end.FDs <= r.warm.FDs+slackCount
		})
		r.end = end
		s.expect(end.Goroutines <= r.warm.Goroutines+slackCount, "%s: goroutines %v at the end, %v after the warm-up (%v at the start)",
			r.n.Name, end.Goroutines, r.warm.Goroutines, r.start.Goroutines)
		s.expect(end.FDs <= r.warm.FDs+slackCount, "%s: open fds %d at the end, %d after the warm-up (%d at the start)",
			r.n.Name, end.FDs, r.warm.FDs, r.start.FDs)
		limit := max(r.warm.RSS*12/10, r.warm.RSS+10*1024)
		s.expect(end.RSS <= limit, "%s: RSS %.1f MB at the end, %.1f MB after the warm-up (limit %.1f MB; %.1f MB at the start)",
			r.n.Name, mb(end.RSS), mb(r.warm.RSS), mb(limit), mb(r.start.RSS))
	}

	// Counters.
	for _, n := range s.l.Nodes {
		s.counters(n)
	}
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// counters checks a node's identity: read = written + drops + suppressed.
// A scrape reads the workers' counters one by one while a batch (the data
// plane's own probe, 10 a second) may publish between two reads, so the
// check takes the first of up to 20 scrapes that holds; a lost or uncounted
// packet makes every one fail.
func (s *soak) counters(n *topo.Node) {
	var in, out, drops, supp, fwd, errSent, we, dd float64
	var tunTx, tunRx, tunTxDrop uint64
	var reasons []string
	tries := 0
	for tries < 20 {
		tries++
		m := n.M.Metrics(s.t)
		in, out, drops, fwd, reasons = 0, 0, 0, 0, nil
		for k, v := range m {
			if strings.HasPrefix(k, "map646_packets_total{") {
				in += v
				if strings.Contains(k, `verdict="drop"`) {
					drops += v
					if v != 0 {
						reasons = append(reasons, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "map646_packets_total"), v))
					}
				}
				if strings.Contains(k, `verdict="forward"`) {
					fwd += v
				}
			}
		}
		out = m.Sum("map646_sent_packets_total")
		supp = m.Get("map646_icmp_errors_suppressed_total")
		errSent = m.Get("map646_icmp_errors_sent_total")
		we, dd = m.Get("map646_write_errors_total"), m.Get("map646_device_dropped_total")
		tunTx, tunRx, tunTxDrop = tunStats(s.t, n)
		if in == out+drops+supp {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sort.Strings(reasons)
	line := fmt.Sprintf("%s: read %.0f = written %.0f (forwarded %.0f + ICMP errors sent %.0f) + dropped %.0f %v + ICMP errors suppressed %.0f; write errors %.0f, device dropped %.0f (scrape %d); tun device (kernel): %d queued to map646, %d dropped at its queue, %d written by map646",
		n.Name, in, out, fwd, errSent, drops, reasons, supp, we, dd, tries, tunTx, tunTxDrop, tunRx)
	s.mu.Lock()
	s.identities = append(s.identities, line)
	s.mu.Unlock()
	s.expect(in == out+drops+supp && out == fwd+errSent && we == 0 && dd == 0, "%s", line)
}

// tunStats returns the kernel's counters of the node's tun device: tx is
// toward map646 (packets it queued for reading), rx from it.
func tunStats(t netlab.TB, n *topo.Node) (tx, rx, txDropped uint64) {
	out := n.NS.IP(t, "-s", "-j", "link", "show", "dev", n.M.Device)
	var l []struct {
		Stats64 struct {
			Rx struct{ Packets, Dropped uint64 } `json:"rx"`
			Tx struct{ Packets, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l) == 0 {
		return 0, 0, 0
	}
	return l[0].Stats64.Tx.Packets, l[0].Stats64.Rx.Packets, l[0].Stats64.Tx.Dropped
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// report writes report.md (with -out) and prints it.
func (s *soak) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	failed := 0
	for _, c := range s.checks {
		if !c.ok {
			failed++
		}
	}
	verdict := "PASS"
	if failed > 0 || s.t.Failed() {
		verdict = "FAIL"
	}
	w("# Soak: %s", verdict)
	w("")
	w("%s on the two-node lab (lab/topo, BGP, plain tun device), %v of traffic (-duration %v, -period %v), %s.",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), s.ending.Round(time.Second), *duration, *period, "run as `make soak`")
	w("Every period: both nodes reloaded (SIGHUP, mapping sets of 66 entries alternating), then one node drained and undrained (tokyo and osaka in turn).")
	w("")
	w("## Traffic")
	w("")
	for _, p := range s.pingOut {
		w("- %s", p)
	}
	w("- TCP: %d transfers of %d MB each way (%d MB in all), SHA-256 compared on both ends; %d failed", s.tcpOK.Load(), tcpSize>>20, s.tcpBytes.Load()>>20, len(s.tcpErrs))
	for _, e := range s.tcpErrs {
		w("  - %s", e)
	}
	sent := s.udpSent.Load()
	w("- UDP numbered stream: %d sent, %d received by srv11 (%d damaged), %d echoes back (%d damaged, %d duplicated), %d lost",
		sent, s.udpSrvGot.Load(), s.udpSrvBad.Load(), s.udpGot.Load(), s.udpBad.Load(), s.udpDup.Load(), int64(sent)-int64(s.udpGot.Load()))
	w("")
	w("## Operations")
	w("")
	w("- reloads: %d, %s", len(s.reloads), durStats(s.reloads))
	w("- drains: %d (map646 drain until drained), %s", len(s.drains), durStats(s.drains))
	w("- undrains: %d (until both routers route over both nodes), %s", len(s.undrains), durStats(s.undrains))
	w("")
	w("## Nodes")
	w("")
	w("Warm-up: the first period (%v). Flat: RSS at the end within max(+20 %%, +10 MB) of the warm-up value; goroutines and fds within +%d.", s.warmedUp.Round(time.Second), slackCount)
	w("")
	w("| node | | RSS MB | goroutines | open fds |")
	w("|---|---|---|---|---|")
	for _, r := range s.nodes {
		for _, x := range []struct {
			name string
			s    sample
		}{{"start", r.start}, {"after warm-up", r.warm}, {"end", r.end}} {
			w("| %s | %s (%v) | %.1f | %.0f | %d |", r.n.Name, x.name, x.s.At, mb(x.s.RSS), x.s.Goroutines, x.s.FDs)
		}
		maxRSS := max(r.start.RSS, r.warm.RSS, r.end.RSS)
		var rss []string
		for _, sm := range r.series {
			maxRSS = max(maxRSS, sm.RSS)
			rss = append(rss, fmt.Sprintf("%.1f", mb(sm.RSS)))
		}
		w("| %s | max over the run | %.1f | | |", r.n.Name, mb(maxRSS))
		w("")
		w("%s RSS every 10 s (MB): %s", r.n.Name, strings.Join(rss, " "))
		w("")
	}
	w("## Counters")
	w("")
	for _, l := range s.identities {
		w("- %s", l)
	}
	w("")
	w("## Checks")
	w("")
	for _, c := range s.checks {
		mark := "ok"
		if !c.ok {
			mark = "FAIL"
		}
		w("- %s: %s", mark, c.what)
	}
	w("")
	w("## Timeline")
	w("")
	w("```")
	for _, l := range s.timeline {
		w("%s", l)
	}
	w("```")
	fmt.Println(b.String())
	if *outDir != "" {
		err := os.MkdirAll(*outDir, 0o755)
		if err == nil {
			err = os.WriteFile(filepath.Join(*outDir, "report.md"), []byte(b.String()), 0o644)
		}
		if err != nil {
			s.t.Errorf("soak: report: %v", err)
		}
	}
}

func durStats(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("min %v, median %v, max %v", s[0].Round(time.Millisecond), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// errText is err's text and a separator, or nothing for a nil err (so that a
// report line does not say "<nil>").
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error() + ": "
}
