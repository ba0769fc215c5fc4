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
// poster's figure): what the host pays (instances + monitor + kernel),
// with the two ideals as dashed lines drawn over the modes, and room above
// the lines for the legend.
func (r *Results) PlotMemory(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Memory of %d unikernels (%s monitor)", r.Count, r.Monitor)
	p.X.Label.Text = "time since all instances resident (s)"
	if r.Churn != nil {
		p.X.Label.Text = "time since the first arrival (s)"
	}
	p.Y.Label.Text = "host memory: instances + monitor + kernel (MiB)"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Y.Min = 0
	// A mode that became stable early holds its final value to the end of
	// the longest mode, so every line spans the same time axis.
	xmax, ymax := 1.0, 1.0
	for _, m := range r.Modes {
		for _, s := range m.Samples {
			xmax, ymax = max(xmax, s.T), max(ymax, mib(s.Bytes()))
		}
	}
	ymax = max(ymax, mib(r.IdealLoadBytes), mib(r.IdealBytes))
	for i, m := range r.Modes {
		pts := make(plotter.XYs, len(m.Samples))
		for j, s := range m.Samples {
			pts[j].X, pts[j].Y = s.T, mib(s.Bytes())
		}
		if n := len(pts); n > 0 && pts[n-1].X < xmax && r.Churn == nil {
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
		p.Legend.Add(fmt.Sprintf("%s (%.0f MiB)", m.Mode, mib(m.FinalBytes)), l)
	}
	entries := len(r.Modes)
	for _, id := range []struct {
		name  string
		bytes uint64
		gray  uint8
		dash  []vg.Length
	}{
		{"ideal, load-time sharing", r.IdealLoadBytes, 0, []vg.Length{vg.Points(6), vg.Points(3)}},
		{"ideal", r.IdealBytes, 90, []vg.Length{vg.Points(2), vg.Points(3)}},
	} {
		if id.bytes == 0 {
			continue
		}
		l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: mib(id.bytes)}, {X: xmax, Y: mib(id.bytes)}})
		l.Color = color.Gray{Y: id.gray}
		l.Width = vg.Points(1.5)
		l.Dashes = id.dash
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%.0f MiB)", id.name, mib(id.bytes)), l)
		entries++
	}
	// The legend takes the top of the chart: lift the axis so that no
	// line runs under it (one legend row is about 5% of the height).
	p.Y.Max = ymax / max(0.3, 1-0.055*float64(entries))
	return p.Save(8*vg.Inch, 5.5*vg.Inch, path)
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
	var unique, same, other, zero plotter.Values
	var names []string
	for _, l := range r.Layouts {
		names = append(names, l.Layout)
		unique = append(unique, float64(l.Unique))
		same = append(same, float64(l.SameAddr))
		other = append(other, float64(l.Shareable-l.SameAddr))
		zero = append(zero, float64(l.Zero))
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
	bz, err := plotter.NewBarChart(zero, w)
	if err != nil {
		return err
	}
	bu.Color, bs.Color, bo.Color, bz.Color = plotutil.Color(1), plotutil.Color(2), plotutil.Color(0), color.Gray{Y: 200}
	bs.StackOn(bu)
	bo.StackOn(bs)
	bz.StackOn(bo)
	p.Add(bu, bs, bo, bz)
	p.Legend.Add("unique to one image", bu)
	p.Legend.Add("shareable, same address", bs)
	p.Legend.Add("shareable, other address", bo)
	p.Legend.Add("all-zero (bss, padding, slack)", bz)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	top := 0.0
	for i := range unique {
		top = max(top, unique[i]+same[i]+other[i]+zero[i])
	}
	p.Y.Max = top * 1.35 // room for the legend above the bars
	p.Y.Tick.Marker = integerTicks{}
	p.NominalX(names...)
	// Half a bar's room at either end, so no bar sits on the frame.
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	return p.Save(vg.Length(2.5+1.2*float64(len(names)))*vg.Inch, 5*vg.Inch, path)
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
