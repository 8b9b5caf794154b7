package poll

import (
	"testing"
	"time"
)

func TestUntilTrue(t *testing.T) {
	calls := 0
	if !Until(time.Second, time.Millisecond, func() bool { calls++; return calls == 3 }) {
		t.Fatal("Until = false for a condition that became true on the third call")
	}
	if calls != 3 {
		t.Errorf("cond called %d times, want 3: Until must stop once it holds", calls)
	}
}

func TestUntilTimeout(t *testing.T) {
	calls := 0
	start := time.Now()
	if Until(30*time.Millisecond, 5*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("Until = true for a condition that never holds")
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("gave up after %v, before the 30 ms timeout", took)
	}
	if calls < 2 {
		t.Errorf("cond called %d times in 30 ms at a 5 ms interval", calls)
	}
}

// TestUntilZeroTimeout: one look, no wait.
func TestUntilZeroTimeout(t *testing.T) {
	calls := 0
	if Until(0, time.Hour, func() bool { calls++; return calls > 1 }) || calls != 1 {
		t.Errorf("Until(0, ...) called cond %d times: want once, and false", calls)
	}
}
