// Package labreq holds the one rule for a test that cannot run its lab
// here (not root, no /dev/net/tun, a tool or kernel feature missing): it
// skips on a developer's machine, and it fails under CI, where a skipped
// lab would let `go test` print "ok" for a package that proved nothing.
//
// Labs are required when CI is true (CI systems set CI=true) or when
// MAP646_REQUIRE_LABS is true (.ci/run sets it, so a local run behaves like
// CI). A deliberate opt-in (the soak without -soak, -short) is a plain
// t.Skip and does not come here.
//
// The package imports only the standard library, so that any test package
// of this module can use it.
package labreq

import (
	"fmt"
	"os"
	"strconv"
)

// TB is what labreq needs of a test: *testing.T, *testing.B and
// testing.TB satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Required reports whether a lab that cannot run must fail the test: CI or
// MAP646_REQUIRE_LABS is set to a true value (1, t, true, ...).
func Required() bool {
	return envTrue("CI") || envTrue("MAP646_REQUIRE_LABS")
}

func envTrue(name string) bool {
	v, err := strconv.ParseBool(os.Getenv(name))
	return err == nil && v
}

// Unavailable ends the test because its lab cannot run here, for the
// reason given: it fails when Required, and skips otherwise.
func Unavailable(t TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("lab cannot run: %s (labs are required under CI=true or MAP646_REQUIRE_LABS=1)", reason)
		return
	}
	t.Skipf("skipped: %s (under CI=true or MAP646_REQUIRE_LABS=1 this fails)", reason)
}

// Root ends the test through Unavailable unless it runs as root; needs
// says what the test does that needs root.
func Root(t TB, needs string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root to %s; run the tests as root", needs)
	}
}

// Tun ends the test through Unavailable unless /dev/net/tun exists.
func Tun(t TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		Unavailable(t, "no /dev/net/tun (modprobe tun): %v", err)
	}
}
