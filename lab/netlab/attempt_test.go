package netlab

import (
	"errors"
	"fmt"
	"testing"
)

// recordTB is a TB that records its logs.
type recordTB struct {
	TB
	logs []string
}

func (r *recordTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func TestAttempt(t *testing.T) {
	r := &recordTB{TB: t}
	s := Stoppable{r}
	after := false
	err := Attempt(func() error {
		s.Fatalf("step %d: %s", 2, "no route")
		after = true
		return nil
	})
	if err == nil || err.Error() != "step 2: no route" || after {
		t.Errorf("Attempt = %v, code after Fatalf ran: %v; want the Fatalf's error and nothing after it", err, after)
	}
	if len(r.logs) != 1 || r.logs[0] != "step 2: no route" {
		t.Errorf("the wrapped TB logged %q, want the error once", r.logs)
	}
	if t.Failed() {
		t.Error("a Stoppable's Fatalf failed the wrapped test: that is Attempt's caller's decision")
	}
	want := errors.New("plain")
	if err := Attempt(func() error { return want }); err != want {
		t.Errorf("Attempt = %v, want f's own error", err)
	}
	defer func() {
		if v := recover(); v != "other" {
			t.Errorf("recovered %v, want the other panic to go on", v)
		}
	}()
	Attempt(func() error { panic("other") })
}
