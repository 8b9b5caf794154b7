package fastpath_test

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
)

// BenchmarkForwardUDP64 is a first measurement of the fast path attached as
// map646 will attach it, in topo.Single (veths with checksum offload off):
// 64-byte UDP datagrams from the client, for two seconds, through the node
// by kernel IPv4 forwarding (to 198.51.100.20, the server's IPv4 address)
// and through the fast path at the egress of a tun device (to
// 198.51.100.10, mapped to the server's 2001:db8:1::10), three rounds
// interleaved. It reports the median datagrams per second each receiver
// got and their ratio. Run it alone, as root: go test -run '^$' -bench
// ForwardUDP64 -benchtime 1x ./translator/fastpath/. No tun path runs: a
// punted packet is lost, and counted.
func BenchmarkForwardUDP64(b *testing.B) {
	l := topo.NewSingle(b, topo.SingleOptions{Name: "fpbench"})
	l.Client.AddAddr(b, topo.ClientLink, "192.0.2.7/24")
	l.Client.IP(b, "route", "add", "default", "via", "192.0.2.1")
	l.Node.AddAddr(b, topo.NodeLink4, "192.0.2.1/24")
	l.Node.AddAddr(b, topo.NodeLink6, "2001:db8:1::1/64", "198.51.100.1/24")
	srv := l.Servers[0]
	srv.AddAddr(b, topo.ServerLink, "2001:db8:1::10/64", "198.51.100.20/24")
	srv.IP(b, "route", "add", "default", "via", "198.51.100.1")
	srv.IP(b, "-6", "route", "add", "default", "via", "2001:db8:1::1")

	var tun *os.File
	var ifindex int
	if err := l.Node.Do(func() (err error) {
		if tun, err = openTunDevice("m646", 0); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("m646")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	defer tun.Close()
	l.Node.IP(b, "link", "set", "m646", "up")
	l.Node.IP(b, "route", "add", "198.51.100.10/32", "dev", "m646")
	l.Node.IP(b, "route", "add", "64:ff9b::/96", "dev", "m646")
	table, err := translator.NewTable([]translator.Mapping{{IPv4: netip.MustParsePrefix("198.51.100.10/32"), IPv6: netip.MustParsePrefix("2001:db8:1::10/128")}})
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.LocalAddrs = nil
	fp, err := fastpath.Load(cfg, table, fastpath.LinkTun)
	if err != nil {
		b.Fatal(err)
	}
	defer fp.Close()
	var lk interface{ Close() error }
	if err := l.Node.Do(func() (err error) { lk, err = fp.Attach(ifindex); return err }); err != nil {
		b.Fatal(err)
	}
	defer lk.Close()

	subjects := []struct {
		name     string
		network  string
		listen   string
		to       string
		received []float64
	}{
		{name: "kernel-ipv4", network: "udp4", listen: "198.51.100.20:9", to: "198.51.100.20:9"},
		{name: "fastpath-4to6", network: "udp6", listen: "[2001:db8:1::10]:9", to: "198.51.100.10:9"},
	}
	for b.Loop() {
		for round := 0; round < 3; round++ {
			for i := range subjects {
				s := &subjects[i]
				pps := blast(b, l.Client, srv, s.network, s.listen, s.to, 2*time.Second)
				s.received = append(s.received, pps)
			}
		}
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	k, f := med(subjects[0].received), med(subjects[1].received)
	c, err := fp.Counters()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("kernel IPv4 forwarding %v pps, fast path %v pps (ratio %.2f); program counters %v", subjects[0].received, subjects[1].received, f/k, c)
	b.ReportMetric(k, "kernel-pps")
	b.ReportMetric(f, "fastpath-pps")
	b.ReportMetric(f/k, "ratio")
}

// blast sends 64-byte datagrams (36 bytes of payload) from the client to to
// for d and returns the datagrams per second the server received.
func blast(b *testing.B, client, server *netlab.NS, network, listen, to string, d time.Duration) float64 {
	b.Helper()
	rc := server.ListenPacket(b, network, listen)
	defer rc.Close()
	conn, err := client.Dial("udp4", "192.0.2.7", to, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	got := make(chan int)
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for {
			rc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := rc.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	payload := make([]byte, 36)
	start := time.Now()
	for time.Since(start) < d {
		for range 64 {
			conn.Write(payload) // a full socket buffer or an ICMP error: counted by what arrives
		}
	}
	return float64(<-got) / d.Seconds()
}
