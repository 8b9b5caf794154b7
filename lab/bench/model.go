package main

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// subject is one router under test.
type subject struct {
	ID   string // in the CSV and on the terminal
	Name string // column header
	// Baseline is the ID of the kernel-forwarding subject a cell is divided
	// by: each kernel by itself, the translators (IPv4 client, IPv6 server)
	// by kernel IPv4 forwarding, the client's family. The targets are checked
	// against both kernels (see targets).
	Baseline   string
	Translator bool
}

var allSubjects = []subject{
	{ID: "kernel4", Name: "kernel IPv4", Baseline: "kernel4"},
	{ID: "kernel6", Name: "kernel IPv6", Baseline: "kernel6"},
	{ID: "map646-offload", Name: "map646 offload", Baseline: "kernel4", Translator: true},
	{ID: "map646-water", Name: "map646 water", Baseline: "kernel4", Translator: true},
	// The offload device with [tun] busy_poll = busyPoll: a worker reads
	// on for that long after its last packet instead of sleeping.
	{ID: "map646-busypoll", Name: "map646 busy poll", Baseline: "kernel4", Translator: true},
	{ID: "tayga", Name: "TAYGA", Baseline: "kernel4", Translator: true},
	// The offload device with the kernel fast path attached ([fastpath]
	// mode = "required"): the program translates what it takes, the tun
	// path the rest (issue 16).
	{ID: "map646-fastpath", Name: "map646 fast path", Baseline: "kernel4", Translator: true},
}

func subjectByID(id string) (subject, bool) {
	for _, s := range allSubjects {
		if s.ID == id {
			return s, true
		}
	}
	return subject{}, false
}

// test is one tool run that yields one or more metrics.
type test struct {
	ID   string
	Name string
}

var allTests = []test{
	{"ping", "ping"},
	{"tcp-up", "TCP, 1 stream, client to server"},
	{"tcp-down", "TCP, 1 stream, server to client (-R)"},
	{"tcp-4", "TCP, 4 streams, client to server (-P 4)"},
	{"udp-1400", "UDP, 1400-byte datagrams"},
	{"udp-64", "UDP, 64-byte datagrams"},
	{"udp-64-flows", "UDP, 64-byte datagrams, 8 flows (-P 8)"},
}

// metric is one row of the table.
type metric struct {
	ID     string
	Name   string
	Unit   string
	Lower  bool // lower is better
	Ratio  bool // show the ratio to the baseline
	Digits int  // decimals shown
}

var metrics = []metric{
	{ID: "rtt-p50", Name: "ping RTT p50", Unit: "µs", Lower: true, Ratio: true},
	{ID: "rtt-p99", Name: "ping RTT p99", Unit: "µs", Lower: true, Ratio: true},
	{ID: "tcp-up", Name: "TCP 1 stream, client to server", Unit: "Gbit/s", Ratio: true, Digits: 2},
	{ID: "tcp-down", Name: "TCP 1 stream, server to client", Unit: "Gbit/s", Ratio: true, Digits: 2},
	{ID: "tcp-4", Name: "TCP 4 streams, client to server", Unit: "Gbit/s", Ratio: true, Digits: 2},
	{ID: "udp1400-rate", Name: "UDP 1400 B received", Unit: "Gbit/s", Ratio: true, Digits: 2},
	{ID: "udp1400-loss", Name: "UDP 1400 B lost", Unit: "%", Lower: true, Digits: 1},
	{ID: "udp64-pps", Name: "UDP 64 B received", Unit: "kpps", Ratio: true},
	{ID: "udp64-loss", Name: "UDP 64 B lost", Unit: "%", Lower: true, Digits: 1},
	// Eight flows (iperf3 -P 8: eight source ports): the kernel spreads
	// them over the receive queues and CPUs, as a router's traffic is.
	{ID: "udp64f-pps", Name: "UDP 64 B, 8 flows, received", Unit: "kpps", Ratio: true},
	{ID: "udp64f-loss", Name: "UDP 64 B, 8 flows, lost", Unit: "%", Lower: true, Digits: 1},
	// What the translator process used during the ping runs (user and
	// system time of all its threads over the run's wall time): the price
	// of busy polling. Kernel forwarding has no process to charge.
	{ID: "ping-cpu", Name: "translator CPU during ping", Unit: "% of a CPU", Lower: true},
}

func metricByID(id string) metric {
	for _, m := range metrics {
		if m.ID == id {
			return m
		}
	}
	panic("no metric " + id)
}

// run is one measurement: a test on a subject, one repetition.
type runRecord struct {
	Subject string
	Test    string
	Rep     int
	Start   time.Time
	Took    time.Duration
	Values  map[string]float64 // metric ID (and extras such as "tcp-up-retransmits") -> value
	Err     string
}

// csumCounters are the receivers' checksum-error counters (nstat): none
// may grow. IpExtInCsumErrors counts bad IPv4 header checksums.
var csumCounters = []string{"TcpInCsumErrors", "UdpInCsumErrors", "Udp6InCsumErrors",
	"IcmpInCsumErrors", "Icmp6InCsumErrors", "IpExtInCsumErrors"}

// rcvbufCounters count the datagrams a receiver's kernel dropped because
// the socket was full: where a UDP flood through a fast router is lost.
var rcvbufCounters = []string{"UdpRcvbufErrors", "Udp6RcvbufErrors"}

// subjectReport is what was learnt of a subject besides the runs.
type subjectReport struct {
	SetupErr string
	// CsumDelta: receiver ("client", "server") -> counter -> growth from
	// before the first measurement to after the last.
	CsumDelta map[string]map[string]uint64
	CsumErr   string
	// RouterDrops: packets dropped on the router's links (rx and tx,
	// errors included), by link, during the measurements.
	RouterDrops map[string]uint64
	// RcvbufDrops: UDP datagrams the server's kernel dropped for want of
	// socket buffer (UdpRcvbufErrors + Udp6RcvbufErrors).
	RcvbufDrops uint64
	// Translator counters (map646's metrics) during the measurements.
	Map646 map[string]float64
	Notes  []string
}

// results is a whole run of the benchmark.
type results struct {
	Start, End time.Time
	Machine    string
	// BusyBefore, BusyAfter: the share of CPU time other processes used
	// in 2 s before the start and after the end (NaN: unknown).
	BusyBefore, BusyAfter float64
	Versions              map[string]string
	Reps                  int
	Duration              time.Duration // of each iperf3 run
	PingCount             int
	CsumOff               bool // checksum offload off on the router's veths
	Subjects              []subject
	Runs                  []runRecord
	Reports               map[string]*subjectReport
	Lookup                lookupResult
	LookupErr             string
	LookupTook            time.Duration
}

// values returns the successful measurements of a metric on a subject.
func (r *results) values(subj, metricID string) []float64 {
	if !r.hasSubject(subj) {
		return nil
	}
	var v []float64
	for _, x := range r.Runs {
		if x.Subject != subj || x.Err != "" {
			continue
		}
		if val, ok := x.Values[metricID]; ok && !math.IsNaN(val) {
			v = append(v, val)
		}
	}
	return v
}

// median returns the median of a metric on a subject and how many runs it
// is the median of; NaN when none succeeded.
func (r *results) median(subj, metricID string) (float64, int) {
	v := r.values(subj, metricID)
	return median(v), len(v)
}

// ratio is subject / baseline of a metric's medians (NaN if either is
// missing).
func (r *results) ratio(subj, base, metricID string) float64 {
	a, _ := r.median(subj, metricID)
	b, _ := r.median(base, metricID)
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func (r *results) hasSubject(id string) bool {
	for _, s := range r.Subjects {
		if s.ID == id {
			return true
		}
	}
	return false
}

// csumGrowth adds up the growth of every checksum-error counter at a
// subject's receivers; ok is false when they could not be read.
func (r *results) csumGrowth(subj string) (n uint64, ok bool) {
	rep := r.Reports[subj]
	if rep == nil || rep.CsumErr != "" || rep.CsumDelta == nil {
		return 0, false
	}
	for _, counters := range rep.CsumDelta {
		for _, d := range counters {
			n += d
		}
	}
	return n, true
}

// format prints a metric's value with its decimals; "n/a" for NaN.
func (m metric) format(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', m.Digits, 64)
}

func formatRatio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	if x >= 10 {
		return fmt.Sprintf("%.0fx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}
