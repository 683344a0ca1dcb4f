package score_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BenchmarkChooseWhole64Irregular is a 1-GPU whole choice on 64-GPU nodes
// with irregular NVLink maps (fixture.Random, fixture.Sparse), with a few
// GPUs in use, under the default workload: no choice memo covers nodes of
// more than 32 GPUs, and the fragmentation of every candidate asks the
// best-set search of each multi-GPU task type. "cold" clears the shape's
// best-set memo before every call (a new free mask every time, as when the
// node's usage moves between pods, and the ideal sets of the node with every
// GPU free searched again too); "new-usage" asks another usage every call
// with the memo kept; "warm" asks one usage again.
func BenchmarkChooseWhole64Irregular(b *testing.B) {
	for _, tc := range []struct {
		name string
		node *topology.Node
	}{
		{"random-64gpu", fixture.Random(3, 64)},
		{"sparse-64gpu", fixture.Sparse(3, 64)},
	} {
		used := map[string]bool{}
		for _, i := range []int{0, 5, 9, 17, 33, 40, 41, 63} {
			used[tc.node.GPUs[i].UUID] = true
		}
		s, _ := score.StateOf(tc.node, used)
		d := score.DefaultDistribution()
		req := score.Request{Kind: score.KindWhole, Count: 1}
		if _, ok := score.Choose(s, req, d); !ok {
			b.Fatalf("%s: no fit", tc.name)
		}
		shape := tc.node.Shape()
		b.Run(fmt.Sprintf("%s/1gpu/cold", tc.name), func(b *testing.B) {
			for b.Loop() {
				score.ResetMemo()
				shape.Reset()
				score.Choose(s, req, d)
			}
		})
		// new-usage: another usage of the node every call (8 GPUs drawn
		// in use), the shape's memo kept: its answers for the node with
		// every GPU free (Ideal) stay, those for the usage are new.
		b.Run(fmt.Sprintf("%s/1gpu/new-usage", tc.name), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			states := make([]*score.State, 1024)
			for i := range states {
				used := map[string]bool{}
				for _, g := range r.Perm(64)[:8] {
					used[tc.node.GPUs[g].UUID] = true
				}
				states[i], _ = score.StateOf(tc.node, used)
			}
			score.ResetMemo()
			shape.Reset()
			i := 0
			for b.Loop() {
				score.Choose(states[i%len(states)], req, d)
				i++
			}
		})
		b.Run(fmt.Sprintf("%s/1gpu/warm", tc.name), func(b *testing.B) {
			for b.Loop() {
				score.Choose(s, req, d)
			}
		})
	}
}
