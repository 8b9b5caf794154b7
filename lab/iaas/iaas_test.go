package main

import (
	"os"
	"testing"
)

// TestIaaS is the experiment's short form (make test): 300 VMs created one
// by one and 150 deleted, each proven on all three nodes; an etcd member
// killed, a node cut off and healed, a node restarted without etcd, a
// drain, 300 add/del cycles; the same assertions as the full run, with a
// loose propagation bound (1 s at p99: a shared machine) and no million.
func TestIaaS(t *testing.T) {
	o := ShortOptions()
	o.Bin = os.Getenv("MAP646_BIN")
	if testing.Verbose() {
		o.Progress = os.Stdout
	}
	runExperiment(t, o, t.TempDir(), testWriter{t})
}

// testWriter sends the summary to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
