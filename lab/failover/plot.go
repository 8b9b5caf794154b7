package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	lossColor  = color.RGBA{R: 220, A: 255}
	eventColor = color.RGBA{R: 90, G: 90, B: 90, A: 255}
)

// WritePNG draws the run like the paper's Figure 4: above, each probe's
// round-trip time over time (logarithmic), coloured by the nodes that
// carried its request and reply, lost probes as red crosses along the
// top; below, one row per node and direction with a mark for every probe
// that node carried, and a row of losses; events as labelled vertical
// lines across both.
func (r *Run) WritePNG(path string) error {
	top, err := r.rttPlot()
	if err != nil {
		return err
	}
	bottom, err := r.carrierPlot()
	if err != nil {
		return err
	}
	w, h := 13*vg.Inch, 8*vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	// White background: a PNG with transparency reads badly on a dark page.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	split := h * 0.34
	topC := draw.Crop(dc, 0, 0, split, 0)
	botC := draw.Crop(dc, 0, 0, 0, split-h)
	// Align the data areas of the two panels (their y labels differ in
	// width), so that an instant is at the same x in both.
	lt, lb := top.DataCanvas(topC).Min.X-topC.Min.X, bottom.DataCanvas(botC).Min.X-botC.Min.X
	if lt < lb {
		topC = draw.Crop(topC, lb-lt, 0, 0, 0)
	} else {
		botC = draw.Crop(botC, lt-lb, 0, 0, 0)
	}
	rt, rb := topC.Max.X-top.DataCanvas(topC).Max.X, botC.Max.X-bottom.DataCanvas(botC).Max.X
	if rt < rb {
		topC = draw.Crop(topC, 0, rt-rb, 0, 0)
	} else {
		botC = draw.Crop(botC, 0, rb-rt, 0, 0)
	}
	top.Draw(topC)
	bottom.Draw(botC)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// xRange is the plots' time axis, seconds from the start.
func (r *Run) xRange() (float64, float64) {
	return 0, math.Max(r.duration().Seconds(), 1)
}

func (r *Run) rttPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = r.Title
	p.Y.Label.Text = "round-trip time (ms)"
	p.Y.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = r.xRange()
	p.X.Tick.Marker = secondTicks{}

	byPath := map[string]plotter.XYs{}
	var lo, hi = math.Inf(1), 0.0
	for _, pr := range r.Probes {
		if pr.Lost {
			continue
		}
		v := pr.RTT.Seconds() * 1e3
		byPath[pr.Path()] = append(byPath[pr.Path()], plotter.XY{X: pr.Sent.Sub(r.Start).Seconds(), Y: v})
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi == 0 {
		lo, hi = 0.01, 1
	}
	// Decades around the data, and room above it for losses and labels.
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi))+1)
	p.Y.Tick.Marker = decadeTicks{}
	for i, path := range r.paths(byPath) {
		s, err := plotter.NewScatter(byPath[path])
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = plotutil.Color(i)
		s.GlyphStyle.Shape = plotutil.Shape(i)
		s.GlyphStyle.Radius = vg.Points(2)
		p.Add(s)
		p.Legend.Add("request/reply via "+path, s)
	}
	lossY := p.Y.Max / 2
	var lost plotter.XYs
	for _, pr := range r.Probes {
		if pr.Lost {
			lost = append(lost, plotter.XY{X: pr.Sent.Sub(r.Start).Seconds(), Y: lossY})
		}
	}
	if len(lost) > 0 {
		s, err := plotter.NewScatter(lost)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: lossColor, Shape: draw.CrossGlyph{}, Radius: vg.Points(4)}
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("lost (%d)", len(lost)), s)
	}
	if err := r.addEvents(p, true); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.YOffs = -vg.Points(105) // below the loss row and the labels
	return p, nil
}

// paths orders the request/reply combinations: node by node as r.Nodes
// lists them, unknown ones last.
func (r *Run) paths(byPath map[string]plotter.XYs) []string {
	var out []string
	for _, a := range r.Nodes {
		for _, b := range r.Nodes {
			if _, ok := byPath[a+"/"+b]; ok {
				out = append(out, a+"/"+b)
			}
		}
	}
	for _, k := range sortedKeys(byPath) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// carrierPlot has a row per node and direction, and a row of losses.
func (r *Run) carrierPlot() (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "time (s)"
	p.X.Min, p.X.Max = r.xRange()
	p.X.Tick.Marker = secondTicks{}
	rows := len(r.Nodes)*2 + 1
	p.Y.Min, p.Y.Max = -0.7, float64(rows)-0.3
	var ticks []plot.Tick
	y := func(i int) float64 { return float64(rows - 1 - i) }
	ticks = append(ticks, plot.Tick{Value: y(0), Label: "lost"})
	lost := plotter.XYs{}
	rowPts := make([]plotter.XYs, rows)
	for _, pr := range r.Probes {
		x := pr.Sent.Sub(r.Start).Seconds()
		if pr.Lost {
			lost = append(lost, plotter.XY{X: x, Y: y(0)})
		}
		for n, node := range r.Nodes {
			if slices.Contains(splitVia(pr.ReqVia), node) {
				rowPts[1+2*n] = append(rowPts[1+2*n], plotter.XY{X: x, Y: y(1 + 2*n)})
			}
			if slices.Contains(splitVia(pr.RepVia), node) {
				rowPts[2+2*n] = append(rowPts[2+2*n], plotter.XY{X: x, Y: y(2 + 2*n)})
			}
		}
	}
	add := func(pts plotter.XYs, c color.Color, shape draw.GlyphDrawer) error {
		if len(pts) == 0 {
			return nil
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: c, Shape: shape, Radius: vg.Points(2.5)}
		p.Add(s)
		return nil
	}
	if err := add(lost, lossColor, draw.CrossGlyph{}); err != nil {
		return nil, err
	}
	for n, node := range r.Nodes {
		ticks = append(ticks, plot.Tick{Value: y(1 + 2*n), Label: node + " request"}, plot.Tick{Value: y(2 + 2*n), Label: node + " reply"})
		c := nodeColor(n)
		if err := add(rowPts[1+2*n], c, draw.BoxGlyph{}); err != nil {
			return nil, err
		}
		if err := add(rowPts[2+2*n], c, draw.CircleGlyph{}); err != nil {
			return nil, err
		}
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	if err := r.addEvents(p, false); err != nil {
		return nil, err
	}
	return p, nil
}

// nodeColor is a node's colour in the carrier rows: dark blue, orange,
// then plotutil's palette.
func nodeColor(n int) color.Color {
	switch n {
	case 0:
		return color.RGBA{R: 31, G: 90, B: 180, A: 255}
	case 1:
		return color.RGBA{R: 230, G: 130, B: 20, A: 255}
	}
	return plotutil.Color(n)
}

func splitVia(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "+")
}

// addEvents draws each event as a dashed vertical line, and each mark as
// a dotted one, and in the RTT panel their labels, staggered over three
// heights so that close events stay readable; a label in the right
// quarter is written left of its line.
func (r *Run) addEvents(p *plot.Plot, labels bool) error {
	type line struct {
		x      float64
		label  string
		dashes []vg.Length
		skip   bool // no line: the baseline starts with the run
	}
	var lines []line
	for i, e := range r.Events {
		lines = append(lines, line{x: e.At.Sub(r.Start).Seconds(), label: e.Label,
			dashes: []vg.Length{vg.Points(4), vg.Points(3)}, skip: i == 0 && e.Do == nil})
	}
	for _, m := range r.Marks {
		lines = append(lines, line{x: m.At.Sub(r.Start).Seconds(), label: m.Label, dashes: []vg.Length{vg.Points(1), vg.Points(2)}})
	}
	var xys plotter.XYs
	var texts []string
	var right []bool
	_, xmax := r.xRange()
	for i, ln := range lines {
		if !ln.skip {
			l, err := plotter.NewLine(plotter.XYs{{X: ln.x, Y: p.Y.Min}, {X: ln.x, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			l.LineStyle = draw.LineStyle{Color: eventColor, Width: vg.Points(1), Dashes: ln.dashes}
			p.Add(l)
		}
		y := p.Y.Max / math.Pow(2.2, float64(1+i%3))
		if !isLog(p) {
			y = p.Y.Max - float64(1+i%3)*(p.Y.Max-p.Y.Min)/10
		}
		xys = append(xys, plotter.XY{X: ln.x, Y: y})
		texts = append(texts, " "+ln.label+" ")
		right = append(right, ln.x > 0.75*xmax)
	}
	if !labels || len(xys) == 0 {
		return nil
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font.Size = vg.Points(9)
		if right[i] {
			lb.TextStyle[i].XAlign = draw.XRight
		}
	}
	p.Add(lb)
	return nil
}

// secondTicks labels the time axis in whole seconds.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	t := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range t {
		if t[i].Label != "" {
			t[i].Label = strconv.FormatFloat(t[i].Value, 'f', -1, 64)
		}
	}
	return t
}

func isLog(p *plot.Plot) bool {
	_, ok := p.Y.Scale.(plot.LogScale)
	return ok
}

// decadeTicks labels the decades of a logarithmic axis in plain numbers
// (0.1, 1, 10) and marks 2 and 5 between them.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for d := math.Floor(math.Log10(lo)); d <= math.Ceil(math.Log10(hi)); d++ {
		v := math.Pow(10, d)
		if v >= lo && v <= hi {
			t = append(t, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
		for _, m := range []float64{2, 5} {
			if v*m >= lo && v*m <= hi {
				t = append(t, plot.Tick{Value: v * m})
			}
		}
	}
	return t
}
