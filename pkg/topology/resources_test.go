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
