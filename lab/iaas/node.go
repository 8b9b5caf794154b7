package main

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
)

// quiet is a TB whose Logf says nothing: a scrape that fails while a node
// restarts is retried, not news.
type quiet struct{ netlab.TB }

func (quiet) Logf(string, ...any) {}

// scrape returns a node's metrics, or nil when it does not answer.
func scrape(t netlab.TB, n *topo.Node) netlab.Metrics {
	var m netlab.Metrics
	if netlab.Attempt(func() error { m = n.M.Metrics(netlab.Stoppable{TB: quiet{t}}); return nil }) != nil {
		return nil
	}
	return m
}

// procStatus returns a field of /proc/PID/status in kB (VmHWM, VmRSS).
func procStatus(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// fds counts the process's open descriptors.
func fds(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// usage is what a leak would show in: resident memory, the Go heap in
// use, goroutines and descriptors.
type usage struct {
	RSSkB, HeapMB, Goroutines, FDs int
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %d MB, heap %d MB, %d goroutines, %d fds", u.RSSkB/1024, u.HeapMB, u.Goroutines, u.FDs)
}

func nodeUsage(t netlab.TB, n *topo.Node) (usage, error) {
	var u usage
	var err error
	pid := n.M.PID()
	if u.RSSkB, err = procStatus(pid, "VmRSS"); err != nil {
		return u, err
	}
	if u.FDs, err = fds(pid); err != nil {
		return u, err
	}
	m := scrape(t, n)
	if m == nil {
		return u, fmt.Errorf("%s: no metrics", n.Name)
	}
	u.Goroutines = int(m.Get("go_goroutines"))
	u.HeapMB = int(m.Get("go_memstats_heap_inuse_bytes") / (1 << 20))
	return u, nil
}

// waitMetric waits until cond holds for node n's metrics; it returns how
// long that took and whether it happened.
func waitMetric(t netlab.TB, n *topo.Node, timeout time.Duration, cond func(netlab.Metrics) bool) (time.Duration, bool) {
	start := time.Now()
	ok := poll.Until(timeout, 20*time.Millisecond, func() bool {
		m := scrape(t, n)
		return m != nil && cond(m)
	})
	return time.Since(start), ok
}

// Metrics of the etcd source (config/etcdsource Register).
const (
	mRevision  = "map646_etcd_revision"
	mStale     = "map646_etcd_stale_seconds"
	mFromCache = "map646_etcd_from_cache"
	mMappings  = "map646_etcd_mappings"
)

// caughtUp is the condition "serves etcd's table at revision rev or
// later, with count mappings".
func caughtUp(rev, count int64) func(netlab.Metrics) bool {
	return func(m netlab.Metrics) bool {
		return int64(m.Get(mRevision)) >= rev && int64(m.Get(mMappings)) == count
	}
}

// revSample is a node's revision, staleness, table size and memory at an
// instant.
type revSample struct {
	At       time.Duration // since the experiment's start
	Node     string
	Revision int64
	Stale    float64
	Mappings int64
	RSSMB    int // process_resident_memory_bytes
	HeapMB   int // go_memstats_heap_inuse_bytes
	// IdleMB is heap the collector freed and the runtime has not yet
	// returned to the kernel (idle less released): part of RSS, not of
	// HeapMB.
	IdleMB int
}

// sampler records every node's revision every period until stopped.
type sampler struct {
	// paused is held while a node restarts (its Map646 is replaced).
	paused  sync.Mutex
	samples []revSample
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(t netlab.TB, l *Lab, start time.Time, period time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			s.paused.Lock()
			for _, n := range l.Nodes {
				if m := scrape(t, n); m != nil {
					s.samples = append(s.samples, revSample{At: time.Since(start), Node: n.Name,
						Revision: int64(m.Get(mRevision)), Stale: m.Get(mStale), Mappings: int64(m.Get(mMappings)),
						RSSMB: int(m.Get("process_resident_memory_bytes")) >> 20, HeapMB: int(m.Get("go_memstats_heap_inuse_bytes")) >> 20,
						IdleMB: int(m.Get("go_memstats_heap_idle_bytes")-m.Get("go_memstats_heap_released_bytes")) >> 20})
				}
			}
			s.paused.Unlock()
		}
	}()
	return s
}

func (s *sampler) close() []revSample {
	close(s.stop)
	<-s.done
	return s.samples
}

// serves tells whether node n's running table holds a mapping for a,
// asked of its control socket (map646 lookup): how the lab checks a
// mapping whose address it may not send packets to.
func serves(n *topo.Node, a netip.Addr) bool {
	r, err := control.Call(n.Config.ControlSocket, control.Request{Command: "lookup", Address: a.String()}, 10*time.Second, nil)
	return err == nil && r.OK != nil && *r.OK && r.Lookup != nil && r.Lookup.Mapping != nil
}
