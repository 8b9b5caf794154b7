package main

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// synthetic builds a run of n probes every 100 ms with two events: the
// baseline at 0 and "kill" at probe 50; probes in lost are lost; requests
// alternate between tokyo and osaka, replies go through osaka.
func synthetic(n int, lost map[int]bool) *Run {
	start := time.Unix(1000, 0)
	iv := 100 * time.Millisecond
	r := &Run{Name: "synthetic", Title: "synthetic", Start: start, Interval: iv, Nodes: []string{"tokyo", "osaka"}}
	r.Events = []Event{
		{Step: Step{Name: "base", Label: "1. both", MaxLost: 0}, At: start},
		{Step: Step{Name: "kill", Label: "5. kill", MaxLost: -1, MaxOutage: 500 * time.Millisecond, Do: func(func(string, ...any)) error { return nil }},
			At: start.Add(50*iv - time.Millisecond)},
	}
	for i := range n {
		pr := Probe{Seq: i, Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("198.51.100.10"),
			Sent: start.Add(time.Duration(i) * iv), ReqVia: []string{"tokyo", "osaka"}[i%2], Translated: true}
		if lost[i] {
			pr.Lost = true
		} else {
			pr.RepVia = "osaka"
			pr.RTT = time.Duration(100+i) * time.Microsecond
		}
		r.Probes = append(r.Probes, pr)
	}
	return r
}

// TestWindows: losses are counted in the window of the event they follow,
// an outage spans its first to last lost probe plus one interval, bursts
// more than a second apart are separate outages, targets are judged, RTT
// medians are per window.
func TestWindows(t *testing.T) {
	// Probes 52, 54, 56 lost (the tokyo flows: 300 ms + 100 ms), and 80
	// alone (2.4 s later: a second outage).
	r := synthetic(100, map[int]bool{52: true, 54: true, 56: true, 80: true})
	ws := r.Windows()
	if len(ws) != 2 {
		t.Fatalf("%d windows, want 2", len(ws))
	}
	if ws[0].Probes != 50 || ws[0].Lost != 0 || !ws[0].LostMet || ws[0].Outage.Lost != 0 {
		t.Errorf("baseline window: %+v", ws[0])
	}
	if ws[0].ReqVia["tokyo"] != 25 || ws[0].ReqVia["osaka"] != 25 || ws[0].RepVia["osaka"] != 50 {
		t.Errorf("baseline carriers: requests %v, replies %v", ws[0].ReqVia, ws[0].RepVia)
	}
	if got, want := ws[0].RTTMedian, time.Duration(124500)*time.Nanosecond; got != want {
		t.Errorf("baseline RTT median %v, want %v", got, want)
	}
	w := ws[1]
	if w.Probes != 50 || w.Lost != 4 || w.Outage.Lost != 3 || w.Outage.Span != 500*time.Millisecond || !w.OutMet {
		t.Errorf("kill window: probes %d lost %d, longest outage %+v, met %v", w.Probes, w.Lost, w.Outage, w.OutMet)
	}
	if w.LostReqVia["tokyo"] != 4 || w.RepVia["?"] != 4 {
		t.Errorf("lost probes' carriers: %v, replies %v", w.LostReqVia, w.RepVia)
	}
	if !r.Met() {
		t.Error("Met: false, want true")
	}
	// One more lost probe makes the outage 700 ms: the target is missed.
	r = synthetic(100, map[int]bool{52: true, 54: true, 56: true, 58: true})
	if w := r.Windows()[1]; w.OutMet || w.Outage.Span != 700*time.Millisecond || r.Met() {
		t.Errorf("700 ms outage against a 500 ms target: met %v, span %v, run met %v", w.OutMet, w.Outage.Span, r.Met())
	}
	if o := Outages(r.Probes, r.Interval); len(o) != 1 || o[0].First != 52 || o[0].Last != 58 {
		t.Errorf("outages %+v", o)
	}
}

// TestOutputs: the CSV has a line per probe with its window's event, the
// summary names every event with its target verdict, and the PNG is a
// 13x8-inch image.
func TestOutputs(t *testing.T) {
	r := synthetic(100, map[int]bool{52: true, 54: true})
	r.Marks = []Mark{{At: r.Start.Add(8 * time.Second), Label: "tokyo restarted"}}
	var b bytes.Buffer
	if err := WriteCSV(&b, r); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 101 {
		t.Fatalf("%d CSV lines, want 101", len(recs))
	}
	if got := strings.Join(recs[53], ","); got != "synthetic,52,5.200,192.0.2.2,198.51.100.10,,1,0,tokyo,,1,kill" {
		t.Errorf("CSV line of probe 52: %s", got)
	}
	if got := strings.Join(recs[50], ","); got != "synthetic,49,4.900,192.0.2.2,198.51.100.10,0.149,0,0,osaka,osaka,1,base" {
		t.Errorf("CSV line of probe 49: %s", got)
	}
	b.Reset()
	r.WriteSummary(&b, false)
	sum := b.String()
	for _, want := range []string{"100 probes, 2 lost", "1. both", "5. kill", "300 ms (2 lost)", "outage ≤ 500 ms: met", "≤ 0 lost: met", "tokyo 50%", "Also: tokyo restarted at 8.0 s."} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	b.Reset()
	r.WriteSummary(&b, true)
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 8 || !strings.HasPrefix(lines[4], "| 1. both |") {
		t.Errorf("markdown summary:\n%s", b.String())
	}

	path := filepath.Join(t.TempDir(), "timeline.png")
	if err := r.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 13*96 || cfg.Height != 8*96 {
		t.Errorf("PNG %dx%d, want %dx%d", cfg.Width, cfg.Height, 13*96, 8*96)
	}
	if os.Getenv("FAILOVER_KEEP_PNG") != "" {
		data, _ := os.ReadFile(path)
		os.WriteFile(os.Getenv("FAILOVER_KEEP_PNG"), data, 0o644)
	}
}
