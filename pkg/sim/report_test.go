package sim

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The multi-GPU quality of a policy is over the seeds that placed a
// multi-GPU task: a seed without one has no quality, not quality 0 (a
// policy that got the best set every time was shown at 0.333 below random
// when four of six seeds drew no multi-GPU task).
func TestMultiQualityCountsSeedsWithMultiGPUTasks(t *testing.T) {
	run := func(policy string, seed uint64, tasks int, q float64) RunResult {
		return RunResult{Policy: policy, Seed: seed, Alloc: []float64{0.9}, Frag: []float64{0.1}, MultiTasks: tasks, MultiQuality: q}
	}
	results := []RunResult{
		// gpupack: 1.0 on the two seeds with a multi-GPU task, none on four.
		run("gpupack", 42, 0, 0), run("gpupack", 43, 0, 0), run("gpupack", 44, 0, 0),
		run("gpupack", 45, 1, 1), run("gpupack", 46, 1, 1), run("gpupack", 47, 0, 0),
		// random: 0.1 and 1.0 on its two, none on four.
		run("random", 42, 0, 0), run("random", 43, 0, 0), run("random", 44, 0, 0),
		run("random", 45, 1, 0.1), run("random", 46, 1, 1), run("random", 47, 0, 0),
		// first-fit: no multi-GPU task on any seed.
		run("first-fit", 42, 0, 0), run("first-fit", 43, 0, 0),
		// best-fit: every seed has some.
		run("best-fit", 42, 3, 0.5), run("best-fit", 43, 2, 0.7),
	}
	sums := Summarize(results)
	require.Len(t, sums, 4)
	for _, tc := range []struct {
		policy string
		mean   float64
		seeds  int
		cell   string
	}{
		{"gpupack", 1, 2, "1.000 ± 0.000 (2 of 6 seeds)"},
		{"random", 0.55, 2, "0.550 ± 0.636 (2 of 6 seeds)"}, // (0.1 + 1) / 2; sd sqrt(2 x 0.45^2 / 1)
		{"first-fit", 0, 0, "n/a"},
		{"best-fit", 0.6, 2, "0.600 ± 0.141"}, // (0.5 + 0.7) / 2, per seed
	} {
		var s Summary
		for _, x := range sums {
			if x.Policy == tc.policy {
				s = x
			}
		}
		require.Equal(t, tc.policy, s.Policy)
		require.InDelta(t, tc.mean, s.MultiQuality, 1e-9, tc.policy)
		require.Equal(t, tc.seeds, s.MultiSeeds, tc.policy)
		require.Equal(t, tc.cell, multiQualityCell(s), tc.policy)
	}

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, sums, []float64{1.3}, 1.3))
	require.Contains(t, table.String(), "n/a")

	var out bytes.Buffer
	require.NoError(t, WriteCSV(&out, results[:4], []float64{1.3}))
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	last := len(rows[0]) - 1
	require.Equal(t, "multi_gpu_quality", rows[0][last])
	require.Equal(t, []string{"", "", "", "1.000000"}, []string{rows[1][last], rows[2][last], rows[3][last], rows[4][last]})
}

// The columns measured at the end of the run (at the target) say so when
// the target is past the last checkpoint: with --target 2 they were read
// as the figures of the last alloc column, at 130%.
func TestWriteTableLabelsEndOfRunColumns(t *testing.T) {
	sums := Summarize([]RunResult{{Policy: "x", Seed: 1, Alloc: []float64{0.9, 0.95}, Frag: []float64{0.1, 0.2}}})
	end := []string{"unalloc GPUs", "failed", "idle GPUs w/o CPU", "multi-GPU quality"}
	tests := []struct {
		name        string
		checkpoints []float64
		target      float64
		suffix      string // of every end-of-run header
	}{
		{"target at the last checkpoint", []float64{0.9, 1.3}, 1.3, ""},
		{"target past the last checkpoint", []float64{0.9, 1.3}, 2, "@200%"},
		{"fractional target", []float64{0.9, 1.3}, 1.305, "@130.5%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, WriteTable(&b, sums, tt.checkpoints, tt.target))
			head := strings.Fields(strings.SplitN(b.String(), "\n", 2)[0])
			joined := " " + strings.Join(head, " ") + " "
			for _, h := range end {
				require.Contains(t, joined, " "+h+tt.suffix+" ", "header %q", joined)
			}
			require.Contains(t, joined, " alloc@130% ")
		})
	}
}

// Checkpoints that round to the same whole percent get distinct column
// names in the table and the CSV: 0.9, 0.901 and 0.905 were three
// alloc@90% columns (and alloc_90 three times in the CSV header).
func TestCheckpointColumnsAreDistinct(t *testing.T) {
	for _, tc := range []struct {
		checkpoints []float64
		want        []string // alloc_ columns of the CSV
	}{
		{[]float64{0.9, 1, 1.3}, []string{"alloc_90", "alloc_100", "alloc_130"}},
		{[]float64{0.9, 0.901, 0.905, 1.3}, []string{"alloc_90", "alloc_90.1", "alloc_90.5", "alloc_130"}},
		{[]float64{0.001, 0.002, 1.3}, []string{"alloc_0.1", "alloc_0.2", "alloc_130"}},
		{[]float64{0.0000125, 1.3}, []string{"alloc_0.0013", "alloc_130"}}, // 0.00125% to 4 decimals
	} {
		n := len(tc.checkpoints)
		res := []RunResult{{Policy: "x", Seed: 1, Alloc: make([]float64, n), Frag: make([]float64, n)}}
		var b bytes.Buffer
		require.NoError(t, WriteCSV(&b, res, tc.checkpoints))
		head, err := csv.NewReader(&b).Read()
		require.NoError(t, err)
		var alloc []string
		for _, h := range head {
			if strings.HasPrefix(h, "alloc_") {
				alloc = append(alloc, h)
			}
		}
		require.Equal(t, tc.want, alloc)
		b.Reset()
		require.NoError(t, WriteTable(&b, Summarize(res), tc.checkpoints, 1.3))
		table := strings.Fields(strings.SplitN(b.String(), "\n", 2)[0])
		for _, w := range tc.want {
			require.Contains(t, table, "alloc@"+strings.TrimPrefix(w, "alloc_")+"%")
		}
	}
}
