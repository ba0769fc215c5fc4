package bench

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotMemory draws every mode's memory over time in one chart (the
// poster's figure) with the ideal as a dashed line.
func (r *Results) PlotMemory(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Memory of %d unikernels (%s monitor)", r.Count, r.Monitor)
	p.X.Label.Text = "time since all instances resident (s)"
	p.Y.Label.Text = "physical memory, sum of PSS (MiB)"
	p.Legend.Top = true
	p.Y.Min = 0
	// A mode that became stable early holds its final value to the end of
	// the longest mode, so every line spans the same time axis.
	xmax := 1.0
	for _, m := range r.Modes {
		if n := len(m.Samples); n > 0 && m.Samples[n-1].T > xmax {
			xmax = m.Samples[n-1].T
		}
	}
	for i, m := range r.Modes {
		pts := make(plotter.XYs, len(m.Samples))
		for j, s := range m.Samples {
			pts[j].X, pts[j].Y = s.T, mib(s.PSS)
		}
		if n := len(pts); n > 0 && pts[n-1].X < xmax {
			pts = append(pts, plotter.XY{X: xmax, Y: pts[n-1].Y})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("bench: plot %s: %w", m.Mode, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(2)
		l.Dashes = plotutil.Dashes(i / 7)
		p.Add(l)
		p.Legend.Add(m.Mode, l)
	}
	if r.IdealBytes > 0 {
		l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: mib(r.IdealBytes)}, {X: xmax, Y: mib(r.IdealBytes)}})
		l.Color = color.Gray{Y: 80}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(l)
		p.Legend.Add("ideal", l)
	}
	if r.IdealLoadBytes > 0 {
		l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: mib(r.IdealLoadBytes)}, {X: xmax, Y: mib(r.IdealLoadBytes)}})
		l.Color = color.Gray{Y: 140}
		l.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("ideal, load-time sharing", l)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// PlotLayoutPages draws unique against shareable pages per layout as
// stacked bars (the poster's other figure).
func (r *Results) PlotLayoutPages(path string) error {
	if len(r.Layouts) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Loaded pages of %d unikernels per layout", r.Count)
	p.Y.Label.Text = "pages (4 KiB)"
	var unique, same, other plotter.Values
	var names []string
	for _, l := range r.Layouts {
		names = append(names, l.Layout)
		unique = append(unique, float64(l.Unique))
		same = append(same, float64(l.SameAddr))
		other = append(other, float64(l.Shareable-l.SameAddr))
	}
	w := vg.Points(40)
	bu, err := plotter.NewBarChart(unique, w)
	if err != nil {
		return err
	}
	bs, err := plotter.NewBarChart(same, w)
	if err != nil {
		return err
	}
	bo, err := plotter.NewBarChart(other, w)
	if err != nil {
		return err
	}
	bu.Color, bs.Color, bo.Color = plotutil.Color(1), plotutil.Color(2), plotutil.Color(0)
	bs.StackOn(bu)
	bo.StackOn(bs)
	p.Add(bu, bs, bo)
	p.Legend.Add("unique to one image", bu)
	p.Legend.Add("shareable, same address", bs)
	p.Legend.Add("shareable, other address", bo)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	top := 0.0
	for i := range unique {
		top = max(top, unique[i]+same[i]+other[i])
	}
	p.Y.Max = top * 1.3 // room for the legend above the bars
	p.Y.Tick.Marker = integerTicks{}
	p.NominalX(names...)
	return p.Save(6*vg.Inch, 5*vg.Inch, path)
}

// Plots writes both charts into dir.
func (r *Results) Plots(dir string) ([]string, error) {
	a := filepath.Join(dir, "memory.png")
	if err := r.PlotMemory(a); err != nil {
		return nil, err
	}
	out := []string{a}
	if len(r.Layouts) > 0 {
		b := filepath.Join(dir, "pages.png")
		if err := r.PlotLayoutPages(b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// integerTicks labels page counts without decimals.
type integerTicks struct{}

func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = fmt.Sprintf("%.0f", ts[i].Value)
		}
	}
	return ts
}
