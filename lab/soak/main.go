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
	script := netlab.NewScript(os.Stderr)
	netlab.RequireRoot(script)
	// A Fatalf ends the soak, not the program: the report shows what ran.
	s := &soak{t: netlab.Stoppable{TB: script}}
	if err := netlab.Attempt(func() error { s.run(); return nil }); err != nil {
		script.Errorf("soak: %v", err)
	}
	s.report()
	script.Close()
	if script.Failed() {
		os.Exit(1)
	}
}
