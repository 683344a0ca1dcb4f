package topology

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateValid(t *testing.T) {
	for _, tc := range append(testNodes(), namedNode{"mig", migNode()}) {
		require.NoError(t, tc.node.Validate(), tc.name)
	}
	// The diagonal is ignored, as long as it holds a known class.
	n := dgx1()
	n.Links[2][2] = Link{Class: ClassNVLink}
	require.NoError(t, n.Validate())
	// Compute instances of one GPU instance share its slices.
	n = migNode()
	n.MIG = append(n.MIG, MIGDevice{UUID: "MIG-cccc", Parent: 0, Profile: "1c.3g.20gb", Start: 0, Size: 4})
	require.NoError(t, n.Validate())
}

// TestValidateReportsAll: every problem is reported, not just the first.
func TestValidateReportsAll(t *testing.T) {
	n := dgx1()
	n.GPUs[1].Index = 5
	n.GPUs[2].Replicas = -3
	n.Links[0][4].NVLinks = 1 // 2 on the other side
	n.MIG = []MIGDevice{{UUID: "MIG-x", Parent: 10, Size: 1}}
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
