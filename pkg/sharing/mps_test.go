package sharing

import (
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// TestBuildMPS: MPS replicas are advertised as NVIDIA's plugin advertises
// them (one replica set per GPU, the same names and rename rules as
// time-slicing), marked MPS; what NVIDIA refuses on a node is an error.
func TestBuildMPS(t *testing.T) {
	withCC := func(inv *nvml.Inventory, cc string) *nvml.Inventory {
		for i := range inv.GPUs {
			inv.GPUs[i].CUDACompute = cc
			inv.GPUs[i].Name = map[string]string{"7.0": "Tesla V100-SXM2-16GB", "8.0": "NVIDIA A100-SXM4-40GB"}[cc]
		}
		return inv
	}
	tests := []struct {
		name    string
		inv     *nvml.Inventory
		cfg     string
		want    map[string]int
		wantErr []string
	}{
		{"README example", inventory(8, nil), "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 10}]}}",
			map[string]int{"nvidia.com/gpu": 80}, nil}, // 8 GPUs x 10
		{"renameByDefault", inventory(4, nil), "sharing: {mps: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4}]}}",
			map[string]int{"nvidia.com/gpu.shared": 16}, nil}, // 4 x 4
		// NVIDIA ignores rename and devices: every GPU, under the name.
		{"rename and devices ignored", inventory(4, nil), "sharing: {mps: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/x, devices: [0], replicas: 2}]}}",
			map[string]int{"nvidia.com/gpu": 8}, nil},
		{"gpupackRename and gpupackDevices", inventory(4, nil), "sharing: {mps: {resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/gpu-mps, gpupackDevices: [1, 2], replicas: 3}]}}",
			map[string]int{"nvidia.com/gpu": 2, "nvidia.com/gpu-mps": 6}, nil}, // GPUs 0, 3 whole; 1, 2 x 3
		// NVIDIA: MPS wins; timeSlicing is ignored.
		{"mps over timeSlicing", inventory(2, nil), "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 8}]}, mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			map[string]int{"nvidia.com/gpu": 4}, nil},
		{"empty mps section: nothing shared", inventory(2, nil), "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 8}]}, mps: {}}",
			map[string]int{"nvidia.com/gpu": 2}, nil},
		// MIG GPUs advertised whole under none: MPS shares them whole.
		{"MIG mode on, strategy none", inventory(2, map[int][]string{0: {"3g.20gb"}}), "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			map[string]int{"nvidia.com/gpu": 4}, nil},
		{"MIG devices served (single)", inventory(2, map[int][]string{0: {"1g.5gb"}, 1: {"1g.5gb"}}), "flags: {migStrategy: single}\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			nil, []string{"sharing.mps", "not supported for MIG devices", "serves 2 under migStrategy single"}},
		// 20 replicas: fine on 8.0 (48 clients), too many on 7.0 (16 clients).
		{"20 on Ampere", withCC(inventory(2, nil), "8.0"), "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 20}]}}",
			map[string]int{"nvidia.com/gpu": 40}, nil},
		{"20 on Volta 7.0", withCC(inventory(2, nil), "7.0"), "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 20}]}}",
			nil, []string{"sharing.mps.resources[0].replicas: Invalid value: 20: each of GPUs 0, 1 (Tesla V100-SXM2-16GB, compute capability 7.0) takes at most 16 MPS clients"}},
		{"20 on one Volta beside an Ampere", func() *nvml.Inventory {
			inv := withCC(inventory(2, nil), "8.0")
			inv.GPUs[1].CUDACompute, inv.GPUs[1].Name = "7.0", "Tesla V100-SXM2-16GB"
			return inv
		}(), "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 20}]}}",
			nil, []string{"sharing.mps.resources[0].replicas: Invalid value: 20: GPU 1 (Tesla V100-SXM2-16GB, compute capability 7.0) takes at most 16 MPS clients"}},
		{"gpupackDevices index missing", inventory(2, nil), "sharing: {mps: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [5]}]}}",
			nil, []string{"sharing.mps.resources[0].gpupackDevices[0]: Invalid value: 5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := configv1.Parse([]byte(tc.cfg))
			require.NoError(t, err)
			res, err := Build(tc.inv, c)
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					require.ErrorContains(t, err, w)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, counts(res))
			for _, r := range res {
				for _, d := range r.Devices {
					require.Equal(t, d.Shared() && c.Sharing.MPS != nil, d.MPS, "%s %s", r.Name, d.ID)
				}
			}
		})
	}
}

// TestBuildMPSMixedUnvalidated: migStrategy mixed with MPS fails the
// config's validation (NVIDIA's plugin refuses it at start); a Config that
// skipped validation is still refused where MIG devices are served.
func TestBuildMPSMixedUnvalidated(t *testing.T) {
	c, err := configv1.Parse([]byte("sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}"))
	require.NoError(t, err)
	mixed := configv1.MIGStrategyMixed
	c.Flags.MigStrategy = &mixed
	_, err = Build(inventory(2, map[int][]string{0: {"3g.20gb"}}), c)
	for _, w := range []string{"sharing.mps", "not supported for MIG devices", "serves 1 under migStrategy mixed"} {
		require.ErrorContains(t, err, w)
	}
}

func TestMPSReplicaDevices(t *testing.T) {
	c, err := configv1.Parse([]byte("sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}"))
	require.NoError(t, err)
	res, err := Build(inventory(1, nil), c)
	require.NoError(t, err)
	require.Equal(t, []Resource{{Name: ResourceGPU, Devices: []Device{
		{ID: "GPU-0::0", UUID: "GPU-0", GPUUUID: "GPU-0", Replica: 0, Replicas: 2, MPS: true},
		{ID: "GPU-0::1", UUID: "GPU-0", GPUUUID: "GPU-0", Replica: 1, Replicas: 2, MPS: true},
	}}}, res)
}

func TestMPSMaxClients(t *testing.T) {
	for cc, want := range map[string]int{"9.0": 48, "8.0": 48, "7.5": 48, "7.0": 16, "6.1": 16, "": 48, "x": 48, "10.0": 48} {
		require.Equal(t, want, MPSMaxClients(cc), cc)
	}
}
