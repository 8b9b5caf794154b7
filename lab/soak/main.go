package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/map646/map646/lab/netlab"
)

func main() {
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "soak: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	s := netlab.NewScript(os.Stderr)
	netlab.RequireRoot(s)
	t := &stopTB{Script: s}
	err := t.run(func() { soakRun(t) })
	s.Close()
	if err != nil || s.Failed() {
		os.Exit(1)
	}
}

// stopTB is the soak's TB: a Script whose Fatalf, on the soak's own
// goroutine, ends the soak by a panic that run recovers, so that the
// soak's deferred report still shows the figures so far (a Script's own
// Fatalf exits at once). Other goroutines use a quiet TB (soak.go).
type stopTB struct{ *netlab.Script }

type stop struct{ err error }

func (t *stopTB) Fatalf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	t.Errorf("%v", err)
	panic(stop{err})
}

// run calls f and returns the error of a Fatalf inside it.
func (t *stopTB) run(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			st, ok := p.(stop)
			if !ok {
				panic(p)
			}
			err = st.err
		}
	}()
	f()
	return nil
}
