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
