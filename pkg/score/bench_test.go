package score_test

import (
	"testing"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BenchmarkChooseState measures one device choice on one node: "cold"
// empties the choice memo before every call (the link-shape memo of
// pkg/topology stays warm, as on a running scheduler), "warm" answers from
// the memo (another node of the same layout and usage asked before).
func BenchmarkChooseState(b *testing.B) {
	for _, tc := range []struct {
		name string
		node *topology.Node
		used []int
		req  score.Request
	}{
		{"dgx1-8gpu/1gpu", fixture.DGX1V100("b"), []int{0, 5}, score.Request{Kind: score.KindWhole, Count: 1}},
		{"dgx1-8gpu/4gpu", fixture.DGX1V100("b"), nil, score.Request{Kind: score.KindWhole, Count: 4}},
		{"dgx1-8gpu-shared4/2rep", fixture.Shared(fixture.DGX1V100("s"), 4), []int{0, 5}, score.Request{Kind: score.KindShared, Count: 2}},
		{"nvswitch-16gpu/1gpu", fixture.NVSwitch("b", "H100", 16, 18), []int{0, 5, 9}, score.Request{Kind: score.KindWhole, Count: 1}},
		{"nvswitch-16gpu/4gpu", fixture.NVSwitch("b", "H100", 16, 18), []int{0, 5, 9}, score.Request{Kind: score.KindWhole, Count: 4}},
		{"pcie-16gpu/2gpu", fixture.PCIe("p", "T4", 16), []int{0, 5, 9}, score.Request{Kind: score.KindWhole, Count: 2}},
	} {
		used := map[string]bool{}
		for _, i := range tc.used {
			used[tc.node.GPUs[i].UUID] = true
		}
		s, _ := score.StateOf(tc.node, used)
		d := score.DefaultDistribution()
		if _, ok := score.Choose(s, tc.req, d); !ok {
			b.Fatalf("%s: no fit", tc.name)
		}
		b.Run(tc.name+"/cold", func(b *testing.B) {
			for b.Loop() {
				score.ResetMemo()
				score.Choose(s, tc.req, d)
			}
		})
		b.Run(tc.name+"/warm", func(b *testing.B) {
			for b.Loop() {
				score.Choose(s, tc.req, d)
			}
		})
	}
}

// BenchmarkObserve is the scheduler plugin's per-pod Workload.Observe
// (Reserve) with the plugin's options, on a steady stream of a few task
// types (as test/throughput's) and of many (CPU and memory varied, up to
// the 128 types a snapshot keeps).
func BenchmarkObserve(b *testing.B) {
	for _, tc := range []struct {
		name  string
		types int
	}{{"types=3", 3}, {"types=60", 60}, {"types=200", 200}} {
		b.Run(tc.name, func(b *testing.B) {
			w, err := score.NewWorkload(score.PluginWorkloadOptions())
			if err != nil {
				b.Fatal(err)
			}
			stream := make([]score.TaskType, tc.types)
			for i := range stream {
				stream[i] = score.TaskType{Kind: score.KindWhole, Count: 1 << (i % 3), CPUMilli: int64(1000 * (1 + i/3)), MemoryMiB: 1024}
			}
			for i := range 2000 { // a learned histogram
				w.Observe(stream[(i*7)%len(stream)])
			}
			i := 0
			for b.Loop() {
				w.Observe(stream[(i*7)%len(stream)])
				i++
			}
		})
	}
}
