package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParsePing: the replies' times in µs, the duplicate left out, the
// summary's counts; output without a summary or without a reply is an
// error, not a result of zero.
func TestParsePing(t *testing.T) {
	r, err := parsePing(readTestdata(t, "ping.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{71, 52, 49, 1200}
	if len(r.RTTs) != len(want) {
		t.Fatalf("RTTs %v, want %v", r.RTTs, want)
	}
	for i := range want {
		if math.Abs(r.RTTs[i]-want[i]) > 1e-9 {
			t.Errorf("RTT %d: %v µs, want %v", i, r.RTTs[i], want[i])
		}
	}
	if r.Transmitted != 5 || r.Received != 4 {
		t.Errorf("transmitted %d received %d, want 5 and 4", r.Transmitted, r.Received)
	}
	for _, bad := range []string{
		"PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n",
		"--- x ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2ms\n",
	} {
		if _, err := parsePing(bad); err == nil {
			t.Errorf("parsePing(%q): no error", bad)
		}
	}
}

// TestParseIperf: the receiver's rate from real iperf3 3.12 output (TCP:
// sum_received and the sender's retransmits; UDP: datagrams that arrived,
// from sum_received), and iperf3's error report as an error.
func TestParseIperf(t *testing.T) {
	tcp, err := parseIperf("warning: something on stderr\n"+readTestdata(t, "iperf3-tcp.json"), false)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(tcp.BitsPerSecond-168552911.905786) > 1 || tcp.Retransmits != 1203 {
		t.Errorf("TCP: %+v, want 168552911.9 bit/s received and 1203 retransmits", tcp)
	}
	udp, err := parseIperf(readTestdata(t, "iperf3-udp.json"), true)
	if err != nil {
		t.Fatal(err)
	}
	// 796558 datagrams, 693748 lost, in 2.006467 s.
	if pps := (796558.0 - 693748) / 2.006467; math.Abs(udp.PacketsPerSec-pps) > 1e-6 ||
		math.Abs(udp.BitsPerSecond-26234530.645158883) > 1 || math.Abs(udp.LossPercent-87.07004530793077) > 1e-9 {
		t.Errorf("UDP: %+v, want %.0f datagrams/s, 26.2 Mbit/s, 87.07%% lost", udp, pps)
	}
	if _, err := parseIperf(`{"start":{},"intervals":[],"end":{},"error":"error - the server is busy running a test. try again later"}`, false); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("iperf3 error: %v", err)
	}
	if _, err := parseIperf("iperf3: error - unable to connect to server", false); err == nil {
		t.Error("no JSON: no error")
	}
	if _, err := parseIperf(`{"end":{}}`, true); err == nil {
		t.Error("no receiver summary: no error")
	}
}

// TestParseLookupBench reads real `go test -bench 'TableLookup$'` output:
// both directions, four sizes, ns/op; with -count 2 both runs are kept.
func TestParseLookupBench(t *testing.T) {
	out := readTestdata(t, "lookup-bench.txt")
	res, err := parseLookupBench(out + "\n" + strings.ReplaceAll(out, "6.594 ns/op", "7.000 ns/op"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Sizes(); len(got) != 4 || got[0] != 1000 || got[3] != 1_000_000 {
		t.Errorf("sizes %v, want 1000 ... 1000000", got)
	}
	if v := res["4to6"][1000]; len(v) != 2 || v[0] != 6.594 || v[1] != 7 {
		t.Errorf("4to6 1k: %v, want [6.594 7]", v)
	}
	if v := res["6to4"][1_000_000]; len(v) != 2 || v[0] != 40.28 {
		t.Errorf("6to4 1M: %v, want 40.28 twice", v)
	}
	// GOMAXPROCS=1 prints no -N suffix.
	one, err := parseLookupBench("BenchmarkTableLookup/6to4/10k \t 100 \t 12.5 ns/op\n")
	if err != nil || one["6to4"][10_000][0] != 12.5 {
		t.Errorf("without suffix: %v, %v", one, err)
	}
	if _, err := parseLookupBench("PASS\nok\n"); err == nil {
		t.Error("no benchmark line: no error")
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ p, want float64 }{{0, 1}, {50, 3}, {100, 5}, {25, 2}, {99, 4.96}} {
		if got := percentile(xs, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("percentile(%v, %v) = %v, want %v", xs, c.p, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("percentile sorted its input")
	}
	if got := median([]float64{9, 1, 5}); got != 5 {
		t.Errorf("median of 3: %v, want the middle one, 5", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestParseLinkDrops(t *testing.T) {
	out := `[{"ifname":"lo","stats64":{"rx":{"dropped":7},"tx":{}}},
	{"ifname":"r0","stats64":{"rx":{"dropped":1,"errors":2},"tx":{"dropped":3,"errors":4}}},
	{"ifname":"map646","stats64":{"rx":{},"tx":{"dropped":100}}}]`
	m, err := parseLinkDrops(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["r0"] != 10 || m["map646"] != 100 {
		t.Errorf("%v, want r0 10, map646 100, no lo", m)
	}
}

// sample is a run of two repetitions with made-up values.
func sample() *results {
	r := &results{Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Reps: 2, Duration: 5 * time.Second,
		PingCount: 500, CsumOff: true, Subjects: allSubjects, Reports: map[string]*subjectReport{},
		Versions: map[string]string{"tayga": "0.9.2-8", "iperf3": "iperf 3.12"}, Machine: "test machine"}
	r.End = r.Start.Add(7 * time.Minute)
	add := func(subj, test string, rep int, vals map[string]float64) {
		r.Runs = append(r.Runs, runRecord{Subject: subj, Test: test, Rep: rep, Start: r.Start, Values: vals})
	}
	tcp := map[string]float64{"kernel4": 10, "kernel6": 8, "map646-offload": 6, "map646-water": 2, "map646-busypoll": 5, "tayga": 2}
	p50 := map[string]float64{"kernel4": 4, "kernel6": 5, "map646-offload": 20, "map646-water": 30, "map646-busypoll": 12, "tayga": 50}
	pps := map[string]float64{"kernel4": 500, "kernel6": 500, "map646-offload": 200, "map646-water": 150, "map646-busypoll": 170, "tayga": 160}
	cpu := map[string]float64{"map646-offload": 3, "map646-water": 4, "map646-busypoll": 99, "tayga": 2}
	for _, s := range allSubjects {
		for rep := 1; rep <= 2; rep++ {
			f := float64(rep) // rep 1 and 2: median in between
			ping := map[string]float64{"rtt-p50": p50[s.ID] + f - 1.5, "rtt-p99": 2 * p50[s.ID]}
			if c, ok := cpu[s.ID]; ok {
				ping["ping-cpu"] = c
			}
			add(s.ID, "ping", rep, ping)
			add(s.ID, "tcp-up", rep, map[string]float64{"tcp-up": tcp[s.ID] * (0.5 + f/3)})
			add(s.ID, "tcp-down", rep, map[string]float64{"tcp-down": tcp[s.ID]})
			add(s.ID, "udp-64", rep, map[string]float64{"udp64-pps": pps[s.ID], "udp64-loss": 50})
		}
		r.Reports[s.ID] = &subjectReport{
			CsumDelta:   map[string]map[string]uint64{"client": {"TcpInCsumErrors": 0}, "server": {"Udp6InCsumErrors": 0}},
			RouterDrops: map[string]uint64{"r0": 0, "r1": 3},
		}
	}
	r.Reports["tayga"].CsumDelta["server"]["Udp6InCsumErrors"] = 16
	r.Reports["map646-offload"].Map646 = map[string]float64{"drop": 2}
	r.Runs = append(r.Runs, runRecord{Subject: "tayga", Test: "tcp-4", Rep: 1, Err: "iperf3: the server is busy"},
		runRecord{Subject: "map646-offload", Test: "tcp-4", Rep: 1, Values: map[string]float64{"tcp-4": 5}})
	r.Lookup = lookupResult{"4to6": {1000: {5, 6, 7}, 1_000_000: {30}}, "6to4": {1000: {7}, 1_000_000: {29}}}
	return r
}

// TestReport: medians, ratios to the subject's baseline, the targets on
// those medians (held to both kernels; TAYGA's checksum errors reported,
// not held against map646), the failed run listed.
func TestReport(t *testing.T) {
	r := sample()
	if v, n := r.median("map646-offload", "tcp-up"); n != 2 || math.Abs(v-6*(0.5+1.5/3)) > 1e-9 {
		t.Errorf("median %v of %d runs", v, n)
	}
	var md bytes.Buffer
	r.writeMarkdown(&md, []string{"throughput.png"})
	out := md.String()
	for _, want := range []string{
		"| metric | kernel IPv4 | kernel IPv6 | map646 offload | map646 water | map646 busy poll | TAYGA |",
		"| TCP 1 stream, client to server (Gbit/s) | 10.00 (1.00x) | 8.00 (1.00x) | 6.00 (0.60x) | 2.00 (0.20x) | 5.00 (0.50x) | 2.00 (0.20x) |",
		"| translator CPU during ping (% of a CPU) | n/a | n/a | 3 | 4 | 99 | 2 |",
		"| ping RTT p50 (µs) | 4 (1.00x) | 5 (1.00x) | 20 (5.00x, +16) |",
		"| checksum errors at the receivers | 0 | 0 | 0 | 0 | 0 | 16 |",
		"**met**: TCP 1 stream, client to server through map646 offload >= 0.5x kernel forwarding. 0.60x of kernel IPv4, 0.75x of kernel IPv6.",
		"**MISSED**: UDP 64 B receive rate through map646 water >= TAYGA's",
		"**met**: UDP 64 B receive rate through map646 offload >= TAYGA's",
		"**met**: ping p50 through map646 offload within 20 µs of kernel forwarding. 20 µs, +16 µs against kernel IPv4 (4 µs), +15 µs against kernel IPv6 (5 µs).",
		"**MISSED**: ping p50 through map646 water within 20 µs",
		"**met**: ping p50 through map646 busy poll within 20 µs of kernel forwarding. 12 µs, +8 µs against kernel IPv4 (4 µs), +7 µs against kernel IPv6 (5 µs).",
		"**met**: UDP 64 B receive rate through map646 busy poll >= TAYGA's",
		"**met**: no checksum error at any receiver of kernel forwarding or map646",
		"TAYGA (the peer, not held to this): server Udp6InCsumErrors +16",
		"| 1,000,000 | 30.0 | 29.0 |",
		"| 1,000 | 6.0 | 7.0 |",
		"![throughput](throughput.png)",
		"tayga tcp-4 run 1: iperf3: the server is busy",
		"drop 2, icmp-error 0",
		"| TCP 4 streams, client to server (Gbit/s) | n/a | n/a | 5.00 (n/a) [1 of 2 runs] | n/a | n/a | n/a |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("results.md lacks %q", want)
		}
	}

	// A map646 checksum error misses the target.
	r.Reports["map646-water"].CsumDelta["client"]["TcpInCsumErrors"] = 1
	for _, tg := range r.targets() {
		if strings.HasPrefix(tg.Goal, "no checksum error") && (tg.Met || !strings.Contains(tg.Detail, "map646 water: client TcpInCsumErrors +1")) {
			t.Errorf("checksum target with a map646 error: %+v", tg)
		}
	}
	// A subject not measured leaves the targets that need it unknown.
	r.Subjects = allSubjects[2:]
	for _, tg := range r.targets() {
		if strings.Contains(tg.Goal, "0.5x kernel") && tg.Known {
			t.Errorf("TCP target known without the kernels: %+v", tg)
		}
	}

	var text bytes.Buffer
	sample().writeText(&text)
	if !strings.Contains(text.String(), "MISSED   UDP 64 B receive rate through map646 water") {
		t.Errorf("terminal summary:\n%s", text.String())
	}
}

// TestCSVAndCharts: every value of every run is a CSV line (a failed run
// one line with its error), and the charts are PNG files.
func TestCSVAndCharts(t *testing.T) {
	r := sample()
	var b bytes.Buffer
	if err := r.writeCSV(&b); err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	values := 0
	for _, x := range r.Runs {
		values += max(1, len(x.Values))
	}
	if want := 1 + values + 6; len(lines) != want { // header, runs, 6 lookup values
		t.Errorf("%d CSV lines, want %d", len(lines), want)
	}
	if last := lines[len(lines)-1]; last[0] != "lookup-6to4" || last[6] != "29" {
		t.Errorf("last line %v", last)
	}

	dir := t.TempDir()
	files, err := r.writeCharts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Errorf("charts %v, want 4", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s: %d bytes, %v: not a PNG chart", f, len(b), err)
		}
	}
}

func TestFormatCount(t *testing.T) {
	for n, want := range map[int]string{1: "1", 1000: "1,000", 10_000: "10,000", 1_000_000: "1,000,000"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestOverlapAndLabel: a target decided by medians whose runs overlap says
// it is a tie within noise; series labels are read from metric keys.
func TestOverlapAndLabel(t *testing.T) {
	r := sample()
	for i := range r.Runs {
		if x := &r.Runs[i]; x.Subject == "map646-offload" && x.Test == "udp-64" && x.Rep == 2 {
			x.Values["udp64-pps"] = 155 // runs 200 and 155 against TAYGA's 160, 160
		}
	}
	for _, tg := range r.targets() {
		if strings.Contains(tg.Goal, "UDP 64 B receive rate through map646 offload") &&
			(!tg.Met || !strings.Contains(tg.Detail, "a tie within")) {
			t.Errorf("overlapping runs: %+v", tg)
		}
		if strings.Contains(tg.Goal, "UDP 64 B receive rate through map646 water") && strings.Contains(tg.Detail, "tie") {
			t.Errorf("separate runs called a tie: %+v", tg)
		}
	}
	k := `map646_packets_total{direction="4to6",reason="no-mapping-dst",verdict="drop"}`
	if label(k, "reason") != "no-mapping-dst" || label(k, "direction") != "4to6" || label(k, "x") != "" {
		t.Errorf("labels of %s", k)
	}
}
