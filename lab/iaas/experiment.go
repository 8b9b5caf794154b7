package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/lab/netlab"
)

// Options of the experiment: the full run (make iaas) or the short form
// (TestIaaS in make test).
type Options struct {
	Bin  string
	Full bool
	// Changes is how many VMs the controller creates one by one; half of
	// them are then deleted.
	Changes int
	// Cycles is how many add/del cycles on one mapping the leak check
	// makes.
	Cycles int
	// Million loads 1,000,000 mappings into etcd at the end; the watch
	// gets MillionWatch to bring them to the nodes, then each node is
	// restarted (its start-up read).
	Million      int
	MillionWatch time.Duration
	Progress     io.Writer
	// P99 is the propagation target (asserted), MillionWithin and
	// MillionPeakMB the million's (asserted in the full run only).
	P99           time.Duration
	MillionWithin time.Duration
	MillionPeakMB int
}

// FullOptions and ShortOptions: the figures, and the short form
// with the same assertions and loose timing bounds (a shared 2-CPU
// machine).
func FullOptions() Options {
	return Options{Full: true, Changes: 10000, Cycles: 10000, Million: 1_000_000, MillionWatch: time.Minute,
		P99: 100 * time.Millisecond, MillionWithin: 10 * time.Second, MillionPeakMB: 300}
}

func ShortOptions() Options {
	return Options{Changes: 300, Cycles: 300, P99: time.Second, MillionWithin: 10 * time.Second, MillionPeakMB: 300}
}

// Experiment builds the lab and runs the controller's experiment on it; it
// returns the report, whose Checks say what held.
func Experiment(t netlab.TB, o Options) *Report {
	t.Helper()
	r := &Report{Opts: o, Start: time.Now()}
	say := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "%6.1fs  %s\n", time.Since(r.Start).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	say("building the lab: 3 etcd members (TLS), 3 map646 nodes (source etcd), BIRD routers, the VMs")
	l := NewLab(t, o.Bin)
	e := &experiment{t: t, o: o, l: l, r: r, say: say, c: newController(l)}
	l.recv = startReceiver(t, l.VMs)
	e.stream = startStream(t, l.Client, 20*time.Millisecond)
	e.samp = startSampler(t, l, r.Start, 100*time.Millisecond)
	say("lab up; the stream flows to %d established mappings", len(established))

	steps := []struct {
		name string
		f    func()
	}{
		{"churn", e.churn},
		{"etcd member killed", e.memberKilled},
		{"node cut off from etcd", e.cutOff},
		{"node restarted without etcd", e.restartFromCache},
		{"drain", e.drain},
		{"add/del cycles", e.cycles},
		// Before the million: a node exports the counters of the first
		// mapping_series mappings of its table only, and a million VMs in
		// 100.64.0.0/10 sort before the established 198.51.100.32-39.
		{"carriers", func() { r.carriers(t, l) }},
		{"million", e.million},
	}
	for _, s := range steps {
		if err := netlab.Attempt(func() error { s.f(); return nil }); err != nil {
			r.Errs = append(r.Errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	e.stream.close()
	time.Sleep(time.Second) // the last datagrams on their way
	e.settlePhases()
	r.Revisions = e.samp.close()
	_, _, r.Mistranslated = l.recv.counts(0, 0)
	r.check("mistranslated datagrams (stream and probes)", fmt.Sprint(r.Mistranslated), "0", r.Mistranslated == 0, true)
	return r
}

// experiment is one run's state.
type experiment struct {
	t      netlab.TB
	o      Options
	l      *Lab
	r      *Report
	c      *controller
	stream *stream
	samp   *sampler
	say    func(string, ...any)
	mu     sync.Mutex
}

func (e *experiment) st() netlab.Stoppable { return netlab.Stoppable{TB: e.t} }

// phase runs f as a phase of the stream: its sequence numbers are counted
// at the end (lossless says whether a loss fails the run).
func (e *experiment) phase(name string, lossless bool, f func()) {
	p := &Phase{Name: name, From: e.stream.next(), Lossless: lossless, Start: time.Since(e.r.Start)}
	e.r.Phases = append(e.r.Phases, p)
	defer func() {
		p.To = e.stream.next()
		p.End = time.Since(e.r.Start)
	}()
	f()
}

// settlePhases counts each phase's stream datagrams.
func (e *experiment) settlePhases() {
	for _, p := range e.r.Phases {
		p.Got, p.Dup, _ = e.l.recv.counts(p.From, p.To)
		sent := int(p.To - p.From)
		p.Lost = sent - p.Got
		e.r.check(fmt.Sprintf("stream datagrams lost during %q", p.Name), fmt.Sprintf("%d of %d", p.Lost, sent), "0", p.Lost == 0, p.Lossless)
	}
}

func (e *experiment) all() []int {
	var ix []int
	for i := range e.l.Nodes {
		ix = append(ix, i)
	}
	return ix
}

// record keeps a change, tagged with the current phase, and reports its
// failure.
func (e *experiment) record(ch Change) {
	ch.Phase = e.r.Phases[len(e.r.Phases)-1].Name
	e.r.Changes = append(e.r.Changes, ch)
	if ch.Err != nil {
		e.r.Errs = append(e.r.Errs, fmt.Errorf("change %d (%s %s): %w", ch.N, map[bool]string{true: "add", false: "del"}[ch.Add], ch.Addr, ch.Err))
	}
}

// churn: the controller creates Changes VMs one by one; past churnWindow
// live VMs, each creation follows the deletion of the oldest, whose
// address it reuses (the lab's VMs have documentation addresses, a few
// hundred of them). Every change is proven on every node.
func (e *experiment) churn() {
	e.phase("churn", true, func() {
		n := e.o.Changes
		e.say("churn: creating %d VMs one by one, at most %d at once (deleting the oldest first), each change proven through all 3 nodes", n, churnWindow)
		for i := range n {
			if i >= churnWindow {
				e.record(e.c.apply(len(e.r.Changes), false, vmAddr(i%churnWindow), e.all()))
			}
			e.record(e.c.apply(len(e.r.Changes), true, vmAddr(i%churnWindow), e.all()))
			if (i+1)%1000 == 0 {
				e.say("  %d created", i+1)
			}
		}
	})
	e.r.propagation(e.o.P99, e.o.Full)
	e.say("churn: %s", e.r.PropagationLine())
}

// leader returns the member that leads the cluster.
func (e *experiment) leader() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, m := range e.l.Etcd.Members {
		st, err := e.l.Admin.Status(ctx, "https://"+m.IP+":2379")
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	e.st().Fatalf("no etcd member says it leads")
	return -1
}

// memberKilled: the leader killed, then 20 changes: every node keeps
// translating (the stream) and gets every change; then it restarts.
func (e *experiment) memberKilled() {
	e.phase("etcd member killed", true, func() {
		i := e.leader()
		m := e.l.Etcd.Members[i]
		e.say("killing %s, the etcd leader", m.Name)
		killed := time.Now()
		e.l.Etcd.Kill(e.st(), m)
		var worst time.Duration
		ok := 0
		for k := range 20 {
			ch := e.c.apply(len(e.r.Changes), true, vmAddr(churnWindow+k), e.all())
			e.record(ch)
			if ch.Err == nil {
				ok++
				worst = max(worst, ch.maxLatency())
			}
		}
		e.r.check("changes proven on all 3 nodes with an etcd member (the leader) killed", fmt.Sprintf("%d of 20 (slowest %v, election included)", ok, worst.Round(time.Millisecond)), "20 of 20", ok == 20, true)
		stale := e.maxStaleSince(killed)
		e.r.Notes = append(e.r.Notes, fmt.Sprintf("With %s killed, the nodes' largest map646_etcd_stale_seconds was %.1f s (their probe is a linearizable read, which waits for the election).", m.Name, stale))
		e.l.Etcd.Restart(e.st(), m)
		e.say("%s restarted", m.Name)
	})
}

// maxStaleSince is the largest staleness the sampler saw since t.
func (e *experiment) maxStaleSince(t time.Time) float64 {
	e.samp.paused.Lock()
	defer e.samp.paused.Unlock()
	var worst float64
	since := t.Sub(e.r.Start)
	for _, s := range e.samp.samples {
		if s.At >= since {
			worst = max(worst, s.Stale)
		}
	}
	return worst
}

// cutOff: kyoto's link to etcd down; it keeps serving, says it is stale;
// changes meanwhile reach the other two; on heal it catches up, every
// change of the cut included.
func (e *experiment) cutOff() {
	const victim = 2
	n := e.l.Nodes[victim]
	e.phase("node cut off from etcd", true, func() {
		e.say("cutting %s off from etcd", n.Name)
		e.l.Etcd.CutClient(e.st(), e.l.Links[victim])
		took, ok := waitMetric(e.t, n, 20*time.Second, func(m netlab.Metrics) bool { return m.Get(mStale) > 0 })
		e.r.check(n.Name+" cut off from etcd shows stale (map646_etcd_stale_seconds > 0)", fmt.Sprintf("after %v", took.Round(time.Millisecond)), "within 20 s", ok, true)
		s := n.Status(e.st())
		e.r.check(n.Name+"'s `map646 status` says stale", statusLine(s.Raw, "stale"), `contains "stale"`, strings.Contains(strings.ToLower(s.Raw), "stale"), true)
		var added []netip.Addr
		for k := range 40 {
			a := vmAddr(churnWindow + 20 + k)
			e.record(e.c.apply(len(e.r.Changes), true, a, []int{0, 1}))
			added = append(added, a)
		}
		for _, a := range added[:20] {
			e.record(e.c.apply(len(e.r.Changes), false, a, []int{0, 1}))
		}
		e.say("40 adds and 20 deletes made while %s was cut off; healing", n.Name)
		count, rev, err := etcdCount(e.l.Admin)
		if err != nil {
			e.st().Fatalf("etcd count: %v", err)
		}
		e.l.Etcd.HealClient(e.st(), e.l.Links[victim])
		took, ok = waitMetric(e.t, n, 30*time.Second, caughtUp(rev, count))
		m := scrape(e.t, n)
		e.r.check(n.Name+" caught up after the heal (revision >= etcd's, same mapping count)",
			fmt.Sprintf("in %v: %d mappings at revision %d; etcd %d at %d", took.Round(time.Millisecond), int64(m.Get(mMappings)), int64(m.Get(mRevision)), count, rev),
			"within 30 s", ok, true)
		lost := 0
		for k, a := range added {
			if k < 20 && !e.c.absent(victim, a, 2*time.Second) || k >= 20 && !e.c.translates(victim, a, 2*time.Second) {
				lost++
			}
		}
		e.r.check(n.Name+": the 60 changes made during the cut, probed through it after the heal", fmt.Sprintf("%d wrong", lost), "0 wrong", lost == 0, true)
	})
}

// statusLine returns the first line of a status text that holds word, or
// the text's first line.
func statusLine(raw, word string) string {
	for _, line := range strings.Split(raw, "\n") {
		if strings.Contains(strings.ToLower(line), word) {
			return strings.TrimSpace(line)
		}
	}
	first, _, _ := strings.Cut(raw, "\n")
	return strings.TrimSpace(first)
}

// restartFromCache: osaka cut off from etcd and restarted: it serves the
// cached table and says so; on heal it syncs.
func (e *experiment) restartFromCache() {
	const victim = 1
	n := e.l.Nodes[victim]
	e.phase("node restarted without etcd", false, func() {
		before := scrape(e.t, n)
		want := int64(before.Get(mMappings))
		e.say("cutting %s off from etcd and restarting it", n.Name)
		e.l.Etcd.CutClient(e.st(), e.l.Links[victim])
		e.samp.paused.Lock()
		n.Stop(e.st())
		n.Start(e.st())
		e.samp.paused.Unlock()
		_, ok := waitMetric(e.t, n, 20*time.Second, func(m netlab.Metrics) bool { return m.Get(mFromCache) == 1 })
		m := scrape(e.t, n)
		e.r.check(n.Name+" restarted without etcd serves the cache (map646_etcd_from_cache 1, same count)",
			fmt.Sprintf("from_cache %v, %d mappings (%d before)", m.Get(mFromCache), int64(m.Get(mMappings)), want), fmt.Sprintf("1, %d", want),
			ok && int64(m.Get(mMappings)) == want, true)
		s := n.Status(e.st())
		e.r.check(n.Name+"'s `map646 status` says it serves the cache", statusLine(s.Raw, "from cache"), `contains "from cache"`, strings.Contains(strings.ToLower(s.Raw), "from cache"), true)
		probe := vmAddr((e.o.Changes - 1) % churnWindow) // created last by the churn, never deleted
		served := e.c.translates(victim, probe, 5*time.Second)
		e.r.check(n.Name+" from its cache translates "+probe.String()+", created by the churn", fmt.Sprint(served), "true", served, true)
		e.l.Etcd.HealClient(e.st(), e.l.Links[victim])
		count, rev, err := etcdCount(e.l.Admin)
		if err != nil {
			e.st().Fatalf("etcd count: %v", err)
		}
		took, ok := waitMetric(e.t, n, 30*time.Second, func(m netlab.Metrics) bool { return m.Get(mFromCache) == 0 && caughtUp(rev, count)(m) })
		e.r.check(n.Name+" synced after the heal", fmt.Sprintf("in %v", took.Round(time.Millisecond)), "within 30 s", ok, true)
		e.l.WaitConverged(e.st(), 30*time.Second)
	})
}

// drain: tokyo drained while the stream flows through all three, then
// undrained: nothing lost.
func (e *experiment) drain() {
	n := e.l.Nodes[0]
	e.phase("drain", true, func() {
		e.say("draining %s", n.Name)
		out, err := n.Drain(false)
		if err != nil {
			e.st().Fatalf("map646 drain: %v\n%s", err, out)
		}
		e.l.WaitRouted(e.st(), 30*time.Second, e.l.Nodes[1:]...)
		time.Sleep(2 * time.Second)
		if out, err := n.Undrain(); err != nil {
			e.st().Fatalf("map646 undrain: %v\n%s", err, out)
		}
		e.l.WaitConverged(e.st(), 30*time.Second)
	})
}

// cycles: one mapping added and deleted Cycles times; the nodes' memory,
// goroutines and descriptors compared between the first half's end and
// the second's (the first half warms up whatever grows to a steady size).
func (e *experiment) cycles() {
	a := vmAddr(cycleSlot)
	half := func() []usage {
		for range e.o.Cycles / 2 {
			if err := e.c.write(true, a); err != nil {
				e.st().Fatalf("%v", err)
			}
			if err := e.c.write(false, a); err != nil {
				e.st().Fatalf("%v", err)
			}
		}
		e.waitAllCaughtUp(60 * time.Second)
		time.Sleep(2 * time.Second) // the cache written, timers expired
		return e.settledUsage()
	}
	e.say("%d add/del cycles on %s", e.o.Cycles, a)
	start := time.Now()
	var mid, end []usage
	e.phase("add/del cycles", true, func() {
		mid = half()
		end = half()
	})
	e.say("cycles took %v", time.Since(start).Round(time.Millisecond))
	for i, n := range e.l.Nodes {
		u0, u1 := mid[i], end[i]
		e.r.check(fmt.Sprintf("%s over the second %d cycles: goroutines, fds", n.Name, e.o.Cycles/2),
			fmt.Sprintf("%d -> %d, %d -> %d", u0.Goroutines, u1.Goroutines, u0.FDs, u1.FDs), fmt.Sprintf("growth <= %d, <= %d (a leak per cycle would add %d)", leakGoroutines, leakFDs, e.o.Cycles/2),
			u1.Goroutines <= u0.Goroutines+leakGoroutines && u1.FDs <= u0.FDs+leakFDs, true)
		e.r.check(fmt.Sprintf("%s over the second %d cycles: Go heap in use, RSS", n.Name, e.o.Cycles/2),
			fmt.Sprintf("%d -> %d MB, %d -> %d MB", u0.HeapMB, u1.HeapMB, u0.RSSkB/1024, u1.RSSkB/1024), fmt.Sprintf("heap growth <= %d MB", leakHeapMB),
			u1.HeapMB <= u0.HeapMB+leakHeapMB, true)
	}
}

// Bounds of the leak check, between two samples of each node that the
// cycles do not touch but other work does: the etcd client's and the
// metrics server's goroutines and connections come and go, the Go heap
// varies with the collector's timing (the smallest of three samples is
// taken).
const (
	leakGoroutines = 8
	leakFDs        = 4
	leakHeapMB     = 8
)

// settledUsage samples every node's usage three times, a second apart,
// and keeps the smallest of each figure: what stays, not what passes.
func (e *experiment) settledUsage() []usage {
	us := make([]usage, len(e.l.Nodes))
	for k := range 3 {
		if k > 0 {
			time.Sleep(time.Second)
		}
		for i, n := range e.l.Nodes {
			u, err := nodeUsage(e.t, n)
			if err != nil {
				e.st().Fatalf("%v", err)
			}
			if k == 0 {
				us[i] = u
				continue
			}
			us[i] = usage{RSSkB: min(us[i].RSSkB, u.RSSkB), HeapMB: min(us[i].HeapMB, u.HeapMB),
				Goroutines: min(us[i].Goroutines, u.Goroutines), FDs: min(us[i].FDs, u.FDs)}
		}
	}
	return us
}

// waitAllCaughtUp waits until every node serves etcd's current table.
func (e *experiment) waitAllCaughtUp(timeout time.Duration) time.Duration {
	count, rev, err := etcdCount(e.l.Admin)
	if err != nil {
		e.st().Fatalf("etcd count: %v", err)
	}
	var worst time.Duration
	for _, n := range e.l.Nodes {
		took, ok := waitMetric(e.t, n, timeout, caughtUp(rev, count))
		if !ok {
			e.st().Fatalf("%s did not reach revision %d with %d mappings within %v", n.Name, rev, count, timeout)
		}
		worst = max(worst, took)
	}
	return worst
}

// million loads Million mappings into etcd (transactions of 128 puts, 4
// writers) while the nodes watch, gives the watch MillionWatch to bring
// them to the nodes, then restarts each node in turn: a node's start-up
// read of the whole table (the snapshot path) timed until it serves them
// all, with its peak memory.
func (e *experiment) million() {
	if e.o.Million == 0 {
		return
	}
	e.say("loading %d mappings into etcd, the nodes watching", e.o.Million)
	start := time.Now()
	e.load(e.o.Million)
	loaded := time.Now()
	count, rev, err := etcdCount(e.l.Admin)
	if err != nil {
		e.st().Fatalf("etcd count: %v", err)
	}
	e.say("loaded in %v (%d mappings at revision %d); giving the watch %v", loaded.Sub(start).Round(time.Millisecond), count, rev, e.o.MillionWatch)
	e.watchMillion(loaded.Sub(start), loaded, rev, count)
	for _, n := range e.l.Nodes {
		e.say("restarting %s: its start-up read of the %d mappings", n.Name, count)
		e.samp.paused.Lock()
		n.Stop(e.st())
		t0 := time.Now()
		n.Start(e.st())
		e.samp.paused.Unlock()
		_, ok := waitMetric(e.t, n, 3*time.Minute, caughtUp(rev, count))
		took := time.Since(t0) // from the process's start
		e.r.check(fmt.Sprintf("%s restarted: serves the %d mappings (start-up read from etcd)", n.Name, count),
			fmt.Sprintf("%v after its start", took.Round(time.Millisecond)), "<= "+e.o.MillionWithin.String(), ok && took <= e.o.MillionWithin, e.o.Full)
		last := millionAddr(e.o.Million - 1)
		served := serves(n, last)
		e.r.check(n.Name+" serves the millionth VM "+last.String()+" (its lookup; no packet goes outside the documentation ranges)", fmt.Sprint(served), "true", served, true)
		hwm, err := procStatus(n.M.PID(), "VmHWM")
		if err != nil {
			e.st().Fatalf("%v", err)
		}
		e.r.check(n.Name+" peak memory (VmHWM) of the restarted process serving the million", fmt.Sprintf("%d MB", hwm/1024),
			fmt.Sprintf("<= %d MB", e.o.MillionPeakMB), hwm/1024 <= e.o.MillionPeakMB, e.o.Full)
		e.say("%s: %v, VmHWM %d MB", n.Name, took.Round(time.Millisecond), hwm/1024)
		e.r.Notes = append(e.r.Notes, fmt.Sprintf("%s's restart on the million, from its log (seconds after the process started): %s.", n.Name, startSteps(n.M.Lines(), t0)))
	}
}

// startSteps says when a restarted node logged the steps of its start-up
// read, relative to t0 (the process's start).
func startSteps(lines []string, t0 time.Time) string {
	steps := map[string]string{
		"started":                "daemon started",
		"read the whole table":   "etcd read (pages at one revision) done",
		"mapping table replaced": "table swapped in",
		"first mapping table applied: the node may announce": "first table applied",
	}
	var out []string
	for _, l := range lines {
		var rec struct {
			Time string  `json:"time"`
			Msg  string  `json:"msg"`
			Took float64 `json:"took"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil {
			continue
		}
		what, ok := steps[rec.Msg]
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, rec.Time)
		if err != nil {
			continue
		}
		s := fmt.Sprintf("%s %.1f", what, at.Sub(t0).Seconds())
		if rec.Took > 0 {
			s += fmt.Sprintf(" (took %.1f)", time.Duration(rec.Took).Seconds())
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "no start-up step found in its log"
	}
	return strings.Join(out, ", ")
}

// watchMillion waits up to MillionWatch for every node to serve the
// loaded table through its watch, and reports how far each got, its rate
// and its peak memory then.
func (e *experiment) watchMillion(load time.Duration, loaded time.Time, rev, count int64) {
	var wg sync.WaitGroup
	took := make([]time.Duration, len(e.l.Nodes))
	done := make([]bool, len(e.l.Nodes))
	for i, n := range e.l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, done[i] = waitMetric(e.t, n, e.o.MillionWatch, caughtUp(rev, count))
			took[i] = time.Since(loaded)
		}()
	}
	wg.Wait()
	for i, n := range e.l.Nodes {
		m := scrape(e.t, n)
		hwm, _ := procStatus(n.M.PID(), "VmHWM")
		got := fmt.Sprintf("%v after the load", took[i].Round(time.Millisecond))
		if !done[i] {
			got = fmt.Sprintf("not within %v: %d of %d mappings, revision %d of %d", e.o.MillionWatch, int64(m.Get(mMappings)), count, int64(m.Get(mRevision)), rev)
		}
		e.r.check(fmt.Sprintf("%s serves the %d mappings through its watch (loaded in %v)", n.Name, count, load.Round(time.Second)),
			got, "<= "+e.o.MillionWithin.String(), done[i] && took[i] <= e.o.MillionWithin, e.o.Full)
		// Asserted in the full run: a bulk batch rebuilds the table a page
		// at a time, the old pages freed as the new ones are made, so the
		// node never holds two tables. How far past its table it goes
		// depends on how fast it keeps up with the load (the etcd client
		// holds the events that arrive during an apply): revisions.csv
		// has its RSS and Go heap every 100 ms.
		e.r.check(n.Name+" peak memory (VmHWM) while following the million's load through its watch",
			fmt.Sprintf("%d MB", hwm/1024), fmt.Sprintf("<= %d MB", e.o.MillionPeakMB), hwm/1024 <= e.o.MillionPeakMB, e.o.Full)
		e.r.Notes = append(e.r.Notes, fmt.Sprintf("%s during the million's load through the watch: Go heap in use %d MB at its end; %s.", n.Name, int(m.Get("go_memstats_heap_inuse_bytes"))>>20, applies(n.M.Lines())))
	}
}

// applies summarizes the node's "mappings changed" log records: how the
// watch's changes were applied (batches, tables built anew, their time).
func applies(lines []string) string {
	var batches, rebuilt int
	var total, longest time.Duration
	var largest float64
	var slowest string // the longest one's parts
	for _, l := range lines {
		var rec struct {
			Msg       string  `json:"msg"`
			Changes   string  `json:"changes"`
			Mappings  float64 `json:"mappings"`
			Rebuilt   bool    `json:"rebuilt"`
			Took      float64 `json:"took"` // slog's JSON: nanoseconds
			TableTook float64 `json:"table_took"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil || rec.Msg != "mappings changed" {
			continue
		}
		d := time.Duration(rec.Took)
		batches++
		total += d
		if d > longest {
			longest = d
			slowest = fmt.Sprintf("%s; the table %v of it", strings.SplitN(rec.Changes, " (", 2)[0],
				time.Duration(rec.TableTook).Round(time.Millisecond))
		}
		largest = max(largest, rec.Mappings)
		if rec.Rebuilt {
			rebuilt++
		}
	}
	return fmt.Sprintf("%d deltas applied since its start (%d of them bulk batches rebuilt a page at a time), %v applying in all, the longest %v (%s), up to %.0f mappings",
		batches, rebuilt, total.Round(time.Millisecond), longest.Round(time.Millisecond), slowest, largest)
}

// load writes n mappings from millionBase in transactions of 128 puts
// (etcd's default --max-txn-ops), 4 writers.
func (e *experiment) load(n int) {
	const txn, workers = 128, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := w * txn; from < n; from += workers * txn {
				var ops []clientv3.Op
				for i := from; i < min(from+txn, n); i++ {
					a := millionAddr(i)
					ops = append(ops, clientv3.OpPut(mappingKey(a), sixOf(a).String()))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := e.l.Admin.Txn(ctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		e.st().Fatalf("loading etcd: %v", err)
	default:
	}
}
