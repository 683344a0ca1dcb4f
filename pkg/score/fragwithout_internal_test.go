package score

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// The fragmentation Choose weighs every candidate with (fragEval.at, whose
// best sets come from topology's BestSetWithout) is the fragmentation of
// the node with the candidate taken as State.fragmentation finds it with
// BestSet on the mask left: the same figure, bit for bit, for every
// 1-GPU candidate and for sets of 2 to 4 GPUs, on seeded usages of nodes up
// to 64 GPUs with irregular NVLink maps, under the default workload and one
// of multi-GPU types only. The shapes' memos are cleared before each side,
// so neither reads the other's answers.
func TestFragEvalMatchesFragmentation(t *testing.T) {
	multi, err := NewDistribution([]Weighted{
		{TaskType{Kind: KindWhole, Count: 3}, 1}, {TaskType{Kind: KindWhole, Count: 5}, 1},
		{TaskType{Kind: KindWhole, Count: 6}, 1}, {TaskType{Kind: KindWhole, Count: 12}, 1},
	})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		node *topology.Node
	}{
		{"dgx1", fixture.DGX1V100("f")},
		{"random-24", fixture.Random(4, 24)},
		{"random-64", fixture.Random(3, 64)},
		{"sparse-64", fixture.Sparse(9, 64)},
		{"bipartite-64", fixture.Bipartite(64)},
	} {
		for _, d := range []*Distribution{DefaultDistribution(), multi} {
			n := len(tc.node.GPUs)
			r := rand.New(rand.NewPCG(uint64(n), 3))
			for trial := range 3 {
				used := map[string]bool{}
				for range trial * n / 4 {
					used[tc.node.GPUs[r.IntN(n)].UUID] = true
				}
				s, _ := StateOf(tc.node, used)
				free := s.FreeGPUs()
				takens := []topology.GPUSet{0}
				for i := range free.All() {
					takens = append(takens, topology.SetOf(i))
				}
				idx := free.Indexes()
				for range 20 {
					var set topology.GPUSet
					for range 2 + r.IntN(3) {
						set |= topology.SetOf(idx[r.IntN(len(idx))])
					}
					takens = append(takens, set)
				}
				s.shape.Reset()
				want := make([]float64, len(takens))
				for i, taken := range takens {
					want[i] = s.fragmentation(d, taken)
				}
				s.shape.Reset()
				fe := s.newFragEval(d)
				for i, taken := range takens {
					require.Equal(t, want[i], fe.at(taken), fmt.Sprintf("%s trial %d, %d types: taken %#x", tc.name, trial, len(d.Types), uint64(taken)))
				}
			}
		}
	}
}
