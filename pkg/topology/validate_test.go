package topology_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestValidateValid(t *testing.T) {
	for _, tc := range append(testNodes(), namedNode{"mig", fixture.MixedStates("dgxa100")}) {
		require.NoError(t, tc.node.Validate(), tc.name)
	}
	// The diagonal is ignored, as long as it holds a known class.
	n := fixture.DGX1V100("dgx1")
	n.Links[2][2] = topology.Link{Class: topology.ClassNVLink}
	require.NoError(t, n.Validate())
	// Compute instances of one GPU instance share its slices.
	n = fixture.MixedStates("dgxa100")
	n.MIG = append(n.MIG, topology.MIGDevice{UUID: "MIG-cccc", Parent: 0, Profile: "1c.3g.20gb", Start: 0, Size: 4})
	require.NoError(t, n.Validate())
}

// TestValidateReportsAll: every problem is reported, not just the first.
func TestValidateReportsAll(t *testing.T) {
	n := fixture.DGX1V100("dgx1")
	n.GPUs[1].Index = 5
	n.GPUs[2].Replicas = -3
	n.Links[0][4].NVLinks = 1 // 2 on the other side
	n.MIG = []topology.MIGDevice{{UUID: "MIG-x", Parent: 10, Size: 1}}
	err := n.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"GPU at position 1 has index 5",
		"GPU 2 has -3 replicas",
		"link 4-0 (NV2) differs from link 0-4 (NV1)",
		"MIG device 0 has parent GPU 10",
	} {
		require.ErrorContains(t, err, want)
	}
}

// TestValidateMIGSlicesOverflow: Start+Size overflowed for a Start near
// MaxInt and passed; every placement outside [0, MaxMIGSlices) is rejected.
func TestValidateMIGSlicesOverflow(t *testing.T) {
	const maxInt = int(^uint(0) >> 1)
	for _, tc := range []struct {
		start, size int
		ok          bool
	}{
		{start: maxInt, size: 1},      // the input: MaxInt+1 wraps negative
		{start: maxInt - 3, size: 7},  // wraps too
		{start: 1, size: maxInt},      // size alone too large
		{start: 0, size: maxInt},      //
		{start: -1, size: 2},          //
		{start: 7, size: 2},           // 7+2 = 9 > 8
		{start: 8, size: 1},           // 8+1 > 8
		{start: 7, size: 1, ok: true}, // the last slice
		{start: 0, size: 8, ok: true}, // the whole GPU (7g)
	} {
		n := fixture.MixedStates("dgxa100")
		n.MIG[0].Start, n.MIG[0].Size = tc.start, tc.size
		err := n.Validate()
		if tc.ok {
			require.NoError(t, err, "start %d size %d", tc.start, tc.size)
			continue
		}
		require.ErrorContains(t, err, "MIG device 0 has slices", "start %d size %d", tc.start, tc.size)
	}
}
