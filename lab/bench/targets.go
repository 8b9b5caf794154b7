package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// target is one of issue 3's goals, checked on this run's medians.
type target struct {
	Goal   string
	Known  bool // false: a measurement it needs is missing
	Met    bool
	Detail string
}

func (t target) verdict() string {
	switch {
	case !t.Known:
		return "UNKNOWN"
	case t.Met:
		return "met"
	}
	return "MISSED"
}

// kernels are the baselines a translator is held to: a target is met only
// if it holds against each of them (the stricter comparison), since a
// translated path is neither an IPv4 nor an IPv6 path.
var kernels = []string{"kernel4", "kernel6"}

// targets checks the goals of issue 3 for this machine (ratios in the same
// run):
//   - TCP, one stream, through map646's offload device: at least 0.5x
//     kernel forwarding, each direction;
//   - UDP with 64-byte datagrams through map646 (each device): a receive
//     rate at least TAYGA's;
//   - ping p50 through map646 (each device): within 20 µs of kernel
//     forwarding;
//   - no checksum error at any receiver, of any subject.
func (r *results) targets() []target {
	var ts []target
	for _, dir := range []string{"tcp-up", "tcp-down"} {
		m := metricByID(dir)
		t := target{Goal: fmt.Sprintf("%s through map646 offload >= 0.5x kernel forwarding", m.Name)}
		var parts []string
		t.Known, t.Met = r.hasSubject("map646-offload"), true
		for _, k := range kernels {
			x := r.ratio("map646-offload", k, dir)
			if math.IsNaN(x) {
				t.Known = false
				parts = append(parts, "no value against "+subjectName(k))
				continue
			}
			t.Met = t.Met && x >= 0.5
			parts = append(parts, fmt.Sprintf("%s of %s", formatRatio(x), subjectName(k)))
		}
		t.Detail = strings.Join(parts, ", ")
		ts = append(ts, t)
	}
	for _, dev := range []string{"map646-offload", "map646-water", "map646-busypoll"} {
		t := target{Goal: fmt.Sprintf("UDP 64 B receive rate through %s >= TAYGA's", subjectName(dev))}
		a, _ := r.median(dev, "udp64-pps")
		b, _ := r.median("tayga", "udp64-pps")
		t.Known = !math.IsNaN(a) && !math.IsNaN(b) && b > 0
		if t.Known {
			t.Met = a >= b
			t.Detail = fmt.Sprintf("%.0f kpps against %.0f kpps (%s)", a, b, formatRatio(a/b))
			if r.overlap(dev, "tayga", "udp64-pps") {
				t.Detail += "; the runs of the two overlap: a tie within this machine's run-to-run noise"
			}
		} else {
			t.Detail = "a measurement is missing"
		}
		ts = append(ts, t)
	}
	for _, dev := range []string{"map646-offload", "map646-water", "map646-busypoll"} {
		ts = append(ts, r.pingTarget(dev, 20))
	}
	ts = append(ts, r.fastPathTargets()...)
	// Checksums: map646 is held to it, the kernels must be clean for the
	// lab to be trusted; TAYGA, the peer, is reported but not held to it.
	t := target{Goal: "no checksum error at any receiver of kernel forwarding or map646", Known: true, Met: true}
	var bad, unread, peer []string
	held := 0
	for _, s := range r.Subjects {
		if s.ID != "tayga" {
			held++
		}
		n, ok := r.csumGrowth(s.ID)
		switch {
		case s.ID == "tayga":
			if ok && n > 0 {
				peer = append(peer, fmt.Sprintf("TAYGA (the peer, not held to this): %s", r.csumDetail(s.ID)))
			}
		case !ok:
			unread = append(unread, s.Name)
		case n > 0:
			bad = append(bad, fmt.Sprintf("%s: %s", s.Name, r.csumDetail(s.ID)))
		}
	}
	switch {
	case len(bad) > 0:
		t.Met, t.Detail = false, strings.Join(bad, "; ")
	case len(unread) > 0:
		t.Known, t.Detail = false, "counters not read for "+strings.Join(unread, ", ")
	case held == 0:
		t.Known, t.Detail = false, "neither kernel forwarding nor map646 was measured"
	default:
		t.Detail = "no checksum-error counter grew at their clients and servers"
	}
	if len(peer) > 0 {
		t.Detail += "; " + strings.Join(peer, "; ")
	}
	return append(ts, t)
}

// fastPathTargets checks the goals of issue 16 for the map646 fast path
// subject, as ratios to each kernel's forwarding in the same run: TCP one
// stream >= 0.90x each way, 4 streams >= 0.85x, UDP 64 B (one flow and
// eight) >= 0.70x, UDP 1400 B >= 0.70x, ping p50 within 10 µs.
func (r *results) fastPathTargets() []target {
	const dev = "map646-fastpath"
	var ts []target
	for _, g := range []struct {
		metric string
		min    float64
	}{{"tcp-up", 0.90}, {"tcp-down", 0.90}, {"tcp-4", 0.85}, {"udp64-pps", 0.70}, {"udp64f-pps", 0.70}, {"udp1400-rate", 0.70}} {
		m := metricByID(g.metric)
		t := target{Goal: fmt.Sprintf("%s through map646 fast path >= %.2fx kernel forwarding", m.Name, g.min)}
		t.Known, t.Met = r.hasSubject(dev), true
		var parts []string
		for _, k := range kernels {
			x := r.ratio(dev, k, g.metric)
			if math.IsNaN(x) {
				t.Known = false
				parts = append(parts, "no value against "+subjectName(k))
				continue
			}
			t.Met = t.Met && x >= g.min
			parts = append(parts, fmt.Sprintf("%s of %s", formatRatio(x), subjectName(k)))
		}
		t.Detail = strings.Join(parts, ", ")
		ts = append(ts, t)
	}
	return append(ts, r.pingTarget(dev, 10))
}

// pingTarget holds dev's ping p50 to within limit µs of every kernel's.
func (r *results) pingTarget(dev string, limit float64) target {
	t := target{Goal: fmt.Sprintf("ping p50 through %s within %.0f µs of kernel forwarding", subjectName(dev), limit)}
	a, _ := r.median(dev, "rtt-p50")
	t.Known, t.Met = !math.IsNaN(a), true
	parts := []string{fmt.Sprintf("%.0f µs", a)}
	if !t.Known {
		parts = []string{"no value"}
	}
	for _, k := range kernels {
		b, _ := r.median(k, "rtt-p50")
		if math.IsNaN(b) {
			t.Known = false
			continue
		}
		t.Met = t.Met && a-b <= limit
		parts = append(parts, fmt.Sprintf("%+.0f µs against %s (%.0f µs)", a-b, subjectName(k), b))
	}
	t.Detail = strings.Join(parts, ", ")
	return t
}

// overlap tells whether the ranges of two subjects' runs of a metric
// overlap: then the order of their medians may be noise.
func (r *results) overlap(a, b, metricID string) bool {
	va, vb := r.values(a, metricID), r.values(b, metricID)
	if len(va) == 0 || len(vb) == 0 {
		return false
	}
	return slices.Min(va) <= slices.Max(vb) && slices.Min(vb) <= slices.Max(va)
}

// csumDetail lists the checksum-error counters of a subject that grew.
func (r *results) csumDetail(subj string) string {
	rep := r.Reports[subj]
	if rep == nil {
		return ""
	}
	var parts []string
	for who, counters := range rep.CsumDelta {
		for c, d := range counters {
			if d > 0 {
				parts = append(parts, fmt.Sprintf("%s %s +%d", who, c, d))
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func subjectName(id string) string {
	if s, ok := subjectByID(id); ok {
		return s.Name
	}
	return id
}
