package netlab

import "fmt"

// Stoppable is a TB whose Fatalf ends only the function that Attempt runs,
// not the whole test or program: a step of the failover experiment, a
// subject of the bench, the soak, each of which reports what it got even
// when a part of it fails. A Fatalf logs its message on the wrapped TB and
// unwinds to Attempt, which returns it as an error: whether that fails the
// test or program is the caller's decision (a wait that may time out is
// not a failure). Cleanups, logs and everything else go to the wrapped TB.
// Call its Fatalf on Attempt's goroutine only.
type Stoppable struct{ TB }

// stopped is the panic of a Stoppable's Fatalf.
type stopped struct{ err error }

func (s Stoppable) Fatalf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	s.TB.Logf("%v", err)
	panic(stopped{err})
}

// Attempt runs f and returns its error, or the error of a Stoppable's
// Fatalf inside it; any other panic goes on.
func Attempt(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			st, ok := v.(stopped)
			if !ok {
				panic(v)
			}
			err = st.err
		}
	}()
	return f()
}
