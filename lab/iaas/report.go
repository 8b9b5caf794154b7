package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
)

// Report is what a run measured and what held.
type Report struct {
	Opts          Options
	Start         time.Time
	Changes       []Change
	Phases        []*Phase
	Revisions     []revSample
	Checks        []Check
	Notes         []string
	Errs          []error
	Mistranslated int
	// Propagation over every change proven on every node, by kind.
	Prop map[string]Percentiles
}

// Phase is a stretch of the experiment and the stream's datagrams in it.
type Phase struct {
	Name           string
	From, To       uint64 // the stream's sequence numbers [From, To)
	Start, End     time.Duration
	Got, Dup, Lost int
	Lossless       bool // a loss fails the run
}

// Check is a figure and its target; Asserted ones fail the run when not
// met, the others are reported.
type Check struct {
	What, Got, Target string
	Met, Asserted     bool
}

func (r *Report) check(what, got, target string, met, asserted bool) {
	r.Checks = append(r.Checks, Check{what, got, target, met, asserted})
}

// Met tells whether every asserted check held and nothing failed.
func (r *Report) Met() bool {
	if len(r.Errs) > 0 {
		return false
	}
	for _, c := range r.Checks {
		if c.Asserted && !c.Met {
			return false
		}
	}
	return true
}

// Percentiles of a set of latencies.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Percentiles{N: len(s), P50: at(0.50), P99: at(0.99), Max: s[len(s)-1]}
}

func (p Percentiles) String() string {
	return fmt.Sprintf("p50 %v, p99 %v, max %v over %d", ms(p.P50), ms(p.P99), ms(p.Max), p.N)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// maxLatency is the time until the last node proved the change.
func (ch Change) maxLatency() time.Duration { return slices.Max(ch.Latency) }

// latencies returns the per-node latencies of the churn's proven changes
// (kind "add", "del" or "" for both), and the all-nodes latencies (the
// slowest node of each change). The other phases' changes (an election,
// a node cut off) are not the propagation's figures.
func (r *Report) latencies(kind string) (perNode, allNodes []time.Duration) {
	for _, ch := range r.Changes {
		if ch.Phase != "churn" || ch.Err != nil || kind == "add" && !ch.Add || kind == "del" && ch.Add || slices.Contains(ch.Latency, 0) {
			continue
		}
		perNode = append(perNode, ch.Latency...)
		allNodes = append(allNodes, ch.maxLatency())
	}
	return perNode, allNodes
}

// propagation computes the churn's figures and checks the p99.
func (r *Report) propagation(target time.Duration, full bool) {
	r.Prop = map[string]Percentiles{}
	for _, kind := range []string{"add", "del", ""} {
		per, all := r.latencies(kind)
		r.Prop["node "+kind] = percentiles(per)
		r.Prop["all "+kind] = percentiles(all)
	}
	all := r.Prop["all "]
	r.check("changes proven on every node (churn)", fmt.Sprintf("%d of %d", all.N, len(r.Changes)), "all", all.N == len(r.Changes), true)
	r.check("propagation p99, etcd write -> translating on all 3 nodes", ms(all.P99), "<= "+ms(target), all.P99 <= target, true)
	_ = full
}

// PropagationLine is the churn's figures on one line.
func (r *Report) PropagationLine() string {
	return fmt.Sprintf("write -> all 3 nodes: %s", r.Prop["all "])
}

// carriers checks that the stream went through every node: the packets
// each translated toward the established mappings (`map646 lookup -json`,
// which counts every mapping; Prometheus has the first mapping_series
// only, and the million's mappings in 100.80.0.0/12 sort before them).
func (r *Report) carriers(t netlab.TB, l *Lab) {
	for _, n := range l.Nodes {
		var sum uint64
		var err error
		for _, a := range established {
			var out string
			if out, err = n.Ctl(30*time.Second, "lookup", "-json", a.String()); err != nil {
				err = fmt.Errorf("map646 lookup -json %s: %w: %s", a, err, out)
				break
			}
			var res control.LookupResult
			if err = json.Unmarshal([]byte(out), &res); err != nil {
				break
			}
			if res.Mapping != nil {
				sum += res.Mapping.Packets4to6
			}
		}
		got := fmt.Sprint(sum)
		if err != nil {
			got = err.Error()
		}
		r.check(n.Name+" carried the stream (packets 4to6 of the established mappings since its last start, map646 lookup)", got, "> 0", err == nil && sum > 0, true)
	}
}

// Write writes summary.md, changes.csv, revisions.csv, phases.csv and the
// PNGs into dir and returns their names.
func (r *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	write := func(name string, f func(io.Writer) error) error {
		files = append(files, name)
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := f(out); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	steps := []struct {
		name string
		f    func(io.Writer) error
	}{
		{"summary.md", func(w io.Writer) error { r.WriteSummary(w); return nil }},
		{"changes.csv", r.writeChanges},
		{"revisions.csv", r.writeRevisions},
		{"phases.csv", r.writePhases},
	}
	for _, s := range steps {
		if err := write(s.name, s.f); err != nil {
			return files, err
		}
	}
	for name, f := range map[string]func(string) error{"propagation-cdf.png": r.plotCDF, "revisions.png": r.plotRevisions} {
		files = append(files, name)
		if err := f(filepath.Join(dir, name)); err != nil {
			return files, err
		}
	}
	return files, nil
}

// WriteSummary writes the figures and checks as Markdown.
func (r *Report) WriteSummary(w io.Writer) {
	form := "short form (TestIaaS)"
	if r.Opts.Full {
		form = "full run (make iaas)"
	}
	fmt.Fprintf(w, "# IaaS controller experiment, %s\n\n", form)
	fmt.Fprintf(w, "%s, %d CPUs shared with other work; three etcd members (TLS, client certificates), three map646 nodes (source etcd) behind BIRD routers (ECMP over three).\n\n",
		r.Start.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU())
	fmt.Fprintf(w, "## Propagation (etcd write -> a probe through the node arrives translated, or stops being translated)\n\n")
	fmt.Fprintf(w, "| changes | to every node (slowest node) | per node |\n|---|---|---|\n")
	for _, k := range []struct{ label, kind string }{{"adds", "add"}, {"deletes", "del"}, {"all", ""}} {
		fmt.Fprintf(w, "| %s | %s | %s |\n", k.label, r.Prop["all "+k.kind], r.Prop["node "+k.kind])
	}
	fmt.Fprintf(w, "\n## The stream to the established mappings\n\n| phase | sent | received | lost | duplicated |\n|---|---|---|---|---|\n")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d |\n", p.Name, p.To-p.From, p.Got, p.Lost, p.Dup)
	}
	fmt.Fprintf(w, "\nMistranslated datagrams (stream and probes): %d.\n\n## Checks\n\n| | what | measured | target |\n|---|---|---|---|\n", r.Mistranslated)
	for _, c := range r.Checks {
		mark := "met"
		switch {
		case !c.Met && c.Asserted:
			mark = "**MISSED**"
		case !c.Met:
			mark = "missed (reported)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", mark, c.What, c.Got, c.Target)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
	if len(r.Errs) > 0 {
		fmt.Fprintf(w, "\n## Errors\n\n")
		for _, e := range r.Errs[:min(len(r.Errs), 20)] {
			fmt.Fprintf(w, "- %v\n", e)
		}
		if len(r.Errs) > 20 {
			fmt.Fprintf(w, "- ... and %d more\n", len(r.Errs)-20)
		}
	}
}

func (r *Report) writeChanges(w io.Writer) error {
	c := csv.NewWriter(w)
	c.Write([]string{"change", "phase", "kind", "ipv4", "at_s", "commit_ms", "node", "latency_ms", "error"})
	for _, ch := range r.Changes {
		kind := map[bool]string{true: "add", false: "del"}[ch.Add]
		errs := ""
		if ch.Err != nil {
			errs = ch.Err.Error()
		}
		for i, d := range ch.Latency {
			lat := ""
			if d > 0 {
				lat = strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64)
			}
			c.Write([]string{strconv.Itoa(ch.N), ch.Phase, kind, ch.Addr.String(), strconv.FormatFloat(ch.At.Sub(r.Start).Seconds(), 'f', 3, 64),
				strconv.FormatFloat(float64(ch.Commit)/1e6, 'f', 3, 64), strconv.Itoa(i), lat, errs})
		}
	}
	c.Flush()
	return c.Error()
}

func (r *Report) writeRevisions(w io.Writer) error {
	c := csv.NewWriter(w)
	c.Write([]string{"t_s", "node", "revision", "stale_s", "mappings", "rss_mb", "heap_inuse_mb", "heap_idle_mb"})
	for _, s := range r.Revisions {
		c.Write([]string{strconv.FormatFloat(s.At.Seconds(), 'f', 3, 64), s.Node, strconv.FormatInt(s.Revision, 10),
			strconv.FormatFloat(s.Stale, 'f', 1, 64), strconv.FormatInt(s.Mappings, 10), strconv.Itoa(s.RSSMB), strconv.Itoa(s.HeapMB), strconv.Itoa(s.IdleMB)})
	}
	c.Flush()
	return c.Error()
}

func (r *Report) writePhases(w io.Writer) error {
	c := csv.NewWriter(w)
	c.Write([]string{"phase", "start_s", "end_s", "sent", "received", "lost", "duplicated"})
	for _, p := range r.Phases {
		c.Write([]string{p.Name, strconv.FormatFloat(p.Start.Seconds(), 'f', 3, 64), strconv.FormatFloat(p.End.Seconds(), 'f', 3, 64),
			strconv.FormatUint(p.To-p.From, 10), strconv.Itoa(p.Got), strconv.Itoa(p.Lost), strconv.Itoa(p.Dup)})
	}
	c.Flush()
	return c.Error()
}
