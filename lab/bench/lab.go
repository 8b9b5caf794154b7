package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// options are the command-line settings the lab needs.
type options struct {
	map646      string        // binary
	duration    time.Duration // of each iperf3 run
	pingCount   int
	csumOffload bool // leave checksum offload on on the router's veths
}

// subjectLab is one subject's lab: client -- router -- server.
type subjectLab struct {
	s                      subject
	t                      netlab.TB
	client, router, server *netlab.NS
	target                 string // the server's address, as the client dials it
	m                      *netlab.Map646
	tayga                  *netlab.Proc

	before counters
}

// Addresses (documentation prefixes only).
const (
	client4      = "192.0.2.7"
	router4c     = "192.0.2.1"
	router4s     = "198.51.100.1"
	server4      = "198.51.100.10"
	client6      = "2001:db8:2::7"
	router6c     = "2001:db8:2::1"
	router6s     = "2001:db8:1::1"
	server6      = "2001:db8:1::10"
	xlatOwn4     = "198.51.100.1" // a translator's own IPv4 address: not the router's (see lab/lab_test.go)
	xlatOwn6     = "2001:db8:64::1"
	xlatPool     = "203.0.113.1"
	pseudoPrefix = "64:ff9b::/96"
	taygaPrefix  = "2001:db8:ff9b::/96" // TAYGA refuses documentation IPv4 addresses under 64:ff9b::/96
	taygaDev     = "tayga0"
)

// setup builds a subject's topology, starts its translator and an iperf3
// server, and checks that a ping gets through.
func setup(t netlab.TB, s subject, o options) *subjectLab {
	// lab/topo's single-node lab, the router as its node.
	l := topo.NewSingle(t, topo.SingleOptions{Name: s.ID, ChecksumOffload: o.csumOffload})
	tp := &subjectLab{s: s, t: t, client: l.Client, router: l.Node, server: l.Servers[0]}

	switch s.ID {
	case "kernel4":
		tp.client.AddAddr(t, topo.ClientLink, client4+"/24")
		tp.router.AddAddr(t, topo.NodeLink4, router4c+"/24")
		tp.router.AddAddr(t, topo.NodeLink6, router4s+"/24")
		tp.server.AddAddr(t, topo.ServerLink, server4+"/24")
		tp.client.AddRoute(t, "198.51.100.0/24", router4c)
		tp.server.AddRoute(t, "192.0.2.0/24", router4s)
		tp.target = server4
	case "kernel6":
		tp.client.AddAddr(t, topo.ClientLink, client6+"/64")
		tp.router.AddAddr(t, topo.NodeLink4, router6c+"/64")
		tp.router.AddAddr(t, topo.NodeLink6, router6s+"/64")
		tp.server.AddAddr(t, topo.ServerLink, server6+"/64")
		tp.client.AddRoute(t, "2001:db8:1::/64", router6c)
		tp.server.AddRoute(t, "2001:db8:2::/64", router6s)
		tp.target = server6
	case "map646-offload", "map646-water", "map646-busypoll", "map646-fastpath", "tayga":
		tp.client.AddAddr(t, topo.ClientLink, client4+"/24")
		tp.router.AddAddr(t, topo.NodeLink4, router4c+"/24")
		tp.router.AddAddr(t, topo.NodeLink6, router6s+"/64")
		tp.server.AddAddr(t, topo.ServerLink, server6+"/64")
		tp.client.AddRoute(t, "198.51.100.0/24", router4c)
		tp.target = server4
		if s.ID == "tayga" {
			tp.server.AddRoute(t, taygaPrefix, router6s)
			tp.startTayga(t)
		} else {
			tp.server.AddRoute(t, pseudoPrefix, router6s)
			var spin time.Duration
			if s.ID == "map646-busypoll" {
				spin = busyPoll
			}
			fastPath := "off"
			if s.ID == "map646-fastpath" {
				fastPath = "required" // no measure of the tun path under its name
			}
			tp.m = netlab.StartMap646(t, tp.router, o.map646, netlab.Config{
				PseudoPrefix: pseudoPrefix,
				IPv4Address:  xlatOwn4,
				IPv6Address:  xlatOwn6,
				RFC6791Pool:  []string{xlatPool},
				Mappings:     []netlab.Mapping{{IPv4: server4, IPv6: server6}},
				Offload:      s.ID != "map646-water",
				BusyPoll:     spin,
				FastPath:     fastPath,
			})
		}
	default:
		t.Fatalf("no subject %q", s.ID)
	}

	srv := tp.server.Start(t, "iperf3", "-s", "--forceflush")
	srv.WaitLine(t, 0, 10*time.Second, func(l string) bool { return strings.Contains(l, "Server listening") })
	tp.warmUp(t)
	return tp
}

// startTayga sets TAYGA up as its manual says: a persistent tun made by
// `tayga --mktun`, the host side (link, routes) by hand, then the daemon in
// the foreground. The device gets map646's txqueuelen, so that both queue
// the same.
func (tp *subjectLab) startTayga(t netlab.TB) {
	conf := filepath.Join(t.TempDir(), "tayga.conf")
	body := fmt.Sprintf("tun-device %s\nipv4-addr %s\nipv6-addr %s\nprefix %s\nmap %s %s\n",
		taygaDev, xlatOwn4, xlatOwn6, taygaPrefix, server4, server6)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	tp.router.Run(t, "tayga", "--mktun", "-c", conf)
	tp.router.IP(t, "link", "set", "dev", taygaDev, "mtu", "1500", "txqueuelen", "10000", "up")
	tp.router.IP(t, "route", "add", server4+"/32", "dev", taygaDev)
	tp.router.IP(t, "-6", "route", "add", taygaPrefix, "dev", taygaDev)
	tp.tayga = tp.router.Start(t, "tayga", "-c", conf, "--nodetach")
}

// warmUp pings the server until it answers (neighbour discovery, TAYGA
// starting), for up to 10 s.
func (tp *subjectLab) warmUp(t netlab.TB) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := tp.client.Exec(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", tp.target)
		if r, perr := parsePing(out); perr == nil && r.Received == r.Transmitted {
			return
		}
		if tp.tayga != nil {
			select {
			case <-tp.tayga.Done():
				t.Fatalf("tayga exited: %v\n%s", tp.tayga.Err(), tp.tayga.Output())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ping reply from %s through %s: %v\n%s", tp.target, tp.s.Name, err, out)
		}
	}
}

// counters are what a subject is judged by besides its runs.
type counters struct {
	csum   map[string]map[string]uint64 // "client"/"server" -> checksum-error counter -> value
	rcvbuf map[string]uint64            // the server's socket-buffer drops
	drops  map[string]uint64            // the router's links
	map646 netlab.Metrics
}

// snapshot reads the counters: the receivers' checksum errors, the
// server's socket-buffer drops, the router's link drops, map646's metrics.
func (tp *subjectLab) snapshot() counters {
	t := tp.t
	var c counters
	c.csum = map[string]map[string]uint64{
		"client": tp.client.Nstat(t, csumCounters...),
		"server": tp.server.Nstat(t, csumCounters...),
	}
	c.rcvbuf = tp.server.Nstat(t, rcvbufCounters...)
	var err error
	if c.drops, err = parseLinkDrops(tp.router.IP(t, "-s", "-j", "link", "show")); err != nil {
		t.Fatalf("%v", err)
	}
	if tp.m != nil {
		c.map646 = tp.m.Metrics(t)
	}
	return c
}

// report compares the counters now with those before the measurements.
func (tp *subjectLab) report(rep *subjectReport) {
	now := tp.snapshot()
	rep.CsumDelta = map[string]map[string]uint64{}
	for who, cs := range now.csum {
		rep.CsumDelta[who] = map[string]uint64{}
		for c, v := range cs {
			rep.CsumDelta[who][c] = v - tp.before.csum[who][c]
		}
	}
	for c, v := range now.rcvbuf {
		rep.RcvbufDrops += v - tp.before.rcvbuf[c]
	}
	rep.RouterDrops = map[string]uint64{}
	for l, v := range now.drops {
		rep.RouterDrops[l] = v - tp.before.drops[l]
	}
	if now.map646 != nil {
		d := now.map646.Sub(tp.before.map646)
		rep.Map646 = map[string]float64{
			"write_errors":   d.Sum("map646_write_errors_total"),
			"device_dropped": d.Sum("map646_device_dropped_total"),
		}
		for k, v := range d {
			if !strings.HasPrefix(k, "map646_packets_total{") || v == 0 {
				continue
			}
			for _, verdict := range []string{"drop", "icmp-error"} {
				if strings.Contains(k, `verdict="`+verdict+`"`) {
					rep.Map646[verdict] += v
					rep.Map646[verdict+" "+label(k, "direction")+" "+label(k, "reason")] += v
				}
			}
		}
	}
}

// label returns the value of a label in a series key of netlab.Metrics.
func label(series, name string) string {
	_, rest, ok := strings.Cut(series, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// busyPoll is the [tun] busy_poll of the map646-busypoll subject: longer
// than the 2 ms between the echo requests of a ping run, so that its
// worker never sleeps during one.
const busyPoll = 5 * time.Millisecond

// measure runs one test once and returns its values by metric ID, with
// the translator's CPU use (testID + "-cpu", "ping-cpu" for ping, in % of
// one CPU) where there is a translator process.
func (tp *subjectLab) measure(testID string, o options) (map[string]float64, error) {
	before, hasCPU := tp.cpuTime()
	start := time.Now()
	vals, err := tp.run(testID, o)
	if after, ok := tp.cpuTime(); err == nil && hasCPU && ok {
		vals[testID+"-cpu"] = 100 * (after - before).Seconds() / time.Since(start).Seconds()
	}
	return vals, err
}

// cpuTime returns the user and system time the translator process has
// used so far, from /proc/PID/stat; false for kernel forwarding.
func (tp *subjectLab) cpuTime() (time.Duration, bool) {
	var pid int
	switch {
	case tp.m != nil:
		pid = tp.m.PID()
	case tp.tayga != nil:
		pid = tp.tayga.PID()
	default:
		return 0, false
	}
	d, err := netlab.CPUTime(pid)
	return d, err == nil
}

// run runs one test once and returns its values by metric ID.
func (tp *subjectLab) run(testID string, o options) (map[string]float64, error) {
	if testID == "ping" {
		out, err := tp.client.Exec(time.Duration(o.pingCount)*10*time.Millisecond+20*time.Second,
			"ping", "-c", strconv.Itoa(o.pingCount), "-i", "0.002", "-W", "1", tp.target)
		r, perr := parsePing(out)
		if perr != nil {
			return nil, errors.Join(perr, err)
		}
		return map[string]float64{
			"rtt-p50":   percentile(r.RTTs, 50),
			"rtt-p99":   percentile(r.RTTs, 99),
			"rtt-min":   percentile(r.RTTs, 0),
			"rtt-max":   percentile(r.RTTs, 100),
			"ping-loss": 100 * float64(r.Transmitted-r.Received) / float64(r.Transmitted),
		}, nil
	}
	args := []string{"iperf3", "-c", tp.target, "-J", "-t", strconv.Itoa(int(o.duration.Seconds())),
		"--connect-timeout", "3000"}
	udp := strings.HasPrefix(testID, "udp")
	switch testID {
	case "tcp-up":
	case "tcp-down":
		args = append(args, "-R")
	case "tcp-4":
		args = append(args, "-P", "4")
	case "udp-1400":
		args = append(args, "-u", "-b", "0", "-l", "1400")
	case "udp-64":
		args = append(args, "-u", "-b", "0", "-l", "64")
	case "udp-64-flows":
		args = append(args, "-u", "-b", "0", "-l", "64", "-P", "8")
	default:
		return nil, fmt.Errorf("no test %q", testID)
	}
	var r iperfResult
	var err error
	for try := 0; try < 3; try++ {
		var out string
		out, err = tp.client.Exec(o.duration+30*time.Second, args...)
		var perr error
		if r, perr = parseIperf(out, udp); perr == nil {
			err = nil
			break
		}
		err = perr
		// The server may still be finishing the previous test.
		if !strings.Contains(perr.Error(), "busy") && !strings.Contains(perr.Error(), "unable to connect") {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return nil, err
	}
	switch testID {
	case "udp-1400":
		return map[string]float64{"udp1400-rate": r.BitsPerSecond / 1e9, "udp1400-loss": r.LossPercent,
			"udp1400-kpps": r.PacketsPerSec / 1e3}, nil
	case "udp-64":
		return map[string]float64{"udp64-pps": r.PacketsPerSec / 1e3, "udp64-loss": r.LossPercent,
			"udp64-mbps": r.BitsPerSecond / 1e6}, nil
	case "udp-64-flows":
		return map[string]float64{"udp64f-pps": r.PacketsPerSec / 1e3, "udp64f-loss": r.LossPercent,
			"udp64f-mbps": r.BitsPerSecond / 1e6}, nil
	}
	return map[string]float64{testID: r.BitsPerSecond / 1e9, testID + "-retransmits": r.Retransmits}, nil
}

// logs returns the translator's output, for the results directory.
func (tp *subjectLab) logs() string {
	switch {
	case tp.m != nil:
		return tp.m.Output()
	case tp.tayga != nil:
		return tp.tayga.Output()
	}
	return ""
}
