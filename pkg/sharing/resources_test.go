package sharing

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// inventory builds n GPUs; GPUs listed in mig are MIG-enabled with those profiles.
func inventory(n int, mig map[int][]string) *nvml.Inventory {
	inv := &nvml.Inventory{}
	for i := range n {
		_, on := mig[i]
		inv.GPUs = append(inv.GPUs, nvml.GPU{Index: i, Minor: i, UUID: fmt.Sprintf("GPU-%d", i), MIGEnabled: on, MIGCapable: true})
		for j, p := range mig[i] {
			inv.MIG = append(inv.MIG, nvml.MIGDevice{UUID: fmt.Sprintf("MIG-%d-%d", i, j), ParentIndex: i, ParentUUID: fmt.Sprintf("GPU-%d", i), Profile: p})
		}
	}
	return inv
}

func counts(res []Resource) map[string]int {
	out := map[string]int{}
	for _, r := range res {
		out[r.Name] = len(r.Devices)
	}
	return out
}

func TestBuild(t *testing.T) {
	sevenSmall := []string{"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"}
	tests := []struct {
		name    string
		inv     *nvml.Inventory
		cfg     string
		want    map[string]int
		wantErr string
	}{
		{"whole", inventory(8, nil), "version: v1", map[string]int{"nvidia.com/gpu": 8}, ""},
		{"none ignores MIG", inventory(2, map[int][]string{0: {"3g.20gb"}}), "version: v1", map[string]int{"nvidia.com/gpu": 2}, ""},
		{
			"mixed",
			inventory(3, map[int][]string{0: {"3g.20gb", "2g.10gb", "1g.5gb"}, 1: {"1g.5gb", "1g.5gb"}}),
			"version: v1\nflags: {migStrategy: mixed}",
			// GPU 2 whole; 1g.5gb: 1 on GPU0 + 2 on GPU1 = 3.
			map[string]int{"nvidia.com/gpu": 1, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-1g.5gb": 3}, "",
		},
		{"single", inventory(2, map[int][]string{0: sevenSmall, 1: sevenSmall}), "version: v1\nflags: {migStrategy: single}",
			map[string]int{"nvidia.com/gpu": 14}, ""},
		{"single without MIG", inventory(2, nil), "version: v1\nflags: {migStrategy: single}", map[string]int{"nvidia.com/gpu": 2}, ""},
		{"single half MIG", inventory(2, map[int][]string{0: sevenSmall}), "version: v1\nflags: {migStrategy: single}", nil, "1 of 2 GPUs have MIG enabled"},
		{"single two profiles", inventory(1, map[int][]string{0: {"3g.20gb", "1g.5gb"}}), "version: v1\nflags: {migStrategy: single}", nil, "exactly one MIG profile"},
		// MIG mode on and no GPU instance created: the GPU has no device to
		// serve under single and mixed, and NVIDIA's plugin refuses the node
		// ("device 0 has an invalid MIG configuration"); none serves it whole.
		{"mixed, MIG on without MIG devices", inventory(2, map[int][]string{0: {}, 1: {"1g.5gb"}}), "version: v1\nflags: {migStrategy: mixed}",
			nil, "GPU 0 (GPU-0) has MIG mode enabled and no MIG devices"},
		{"single, MIG on without MIG devices on one GPU", inventory(2, map[int][]string{0: sevenSmall, 1: {}}), "version: v1\nflags: {migStrategy: single}",
			nil, "GPU 1 (GPU-1) has MIG mode enabled and no MIG devices"},
		{"single, MIG on without MIG devices on every GPU", inventory(2, map[int][]string{0: {}, 1: {}}), "version: v1\nflags: {migStrategy: single}",
			nil, "GPU 0 (GPU-0) has MIG mode enabled and no MIG devices"},
		{"none, MIG on without MIG devices", inventory(2, map[int][]string{0: {}}), "version: v1", map[string]int{"nvidia.com/gpu": 2}, ""},
		{"mixed, MIG on and its MIG devices unreadable", func() *nvml.Inventory {
			inv := inventory(2, map[int][]string{0: {}, 1: {"1g.5gb"}})
			inv.GPUs[0].Degraded = fmt.Errorf("GetMaxMigDeviceCount: Unknown Error")
			return inv
		}(), "version: v1\nflags: {migStrategy: mixed}", map[string]int{"nvidia.com/mig-1g.5gb": 1}, ""}, // GPU 0's devices are unknown, not absent
		{
			"time-sliced renamed",
			inventory(8, nil),
			"version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 10}]}}",
			map[string]int{"nvidia.com/gpu.shared": 80}, "", // 8 GPUs x 10 replicas
		},
		{
			"time-sliced some devices",
			inventory(4, nil),
			"version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0, GPU-3]}]}}",
			map[string]int{"nvidia.com/gpu": 2*4 + 2}, "", // GPUs 0 and 3 x 4 replicas + GPUs 1, 2 whole
		},
		{
			"time-sliced count",
			inventory(4, nil),
			"version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 3, gpupackDevices: 2}]}}",
			map[string]int{"nvidia.com/gpu": 2*3 + 2}, "", // first 2 GPUs x 3 replicas + 2 whole
		},
		{
			"time-sliced MIG with rename",
			inventory(1, map[int][]string{0: {"1g.5gb", "1g.5gb", "3g.20gb"}}),
			"version: v1\nflags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/mig-1g.5gb, replicas: 3, gpupackRename: nvidia.com/small}]}}",
			map[string]int{"nvidia.com/small": 6, "nvidia.com/mig-3g.20gb": 1}, "",
		},
		// NVIDIA's mixed strategy writes a profile's '+' as '.' in its
		// resource name: "nvidia.com/mig-1g.5gb+me" is no extended
		// resource name (the kubelet refuses it, the node's topology did
		// not encode). Before: nvidia.com/mig-1g.5gb+me.
		{
			"mixed, media extensions",
			inventory(2, map[int][]string{0: {"1g.5gb+me", "1g.5gb", "1g.5gb"}, 1: {"1g.10gb+me", "1g.20gb+me.all"}}),
			"version: v1\nflags: {migStrategy: mixed}",
			map[string]int{"nvidia.com/mig-1g.5gb.me": 1, "nvidia.com/mig-1g.5gb": 2, "nvidia.com/mig-1g.10gb.me": 1, "nvidia.com/mig-1g.20gb.me.all": 1}, "",
		},
		{
			"mixed, media extensions time-sliced by NVIDIA's name",
			inventory(1, map[int][]string{0: {"1g.5gb+me", "1g.5gb"}}),
			"version: v1\nflags: {migStrategy: mixed}\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/mig-1g.5gb.me, replicas: 2}]}}",
			map[string]int{"nvidia.com/mig-1g.5gb.me.shared": 2, "nvidia.com/mig-1g.5gb": 1}, "",
		},
		{
			"single, media extensions",
			inventory(1, map[int][]string{0: {"1g.5gb+me"}}),
			"version: v1\nflags: {migStrategy: single}",
			map[string]int{"nvidia.com/gpu": 1}, "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := configv1.Parse([]byte(tt.cfg))
			require.NoError(t, err)
			res, err := Build(tt.inv, c)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, counts(res))
		})
	}
}

func TestReplicaDevices(t *testing.T) {
	c := configv1.Default()
	c.Sharing.TimeSlicing.Resources = []configv1.ReplicatedResource{{Name: ResourceGPU, Replicas: 2}}
	c.Flags.MigStrategy = ptr.To(configv1.MIGStrategyMixed)
	res, err := Build(inventory(2, map[int][]string{1: {"7g.40gb"}}), c)
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, ResourceGPU, res[0].Name)
	require.Equal(t, []Device{
		{ID: "GPU-0::0", UUID: "GPU-0", GPUUUID: "GPU-0", Replica: 0, Replicas: 2},
		{ID: "GPU-0::1", UUID: "GPU-0", GPUUUID: "GPU-0", Replica: 1, Replicas: 2},
	}, res[0].Devices)
	require.Equal(t, []Device{{ID: "MIG-1-0", UUID: "MIG-1-0", GPUIndex: 1, GPUUUID: "GPU-1", GPUMinor: 1, MIG: true, Profile: "7g.40gb"}}, res[1].Devices)
}
