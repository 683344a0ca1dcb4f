package sim

import (
	"cmp"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgsvg" // registers the "svg" format
)

// series is one policy's curve in a chart: the mean, and the seeds' spread
// (lo..hi) drawn as a band.
type series struct {
	name      string
	x         []float64
	y, lo, hi []float64
}

// final is the series' last mean value.
func (s *series) final() float64 { return s.y[len(s.y)-1] }

// Chart styles: every policy gets its own colour, mark and dash pattern, so
// two curves that coincide still show both (their marks sit at different
// x offsets, see markEvery).
var (
	chartColors = []color.RGBA{
		{0xd6, 0x27, 0x28, 0xff}, {0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
		{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
		{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0x39, 0x3b, 0x79, 0xff},
	}
	chartGlyphs = []draw.GlyphDrawer{
		draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{},
		draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{},
	}
	chartDashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)},
		{vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)}}
)

// chartStyle is policy k's style (k: its place in the run's policy list, so
// a policy keeps its style whatever the legend order).
type chartStyle struct {
	color  color.RGBA
	glyph  draw.GlyphDrawer
	dashes []vg.Length
	// radius shrinks with k: a later policy's mark, drawn on top of an
	// earlier one at the same point, leaves the earlier one's rim visible.
	radius vg.Length
}

func styleOf(k int) chartStyle {
	return chartStyle{
		radius: vg.Points(max(2, 4.5-0.3*float64(k))),
		color:  chartColors[k%len(chartColors)],
		glyph:  chartGlyphs[k%len(chartGlyphs)],
		dashes: chartDashes[(k/len(chartGlyphs)+k)%len(chartDashes)],
	}
}

// addSeries draws s in style st on p: the band, the line, and a mark every
// `every` points starting at point `offset`; it returns the legend
// thumbnails.
func addSeries(p *plot.Plot, s *series, st chartStyle, every, offset int) ([]plot.Thumbnailer, error) {
	band := make(plotter.XYs, 0, 2*len(s.x))
	line := make(plotter.XYs, len(s.x))
	for i := range s.x {
		band = append(band, plotter.XY{X: s.x[i], Y: s.hi[i]})
		line[i] = plotter.XY{X: s.x[i], Y: s.y[i]}
	}
	for i := len(s.x) - 1; i >= 0; i-- {
		band = append(band, plotter.XY{X: s.x[i], Y: s.lo[i]})
	}
	poly, err := plotter.NewPolygon(band)
	if err != nil {
		return nil, err
	}
	poly.Color = color.NRGBA{R: st.color.R, G: st.color.G, B: st.color.B, A: 0x38}
	poly.LineStyle.Width = 0
	l, err := plotter.NewLine(line)
	if err != nil {
		return nil, err
	}
	l.LineStyle = draw.LineStyle{Color: st.color, Width: vg.Points(1.5), Dashes: st.dashes}
	var marks plotter.XYs
	for i := offset % max(every, 1); i < len(line); i += max(every, 1) {
		marks = append(marks, line[i])
	}
	sc, err := plotter.NewScatter(marks)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: st.color, Radius: st.radius, Shape: st.glyph}
	p.Add(poly, l, sc)
	return []plot.Thumbnailer{l, sc}, nil
}

// startTicks labels the axis from its start: the default ticks plus the
// axis minimum as a labelled major tick.
type startTicks struct{ format string }

func (t startTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	out := []plot.Tick{{Value: lo, Label: fmt.Sprintf(t.format, lo)}}
	for _, tk := range ticks {
		if tk.Label != "" {
			if math.Abs(tk.Value-lo) < (hi-lo)/15 {
				continue // too close to the start label
			}
			tk.Label = fmt.Sprintf(t.format, tk.Value)
		}
		out = append(out, tk)
	}
	return out
}

// percentTicks labels fractions as percentages.
type percentTicks struct{ start bool }

func (t percentTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if t.start {
		ticks = startTicks{format: "%.4g"}.Ticks(lo*100, hi*100)
	} else {
		ticks = plot.DefaultTicks{}.Ticks(lo*100, hi*100)
	}
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64) + "%"
		}
		ticks[i].Value /= 100
	}
	return ticks
}

// yRange is the y extent of the series (bands included) from point first
// on, padded to whole percents.
func yRange(ss []series, first int) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := first; i < len(s.x); i++ {
			lo, hi = min(lo, s.lo[i]), max(hi, s.hi[i])
		}
	}
	lo, hi = math.Floor(lo*100)/100, math.Ceil(hi*100)/100
	if hi <= lo {
		hi = lo + 0.01
	}
	return lo, hi
}

// legendByFinal is a legend of the series sorted by their final value,
// highest first, each labelled with it.
func legendByFinal(ss []series, thumbs [][]plot.Thumbnailer) plot.Legend {
	order := make([]int, len(ss))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ss[b].final(), ss[a].final()) })
	leg := plot.NewLegend()
	leg.Top, leg.Left = true, true
	leg.ThumbnailWidth = vg.Points(28)
	for _, i := range order {
		leg.Add(fmt.Sprintf("%s %.2f%%", ss[i].name, 100*ss[i].final()), thumbs[i]...)
	}
	return leg
}

// WriteSVG draws the mean allocation ratio against the arrived GPU demand,
// one line per policy with the seeds' spread (min..max) as a band, in the
// style of the FGD paper's Fig. 9(a), from xFrom (fraction) on. Each
// policy has its own colour, mark and dash; the legend, right of the plot,
// lists the policies by their final allocation.
func WriteSVG(w io.Writer, sums []Summary, title string, xFrom float64) error {
	if len(sums) == 0 || len(sums[0].Curve) < 2 {
		return fmt.Errorf("nothing to draw")
	}
	n := len(sums[0].Curve)
	first := int(math.Round(xFrom / CurveStep))
	if first >= n-1 || first < 0 {
		first = 0
	}
	ss := make([]series, len(sums))
	for k, s := range sums {
		if len(s.Curve) != n || len(s.CurveMin) != n || len(s.CurveMax) != n {
			return fmt.Errorf("policy %s: curves of unequal length", s.Policy)
		}
		ss[k] = series{name: s.Policy, y: s.Curve[first:], lo: s.CurveMin[first:], hi: s.CurveMax[first:]}
		for i := first; i < n; i++ {
			ss[k].x = append(ss[k].x, float64(i)*CurveStep)
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "arrived GPU demand (% of cluster GPU capacity)"
	p.Y.Label.Text = "GPU allocation ratio"
	p.X.Min, p.X.Max = float64(first)*CurveStep, float64(n-1)*CurveStep
	p.Y.Min, p.Y.Max = yRange(ss, 0)
	p.X.Tick.Marker = percentTicks{}
	p.Y.Tick.Marker = percentTicks{start: true}
	p.Add(plotter.NewGrid())
	// About a dozen marks per curve, policy k's at offset k: coinciding
	// curves show every policy's marks side by side.
	every := max(len(ss), (n-first)/12)
	thumbs := make([][]plot.Thumbnailer, len(ss))
	for k := range ss {
		var err error
		if thumbs[k], err = addSeries(p, &ss[k], styleOf(k), every, k); err != nil {
			return err
		}
	}
	return writeWithLegend(w, [][]*plot.Plot{{p}}, legendByFinal(ss, thumbs), vg.Points(800), vg.Points(480))
}

// chartFormat is the image format of the charts (tests may render PNG to
// look at them).
var chartFormat = "svg"

// writeWithLegend draws plots (rows x columns) on a chartFormat canvas with
// leg in a column on the right.
func writeWithLegend(w io.Writer, plots [][]*plot.Plot, leg plot.Legend, width, height vg.Length) error {
	const legendWidth = vg.Length(190)
	c, err := draw.NewFormattedCanvas(width, height, chartFormat)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	plotArea := draw.Crop(dc, 0, -legendWidth, 0, 0)
	tiles := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	cells := plot.Align(plots, tiles, plotArea)
	for i := range plots {
		for j, p := range plots[i] {
			if p != nil {
				p.Draw(cells[i][j])
			}
		}
	}
	legArea := draw.Crop(dc, width-legendWidth+vg.Points(8), 0, 0, -vg.Points(30))
	leg.Draw(legArea)
	_, err = c.WriteTo(w)
	return err
}
