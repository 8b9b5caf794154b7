package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// Report is everything one experiment produced.
type Report struct {
	Timelines []*Run // with BFD, then (Options.HoldTimer) without
	Flows     *FlowResult
	// Alert is when Prometheus alerted on the silent death
	// (Options.Prometheus).
	Alert *AlertResult
	Errs  []error
}

// Experiment runs the timeline on a lab with BFD, then the flows scenario
// on the same lab, then (o.HoldTimer) the silent death on a lab without
// BFD; it returns what it got even when a part failed (Report.Errs).
func Experiment(t netlab.TB, o Options) *Report {
	rep := &Report{}
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "== "+format+"\n", args...) }
	abort := func() bool {
		select {
		case <-o.Abort:
			return true
		default:
			return false
		}
	}
	say("building the lab with BFD: client4, upstream BIRD, bridges, tokyo and osaka (map646), backend BIRD, srv10, srv11")
	l := NewLab(t, o, true)
	say("both routers route both prefixes over both nodes")
	if abort() {
		rep.Errs = append(rep.Errs, ErrInterrupted)
		return rep
	}
	say("timeline with BFD: a probe every %v from %d client addresses to %d servers", o.Interval, len(l.Srcs), len(l.Dsts))
	run, err := RunTimeline("timeline-bfd", "Failover timeline, BFD 100 ms x 3", l.Probe(t, o.Interval, nil), l.NodeNames(), l.TimelineSteps(t, o.Hold, true, o.maxOutage()), o.Progress, o.Abort)
	rep.Timelines = append(rep.Timelines, run)
	rep.Alert = l.Alert
	if err != nil {
		rep.Errs = append(rep.Errs, fmt.Errorf("timeline with BFD: %w", err))
		return rep
	}
	say("flows: a TCP transfer through tokyo and a ping every 20 ms while tokyo dies silently and comes back")
	var f FlowResult
	if err := netlab.Attempt(func() error { f = l.Flows(t, o, l.Tokyo, 20*time.Millisecond); return nil }); err != nil {
		rep.Errs = append(rep.Errs, fmt.Errorf("flows: %w", err))
		return rep
	}
	rep.Flows = &f
	if f.Err != nil {
		rep.Errs = append(rep.Errs, fmt.Errorf("flows: %w", f.Err))
		return rep
	}
	if !o.HoldTimer || abort() {
		return rep
	}
	say("building a second lab without BFD (hold timer 3 s, keepalive 1 s)")
	l2 := NewLab(t, o, false)
	// The last run: no need to wait for the revived node.
	run, err = RunTimeline("timeline-hold", "Silent death without BFD: hold timer 3 s", l2.Probe(t, o.Interval, nil), l2.NodeNames(), l2.TimelineSteps(t, o.Hold, false, 0), o.Progress, o.Abort)
	rep.Timelines = append(rep.Timelines, run)
	if err != nil {
		rep.Errs = append(rep.Errs, fmt.Errorf("timeline without BFD: %w", err))
	}
	return rep
}

// Write writes the report's files into dir: timeline.csv (every probe of
// every run), one PNG per run (timeline-bfd.png, timeline-hold.png,
// flows.png) and summary.md; it returns the files' names.
func (rep *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	runs := rep.runs()
	f, err := os.Create(filepath.Join(dir, "timeline.csv"))
	if err != nil {
		return nil, err
	}
	err = WriteCSV(f, runs...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	files = append(files, "timeline.csv")
	for _, r := range runs {
		name := r.Name + ".png"
		if err := r.WritePNG(filepath.Join(dir, name)); err != nil {
			return files, err
		}
		files = append(files, name)
	}
	var b strings.Builder
	rep.WriteSummary(&b, true)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(b.String()), 0o644); err != nil {
		return files, err
	}
	return append(files, "summary.md"), nil
}

// runs are the timelines and the flows' ping, in the order they ran.
func (rep *Report) runs() []*Run {
	var runs []*Run
	if len(rep.Timelines) > 0 {
		runs = append(runs, rep.Timelines[0])
	}
	if rep.Flows != nil && rep.Flows.Run != nil {
		runs = append(runs, rep.Flows.Run)
	}
	if len(rep.Timelines) > 1 {
		runs = append(runs, rep.Timelines[1:]...)
	}
	return runs
}

// WriteSummary writes every run's table, the flows' verdict and the
// errors.
func (rep *Report) WriteSummary(w io.Writer, markdown bool) {
	for _, r := range rep.runs() {
		r.WriteSummary(w, markdown)
		fmt.Fprintln(w)
		if rep.Alert != nil && r == rep.Timelines[0] {
			fmt.Fprintf(w, "%s\n\n", rep.Alert)
		}
		if rep.Flows != nil && r == rep.Flows.Run {
			rep.Flows.WriteSummary(w, markdown)
			fmt.Fprintln(w)
		}
	}
	for _, err := range rep.Errs {
		fmt.Fprintf(w, "ERROR: %v\n", err)
	}
}

// Met says whether every target was met and nothing failed.
func (rep *Report) Met() bool {
	if len(rep.Errs) > 0 || (rep.Flows != nil && !rep.Flows.Intact) {
		return false
	}
	for _, r := range rep.runs() {
		if !r.Met() {
			return false
		}
	}
	return true
}
