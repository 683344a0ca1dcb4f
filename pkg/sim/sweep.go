package sim

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// SweepPolicies are the policies a sweep compares by default: gpupack, the
// FGD artifact's policy and best-fit (the best published baseline).
func SweepPolicies() []string { return []string{PolicyGPUPack, PolicyFGD, PolicyBestFit} }

// SweepAxis is one axis of a sweep and the levels it visits (AxisLevel's
// units).
type SweepAxis struct {
	Axis   Axis
	Levels []float64
}

// SweepConfig is a sweep: variants of one pod list along each axis, every
// variant replayed as Run does with Base (Workload unset: the variant's).
type SweepConfig struct {
	Base  Config
	Tasks []TaskSpec
	Nodes []NodeSpec
	Axes  []SweepAxis
	// VariantSeed draws the variants (the replay seeds are Base.Seeds).
	VariantSeed uint64
}

// SweepPoint is one variant's outcome.
type SweepPoint struct {
	Axis Axis
	// Level is the target, Measured the variant's AxisLevel.
	Level, Measured float64
	Tasks           int
	Sums            []Summary
}

// Member is the variant's family-member name (gpushare40, cpu250).
func (p *SweepPoint) Member() string { return MemberName(p.Axis, p.Level) }

// Missed reports whether the variant is not the member it is named after:
// its measured level has another member name (a pod list too small, or
// without the tasks the rule moves, cannot reach the level: dropping its
// last multi-GPU tasks jumps from 57% to 0%).
func (p *SweepPoint) Missed() bool { return MemberName(p.Axis, p.Measured) != p.Member() }

// Sweep generates every variant first (so a bad level fails before any
// replay), then replays them one after the other.
func Sweep(ctx context.Context, sc SweepConfig) ([]SweepPoint, error) {
	type variant struct {
		p  SweepPoint
		wl *Workload
	}
	// The base's own workload is not replayed: each variant's is checked
	// below.
	base := sc.Base
	base.Workload = nil
	if err := base.validate(); err != nil {
		return nil, err
	}
	var vs []variant
	for _, ax := range sc.Axes {
		if len(ax.Levels) == 0 {
			return nil, fmt.Errorf("axis %s: no level", ax.Axis)
		}
		for _, level := range ax.Levels {
			if err := CheckLevel(ax.Axis, level); err != nil {
				return nil, err
			}
			if err := CheckVariantArrivals(sc.Tasks, ax.Axis, level, sc.Base.Cluster.TotalMilli, sc.Base.Target); err != nil {
				return nil, fmt.Errorf("%s: %w", MemberName(ax.Axis, level), err)
			}
			tasks, err := GenerateVariant(sc.Tasks, sc.Nodes, ax.Axis, level, sc.VariantSeed)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", MemberName(ax.Axis, level), err)
			}
			wl, err := NewWorkload(tasks, sc.Base.Cluster)
			if err == nil {
				err = wl.CheckArrivals(sc.Base.Cluster.TotalMilli, sc.Base.Target)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", MemberName(ax.Axis, level), err)
			}
			vs = append(vs, variant{SweepPoint{Axis: ax.Axis, Level: level, Measured: AxisLevel(ax.Axis, tasks), Tasks: len(tasks)}, wl})
		}
	}
	// Progress over the whole sweep: each variant counts for a million.
	const unit = 1 << 20
	out := make([]SweepPoint, 0, len(vs))
	for k, v := range vs {
		cfg := sc.Base
		cfg.Workload = v.wl
		if progress := sc.Base.Progress; progress != nil {
			cfg.Progress = func(done, total int64) {
				progress(int64(k)*unit+done*unit/max(total, 1), int64(len(vs))*unit)
			}
		}
		res, err := Run(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.p.Member(), err)
		}
		v.p.Sums = Summarize(res)
		out = append(out, v.p)
	}
	return out, nil
}

// sweepAlloc is policy's summary at point p, or nil.
func sweepSummary(p *SweepPoint, policy string) *Summary {
	for i := range p.Sums {
		if p.Sums[i].Policy == policy {
			return &p.Sums[i]
		}
	}
	return nil
}

// sweepPolicies is the policies of the points, in their run order.
func sweepPolicies(points []SweepPoint) []string {
	var names []string
	for _, p := range points {
		for _, s := range p.Sums {
			if !slices.Contains(names, s.Policy) {
				names = append(names, s.Policy)
			}
		}
	}
	return names
}

// WriteSweepTable prints one row per variant: the member, its measured
// level, its task count and each policy's allocation (%) at the last
// checkpoint (mean ± sd over the seeds), then gpupack's margin over fgd and
// best-fit when they ran, marked "<" where gpupack is behind.
func WriteSweepTable(w io.Writer, points []SweepPoint) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	pols := sweepPolicies(points)
	head := []string{"variant", "level", "tasks"}
	for _, p := range pols {
		head = append(head, p)
	}
	var margins []string
	if slices.Contains(pols, PolicyGPUPack) {
		for _, o := range []string{PolicyFGD, PolicyBestFit} {
			if slices.Contains(pols, o) {
				margins = append(margins, o)
				head = append(head, "gpupack-"+o)
			}
		}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for i := range points {
		p := &points[i]
		row := []string{p.Member(), FormatLevel(p.Axis, p.Measured), strconv.Itoa(p.Tasks)}
		for _, pol := range pols {
			s := sweepSummary(p, pol)
			if s == nil || len(s.Alloc) == 0 {
				row = append(row, "-")
				continue
			}
			last := len(s.Alloc) - 1
			row = append(row, fmt.Sprintf("%.2f ± %.2f", 100*s.Alloc[last], 100*s.AllocSD[last]))
		}
		for _, o := range margins {
			g, f := sweepSummary(p, PolicyGPUPack), sweepSummary(p, o)
			d := 100 * (g.Alloc[len(g.Alloc)-1] - f.Alloc[len(f.Alloc)-1])
			mark := ""
			if d < 0 {
				mark = " <"
			}
			row = append(row, fmt.Sprintf("%+.2f%s", d, mark))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}

// FormatLevel renders a measured level in the axis's units, as the sweep
// table's level column: cpu250 for the cpu axis, 40.0% for the others.
func FormatLevel(a Axis, v float64) string {
	if a == AxisCPU {
		return fmt.Sprintf("cpu%03.0f", 100*v)
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// WriteSweepCSV writes one row per (variant, policy).
func WriteSweepCSV(w io.Writer, points []SweepPoint) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"axis", "variant", "level", "measured_level", "tasks", "policy", "seeds",
		"alloc_mean", "alloc_sd", "alloc_min", "alloc_max", "failed_mean", "unallocated_gpus"}); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }
	for i := range points {
		p := &points[i]
		for _, s := range p.Sums {
			last := len(s.Alloc) - 1
			if last < 0 {
				continue
			}
			if err := cw.Write([]string{string(p.Axis), p.Member(), f(p.Level), f(p.Measured), strconv.Itoa(p.Tasks),
				s.Policy, strconv.Itoa(s.Seeds), f(s.Alloc[last]), f(s.AllocSD[last]), f(s.AllocMin[last]),
				f(s.AllocMax[last]), f(s.Failed), f(s.Unallocated)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteSweepSVG draws one panel per axis: each policy's allocation at the
// last checkpoint against the variant's level, the seeds' range as a band,
// the policies' styles as in WriteSVG; the legend lists them by their mean
// allocation over every variant.
func WriteSweepSVG(w io.Writer, points []SweepPoint, title string) error {
	pols := sweepPolicies(points)
	if len(points) == 0 || len(pols) == 0 {
		return fmt.Errorf("nothing to draw")
	}
	var axes []Axis
	for _, p := range points {
		if !slices.Contains(axes, p.Axis) {
			axes = append(axes, p.Axis)
		}
	}
	cols := min(2, len(axes))
	rows := (len(axes) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	overall := make([]series, len(pols)) // for the legend: mean over every point
	thumbs := make([][]plot.Thumbnailer, len(pols))
	for a, ax := range axes {
		var pts []*SweepPoint
		for i := range points {
			if points[i].Axis == ax {
				pts = append(pts, &points[i])
			}
		}
		slices.SortStableFunc(pts, func(x, y *SweepPoint) int { return cmp.Compare(x.Level, y.Level) })
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %s", ax, axisMeaning(ax))
		if a == 0 && title != "" {
			p.Title.Text = title + "\n" + p.Title.Text
		}
		p.Y.Label.Text = "GPU allocation at the end"
		p.Add(plotter.NewGrid())
		var ss []series
		for k, pol := range pols {
			s := series{name: pol}
			for _, pt := range pts {
				sum := sweepSummary(pt, pol)
				if sum == nil || len(sum.Alloc) == 0 {
					continue
				}
				last := len(sum.Alloc) - 1
				s.x = append(s.x, pt.Measured)
				s.y, s.lo, s.hi = append(s.y, sum.Alloc[last]), append(s.lo, sum.AllocMin[last]), append(s.hi, sum.AllocMax[last])
				overall[k].name = pol
				overall[k].y = append(overall[k].y, sum.Alloc[last])
			}
			if len(s.x) == 0 {
				continue
			}
			ss = append(ss, s)
			th, err := addSeries(p, &ss[len(ss)-1], styleOf(k), 1, 0)
			if err != nil {
				return err
			}
			thumbs[k] = th
		}
		p.Y.Min, p.Y.Max = yRange(ss, 0)
		p.Y.Tick.Marker = percentTicks{start: true}
		if ax == AxisCPU {
			p.X.Label.Text = "CPU-only tasks, cpuNNN (NNN/10 % of tasks)"
			p.X.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
				ticks := plot.DefaultTicks{}.Ticks(lo*100, hi*100)
				for i := range ticks {
					if ticks[i].Label != "" {
						ticks[i].Label = fmt.Sprintf("cpu%03.0f", ticks[i].Value)
					}
					ticks[i].Value /= 100
				}
				return ticks
			})
		} else {
			p.X.Label.Text = axisMeaning(ax)
			p.X.Tick.Marker = percentTicks{}
		}
		grid[a/cols][a%cols] = p
	}
	// Legend by mean allocation over the sweep.
	for k := range overall {
		var m float64
		for _, v := range overall[k].y {
			m += v
		}
		if n := len(overall[k].y); n > 0 {
			overall[k].y = []float64{m / float64(n)}
		} else {
			overall[k].y = []float64{0}
		}
		overall[k].name = pols[k] + " (mean)"
	}
	return writeWithLegend(w, grid, legendByFinal(overall, thumbs), vg.Points(float64(380*cols+190)), vg.Points(float64(300*rows+20)))
}

// axisMeaning says what an axis's level measures.
func axisMeaning(a Axis) string {
	switch a {
	case AxisShare:
		return "GPU demand in sharing tasks"
	case AxisSpec:
		return "GPU tasks with a model constraint"
	case AxisCPU:
		return "CPU-only tasks"
	case AxisMulti:
		return "GPU demand in multi-GPU tasks"
	}
	return string(a)
}
