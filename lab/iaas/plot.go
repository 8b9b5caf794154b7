package main

import (
	"image/color"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotCDF draws the propagation latency's distribution: per node (adds and
// deletes) and to every node (the slowest node of each change).
func (r *Report) plotCDF(path string) error {
	p := plot.New()
	p.Title.Text = "Propagation: etcd write -> translating (probe through the node)"
	p.X.Label.Text = "latency (ms, logarithmic)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Label.Text = "fraction of changes"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	var lines []any
	for _, k := range []struct{ label, kind string }{{"add, per node", "add"}, {"delete, per node", "del"}, {"all changes, slowest node", ""}} {
		per, all := r.latencies(k.kind)
		d := per
		if k.kind == "" {
			d = all
		}
		if len(d) > 0 {
			lines = append(lines, k.label, cdf(d))
		}
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(-10), vg.Points(40)
	return save(p, path)
}

// cdf is the empirical distribution of d, in milliseconds.
func cdf(d []time.Duration) plotter.XYs {
	s := slices.Clone(d)
	slices.Sort(s)
	xy := make(plotter.XYs, len(s))
	for i, v := range s {
		xy[i] = plotter.XY{X: float64(v) / 1e6, Y: float64(i+1) / float64(len(s))}
	}
	return xy
}

// plotRevisions draws each node's etcd revision over the run, with the
// phases as shaded spans' borders.
func (r *Report) plotRevisions(path string) error {
	p := plot.New()
	p.Title.Text = "etcd revision served by each node (map646_etcd_revision)"
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "revision"
	p.Add(plotter.NewGrid())
	byNode := map[string]plotter.XYs{}
	var order []string
	for _, s := range r.Revisions {
		if _, ok := byNode[s.Node]; !ok {
			order = append(order, s.Node)
		}
		byNode[s.Node] = append(byNode[s.Node], plotter.XY{X: s.At.Seconds(), Y: float64(s.Revision)})
	}
	var lines []any
	for _, n := range order {
		lines = append(lines, n, byNode[n])
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	for _, ph := range r.Phases {
		l, err := plotter.NewLine(plotter.XYs{{X: ph.Start.Seconds(), Y: p.Y.Min}, {X: ph.Start.Seconds(), Y: p.Y.Max}})
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 160}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: ph.Start.Seconds(), Y: p.Y.Max}}, Labels: []string{ph.Name}})
		if err != nil {
			return err
		}
		lbl.TextStyle[0].Rotation = -1.5708
		p.Add(lbl)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return save(p, path)
}

func save(p *plot.Plot, path string) error {
	p.BackgroundColor = color.White
	return p.Save(11*vg.Inch, 6*vg.Inch, path)
}
