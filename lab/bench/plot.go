package main

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeCharts draws the PNG charts into dir and returns their file names:
// throughput and round-trip times by subject (medians), and Figure 12.
func (r *results) writeCharts(dir string) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string, w, h vg.Length) error {
		if err := p.Save(w, h, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("chart %s: %w", name, err)
		}
		files = append(files, name)
		return nil
	}
	if len(r.Subjects) > 0 {
		p, err := r.groupedBars("Throughput (median of runs)", "Gbit/s",
			[]string{"tcp-up", "tcp-down", "tcp-4", "udp1400-rate"},
			[]string{"TCP 1 stream c->s", "TCP 1 stream s->c", "TCP 4 streams c->s", "UDP 1400 B c->s"})
		if err != nil {
			return files, err
		}
		if err := save(p, "throughput.png", 9*vg.Inch, 4.5*vg.Inch); err != nil {
			return files, err
		}
		if p, err = r.groupedBars("UDP, 64-byte datagrams: received (median of runs)", "thousand datagrams/s",
			[]string{"udp64-pps"}, []string{"UDP 64 B c->s"}); err != nil {
			return files, err
		}
		if err := save(p, "udp64.png", 6*vg.Inch, 4.5*vg.Inch); err != nil {
			return files, err
		}
		if p, err = r.groupedBars("Ping round-trip time (median of runs)", "µs",
			[]string{"rtt-p50", "rtt-p99"}, []string{"p50", "p99"}); err != nil {
			return files, err
		}
		if err := save(p, "rtt.png", 7*vg.Inch, 4.5*vg.Inch); err != nil {
			return files, err
		}
	}
	if r.Lookup != nil {
		p, err := r.lookupChart()
		if err != nil {
			return files, err
		}
		if err := save(p, "lookup.png", 7*vg.Inch, 4.5*vg.Inch); err != nil {
			return files, err
		}
	}
	return files, nil
}

// groupedBars draws one group of bars per metric, one bar per subject.
func (r *results) groupedBars(title, unit string, metricIDs, labels []string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.Y.Min = 0
	n := len(r.Subjects)
	w := vg.Points(float64(min(18, 300/(n*len(metricIDs)))))
	for i, s := range r.Subjects {
		vals := make(plotter.Values, len(metricIDs))
		for j, id := range metricIDs {
			v, _ := r.median(s.ID, id)
			if math.IsNaN(v) {
				v = 0 // not measured: no bar
			}
			vals[j] = v
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(bars)
		p.Legend.Add(s.Name, bars)
	}
	p.Legend.Top = true
	p.NominalX(labels...)
	// Room for the outer bars of the groups and, above the bars, for the
	// legend.
	p.X.Min, p.X.Max = -0.5, float64(len(metricIDs))-0.5
	p.Y.Max *= 1.45
	return p, nil
}

// lookupChart is the paper's Figure 12: ns per lookup against the number
// of entries, logarithmic, one line per direction.
func (r *results) lookupChart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Figure 12: mapping-table lookup (median ns per hit)"
	p.X.Label.Text = "entries in the table"
	p.Y.Label.Text = "ns per lookup"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks(r.sizeTicks())
	p.Y.Min = 0
	for i, dir := range []string{"4to6", "6to4"} {
		var pts plotter.XYs
		for _, n := range r.Lookup.Sizes() {
			if v := r.Lookup[dir][n]; len(v) > 0 {
				pts = append(pts, plotter.XY{X: float64(n), Y: median(v)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		name := map[string]string{"4to6": "IPv4 -> IPv6 (Map4)", "6to4": "IPv6 -> IPv4 (Map6)"}[dir]
		p.Legend.Add(name, l, s)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

func (r *results) sizeTicks() []plot.Tick {
	var t []plot.Tick
	for _, n := range r.Lookup.Sizes() {
		t = append(t, plot.Tick{Value: float64(n), Label: formatCount(n)})
	}
	return t
}
