package score_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestStateOfStaleUsage: IDs of running pods are ground truth even when the
// node's layout changed under them (replicas lowered, sharing turned off) or
// their suffix is malformed: the GPU they name must not look free.
func TestStateOfStaleUsage(t *testing.T) {
	shared2 := func() *topology.Node { return fixture.Shared(fixture.PCIe("s", "T4", 4), 2) }
	whole := func() *topology.Node { return fixture.PCIe("w", "T4", 4) }
	mig := func() *topology.Node {
		return fixture.WithMIG(fixture.PCIe("m", "A100", 2), 0, 1, "1g.5gb", "1g.5gb")
	}
	tests := []struct {
		name     string
		node     func() *topology.Node
		used     func(n *topology.Node) []string
		wantFree []int
		// wantCap is the free capacity in GPUs.
		wantCap     float64
		wantUnknown []string
	}{
		{
			// Issue input: replicas lowered from 4 to 2 while pods hold
			// replicas 2 and 3 of GPU 0: GPU 0 is busy and, with 2 IDs in
			// use, full. Free 1,2,3: capacity 3.
			name: "replica IDs at or above the replica count",
			node: shared2,
			used: func(n *topology.Node) []string {
				return []string{deviceid.ReplicaID(n.GPUs[0].UUID, 2), deviceid.ReplicaID(n.GPUs[0].UUID, 3)}
			},
			wantFree: []int{1, 2, 3}, wantCap: 3,
		},
		{
			// One stale replica (::7 of 2): one of 2 replicas taken, 0.5 free
			// on GPU 0: 3 + 0.5.
			name: "one stale replica takes one replica",
			node: shared2,
			used: func(n *topology.Node) []string {
				return []string{deviceid.ReplicaID(n.GPUs[0].UUID, 7)}
			},
			wantFree: []int{1, 2, 3}, wantCap: 3.5,
		},
		{
			// Sharing turned off (no replicas) while a replica pod runs on
			// GPU 1: GPU 1 is taken whole. Free 0,2,3.
			name: "replica ID on a GPU no longer shared",
			node: whole,
			used: func(n *topology.Node) []string {
				return []string{deviceid.ReplicaID(n.GPUs[1].UUID, 0)}
			},
			wantFree: []int{0, 2, 3}, wantCap: 3,
		},
		{
			// Issue input: an ID that is a GPU UUID with any suffix marks
			// the GPU busy: GPU 2 taken whole, free 0,1,3.
			name: "GPU UUID with a malformed suffix",
			node: shared2,
			used: func(n *topology.Node) []string {
				return []string{n.GPUs[2].UUID + "::x", n.GPUs[3].UUID + "::-1"}
			},
			wantFree: []int{0, 1}, wantCap: 2,
		},
		{
			// A replica of a MIG device (MIG time-slicing): that MIG device
			// is taken, so GPU 0 is busy; GPU 1 free.
			name: "MIG replica ID",
			node: mig,
			used: func(n *topology.Node) []string { return []string{n.MIG[1].UUID + "::0"} },
			// Usable excludes the MIG-enabled GPU 0: free capacity is GPU 1.
			wantFree: []int{1}, wantCap: 1,
		},
		{
			// Another node's IDs stay unknown and change nothing.
			name:        "foreign IDs",
			node:        shared2,
			used:        func(*topology.Node) []string { return []string{"GPU-other::0", "GPU-other", "junk"} },
			wantFree:    []int{0, 1, 2, 3},
			wantCap:     4,
			wantUnknown: []string{"GPU-other", "GPU-other::0", "junk"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node()
			used := map[string]bool{}
			for _, id := range tc.used(n) {
				used[id] = true
			}
			s, unknown := score.StateOf(n, used)
			require.Equal(t, tc.wantFree, s.FreeGPUs().Indexes())
			require.InDelta(t, tc.wantCap, s.FreeCapacity(), 1e-9)
			require.ElementsMatch(t, tc.wantUnknown, unknown)
		})
	}
}

// TestStateOfStaleReplicasNotGivenTwice: with replicas lowered to 2 and two
// running pods on GPU 0's replicas 2 and 3, a whole-GPU request on a
// one-GPU node must find nothing.
func TestStateOfStaleReplicasNotGivenTwice(t *testing.T) {
	n := fixture.Shared(fixture.PCIe("one", "T4", 2), 2)
	used := map[string]bool{deviceid.ReplicaID(n.GPUs[0].UUID, 2): true, deviceid.ReplicaID(n.GPUs[1].UUID, 3): true}
	_, ok := chooseOn(n, used, score.Request{Kind: score.KindWhole, Count: 1}, nil)
	require.False(t, ok, "both GPUs run shared pods")
	// One replica of each GPU is taken (1 of 2): a 1-replica request fits.
	c, ok := chooseOn(n, used, score.Request{Kind: score.KindShared, Count: 1, Policy: score.Packed}, nil)
	require.True(t, ok)
	require.Equal(t, 1, c.GPUs.Len())
}

// FuzzStateOf: any set of device IDs (in-use reports are input from the
// cluster) gives a state, never a panic; free GPUs stay within the usable
// ones and IDs naming the node's GPUs make them busy.
func FuzzStateOf(f *testing.F) {
	n := fixture.WithMIG(fixture.Shared(fixture.PCIe("f", "A100", 4), 2), 3, 1, "1g.5gb", "1g.5gb")
	f.Add(n.GPUs[0].UUID + "::7")
	f.Add(n.GPUs[1].UUID + "::x")
	f.Add(n.GPUs[2].UUID + "::-1::3")
	f.Add(n.MIG[0].UUID + "::0")
	f.Add("::0")
	f.Add("GPU-f-0")
	f.Fuzz(func(t *testing.T, ids string) {
		used := map[string]bool{}
		for _, id := range strings.Split(ids, ",") {
			used[id] = true
		}
		s, unknown := score.StateOf(n, used)
		require.LessOrEqual(t, len(unknown), len(used))
		free := s.FreeGPUs()
		require.Zero(t, free&^n.Usable(), "free GPUs are usable ones")
		require.GreaterOrEqual(t, s.FreeCapacity(), 0.0)
		for i, g := range n.GPUs {
			for id := range used {
				if id == g.UUID || strings.HasPrefix(id, g.UUID+deviceid.Separator) {
					require.False(t, free.Has(i), "GPU %d named by %q", i, id)
				}
			}
		}
	})
}
