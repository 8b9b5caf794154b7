package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

func main() {
	label := flag.String("label", "go test", "what the summary line names")
	flag.Parse()
	s := newSummary(os.Stdout)
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "testsum: %v\n", err)
		os.Exit(1)
	}
	if !s.report(*label) {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json), with the fields
// testsum uses.
type event struct {
	Action     string // start, run, pause, cont, output, pass, fail, skip, bench; build-output, build-fail
	Package    string
	Test       string // empty for the package's own events
	Output     string
	ImportPath string // of build-output and build-fail
}

// summary tallies the events and prints what a reader needs of them.
type summary struct {
	out         io.Writer
	packages    int                 // packages that ran their tests
	failedPkgs  int                 // of which failed (a failed test, a crash, a build failure)
	buildFailed int                 // build-fail events
	passed      int                 // tests and subtests
	failed      []string            // "package TestName"
	skipped     []string            // "package TestName: reason"
	running     map[string][]string // output of a test not ended yet, by key(package, test)
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, running: map[string][]string{}}
}

func key(pkg, test string) string { return pkg + " " + test }

// read handles every line of r. A line that is not an event (go test
// prints some errors as plain text) is printed as it is.
func (s *summary) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var ev event
			if json.Unmarshal(line, &ev) != nil || ev.Action == "" {
				s.out.Write(line)
			} else {
				s.handle(ev)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *summary) handle(ev event) {
	switch {
	case ev.Action == "build-output":
		io.WriteString(s.out, ev.Output)
	case ev.Action == "build-fail":
		s.buildFailed++
	case ev.Test == "":
		s.packageEvent(ev)
	case ev.Action == "output":
		k := key(ev.Package, ev.Test)
		s.running[k] = append(s.running[k], ev.Output)
	case ev.Action == "pass":
		s.passed++
		delete(s.running, key(ev.Package, ev.Test))
	case ev.Action == "skip":
		k := key(ev.Package, ev.Test)
		s.skipped = append(s.skipped, k+": "+skipReason(s.running[k]))
		delete(s.running, k)
	case ev.Action == "fail":
		s.fail(key(ev.Package, ev.Test))
	}
}

// packageEvent handles the events of a package itself. Its output is the
// "ok" or "FAIL" line, "[no test files]", and whatever the test binary
// printed outside a test; the "PASS" line that -json adds is dropped, as
// go test without -v prints none.
func (s *summary) packageEvent(ev event) {
	switch ev.Action {
	case "output":
		if ev.Output != "PASS\n" {
			io.WriteString(s.out, ev.Output)
		}
	case "pass":
		s.packages++
	case "fail":
		s.packages++
		s.failedPkgs++
		// Tests that never ended were running when the test binary died
		// (a panic, the -timeout): their output says where.
		prefix := key(ev.Package, "")
		for _, k := range slices.Sorted(maps.Keys(s.running)) {
			if strings.HasPrefix(k, prefix) {
				s.fail(k)
			}
		}
	}
}

// fail prints the whole output of the failed test and counts it.
func (s *summary) fail(k string) {
	for _, line := range s.running[k] {
		io.WriteString(s.out, line)
	}
	delete(s.running, k)
	s.failed = append(s.failed, k)
}

// skipReason is the last line the skipped test printed before its
// "--- SKIP" line: the message given to t.Skip.
func skipReason(output []string) string {
	for i := len(output) - 1; i >= 0; i-- {
		line := strings.TrimSpace(output[i])
		if line != "" && !strings.HasPrefix(line, "--- ") && !strings.HasPrefix(line, "=== ") {
			return line
		}
	}
	return "(no reason given)"
}

// report prints the list and the summary line, and says whether the run
// passed.
func (s *summary) report(label string) bool {
	ok := len(s.failed) == 0 && s.failedPkgs == 0 && s.buildFailed == 0 && s.packages > 0
	list, items := "skipped", s.skipped
	if !ok {
		list, items = "failed", s.failed
	}
	if len(items) > 0 {
		fmt.Fprintf(s.out, "%s: %s:\n", label, list)
		for _, it := range items {
			fmt.Fprintf(s.out, "  %s\n", it)
		}
	}
	pkgs := plural(s.packages, "package")
	if s.failedPkgs > 0 {
		pkgs += fmt.Sprintf(" (%d failed)", s.failedPkgs)
	}
	fmt.Fprintf(s.out, "%s: %s, %s passed, %d failed, %d skipped\n", label, pkgs, plural(s.passed, "test"), len(s.failed), len(s.skipped))
	if s.packages == 0 {
		fmt.Fprintf(s.out, "%s: no package ran a test\n", label)
	}
	return ok
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
