package sim

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A node's GPU family (score.Ranked.Family) is its model's compute
// capability for the disclosed openb models, the model's name for any
// other, "" for a node without GPUs.
func TestClusterFamily(t *testing.T) {
	nodes, err := ReadNodes("nodes.csv", strings.NewReader("sn,cpu_milli,memory_mib,gpu,model\n"+
		"a,96000,393216,8,V100M16\nb,96000,393216,8,V100M32\nc,64000,262144,2,T4\nd,64000,262144,4,P100\n"+
		"e,64000,262144,1,A10\nf,96000,393216,8,G2\ng,128000,786432,8,G3\nh,224000,2097152,8,H100\ncpu,64000,262144,0,\n"+
		// A model named like a compute capability is its own family, not
		// the T4s' (7.5).
		"x,64000,262144,4,7.5\n"))
	require.NoError(t, err)
	cl, err := NewCluster(nodes, Shapes{"V100M16": ShapeDGX1, "V100M32": ShapeDGX1, "T4": ShapePCIe,
		"P100": ShapePCIe, "A10": ShapePCIe, "G2": ShapeNVLinkPairs, "G3": ShapeNVSwitch, "H100": ShapeNVSwitch,
		"7.5": ShapePCIe})
	require.NoError(t, err)
	want := []string{"7.0", "7.0", "7.5", "6.0", "8.6", "model G2", "model G3", "model H100", "", "model 7.5"}
	for i, w := range want {
		require.Equal(t, w, cl.Family(i), nodes[i].Name)
		require.Equal(t, w, familyOf(nodes[i]), nodes[i].Name) // a Cluster built by hand
	}
}
