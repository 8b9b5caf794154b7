package labreq

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// fakeTB records how the test was ended instead of ending it.
type fakeTB struct {
	fatal, skip string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.skip = fmt.Sprintf(format, args...) }

// TestUnavailable: under CI=true or MAP646_REQUIRE_LABS=1 (or another
// true spelling) the test fails with the reason; without them, or with a
// false or unparsable value, it skips with the reason.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		ci, require string
		fails       bool
	}{
		{"", "", false},
		{"true", "", true},
		{"1", "", true},
		{"", "1", true},
		{"", "true", true},
		{"false", "", false},
		{"false", "0", false},
		{"yes", "", false}, // not a Go boolean: no
		{"false", "1", true},
	} {
		t.Run(fmt.Sprintf("CI=%q,MAP646_REQUIRE_LABS=%q", tc.ci, tc.require), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv("MAP646_REQUIRE_LABS", tc.require)
			if got := Required(); got != tc.fails {
				t.Errorf("Required() = %v, want %v", got, tc.fails)
			}
			var f fakeTB
			Unavailable(&f, "no %s here", "widget")
			got, other := f.skip, f.fatal
			if tc.fails {
				got, other = f.fatal, f.skip
			}
			if !strings.Contains(got, "no widget here") {
				t.Errorf("fails=%v: message %q does not carry the reason", tc.fails, got)
			}
			if other != "" {
				t.Errorf("fails=%v: also called the other of Fatalf/Skipf: %q", tc.fails, other)
			}
		})
	}
}

// TestRoot: as root nothing happens; otherwise the test is ended, failed
// under CI, with what needed root.
func TestRoot(t *testing.T) {
	t.Setenv("CI", "true")
	var f fakeTB
	Root(&f, "create widgets")
	if os.Geteuid() == 0 {
		if f.fatal != "" || f.skip != "" {
			t.Errorf("as root: ended the test: fatal %q, skip %q", f.fatal, f.skip)
		}
		return
	}
	if !strings.Contains(f.fatal, "needs root to create widgets") {
		t.Errorf("not root under CI: Fatalf %q, want it to say what needs root", f.fatal)
	}
}
