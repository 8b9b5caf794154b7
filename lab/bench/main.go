package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/map646/map646/lab/netlab"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench-results", "write the results into `DIR`")
	reps := fs.Int("reps", 3, "repetitions of each measurement (the table shows the median)")
	dur := fs.Duration("t", 5*time.Second, "duration of each iperf3 run")
	pingCount := fs.Int("ping-count", 500, "echo requests per ping run (sent every 2 ms)")
	subjectList := fs.String("subjects", ids(allSubjects), "comma-separated `subjects` to measure")
	testList := fs.String("tests", testIDs(), "comma-separated `tests` to run")
	lookup := fs.Bool("lookup", true, "run the table-lookup benchmark (Figure 12)")
	lookupCount := fs.Int("lookup-count", 3, "runs of each lookup benchmark (the median is shown)")
	csumOffload := fs.Bool("csum-offload", false, "leave checksum offload on on the routers' veths "+
		"(default off: every checksum is completed in software and verified by the receivers)")
	bin := fs.String("map646", "", "a map646 `binary` (default: build ./cmd/map646)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *reps < 1 || *dur < time.Second || *pingCount < 10 || *lookupCount < 1 {
		fmt.Fprintln(stderr, "bench: bad arguments; see -help")
		return 2
	}
	subjects, err := pick(*subjectList)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	tests, err := pickTests(*testList)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if len(subjects) > 0 && os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "bench: the benchmark builds network namespaces and runs translators in them: run it as root")
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}

	// The Script cleans up and exits on SIGINT and SIGTERM; until it has,
	// start no new measurement (it would fail in a namespace being
	// deleted).
	s := netlab.NewScript(stderr)
	defer s.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; interrupted.Store(true) }()
	res := &results{Start: time.Now(), Reps: *reps, Duration: *dur, PingCount: *pingCount,
		CsumOff: !*csumOffload, Reports: map[string]*subjectReport{}, Versions: map[string]string{}}
	o := options{map646: *bin, duration: *dur, pingCount: *pingCount, csumOffload: *csumOffload}

	step := func(format string, a ...any) {
		fmt.Fprintf(stdout, "[%s] %s\n", time.Since(res.Start).Round(time.Second), fmt.Sprintf(format, a...))
	}
	if len(subjects) > 0 {
		step("installing what is missing (iproute2, iputils-ping, iperf3, ethtool, tayga)")
		netlab.Need(s, "ip", "nstat", "ping", "iperf3", "ethtool", "tayga")
		if o.map646 == "" {
			step("building map646")
			o.map646 = netlab.BuildMap646(s)
		}
	}
	res.Machine = machine()
	step("measuring the load of other processes for 2 s")
	res.BusyBefore = cpuBusy(2 * time.Second)
	if res.BusyBefore > 0.15 {
		step("WARNING: the machine is %.0f%% busy before the start: other work is running, the results will be noisy", 100*res.BusyBefore)
	}
	res.Versions["iperf3"] = version("iperf3", "--version")
	res.Versions["tayga"] = version("dpkg-query", "-W", "-f", "${Version}", "tayga")

	if *lookup {
		step("Figure 12: go test -bench 'TableLookup$' -count %d ./translator/ (1k to 1M entries; about %ds)", *lookupCount, 15+10**lookupCount)
		lk, took, err := runLookupBench(*lookupCount, fileIn(*out, "lookup-bench.txt"))
		res.Lookup, res.LookupTook = lk, took
		if err != nil {
			res.LookupErr = err.Error()
			step("lookup benchmark failed: %v", err)
		} else {
			step("lookup benchmark done in %s", took.Round(time.Second))
		}
	}

	var topos []*subjectLab
	for _, sub := range subjects {
		step("setting up %s", sub.Name)
		rep := &subjectReport{}
		res.Reports[sub.ID] = rep
		t := netlab.Stoppable{TB: s} // a Fatalf leaves this subject out
		var tp *subjectLab
		err := netlab.Attempt(func() error { tp = setup(t, sub, o); return nil })
		if err == nil {
			err = netlab.Attempt(func() error { tp.before = tp.snapshot(); return nil })
		}
		if err != nil {
			rep.SetupErr = err.Error()
			step("%s: set-up failed, left out: %s", sub.Name, clip(err.Error(), 400))
			continue
		}
		res.Subjects = append(res.Subjects, sub)
		topos = append(topos, tp)
	}

	measureAll(res, topos, tests, o, step)

	for _, tp := range topos {
		rep := res.Reports[tp.s.ID]
		if err := netlab.Attempt(func() error { tp.report(rep); return nil }); err != nil {
			rep.CsumErr = err.Error()
		}
		if l := tp.logs(); l != "" {
			os.WriteFile(fileIn(*out, tp.s.ID+".log"), []byte(l+"\n"), 0o644)
		}
		if n, ok := res.csumGrowth(tp.s.ID); ok && n > 0 {
			step("CHECKSUM ERRORS at the receivers of %s: %s", tp.s.Name, res.csumDetail(tp.s.ID))
		}
	}
	step("tearing down")
	s.Close()
	res.End = time.Now()
	res.BusyAfter = cpuBusy(2 * time.Second)

	code := 0
	charts, err := res.writeCharts(*out)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		code = 1
	}
	if err := writeFile(fileIn(*out, "results.md"), func(w io.Writer) error { res.writeMarkdown(w, charts); return nil }); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		code = 1
	}
	if err := writeFile(fileIn(*out, "runs.csv"), res.writeCSV); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		code = 1
	}
	fmt.Fprintln(stdout)
	res.writeText(stdout)
	fmt.Fprintf(stdout, "\nTook %s. Written to %s: results.md, runs.csv, %s.\n",
		res.End.Sub(res.Start).Round(time.Second), *out, strings.Join(charts, ", "))
	return code
}

// interrupted is set on SIGINT or SIGTERM.
var interrupted atomic.Bool

// measureAll runs every test on every subject, reps times, interleaved:
// repetition by repetition, test by test, the subjects in an order
// rotated at each repetition.
func measureAll(res *results, topos []*subjectLab, tests []test, o options, step func(string, ...any)) {
	if len(topos) == 0 {
		return
	}
	total := res.Reps * len(tests) * len(topos)
	estimate := func(testID string) time.Duration {
		if testID == "ping" {
			return time.Duration(o.pingCount)*2*time.Millisecond + 500*time.Millisecond
		}
		return o.duration + 700*time.Millisecond
	}
	var left time.Duration
	for _, tt := range tests {
		left += estimate(tt.ID) * time.Duration(res.Reps*len(topos))
	}
	done := 0
	for rep := 1; rep <= res.Reps; rep++ {
		for _, tt := range tests {
			for i := range topos {
				if interrupted.Load() {
					select {} // the Script is cleaning up and will exit
				}
				tp := topos[(i+rep-1)%len(topos)]
				start := time.Now()
				var vals map[string]float64
				var err error
				if cerr := netlab.Attempt(func() error { vals, err = tp.measure(tt.ID, o); return nil }); cerr != nil {
					err = cerr
				}
				x := runRecord{Subject: tp.s.ID, Test: tt.ID, Rep: rep, Start: start, Took: time.Since(start), Values: vals}
				if err != nil {
					x.Err = err.Error()
				}
				res.Runs = append(res.Runs, x)
				done++
				left -= estimate(tt.ID)
				step("%3d/%d  run %d  %-14s  %-9s  %s   (about %s left)", done, total, rep, tp.s.ID, tt.ID,
					summarize(x), left.Round(10*time.Second))
			}
		}
	}
}

// summarize prints a run's main values for the progress line.
func summarize(x runRecord) string {
	if x.Err != "" {
		return "FAILED: " + clip(strings.ReplaceAll(x.Err, "\n", " "), 200)
	}
	var parts []string
	for _, m := range metrics {
		if v, ok := x.Values[m.ID]; ok {
			parts = append(parts, fmt.Sprintf("%s %s %s", m.ID, m.format(v), m.Unit))
		}
	}
	return strings.Join(parts, ", ")
}

func pick(list string) ([]subject, error) {
	var out []subject
	for _, id := range strings.Split(list, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		s, ok := subjectByID(id)
		if !ok {
			return nil, fmt.Errorf("no subject %q; the subjects are %s", id, ids(allSubjects))
		}
		out = append(out, s)
	}
	return out, nil
}

func pickTests(list string) ([]test, error) {
	var out []test
	for _, id := range strings.Split(list, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		found := false
		for _, t := range allTests {
			if t.ID == id {
				out, found = append(out, t), true
			}
		}
		if !found {
			return nil, fmt.Errorf("no test %q; the tests are %s", id, testIDs())
		}
	}
	return out, nil
}

func ids(ss []subject) string {
	var s []string
	for _, x := range ss {
		s = append(s, x.ID)
	}
	return strings.Join(s, ",")
}

func testIDs() string {
	var s []string
	for _, t := range allTests {
		s = append(s, t.ID)
	}
	return strings.Join(s, ",")
}

func fileIn(dir, name string) string { return strings.TrimSuffix(dir, "/") + "/" + name }

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// machine describes the machine: CPU model, cores, kernel, Go.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "Linux"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel += " " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d-core %q, %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version())
}

// cpuBusy returns the fraction of CPU time (all cores) spent on anything
// but idle and iowait during d, from /proc/stat; NaN if it cannot tell.
func cpuBusy(d time.Duration) float64 {
	read := func() (busy, total float64, ok bool) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, false
		}
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "cpu" {
			return 0, 0, false
		}
		for i, s := range f[1:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return 0, 0, false
			}
			if i < 8 { // user nice system idle iowait irq softirq steal (guest is in user)
				total += v
				if i != 3 && i != 4 {
					busy += v
				}
			}
		}
		return busy, total, true
	}
	b0, t0, ok0 := read()
	time.Sleep(d)
	b1, t1, ok1 := read()
	if !ok0 || !ok1 || t1 <= t0 {
		return math.NaN()
	}
	return (b1 - b0) / (t1 - t0)
}

// version returns the first line a command prints, or "?".
func version(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
