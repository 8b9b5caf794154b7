package main

import (
	"os"
	"testing"

	"github.com/map646/map646/lab/netlab"
)

// TestFailover is the paper's failover experiment on the two-node lab, in
// its short form (make lab runs the command with -full): the timeline
// (ECMP, one side withdrawn by a health check, drain, undrain, silent
// death, revival) with a probe every 100 ms, and the flows scenario (a TCP
// transfer with verified content and a ping while tokyo dies silently and
// comes back). It fails when a target is missed: no probe lost in steps 2
// to 4, at most 1 s of outage at the silent death with BFD, the TCP
// connection never reset and its content intact. It runs on the tun path
// alone, then with the kernel fast path on both nodes: the same targets.
func TestFailover(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the failover experiment takes about 45 s")
	}
	bin := map646Binary(t)
	for _, fastPath := range []bool{false, true} {
		name := map[bool]string{false: "tun", true: "fastpath"}[fastPath]
		t.Run(name, func(t *testing.T) {
			o := experimentOptions(false)
			o.Bin, o.Progress, o.FastPath = bin, os.Stdout, fastPath
			experiment(t, o, t.TempDir(), os.Stdout)
		})
	}
}
