package main

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// oneNode is the smallest lab that a probe can cross: client -- xlat
// (map646) -- server, without routing protocols, for the prober and the
// sniffers.
type oneNode struct {
	client, xlat, srv *netlab.NS
	m                 *netlab.Map646
}

func newOneNode(t *testing.T) *oneNode {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: builds namespaces and runs map646")
	}
	netlab.Need(t, "ip")
	bin := map646Binary(t)
	s := topo.NewSingle(t, topo.SingleOptions{ChecksumOffload: true})
	l := &oneNode{client: s.Client, xlat: s.Node, srv: s.Servers[0]}
	l.client.AddAddr(t, "c4", "192.0.2.7/24", "192.0.2.8/24")
	l.xlat.AddAddr(t, "x4", "192.0.2.1/24")
	l.xlat.AddAddr(t, "x6", "2001:db8:1::1/64")
	l.srv.AddAddr(t, "s6", "2001:db8:1::10/64", "2001:db8:1::11/64")
	l.client.AddRoute(t, "198.51.100.0/24", "192.0.2.1")
	l.srv.AddRoute(t, "64:ff9b::/96", "2001:db8:1::1")
	l.m = netlab.StartMap646(t, l.xlat, bin, netlab.Config{
		IPv4Address: "198.51.100.1", IPv6Address: "2001:db8:64::1",
		Mappings: []netlab.Mapping{{IPv4: "198.51.100.10", IPv6: "2001:db8:1::10"}, {IPv4: "198.51.100.11", IPv6: "2001:db8:1::11"}},
	})
	return l
}

// map646Binary takes the binary named by $MAP646_BIN (make lab passes the
// one it built), or builds this module's once for the package's tests
// (removed by TestMain).
func map646Binary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("MAP646_BIN"); bin != "" {
		return bin
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "failover-bin")
		if err != nil {
			t.Fatalf("failover: %v", err)
		}
		built.dir = dir
		built.path = netlab.BuildMap646(buildTB{t, dir})
	})
	if built.path == "" {
		t.Fatal("failover: map646 could not be built (see the first test that tried)")
	}
	return built.path
}

var built struct {
	once      sync.Once
	dir, path string
}

// buildTB hands BuildMap646 a directory that outlives the test.
type buildTB struct {
	*testing.T
	dir string
}

func (b buildTB) TempDir() string { return b.dir }

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

var (
	testSrcs = []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")}
	testDsts = []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")}
)

// TestProbeAndSniff: every probe through a working translator is answered
// and attributed to the node in both directions; with the server's route
// gone, the probes are lost, and the sniffer tells that the node got and
// translated the request but no reply came back.
func TestProbeAndSniff(t *testing.T) {
	l := newOneNode(t)
	p := NewProber(t, l.client, testSrcs, testDsts, 20*time.Millisecond, 300*time.Millisecond)
	syns := make(chan Segment, 16)
	Sniff(t, l.xlat, "xlat", l.m.Device, p, syns)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.Run(stop) }()
	waitProbes(t, p, 20)
	l.srv.IP(t, "route", "del", "64:ff9b::/96") // the server can no longer answer
	n := len(p.Probes())
	waitProbes(t, p, n+10)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	probes := p.Probes()
	pairs := map[[2]netip.Addr]int{}
	for i, pr := range probes {
		if pr.Seq != i {
			t.Fatalf("probe %d has sequence %d", i, pr.Seq)
		}
		pairs[[2]netip.Addr{pr.Src, pr.Dst}]++
		switch {
		case i < 20:
			if pr.Lost || pr.RTT <= 0 || pr.ReqVia != "xlat" || pr.RepVia != "xlat" || !pr.Translated {
				t.Errorf("probe %d through a working node: %+v", i, pr)
			}
		case i >= n+1: // sent after the link went down, with margin for one in flight
			if !pr.Lost || pr.ReqVia != "xlat" || pr.RepVia != "" || !pr.Translated {
				t.Errorf("probe %d towards a server that is gone: %+v", i, pr)
			}
		}
	}
	if len(pairs) != 4 {
		t.Errorf("probes used %d (source, destination) pairs, want 4: %v", len(pairs), pairs)
	}

	// A TCP SYN through the node is seen in each family: the client's SYN
	// (IPv4) and the server's SYN-ACK (IPv6).
	l.srv.AddRoute(t, "64:ff9b::/96", "2001:db8:1::1")
	ln := l.srv.Listen(t, "tcp", "[2001:db8:1::10]:7000")
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := l.client.Dial("tcp", "192.0.2.7", "198.51.100.10:7000", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	c.Close()
	var sawSyn, sawSynAck bool
	timeout := time.After(5 * time.Second)
	for !sawSyn || !sawSynAck {
		select {
		case s := <-syns:
			sawSyn = sawSyn || (!s.IPv6 && !s.ACK && s.SrcPort == port && s.DstPort == 7000 && s.Node == "xlat")
			sawSynAck = sawSynAck || (s.IPv6 && s.ACK && s.DstPort == port && s.SrcPort == 7000)
		case <-timeout:
			t.Fatalf("sniffer: SYN seen %v, SYN-ACK seen %v (client port %d)", sawSyn, sawSynAck, port)
		}
	}
}

// waitProbes waits until n probes have been answered or lost.
func waitProbes(t *testing.T, p *Prober, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p.mu.Lock()
		grow := p.grow
		p.mu.Unlock()
		settled := 0
		for _, pr := range p.Probes() {
			if pr.RTT > 0 || pr.Lost {
				settled++
			}
		}
		if settled >= n {
			return
		}
		select {
		case <-grow:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("only %d of %d probes settled within 20 s", settled, n)
		}
	}
}
