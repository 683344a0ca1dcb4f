package deviceplugin_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestDevicesCarryCPUNUMANode: each device the kubelet is given carries the
// NUMA node of the CPUs closest to its GPU, which the Topology Manager
// aligns the pod's CPUs with. Before, x86 nodes gave none (NVML's
// GetNumaNodeId is NOT_SUPPORTED there) and Grace nodes the GPU's own
// memory node, which has no CPU: a single-numa-node pod was refused.
func TestDevicesCarryCPUNUMANode(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		config  string
		opts    []fake.Option
		// want is each resource's devices' NUMA node, in device order;
		// gpus each GPU's in gpupack.io/topology.
		want map[string][]int64
		gpus []int
	}{
		{
			name: "dgx h100: sockets 0 and 1", machine: fake.DGXH100, config: "version: v1",
			want: map[string][]int64{"nvidia.com/gpu": {0, 0, 0, 0, 1, 1, 1, 1}},
			gpus: []int{0, 0, 0, 0, 1, 1, 1, 1},
		},
		{
			// Graces 0..3; the Hoppers' own nodes are 4, 12, 20, 28.
			name: "4 gh200", machine: fake.GH2004GPU, config: "version: v1",
			want: map[string][]int64{"nvidia.com/gpu": {0, 1, 2, 3}},
			gpus: []int{0, 1, 2, 3},
		},
		{
			// GPUs 0, 1 on Grace 0 and 2, 3 on Grace 1 (own nodes 2, 10,
			// 18, 26); GPU 3's two MIG devices are its Grace's too.
			name: "gb200 tray, MIG on GPU 3", machine: fake.GB2004GPU,
			config: "version: v1\nflags: {migStrategy: mixed}",
			opts:   []fake.Option{fake.WithMIG(map[int][]string{3: {"3g.90gb", "3g.90gb"}})},
			want: map[string][]int64{
				"nvidia.com/gpu":         {0, 0, 1},
				"nvidia.com/mig-3g.90gb": {1, 1},
			},
			gpus: []int{0, 0, 1, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine, tc.opts...)
			require.NoError(t, err)
			cfg, err := configv1.Parse([]byte(tc.config))
			require.NoError(t, err)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: m.Lib(t), Config: cfg, PluginDir: t.TempDir()})
			require.NoError(t, err)
			got := map[string][]int64{}
			for _, p := range mgr.Plugins() {
				for _, d := range p.Devices() {
					require.NotNil(t, d.Topology, "%s %s", p.Name(), d.ID)
					require.Len(t, d.Topology.Nodes, 1, "%s %s", p.Name(), d.ID)
					got[p.Name()] = append(got[p.Name()], d.Topology.Nodes[0].ID)
				}
			}
			require.Equal(t, tc.want, got)
			published := make([]int, 0, len(tc.gpus))
			for _, g := range mgr.Node().GPUs {
				published = append(published, g.NUMANode)
			}
			require.Equal(t, tc.gpus, published)
		})
	}
}
