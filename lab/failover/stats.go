package main

import (
	"slices"
	"time"
)

// Outage is a burst of lost probes: losses less than burstGap apart.
type Outage struct {
	First, Last int // sequence numbers of its first and last lost probe
	Lost        int
	// Span is from the first lost probe's sending to the last one's, plus
	// one interval: the time during which probes were lost, to the
	// resolution of the interval.
	Span time.Duration
}

// burstGap separates outages: losses closer than this are one outage
// (probes rotate over flows that ECMP spreads over the nodes, so the
// losses of one dead node alternate with answers through the other).
const burstGap = time.Second

// Outages returns the bursts of loss among probes, in order.
func Outages(probes []Probe, interval time.Duration) []Outage {
	var out []Outage
	var first, last time.Time // sending times of the current burst's ends
	for _, pr := range probes {
		if !pr.Lost {
			continue
		}
		if len(out) > 0 && pr.Sent.Sub(last) < burstGap {
			o := &out[len(out)-1]
			o.Last, o.Lost = pr.Seq, o.Lost+1
		} else {
			out = append(out, Outage{First: pr.Seq, Last: pr.Seq, Lost: 1})
			first = pr.Sent
		}
		last = pr.Sent
		out[len(out)-1].Span = last.Sub(first) + interval
	}
	return out
}

// Window is what happened between an event and the next one.
type Window struct {
	Event             Event
	Probes, Lost      int
	Outage            Outage        // the longest
	RTTMedian         time.Duration // of answered probes; 0 if none
	ReqVia, RepVia    map[string]int
	LostReqVia        map[string]int // where the lost probes' requests went
	LostNotTranslated int            // lost probes a node received but did not translate
	LostMet, OutMet   bool           // targets (true when there is none)
}

// Windows splits a run's probes at its events.
func (r *Run) Windows() []Window {
	var ws []Window
	for i, e := range r.Events {
		end := time.Time{}
		if i+1 < len(r.Events) {
			end = r.Events[i+1].At
		}
		var in []Probe
		for _, pr := range r.Probes {
			if !pr.Sent.Before(e.At) && (end.IsZero() || pr.Sent.Before(end)) {
				in = append(in, pr)
			}
		}
		w := Window{Event: e, Probes: len(in), ReqVia: map[string]int{}, RepVia: map[string]int{}, LostReqVia: map[string]int{}}
		var rtts []time.Duration
		for _, pr := range in {
			w.ReqVia[orQ(pr.ReqVia)]++
			w.RepVia[orQ(pr.RepVia)]++
			if pr.Lost {
				w.Lost++
				w.LostReqVia[orQ(pr.ReqVia)]++
				if pr.ReqVia != "" && !pr.Translated {
					w.LostNotTranslated++
				}
			} else {
				rtts = append(rtts, pr.RTT)
			}
		}
		for _, o := range Outages(in, r.Interval) {
			if o.Span > w.Outage.Span {
				w.Outage = o
			}
		}
		w.RTTMedian = median(rtts)
		w.LostMet = e.MaxLost < 0 || w.Lost <= e.MaxLost
		w.OutMet = e.MaxOutage == 0 || w.Outage.Span <= e.MaxOutage
		ws = append(ws, w)
	}
	return ws
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
