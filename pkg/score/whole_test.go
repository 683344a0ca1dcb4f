package score_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func uuids(node *topology.Node, idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, node.GPUs[i].UUID)
	}
	return out
}

// chooseOn is score.Choose on node with the device IDs in used, with a
// shared choice's replicas named (as the scheduler's Reserve names them).
func chooseOn(node *topology.Node, used map[string]bool, req score.Request, w *score.Workload) (score.Choice, bool) {
	s, _ := score.StateOf(node, used)
	c, ok := score.Choose(s, req, w.Distribution())
	if ok && req.Kind == score.KindShared {
		c.DeviceIDs = score.ReplicaIDs(node, c.Shares, used)
		slices.Sort(c.DeviceIDs)
	}
	return c, ok
}

func usedSet(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// TestChooseWholeDGX1 is the DGX-1 V100 hybrid cube-mesh (lanes per pair in
// fixture; 25 GB/s a lane; SYS 6 GB/s; NODE 10 GB/s) under the default
// workload: whole 1 (p .50), 2 (.04), 4 (.03), 8 (.03), shared (.40 in all,
// which cannot use these non-shared GPUs: all free capacity is stranded
// for them).
func TestChooseWholeDGX1(t *testing.T) {
	node := fixture.DGX1V100("a")
	tests := []struct {
		name     string
		used     []int
		count    int
		hint     score.TopologyHint
		want     []int
		wantFrag float64
	}{
		{
			// Free {3,4,7}: pairs 4-7 (2 lanes, 50 GB/s = ideal pair), 3-7 (1 lane,
			// 25), 3-4 (SYS, 6). Each choice frees 1 GPU of stranded capacity for
			// the shared types (-.40), whole 4 (-.03) and whole 8 (-.03): -.46.
			// Whole 2 before: 3 free - 3*1 = 0. After taking 3: {4,7} 2-2*1 = 0;
			// taking 4: {3,7} 2-2*(25/50) = 1 (+.04); taking 7: {3,4}
			// 2-2*(6/50) = 1.76 (+.0704). So GPU 3, delta -.46.
			name: "one GPU keeps the last 2-lane pair", used: []int{0, 1, 2, 5, 6}, count: 1,
			want: []int{3}, wantFrag: -0.46,
		},
		{
			// GPU 0 used: 3 and 4 lost their 2-lane partner 0. Fragmentation is
			// equal for every GPU (NVLink quads and 2-lane pairs remain), so the
			// least bandwidth to the other free GPUs decides:
			// 3: 1+2+1 lanes (100) + SYS to 4,5,6 (18) = 118; 4: 1+1+2 (100) +
			// SYS to 1,2,3 (18) = 118; 1 and 2: 143; 5, 6, 7: 162. Tie 3/4:
			// lower index. Delta: shared -.40, whole 8 (7 free < 8: all stranded,
			// 7 -> 6) -.03; whole 4 stays 0 (7 then 6 free with an NVLink quad):
			// -.43.
			name: "one GPU takes the worst-linked card", used: []int{0}, count: 1,
			want: []int{3}, wantFrag: -0.43,
		},
		{
			// All free, 4 GPUs: a quad inside {0,1,2,3} or {4,5,6,7} keeps the
			// other quad (ring 25 GB/s = ideal) for whole 4; each quad's best
			// ring is 0-3-2-1 (2,2,2,1 lanes: 25) with sum (1+1+2+2+1+2)*25=225.
			// After: 4 free - 4*1 = 0 for whole 2 and whole 4; whole 8 no longer
			// fits: 4 stranded (+4*.03 = .12); shared -4*.40 = -1.6:
			// delta = .12 - 1.6 = -1.48.
			name: "four GPUs: one quad", count: 4,
			want: []int{0, 1, 2, 3}, wantFrag: -1.48,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := chooseOn(node, usedSet(uuids(node, tt.used...)...), score.Request{Kind: score.KindWhole, Count: tt.count, Topology: tt.hint}, nil)
			require.True(t, ok)
			require.Equal(t, uuids(node, tt.want...), c.DeviceIDs, "choice %s", c)
			require.InDelta(t, tt.wantFrag, c.FragDelta, 1e-9)
		})
	}
}

// NoShared leaves the time-shared GPUs out of a whole request (the
// scheduler sets it where the node serves them as replicas only), through
// Choose and Evaluate, memoized or not; without it they are candidates
// (gpusim's whole tasks on its 1000-replica GPUs).
func TestChooseWholeNoShared(t *testing.T) {
	tests := []struct {
		name     string
		shared   []int // GPUs time-shared 4 ways
		used     []int // whole GPUs in use
		count    int
		noShared bool
		wantOK   bool
		avoid    []int // GPUs the choice must not hold
	}{
		{name: "shared GPU left out", shared: []int{0}, count: 3, noShared: true, wantOK: true, avoid: []int{0}},
		// 4 GPUs, one time-shared: 3 whole at most.
		{name: "too few unshared", shared: []int{0}, count: 4, noShared: true},
		{name: "without NoShared every free GPU", shared: []int{0}, count: 4, wantOK: true},
		// GPUs 1 and 2 in use, 0 and 3 shared: nothing left whole.
		{name: "used and shared", shared: []int{0, 3}, used: []int{1, 2}, count: 1, noShared: true},
		{name: "no shared GPU: no change", count: 4, noShared: true, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := fixture.PCIe("ns", "Tesla-T4", 4)
			for _, g := range tt.shared {
				node.GPUs[g].Replicas = 4
			}
			req := score.Request{Kind: score.KindWhole, Count: tt.count, NoShared: tt.noShared}
			for range 2 { // the second answer comes from the memo
				c, ok := chooseOn(node, usedSet(uuids(node, tt.used...)...), req, nil)
				require.Equal(t, tt.wantOK, ok)
				s, _ := score.StateOf(node, usedSet(uuids(node, tt.used...)...))
				e, eok := score.Evaluate(s, req, nil)
				require.Equal(t, tt.wantOK, eok)
				if !ok {
					continue
				}
				require.Equal(t, tt.count, c.GPUs.Len())
				require.Equal(t, c.GPUs, e.GPUs)
				for _, g := range tt.avoid {
					require.False(t, c.GPUs.Has(g), "GPU %d is time-shared", g)
				}
			}
		})
	}
}
