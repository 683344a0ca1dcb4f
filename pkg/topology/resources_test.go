package topology_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestResourceNameErrors: extended resource names as the apiserver checks
// them (apimachinery's IsQualifiedName plus the extended-resource rules).
func TestResourceNameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // a message expected; "" for a valid name
	}{
		{"nvidia.com/gpu", ""},
		{"nvidia.com/gpu.shared", ""},
		{"nvidia.com/mig-1g.5gb", ""},
		{"nvidia.com/mig-1g.5gb.me", ""},
		{"example.org/A_b-9", ""},
		{"nvidia.com/" + strings.Repeat("g", 63), ""}, // the name part may be 63 long
		{"gpu", "domain-qualified"},
		{"nvidia.com/", "name part must be non-empty"},
		{"nvidia.com/" + strings.Repeat("g", 64), "must be no more than 63 bytes"},
		{"nvidia.com/-gpu", "must consist of alphanumeric characters"},
		{"nvidia.com/gpu_", "must consist of alphanumeric characters"},
		{"NVIDIA.com/gpu", "prefix part"},
		{"nvidia..com/gpu", "prefix part"},
		{"a/b/c", "with an optional DNS subdomain prefix"},
		{"kubernetes.io/gpu", "native resources"},
		{"example.kubernetes.io/gpu", "native resources"},
		{"requests.nvidia.com/gpu", `"requests."`},
		{"", "name part must be non-empty"},
	} {
		msgs := topology.ResourceNameErrors(tc.name)
		if tc.want == "" {
			require.Empty(t, msgs, tc.name)
			continue
		}
		require.Contains(t, strings.Join(msgs, "; "), tc.want, tc.name)
	}
}

// TestValidateResourceNames: Node.Validate names the resource and says why
// its name is refused.
func TestValidateResourceNames(t *testing.T) {
	n := fixture.DGX1V100("n")
	n.Resources = []topology.Resource{
		{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
		{Name: "nvidia.com/", Kind: topology.KindGPU},
		{Name: "kubernetes.io/gpu", Kind: topology.KindGPU},
	}
	err := n.Validate()
	require.ErrorContains(t, err, `resource 1 ("nvidia.com/"): not an extended resource name: name part must be non-empty`)
	require.ErrorContains(t, err, `resource 2 ("kubernetes.io/gpu"): not an extended resource name: the kubernetes.io domain holds native resources`)
	require.NotContains(t, err.Error(), "resource 0")

	n.Resources = n.Resources[:1]
	require.NoError(t, n.Validate())
}

// A replica resource's count must be the GPUs' own: the scheduler names
// replicas <UUID>::0..k-1 by the GPUs' counts, so a table saying 2 over
// GPUs published with 4 would have it give ::2 and ::3, which the device
// plugin does not serve; a replica table over GPUs none of which is
// time-shared is as inconsistent. The device plugin publishes the largest
// GPU's count (pkg/deviceplugin publishedResources).
func TestValidateReplicaCounts(t *testing.T) {
	shared := func(counts ...int) *topology.Node {
		n := fixture.PCIe("n", "T4", len(counts))
		for i, c := range counts {
			n.GPUs[i].Replicas = c
		}
		return n
	}
	for _, tc := range []struct {
		name     string
		node     *topology.Node
		replicas int
		want     string // "" valid
	}{
		{"every GPU 4, table 4", shared(4, 4), 4, ""},
		{"some GPUs shared, table their count", shared(4, 0, 4), 4, ""},
		{"table fewer than the GPUs", shared(4, 4), 2, "2 replicas per GPU, but the GPUs have up to 4"},
		{"table more than the GPUs", shared(3, 3), 8, "8 replicas per GPU, but the GPUs have up to 3"},
		{"no GPU shared", shared(0, 0), 4, "4 replicas per GPU, but no GPU is time-shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindReplica, Replicas: tc.replicas, Policy: topology.PolicyPacked}}
			err := tc.node.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, `resource 0 ("nvidia.com/gpu"): `+tc.want)
		})
	}
}
