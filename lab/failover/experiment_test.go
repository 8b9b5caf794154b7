package failover

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
)

var (
	full = flag.Bool("full", false, "run the experiment in full (make lab, about 2 minutes): longer holds and transfer, and the silent death without BFD too")
	out  = flag.String("out", "", "write the results (timeline.csv, PNGs, summary.md) into `DIR` (default: a temporary directory)")
)

// TestFailover is the paper's failover experiment on the two-node lab:
// the timeline (ECMP, one side withdrawn by a health check, drain,
// undrain, silent death, revival) with a probe every 100 ms, and the flows
// scenario (a TCP transfer with verified content and a ping while tokyo
// dies silently and comes back). It fails when a target is missed: no
// probe lost in steps 2 to 4, at most 0.5 s of outage at the silent death
// with BFD, the TCP connection never reset and its content intact. In
// `make test` it runs a short form (holds of 2 s, no run without BFD, 1 s of
// outage allowed); -full is `make lab`'s. Ctrl-C (SIGINT) or SIGTERM ends
// it early, cleaning up.
func TestFailover(t *testing.T) {
	if *full && os.Geteuid() != 0 {
		t.Fatal("make lab builds network namespaces and runs routers in them: run it as root (sudo make lab)")
	}
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the failover experiment takes about 45 s")
	}
	// The short form allows 1 s of outage at the silent death: enough to
	// tell BFD (measured 100-300 ms) from the 3 s hold timer, with room for
	// a loaded CI machine; make lab holds it to the paper's 0.5 s.
	o := Options{Bin: map646Binary(t), Interval: 100 * time.Millisecond, Hold: 2 * time.Second, Progress: os.Stdout, MaxOutage: time.Second}
	if *full {
		o.Hold, o.HoldTimer, o.MaxOutage = 5*time.Second, true, 0
	}
	abort := make(chan struct{})
	o.Abort = abort
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopped := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			// A second Ctrl-C kills at once; the next lab run deletes what
			// that leaves (netlab's sweep of dead creators' namespaces).
			signal.Stop(sigs)
			fmt.Fprintf(os.Stdout, "\n%v: stopping at the next step and cleaning up (again to quit at once)\n", sig)
			close(abort)
		case <-stopped:
		}
	}()
	t.Cleanup(func() { signal.Stop(sigs); close(stopped) })

	start := time.Now()
	rep := Experiment(t, o)
	dir := *out
	if dir == "" {
		dir = t.TempDir()
	}
	files, err := rep.Write(dir)
	if err != nil {
		t.Errorf("writing the results: %v", err)
	}
	fmt.Println()
	rep.WriteSummary(os.Stdout, false)
	fmt.Printf("Took %s. Written to %s: %s\n", time.Since(start).Round(time.Second), dir, strings.Join(files, ", "))
	for _, err := range rep.Errs {
		t.Error(err)
	}
	if len(rep.Errs) == 0 && !rep.Met() {
		t.Error("a target was missed: see the summary (MISSED)")
	}
}
