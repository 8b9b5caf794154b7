package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// Step is one event of a timeline.
type Step struct {
	// Name is short, for the CSV and the table ("drain"); Label is the
	// event's text on the plot ("3. tokyo drained").
	Name, Label string
	// Do makes the event happen; it may block (a drain returns when the
	// node is drained) and report what it waits for through say. nil: no
	// action (the first step, the baseline).
	Do func(say func(format string, args ...any)) error
	// Hold is how long the probes run after Do has returned, before the
	// next step.
	Hold time.Duration
	// MaxLost (-1: no target) and MaxOutage (0: no target) are the step's
	// targets, over the probes sent from the event to the next one.
	MaxLost   int
	MaxOutage time.Duration
}

// Event is a step as it happened.
type Event struct {
	Step
	At, Done time.Time // Do called and returned
	Err      error
	Note     string // what a step that went on despite a problem said
}

// Note is an error a step returns to go on, noted in the summary, rather
// than to end the run.
type Note string

func (n Note) Error() string { return string(n) }

// Run is a finished timeline: its probes and events, times relative to
// Start.
type Run struct {
	Name     string // short, for file names and the CSV ("timeline-bfd")
	Title    string
	Start    time.Time
	Interval time.Duration
	Nodes    []string // in the order the plot colours them
	Events   []Event
	// Marks are moments within steps worth a dotted line on the plot and
	// a word in the summary (the experiment makes none at present: its
	// only one was the restart of a node whose revival failed, which is
	// now a failure).
	Marks  []Mark
	Probes []Probe
}

// Mark is a labelled moment of a run.
type Mark struct {
	At    time.Time
	Label string
}

// ErrInterrupted ends a timeline whose abort channel was closed.
var ErrInterrupted = errors.New("interrupted")

// RunTimeline runs the steps one after the other while p probes, printing
// progress to out. It stops at the first step that fails, or when abort
// (may be nil) is closed, and returns the run so far with the error.
func RunTimeline(name, title string, p *Prober, nodes []string, steps []Step, out io.Writer, abort <-chan struct{}) (*Run, error) {
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	defer halt() // also when a step's TB ends the goroutine (runtime.Goexit)
	sent := make(chan error, 1)
	go func() { sent <- p.Run(stop) }()
	for p.Start().IsZero() {
		time.Sleep(time.Millisecond) // Run sets it first thing
	}
	r := &Run{Name: name, Title: title, Start: p.Start(), Interval: p.Interval, Nodes: nodes}
	since := func(t time.Time) string { return fmt.Sprintf("%6.1fs", t.Sub(r.Start).Seconds()) }
	var stepErr error
	for i, s := range steps {
		e := Event{Step: s, At: time.Now()}
		fmt.Fprintf(out, "[%s] %d/%d %s\n", since(e.At), i+1, len(steps), s.Label)
		say := func(format string, args ...any) {
			fmt.Fprintf(out, "[%s]       %s\n", since(time.Now()), fmt.Sprintf(format, args...))
		}
		if s.Do != nil {
			e.Err = netlab.Attempt(func() error { return s.Do(say) })
		}
		e.Done = time.Now()
		var note Note
		if errors.As(e.Err, &note) {
			e.Note, e.Err = string(note), nil
			say("NOTE: %s", note)
		}
		r.Events = append(r.Events, e)
		if e.Err != nil {
			stepErr = fmt.Errorf("step %d (%s): %w", i+1, s.Label, e.Err)
			fmt.Fprintf(out, "[%s]       FAILED: %v\n", since(e.Done), e.Err)
			break
		}
		if s.Do != nil {
			say("done in %.2fs", e.Done.Sub(e.At).Seconds())
		}
		if !hold(p, e.At, s.Hold, say, abort) {
			stepErr = fmt.Errorf("step %d (%s): %w", i+1, s.Label, ErrInterrupted)
			break
		}
	}
	halt()
	fmt.Fprintf(out, "[%s] waiting %v for the last answers\n", since(time.Now()), p.Timeout)
	sendErr := <-sent
	r.Probes = p.Probes()
	return r, errors.Join(stepErr, sendErr)
}

// hold waits d, saying every 2 s how the probes since the event fare; it
// returns false if abort is closed first.
func hold(p *Prober, from time.Time, d time.Duration, say func(string, ...any), abort <-chan struct{}) bool {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		select {
		case <-time.After(min(left, 2*time.Second)):
		case <-abort:
			return false
		}
		say("%s", progress(p.Probes(), from))
	}
}

// progress sums up the probes sent since from: counts, losses, carriers.
func progress(probes []Probe, from time.Time) string {
	var n, lost, pending int
	req, rep := map[string]int{}, map[string]int{}
	for _, pr := range probes {
		if pr.Sent.Before(from) {
			continue
		}
		n++
		switch {
		case pr.Lost:
			lost++
		case pr.RTT == 0:
			pending++
		}
		req[orQ(pr.ReqVia)]++
		rep[orQ(pr.RepVia)]++
	}
	return fmt.Sprintf("%d probes, %d lost; requests via %s; replies via %s", n, lost, counts(req), counts(rep))
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
