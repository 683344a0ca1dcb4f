package sim

import (
	"encoding/csv"
	"fmt"
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
	// ratio at Checkpoints[k], AllocMin[k] and AllocMax[k] its range over
	// the seeds.
	Alloc, AllocSD, AllocMin, AllocMax []float64
	// Curve is the mean allocation curve; CurveMin and CurveMax its
	// lowest and highest value over the seeds.
	Curve, CurveMin, CurveMax  []float64
	Unallocated, UnallocatedSD float64
	// Frag[k], FragSD[k]: fragmentation ratio at Checkpoints[k].
	Frag, FragSD           []float64
	Failed, FailedSD       float64
	IdleNoCPU, IdleNoCPUSD float64
	// MultiQuality and MultiQualitySD are over the seeds that placed a
	// multi-GPU task (MultiSeeds of them; none: both 0, shown as n/a): a
	// seed without one has no quality to count.
	MultiQuality, MultiQualitySD float64
	MultiSeeds                   int
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
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, r := range rs {
				lo, hi = min(lo, r.Alloc[k]), max(hi, r.Alloc[k])
			}
			s.AllocMin, s.AllocMax = append(s.AllocMin, lo), append(s.AllocMax, hi)
		}
		for k := range rs[0].Curve {
			m, _ := col(func(r RunResult) float64 { return r.Curve[k] })
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, r := range rs {
				lo, hi = min(lo, r.Curve[k]), max(hi, r.Curve[k])
			}
			s.Curve, s.CurveMin, s.CurveMax = append(s.Curve, m), append(s.CurveMin, lo), append(s.CurveMax, hi)
		}
		s.Unallocated, s.UnallocatedSD = col(func(r RunResult) float64 { return r.Unallocated })
		for k := range rs[0].Frag {
			m, sd := col(func(r RunResult) float64 { return r.Frag[k] })
			s.Frag, s.FragSD = append(s.Frag, m), append(s.FragSD, sd)
		}
		s.Failed, s.FailedSD = col(func(r RunResult) float64 { return float64(r.Failed) })
		s.IdleNoCPU, s.IdleNoCPUSD = col(func(r RunResult) float64 { return float64(r.IdleNoCPU) })
		s.MultiQuality, s.MultiQualitySD, s.MultiSeeds = multiQuality(rs)
		s.Tasks, _ = col(func(r RunResult) float64 { return float64(r.Tasks) })
		out = append(out, s)
	}
	return out
}

// multiQuality is the mean and standard deviation of MultiQuality over the
// runs that placed a multi-GPU task, and how many did.
func multiQuality(rs []RunResult) (mean, sd float64, n int) {
	var xs []float64
	for _, r := range rs {
		if r.MultiTasks > 0 {
			xs = append(xs, r.MultiQuality)
		}
	}
	if len(xs) == 0 {
		return 0, 0, 0
	}
	mean, sd = meanSD(xs)
	return mean, sd, len(xs)
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

// checkpointLabel is checkpoint c (a fraction of capacity) as a percent in
// column headers: as many decimals as it has, to 4 (0.9 -> "90", 0.905 ->
// "90.5", 0.00125 -> "0.125"), so that distinct checkpoints, which
// Config.validate keeps at least 1e-6 apart, never share a column name.
func checkpointLabel(c float64) string {
	return strconv.FormatFloat(math.Round(c*100*1e4)/1e4, 'f', -1, 64)
}

// WriteTable prints one row per policy: allocation ratio (%) at each
// checkpoint, the fragmentation ratio at the first and the last one, and
// what the run ends with at target (unallocated GPUs, failed tasks, idle
// GPUs without CPU, the multi-GPU set quality over the whole run), as mean
// ± standard deviation over seeds. When target is past the last
// checkpoint, the end-of-run columns' headers say where they are measured
// (unalloc GPUs@200%): they are not at the last alloc column.
func WriteTable(w io.Writer, sums []Summary, checkpoints []float64, target float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"policy"}
	for _, c := range checkpoints {
		head = append(head, "alloc@"+checkpointLabel(c)+"%")
	}
	first, last := -1, len(checkpoints)-1
	if len(checkpoints) > 1 {
		first = 0
	}
	end := "" // at the last checkpoint: as the alloc column before them
	if last < 0 || target > checkpoints[last]+1e-9 {
		end = fmt.Sprintf("@%.4g%%", 100*target)
	}
	head = append(head, "unalloc GPUs"+end)
	if first >= 0 {
		head = append(head, "frag %@"+checkpointLabel(checkpoints[first])+"%")
	}
	if last >= 0 {
		head = append(head, "frag %@"+checkpointLabel(checkpoints[last])+"%")
	}
	head = append(head, "failed"+end, "idle GPUs w/o CPU"+end, "multi-GPU quality"+end, "")
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
			fmt.Sprintf("%.1f ± %.1f", s.IdleNoCPU, s.IdleNoCPUSD),
			multiQualityCell(s), "")
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// multiQualityCell is the table's multi-GPU quality: n/a when no seed
// placed a multi-GPU task, and the number of seeds that did when some
// did not.
func multiQualityCell(s Summary) string {
	switch {
	case s.MultiSeeds == 0:
		return "n/a"
	case s.MultiSeeds < s.Seeds:
		return fmt.Sprintf("%.3f ± %.3f (%d of %d seeds)", s.MultiQuality, s.MultiQualitySD, s.MultiSeeds, s.Seeds)
	}
	return fmt.Sprintf("%.3f ± %.3f", s.MultiQuality, s.MultiQualitySD)
}

// WriteCSV writes one row per run (policy, seed) with every measure;
// multi_gpu_quality is empty for a run that placed no multi-GPU task.
func WriteCSV(w io.Writer, results []RunResult, checkpoints []float64) error {
	cw := csv.NewWriter(w)
	head := []string{"policy", "seed", "tasks", "failed", "failed_gpus"}
	for _, c := range checkpoints {
		head = append(head, "alloc_"+checkpointLabel(c))
	}
	head = append(head, "unallocated_gpus")
	for _, c := range checkpoints {
		head = append(head, "frag_"+checkpointLabel(c))
	}
	head = append(head, "idle_gpus_no_cpu", "multi_gpu_tasks", "multi_gpu_quality")
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
		quality := "" // no multi-GPU task placed: no quality
		if r.MultiTasks > 0 {
			quality = f(r.MultiQuality)
		}
		row = append(row, strconv.Itoa(r.IdleNoCPU), strconv.Itoa(r.MultiTasks), quality)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
