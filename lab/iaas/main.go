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

// run is the command: the experiment, as root, cleaning up whatever
// happens; 0 when every asserted target is met, 1 when not, 2 for a
// usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iaas", flag.ContinueOnError)
	fs.SetOutput(stderr)
	full := fs.Bool("full", false, "the full run (make iaas): 10,000 VMs created one by one, at most 128 at once (each creation past 128 after the deletion of the oldest: 19,872 changes), 10,000 add/del cycles, a million mappings loaded into etcd; the issue's targets asserted (p99 <= 100 ms, the million served within 10 s, 300 MB per node)")
	out := fs.String("out", "iaas-results", "write the results (summary.md, CSVs, PNGs) into `DIR`")
	bin := fs.String("map646", os.Getenv("MAP646_BIN"), "the map646 `binary` (default $MAP646_BIN; when empty, build ./cmd/map646)")
	million := fs.Int("million", -1, "load `N` mappings into etcd at the end instead of the run's (full: 1,000,000; short: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iaas: unexpected arguments %q\n", fs.Args())
		return 2
	}
	s := netlab.NewScript(stderr)
	defer s.Close()
	netlab.RequireRoot(s)
	o := ShortOptions()
	if *full {
		o = FullOptions()
	}
	if *million >= 0 {
		o.Million = *million
	}
	if o.MillionWatch == 0 {
		o.MillionWatch = time.Minute
	}
	o.Bin, o.Progress = *bin, stdout
	runExperiment(s, o, *out, stdout)
	if s.Failed() {
		return 1
	}
	return 0
}

// runExperiment runs the experiment, writes its results into dir and prints
// its summary; a failure or a missed asserted target is an error on t.
func runExperiment(t netlab.TB, o Options, dir string, stdout io.Writer) *Report {
	start := time.Now()
	rep := Experiment(t, o)
	files, err := rep.Write(dir)
	if err != nil {
		t.Errorf("writing the results: %v", err)
	}
	fmt.Fprintln(stdout)
	rep.WriteSummary(stdout)
	fmt.Fprintf(stdout, "Took %s. Written to %s: %s\n", time.Since(start).Round(time.Second), dir, strings.Join(files, ", "))
	for _, err := range rep.Errs {
		t.Errorf("%v", err)
	}
	for _, c := range rep.Checks {
		if c.Asserted && !c.Met {
			t.Errorf("missed: %s: %s (target %s)", c.What, c.Got, c.Target)
		}
	}
	return rep
}
