package sim

import (
	"encoding/csv"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Summary aggregates the seeds of one policy.
type Summary struct {
	Policy string
	Seeds  int
	// Alloc[k] is the mean and sample standard deviation of the allocation
	// ratio at Checkpoints[k].
	Alloc, AllocSD []float64
	// Curve is the mean allocation curve.
	Curve                      []float64
	Unallocated, UnallocatedSD float64
	// Frag[k], FragSD[k]: fragmentation ratio at Checkpoints[k].
	Frag, FragSD                 []float64
	Failed, FailedSD             float64
	MultiQuality, MultiQualitySD float64
	Tasks                        float64
}

// Summarize groups results by policy, in the order policies first appear.
func Summarize(results []RunResult) []Summary {
	var order []string
	by := map[string][]RunResult{}
	for _, r := range results {
		if _, ok := by[r.Policy]; !ok {
			order = append(order, r.Policy)
		}
		by[r.Policy] = append(by[r.Policy], r)
	}
	var out []Summary
	for _, p := range order {
		rs := by[p]
		s := Summary{Policy: p, Seeds: len(rs)}
		col := func(f func(RunResult) float64) (float64, float64) {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = f(r)
			}
			return meanSD(xs)
		}
		for k := range rs[0].Alloc {
			m, sd := col(func(r RunResult) float64 { return r.Alloc[k] })
			s.Alloc, s.AllocSD = append(s.Alloc, m), append(s.AllocSD, sd)
		}
		for k := range rs[0].Curve {
			m, _ := col(func(r RunResult) float64 { return r.Curve[k] })
			s.Curve = append(s.Curve, m)
		}
		s.Unallocated, s.UnallocatedSD = col(func(r RunResult) float64 { return r.Unallocated })
		for k := range rs[0].Frag {
			m, sd := col(func(r RunResult) float64 { return r.Frag[k] })
			s.Frag, s.FragSD = append(s.Frag, m), append(s.FragSD, sd)
		}
		s.Failed, s.FailedSD = col(func(r RunResult) float64 { return float64(r.Failed) })
		s.MultiQuality, s.MultiQualitySD = col(func(r RunResult) float64 { return r.MultiQuality })
		s.Tasks, _ = col(func(r RunResult) float64 { return float64(r.Tasks) })
		out = append(out, s)
	}
	return out
}

func meanSD(xs []float64) (float64, float64) {
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if len(xs) < 2 {
		return m, 0
	}
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1))
}

// WriteTable prints one row per policy: allocation ratio (%) at each
// checkpoint, unallocated GPUs at the last one, the fragmentation ratio at
// the first and the last one, failed tasks and the
// multi-GPU set quality, as mean ± standard deviation over seeds.
func WriteTable(w io.Writer, sums []Summary, checkpoints []float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"policy"}
	for _, c := range checkpoints {
		head = append(head, fmt.Sprintf("alloc@%.0f%%", c*100))
	}
	first, last := -1, len(checkpoints)-1
	if len(checkpoints) > 1 {
		first = 0
	}
	head = append(head, "unalloc GPUs")
	if first >= 0 {
		head = append(head, fmt.Sprintf("frag %%@%.0f%%", 100*checkpoints[first]))
	}
	if last >= 0 {
		head = append(head, fmt.Sprintf("frag %%@%.0f%%", 100*checkpoints[last]))
	}
	head = append(head, "failed", "multi-GPU quality", "")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, s := range sums {
		row := []string{s.Policy}
		for k := range s.Alloc {
			row = append(row, fmt.Sprintf("%.2f ± %.2f", 100*s.Alloc[k], 100*s.AllocSD[k]))
		}
		row = append(row, fmt.Sprintf("%.1f ± %.1f", s.Unallocated, s.UnallocatedSD))
		if first >= 0 && first < len(s.Frag) {
			row = append(row, fmt.Sprintf("%.1f ± %.1f", 100*s.Frag[first], 100*s.FragSD[first]))
		}
		if last >= 0 && last < len(s.Frag) {
			row = append(row, fmt.Sprintf("%.1f ± %.1f", 100*s.Frag[last], 100*s.FragSD[last]))
		}
		row = append(row,
			fmt.Sprintf("%.0f ± %.0f", s.Failed, s.FailedSD),
			fmt.Sprintf("%.3f ± %.3f", s.MultiQuality, s.MultiQualitySD), "")
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// WriteCSV writes one row per run (policy, seed) with every measure.
func WriteCSV(w io.Writer, results []RunResult, checkpoints []float64) error {
	cw := csv.NewWriter(w)
	head := []string{"policy", "seed", "tasks", "failed", "failed_gpus"}
	for _, c := range checkpoints {
		head = append(head, fmt.Sprintf("alloc_%.0f", c*100))
	}
	head = append(head, "unallocated_gpus")
	for _, c := range checkpoints {
		head = append(head, fmt.Sprintf("frag_%.0f", c*100))
	}
	head = append(head, "multi_gpu_tasks", "multi_gpu_quality")
	if err := cw.Write(head); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }
	for _, r := range results {
		row := []string{r.Policy, strconv.FormatUint(r.Seed, 10), strconv.Itoa(r.Tasks), strconv.Itoa(r.Failed), f(r.FailedGPU)}
		for _, a := range r.Alloc {
			row = append(row, f(a))
		}
		row = append(row, f(r.Unallocated))
		for _, x := range r.Frag {
			row = append(row, f(x))
		}
		row = append(row, strconv.Itoa(r.MultiTasks), f(r.MultiQuality))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

var palette = []string{"#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// WriteSVG draws the mean allocation ratio against the arrived GPU demand,
// one line per policy, in the style of the FGD paper's Fig. 9(a), with the
// part from xFrom (fraction) on.
func WriteSVG(w io.Writer, sums []Summary, title string, xFrom float64) error {
	const (
		width, height         = 760, 460
		left, right, top, bot = 70, 190, 40, 55
	)
	if len(sums) == 0 || len(sums[0].Curve) < 2 {
		return fmt.Errorf("nothing to draw")
	}
	n := len(sums[0].Curve)
	xMax := float64(n-1) * CurveStep
	first := int(math.Round(xFrom / CurveStep))
	if first >= n-1 {
		first = 0
	}
	xMin := float64(first) * CurveStep
	yMin, yMax := 1.0, 0.0
	for _, s := range sums {
		for _, v := range s.Curve[first:] {
			yMin, yMax = math.Min(yMin, v), math.Max(yMax, v)
		}
	}
	yMin = math.Floor(yMin*20) / 20
	yMax = math.Min(1, math.Ceil(yMax*20)/20)
	if yMax <= yMin {
		yMax = yMin + 0.05
	}
	pw, ph := float64(width-left-right), float64(height-top-bot)
	px := func(x float64) float64 { return float64(left) + (x-xMin)/(xMax-xMin)*pw }
	py := func(y float64) float64 { return float64(top) + (1-(y-yMin)/(yMax-yMin))*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and axes.
	for y := yMin; y <= yMax+1e-9; y += 0.05 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, py(y), float64(left)+pw, py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f%%</text>`+"\n", left-6, py(y)+4, y*100)
	}
	for x := math.Ceil(xMin*10) / 10; x <= xMax+1e-9; x += 0.1 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", px(x), top, px(x), float64(top)+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f%%</text>`+"\n", px(x), float64(top)+ph+16, x*100)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="black"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">arrived GPU demand (%% of cluster GPU capacity)</text>`+"\n", float64(left)+pw/2, height-12)
	fmt.Fprintf(&b, `<text transform="translate(18,%.1f) rotate(-90)" text-anchor="middle">GPU allocation ratio</text>`+"\n", float64(top)+ph/2)
	for k, s := range sums {
		col := palette[k%len(palette)]
		var pts []string
		for i := first; i < len(s.Curve); i++ {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(float64(i)*CurveStep), py(s.Curve[i])))
		}
		widthPx := 1.5
		if k == 0 {
			widthPx = 2.5
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`+"\n", col, widthPx, strings.Join(pts, " "))
		ly := top + 14 + 20*k
		last := s.Curve[len(s.Curve)-1]
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", float64(left)+pw+12, ly, float64(left)+pw+32, ly, col)
		fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s %.2f%%</text>`+"\n", float64(left)+pw+38, ly+4, html.EscapeString(s.Policy), 100*last)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
