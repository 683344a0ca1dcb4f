package score_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestChooseWholeOn64GPUs: a node with MaxGPUs (64) GPUs fits every count;
// the candidate enumeration once bounded by 1<<len, which is 0 for 64.
func TestChooseWholeOn64GPUs(t *testing.T) {
	require.Equal(t, 64, topology.MaxGPUs)
	nodes := map[string]*topology.Node{
		"pcie":     fixture.PCIe("w", "H100", 64),
		"nvswitch": fixture.NVSwitch("s", "H100", 64, 18),
	}
	for name, n := range nodes {
		for _, tc := range []struct {
			count int
			used  []int
		}{
			{count: 1}, {count: 2}, {count: 63}, {count: 64},
			// 63 of 64 taken: the last one, at index 63 (the top bit).
			{count: 1, used: seq(0, 63)},
			// 62 taken: exactly the pair 62, 63.
			{count: 2, used: seq(0, 62)},
			// 1 taken: 63 of the other 63.
			{count: 63, used: []int{0}},
		} {
			c, ok := chooseOn(n, usedSet(uuids(n, tc.used...)...), score.Request{Kind: score.KindWhole, Count: tc.count}, nil)
			require.True(t, ok, "%s: %d GPUs with %d used", name, tc.count, len(tc.used))
			require.Equal(t, tc.count, c.GPUs.Len(), name)
			require.Len(t, c.DeviceIDs, tc.count, name)
			for _, i := range tc.used {
				require.False(t, c.GPUs.Has(i), "%s: GPU %d is in use", name, i)
			}
		}
		// 64 with one used, 65: no fit.
		_, ok := chooseOn(n, usedSet(uuids(n, 5)...), score.Request{Kind: score.KindWhole, Count: 64}, nil)
		require.False(t, ok, name)
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}
