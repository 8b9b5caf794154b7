package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteCSV writes every probe of the runs, one line each, with the event
// whose window it was sent in.
func WriteCSV(w io.Writer, runs ...*Run) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"run", "seq", "t_s", "src", "dst", "rtt_ms", "lost", "late", "req_via", "rep_via", "translated", "event"})
	for _, r := range runs {
		ev := 0
		for _, pr := range r.Probes {
			for ev+1 < len(r.Events) && !pr.Sent.Before(r.Events[ev+1].At) {
				ev++
			}
			name := ""
			if ev < len(r.Events) && !pr.Sent.Before(r.Events[ev].At) {
				name = r.Events[ev].Name
			}
			rtt := ""
			if !pr.Lost {
				rtt = strconv.FormatFloat(pr.RTT.Seconds()*1e3, 'f', 3, 64)
			}
			cw.Write([]string{r.Name, strconv.Itoa(pr.Seq), strconv.FormatFloat(pr.Sent.Sub(r.Start).Seconds(), 'f', 3, 64),
				pr.Src.String(), pr.Dst.String(), rtt, b01(pr.Lost), b01(pr.Late), pr.ReqVia, pr.RepVia, b01(pr.Translated), name})
		}
	}
	cw.Flush()
	return cw.Error()
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Met says whether every target of the run was met.
func (r *Run) Met() bool {
	for _, w := range r.Windows() {
		if !w.LostMet || !w.OutMet || w.Event.Err != nil {
			return false
		}
	}
	return true
}

// WriteSummary writes the run's table: per event, the probes lost, the
// longest outage, the RTT median before (the previous window) and after,
// which nodes carried requests and replies, and the targets. markdown
// selects a Markdown table; otherwise aligned text for a terminal.
func (r *Run) WriteSummary(w io.Writer, markdown bool) {
	lost, total := 0, len(r.Probes)
	for _, pr := range r.Probes {
		if pr.Lost {
			lost++
		}
	}
	head := fmt.Sprintf("%s: a probe every %v, %d probes, %d lost, over %.0f s", r.Title, r.Interval, total, lost, r.duration().Seconds())
	cols := []string{"event", "at", "probes", "lost", "longest outage", "RTT median before", "RTT median after", "requests via", "replies via", "target"}
	var rows [][]string
	var prev time.Duration
	for i, win := range r.Windows() {
		before := "-"
		if i > 0 {
			before = ms(prev)
		}
		prev = win.RTTMedian
		out := "-"
		if win.Outage.Lost > 0 {
			out = fmt.Sprintf("%s (%d lost)", ms(win.Outage.Span), win.Outage.Lost)
		}
		lostCell := strconv.Itoa(win.Lost)
		if win.LostNotTranslated > 0 {
			lostCell += fmt.Sprintf(" (%d inside a node)", win.LostNotTranslated)
		}
		label := win.Event.Label
		if win.Event.Note != "" {
			label += " (" + win.Event.Note + ")"
		}
		if win.Event.Err != nil {
			label += " FAILED: " + clip(firstLine(win.Event.Err.Error()), 100)
		}
		rows = append(rows, []string{label, fmt.Sprintf("%.1f s", win.Event.At.Sub(r.Start).Seconds()),
			strconv.Itoa(win.Probes), lostCell, out, before, ms(win.RTTMedian),
			shares(win.ReqVia, win.Probes), shares(win.RepVia, win.Probes), target(win)})
	}
	var marks []string
	for _, m := range r.Marks {
		marks = append(marks, fmt.Sprintf("%s at %.1f s", m.Label, m.At.Sub(r.Start).Seconds()))
	}
	if markdown {
		fmt.Fprintf(w, "%s.\n\n| %s |\n|%s\n", head, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
		for _, row := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	} else {
		fmt.Fprintf(w, "%s\n", head)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
	if len(marks) > 0 {
		fmt.Fprintf(w, "\nAlso: %s.\n", strings.Join(marks, "; "))
	}
}

func (r *Run) duration() time.Duration {
	if len(r.Probes) == 0 {
		return 0
	}
	return r.Probes[len(r.Probes)-1].Sent.Sub(r.Start) + r.Interval
}

func target(w Window) string {
	var parts []string
	if w.Event.MaxLost >= 0 {
		parts = append(parts, fmt.Sprintf("≤ %d lost: %s", w.Event.MaxLost, metWord(w.LostMet)))
	}
	if w.Event.MaxOutage > 0 {
		parts = append(parts, fmt.Sprintf("outage ≤ %s: %s", ms(w.Event.MaxOutage), metWord(w.OutMet)))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// shares formats carriers as "osaka 52%, tokyo 48%".
func shares(m map[string]int, n int) string {
	if n == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*float64(m[k])/float64(n)))
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.3f ms", d.Seconds()*1e3)
	}
	return fmt.Sprintf("%.0f ms", d.Seconds()*1e3)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
