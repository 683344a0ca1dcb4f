package deviceplugin_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// The node publishes each resource as it serves it (issue 12 item 1): the
// scheduler reads the kind, replicas and policy from gpupack.io/topology.
func TestPublishedResources(t *testing.T) {
	mig := map[int][]string{0: {"3g.20gb", "3g.20gb"}, 1: {"1g.5gb"}}
	tests := []struct {
		name     string
		machine  string
		config   string
		opts     []fake.Option
		want     []topology.Resource
		replicas int // every GPU's Replicas
	}{
		{"whole GPUs", "pcie-4gpu-2socket", "version: v1", nil,
			[]topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindGPU}}, 0},
		// Issue 12 item 1: NVIDIA's default naming serves replicas under
		// nvidia.com/gpu.
		{"replicas under nvidia.com/gpu", "pcie-4gpu-2socket",
			"version: v1\nsharing: {timeSlicing: {renameByDefault: false, resources: [{name: nvidia.com/gpu, replicas: 4}]}}", nil,
			[]topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked}}, 4},
		{"renamed, spread, one per request", "pcie-4gpu-2socket",
			"version: v1\nsharing: {timeSlicing: {renameByDefault: true, replicaPolicy: spread, failRequestsGreaterThanOne: true, resources: [{name: nvidia.com/gpu, replicas: 3}]}}", nil,
			[]topology.Resource{{Name: "nvidia.com/gpu.shared", Kind: topology.KindReplica, Replicas: 3, Policy: topology.PolicySpread, FailRequestsGreaterThanOne: true}}, 3},
		{"MIG mixed beside whole GPUs", "dgx-a100", "version: v1\nflags: {migStrategy: mixed}", []fake.Option{fake.WithMIG(mig)},
			[]topology.Resource{
				{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
				{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIG, Profile: "1g.5gb"},
				{Name: "nvidia.com/mig-3g.20gb", Kind: topology.KindMIG, Profile: "3g.20gb"},
			}, 0},
		{"replicas of MIG devices", "dgx-a100",
			"version: v1\nflags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2}]}}", []fake.Option{fake.WithMIG(mig)},
			[]topology.Resource{
				{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
				{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIGReplica, Replicas: 2, Policy: topology.PolicyPacked, Profile: "1g.5gb"},
				{Name: "nvidia.com/mig-3g.20gb", Kind: topology.KindMIG, Profile: "3g.20gb"},
			}, 0},
		// Media-extension profiles under NVIDIA's names ('+' as '.'), the
		// profile as NVML names it (before: nvidia.com/mig-1g.5gb+me, which
		// failed to encode: the node published nothing).
		{"MIG mixed with media extensions", "dgx-a100", "version: v1\nflags: {migStrategy: mixed}",
			[]fake.Option{fake.WithMIG(map[int][]string{0: {"1g.5gb+me", "1g.5gb"}, 1: {"1g.5gb+me"}})},
			[]topology.Resource{
				{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
				{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIG, Profile: "1g.5gb"},
				{Name: "nvidia.com/mig-1g.5gb.me", Kind: topology.KindMIG, Profile: "1g.5gb+me"},
			}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := fake.New(tt.machine, tt.opts...)
			require.NoError(t, err)
			lib := m.Lib(t)
			cfg, err := configv1.Parse([]byte(tt.config))
			require.NoError(t, err)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir()})
			require.NoError(t, err)
			n := mgr.Node()
			require.Equal(t, tt.want, n.Resources)
			for _, g := range n.GPUs {
				if !g.MIGEnabled {
					require.Equal(t, tt.replicas, g.Replicas, "GPU %d", g.Index)
				}
			}
			// What is published decodes: v2 with the table.
			s, err := protocol.EncodeTopology(n)
			require.NoError(t, err)
			got, err := protocol.DecodeTopology(s)
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Resources)
		})
	}
}
