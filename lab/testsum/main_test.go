package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// A module of two packages whose tests pass, fail, skip, and crash, and a
// package without tests.
var fixture = map[string]string{
	"go.mod": "module example.com/fix\n\ngo 1.22\n",
	"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) { t.Log("a log line of a passing test") }

func TestSkip(t *testing.T) { t.Skip("no widget here") }

func TestFail(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Error("the sub-test's complaint") })
	t.Run("fine", func(t *testing.T) {})
}
`,
	"b/b_test.go": `package b

import "testing"

func TestPass(t *testing.T) {}

func TestCrash(t *testing.T) {
	println("about to crash")
	panic("boom")
}
`,
	"c/c.go": "package c\n",
	"d/d_test.go": `package d

import "testing"

func TestPass(t *testing.T) {}
`,
}

// goTestJSON runs go test -json on the fixture's packages and returns its
// standard output.
func goTestJSON(t *testing.T, pkgs ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, text := range fixture {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append([]string{"test", "-json", "-count=1"}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out
}

func summarize(t *testing.T, in []byte) (string, bool) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	ok := s.report("make test")
	return out.String(), ok
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestFailingRun: a real go test -json run with failures: the failed
// tests' output (and a crashed test's) is printed, passing tests' logs are
// not, the failures are listed and counted, and the run fails.
func TestFailingRun(t *testing.T) {
	out, ok := summarize(t, goTestJSON(t, "./..."))
	if ok {
		t.Errorf("a run with failures passed:\n%s", out)
	}
	wantLines(t, out,
		"the sub-test's complaint",
		"about to crash",
		"panic: boom",
		"FAIL\texample.com/fix/a",
		"FAIL\texample.com/fix/b",
		"ok  \texample.com/fix/d",
		"example.com/fix/c\t[no test files]",
		"make test: failed:\n",
		"  example.com/fix/a TestFail/sub\n",
		"  example.com/fix/b TestCrash\n",
		// a: TestPass, TestFail/fine; b: TestPass; d: TestPass.
		"make test: 3 packages (2 failed), 4 tests passed, 3 failed, 1 skipped\n")
	if strings.Contains(out, "a log line of a passing test") {
		t.Errorf("a passing test's log is printed:\n%s", out)
	}
	if !strings.HasSuffix(out, "make test: 3 packages (2 failed), 4 tests passed, 3 failed, 1 skipped\n") {
		t.Errorf("the summary is not the last line:\n%s", out)
	}
}

// TestPassingRun: with no failure the run passes and the skipped tests
// are listed with their reasons before the summary.
func TestPassingRun(t *testing.T) {
	in := goTestJSON(t, "-run", "TestPass|TestSkip", "./a", "./c", "./d")
	out, ok := summarize(t, in)
	if !ok {
		t.Errorf("a run without failures failed:\n%s", out)
	}
	wantLines(t, out,
		"ok  \texample.com/fix/a",
		"make test: skipped:\n  example.com/fix/a TestSkip: a_test.go:7: no widget here\n",
		"make test: 2 packages, 2 tests passed, 0 failed, 1 skipped\n")
	if slices.Contains(strings.Split(out, "\n"), "PASS") {
		t.Errorf("the bare PASS line that -json adds is printed:\n%s", out)
	}
}

// TestNothingRan: an empty stream (go test did not start) fails.
func TestNothingRan(t *testing.T) {
	out, ok := summarize(t, nil)
	if ok || !strings.Contains(out, "no package ran a test") {
		t.Errorf("an empty run: ok %v, output:\n%s", ok, out)
	}
}

// TestBuildFailure: a package that does not build fails the run and its
// compiler error is printed.
func TestBuildFailure(t *testing.T) {
	fixture["e/e_test.go"] = "package e\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefinedName() }\n"
	defer delete(fixture, "e/e_test.go")
	out, ok := summarize(t, goTestJSON(t, "./d", "./e"))
	if ok {
		t.Errorf("a build failure passed:\n%s", out)
	}
	wantLines(t, out, "undefined: undefinedName", "[build failed]", "make test: 2 packages (1 failed), 1 test passed, 0 failed, 0 skipped\n")
}
