package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/map646/map646/lab/netlab"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the command: the experiment with the options its flags give, as
// root, cleaning up whatever happens; 0 when every target is met, 1 when
// not, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	full := fs.Bool("full", false, "run the experiment in full (make lab, about 3 minutes): longer holds, the paper's 0.5 s outage target, a real Prometheus alerting on the silent death (Debian package prometheus, installed if missing), and the silent death without BFD too")
	out := fs.String("out", "failover-results", "write the results (timeline.csv, PNGs, summary.md) into `DIR`")
	fastPath := fs.Bool("fastpath", false, "run both nodes with the kernel fast path ([fastpath] mode = \"required\")")
	bin := fs.String("map646", os.Getenv("MAP646_BIN"), "the map646 `binary` (default $MAP646_BIN; when empty, build ./cmd/map646)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "failover: unexpected arguments %q\n", fs.Args())
		return 2
	}
	s := netlab.NewScript(stderr)
	defer s.Close()
	netlab.RequireRoot(s)
	o := experimentOptions(*full)
	o.Bin, o.Progress, o.Abort, o.FastPath = *bin, stdout, s.Interrupts(), *fastPath
	experiment(s, o, *out, stdout)
	if s.Failed() {
		return 1
	}
	return 0
}

// experimentOptions are the short form (make test: holds of 2 s, no run
// without BFD, 1 s of outage allowed at the silent death: enough to tell
// BFD, measured at 100-300 ms, from the 3 s hold timer, with room for a
// loaded CI machine) or the full one (make lab: the paper's 0.5 s, and a
// real Prometheus whose alert for the silently dead node is waited for,
// which keeps tokyo dead for the alert rule's "for" more).
func experimentOptions(full bool) Options {
	o := Options{Interval: 100 * time.Millisecond, Hold: 2 * time.Second, MaxOutage: time.Second}
	if full {
		o.Hold, o.HoldTimer, o.MaxOutage, o.Prometheus = 5*time.Second, true, 0, true
	}
	return o
}

// experiment runs the experiment, writes its results into dir and prints
// its summary; a part that failed or a target missed is an error on t.
func experiment(t netlab.TB, o Options, dir string, stdout io.Writer) {
	start := time.Now()
	rep := Experiment(t, o)
	files, err := rep.Write(dir)
	if err != nil {
		t.Errorf("writing the results: %v", err)
	}
	fmt.Fprintln(stdout)
	rep.WriteSummary(stdout, false)
	fmt.Fprintf(stdout, "Took %s. Written to %s: %s\n", time.Since(start).Round(time.Second), dir, strings.Join(files, ", "))
	for _, err := range rep.Errs {
		t.Errorf("%v", err)
	}
	if len(rep.Errs) == 0 && !rep.Met() {
		t.Errorf("a target was missed: see the summary (MISSED)")
	}
}
