package sharing

import (
	"fmt"
	"strings"
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
		{"single two profiles", inventory(1, map[int][]string{0: {"3g.20gb", "1g.5gb"}}), "version: v1\nflags: {migStrategy: single}", nil, "MIG strategy single: want exactly one MIG profile on the node, found 2: 3g.20gb (GPU 0), 1g.5gb (GPU 0)"},
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
			"version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0, GPU-3]}]}}",
			map[string]int{"nvidia.com/gpu.shared": 2 * 4, "nvidia.com/gpu": 2}, "", // GPUs 0 and 3 x 4 replicas; GPUs 1, 2 whole
		},
		{
			"time-sliced count",
			inventory(4, nil),
			"version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/gpu-ts, replicas: 3, gpupackDevices: 2}]}}",
			map[string]int{"nvidia.com/gpu-ts": 2 * 3, "nvidia.com/gpu": 2}, "", // first 2 GPUs x 3 replicas; 2 whole
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

// kindOf is what a device is, for TestNoResourceMixesKinds: a whole GPU, a
// MIG device, or a replica of either (with its replica count and MPS).
func kindOf(d *Device) string {
	k := "gpu"
	if d.MIG {
		k = "mig"
	}
	if d.Shared() {
		k += fmt.Sprintf("-replica/%d/mps=%v", d.Replicas, d.MPS)
	}
	return k
}

// TestNoResourceMixesKinds: whatever the combination of MIG strategy,
// sharing section, renaming and device selection, a config that loads and
// builds on a node never advertises devices of two kinds (whole and
// replica, MIG and whole, two replica counts) under one resource name: the
// kubelet counts a resource's devices as one thing and the node publishes
// one kind per name to the scheduler. gpupackDevices selecting some
// devices without a rename did (GPU 0's replicas beside GPUs 1-3 whole
// under nvidia.com/gpu, published as replicas).
func TestNoResourceMixesKinds(t *testing.T) {
	one := []string{"1g.5gb", "1g.5gb"}
	nodes := map[string]*nvml.Inventory{
		"4 GPUs":                   inventory(4, nil),
		"4 GPUs, 2 MIG (1g.5gb)":   inventory(4, map[int][]string{0: one, 1: one}),
		"2 GPUs, all MIG (1g.5gb)": inventory(2, map[int][]string{0: one, 1: one}),
	}
	selections := []string{"", "gpupackDevices: all, ", "gpupackDevices: 1, ", "gpupackDevices: 2, ", "gpupackDevices: 4, ",
		"gpupackDevices: [0], ", "gpupackDevices: [2, 3], ", "gpupackDevices: [GPU-2], ", `gpupackDevices: ["0:0"], `,
		`gpupackDevices: ["0:1", "1:0"], `, "gpupackDevices: [MIG-1-1], ", "devices: [0], "}
	renames := []string{"", "renameByDefault: true, ", "gpupackRename: nvidia.com/ts"}
	loaded, built := 0, 0
	for nodeName, inv := range nodes {
		for _, strategy := range []string{configv1.MIGStrategyNone, configv1.MIGStrategySingle, configv1.MIGStrategyMixed} {
			for _, section := range []string{"timeSlicing", "mps"} {
				for _, res := range []string{"nvidia.com/gpu", "nvidia.com/mig-1g.5gb"} {
					for _, sel := range selections {
						for _, rename := range renames {
							sectionRename, own := rename, ""
							if strings.HasPrefix(rename, "gpupackRename") {
								sectionRename, own = "", ", "+rename
							}
							file := fmt.Sprintf("flags: {migStrategy: %s}\nsharing: {%s: {%sresources: [{name: %s, %sreplicas: 2%s}]}}",
								strategy, section, sectionRename, res, sel, own)
							c, err := configv1.Parse([]byte(file))
							if err != nil {
								continue
							}
							loaded++
							out, err := Build(inv, c)
							if err != nil {
								continue
							}
							built++
							for _, r := range out {
								kinds := map[string]bool{}
								for i := range r.Devices {
									kinds[kindOf(&r.Devices[i])] = true
								}
								require.Len(t, kinds, 1, "%s, node %s:\n%s\n%s holds %v", nodeName, nodeName, file, r.Name, kinds)
							}
						}
					}
				}
			}
		}
	}
	// The sweep is not empty: most combinations load and build.
	require.Greater(t, loaded, 200)
	require.Greater(t, built, 100)
}

// TestBuildRefusesMixedKindsUnvalidated: a Config built in code skips
// Load's validation; Build still refuses to serve the replicas of some
// devices under the name of the devices not shared, naming the field.
func TestBuildRefusesMixedKindsUnvalidated(t *testing.T) {
	tests := []struct {
		name    string
		inv     *nvml.Inventory
		mig     string
		mps     bool
		res     configv1.ReplicatedResource
		wantErr []string
	}{
		{"an index", inventory(4, nil), configv1.MIGStrategyNone, false,
			configv1.ReplicatedResource{Name: ResourceGPU, Replicas: 2, GPUPackDevices: &configv1.ReplicatedDevices{List: []configv1.DeviceRef{"0"}}},
			[]string{"sharing.timeSlicing.resources[0].gpupackDevices", "3 devices not shared and 2 replicas under nvidia.com/gpu"}},
		{"a count, MPS", inventory(4, nil), configv1.MIGStrategyNone, true,
			configv1.ReplicatedResource{Name: ResourceGPU, Replicas: 3, GPUPackDevices: &configv1.ReplicatedDevices{Count: 1}},
			[]string{"sharing.mps.resources[0].gpupackDevices", "3 devices not shared and 3 replicas under nvidia.com/gpu"}},
		{"a MIG device", inventory(1, map[int][]string{0: {"1g.5gb", "1g.5gb"}}), configv1.MIGStrategyMixed, false,
			configv1.ReplicatedResource{Name: "nvidia.com/mig-1g.5gb", Replicas: 2, GPUPackDevices: &configv1.ReplicatedDevices{List: []configv1.DeviceRef{"0:1"}}},
			[]string{"sharing.timeSlicing.resources[0].gpupackDevices", "1 devices not shared and 2 replicas under nvidia.com/mig-1g.5gb"}},
		// Every device selected: nothing is mixed.
		{"a count of every device", inventory(2, nil), configv1.MIGStrategyNone, false,
			configv1.ReplicatedResource{Name: ResourceGPU, Replicas: 2, GPUPackDevices: &configv1.ReplicatedDevices{Count: 2}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := configv1.Default()
			c.Flags.MigStrategy = ptr.To(tc.mig)
			ts := &c.Sharing.TimeSlicing
			if tc.mps {
				ts = &configv1.TimeSlicing{ReplicaPolicy: configv1.ReplicaPolicyPacked}
				c.Sharing.MPS = ts
			}
			ts.Resources = []configv1.ReplicatedResource{tc.res}
			res, err := Build(tc.inv, c)
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Len(t, res, 1)
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
