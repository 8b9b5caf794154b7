// Package poll is the one way map646's tests (and the lab harness) wait
// for a condition that raises no event: a counter that grows, a session
// that comes up, a line in a log. Until calls the condition at a fixed
// interval until it holds or a timeout passes, so a test states only what
// it waits for, for how long and how often it looks.
//
// It owns no state and imports only the standard library, so that every
// package of the module, test or lab, can import it without a cycle. It
// lives under lab/ with labreq, the other piece of test plumbing, and is
// no API of map646's.
package poll

import "time"

// Until calls cond every interval until it returns true or timeout has
// passed, and reports whether it returned true. cond is called at least
// once, and once more when the deadline has passed, so a condition that
// holds at the deadline is not reported as a timeout.
func Until(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
