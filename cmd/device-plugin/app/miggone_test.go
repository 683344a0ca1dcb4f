package app

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// At start the plugin reads the GPUs of the MIG devices its last run
// published (gpupack.io/topology): NVML cannot tell the GPU of a MIG
// device destroyed while the plugin was down (NVIDIA's mig-manager stops
// it for the change), and a container the kubelet still lists with one
// keeps that GPU withheld by it, not every MIG-capable GPU.
func TestMIGParentsOfNode(t *testing.T) {
	// GPU 0: 2 x 3g.20gb, GPU 1: 1 x 7g.40gb, as published.
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb", "3g.20gb"}, 1: {"7g.40gb"}}))
	require.NoError(t, err)
	inv, err := m.Lib(t).Discover()
	require.NoError(t, err)
	published, err := protocol.EncodeTopology(inv.Topology())
	require.NoError(t, err)
	want := sharing.MIGParents{}
	for _, d := range inv.MIG {
		want[d.UUID] = m.UUID(d.ParentIndex)
	}
	require.Len(t, want, 3)

	tests := []struct {
		name        string
		annotations map[string]string
		want        sharing.MIGParents
		wantErr     string
	}{
		{name: "published", annotations: map[string]string{protocol.TopologyAnnotation: published}, want: want},
		{name: "never published", want: nil},
		{name: "malformed", annotations: map[string]string{protocol.TopologyAnnotation: "{"}, wantErr: "node node-1: decoding gpupack.io/topology"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Annotations: tc.annotations}}
			got, err := migParentsOfNode(node)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
