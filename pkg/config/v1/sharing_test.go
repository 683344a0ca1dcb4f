package v1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMPSSection: sharing.mps loads as NVIDIA's plugin reads it: it is the
// section in force (timeSlicing ignored, with a warning), requests of more
// than one replica always fail, rename and devices are ignored with a
// warning, and what NVIDIA refuses (replicas below 2, MIG devices, more
// clients than an MPS server takes) is an error naming the field.
func TestMPSSection(t *testing.T) {
	tests := []struct {
		name         string
		file         string
		wantErr      []string
		wantWarn     []string
		strategy     string
		failOverOne  bool
		replicas     int
		replicatedAt string
	}{
		{name: "NVIDIA's README example", file: "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 10\n",
			strategy: SharingStrategyMPS, failOverOne: true, replicas: 10, replicatedAt: "sharing.mps"},
		// NVIDIA forces failRequestsGreaterThanOne for MPS whatever the file says.
		{name: "failRequestsGreaterThanOne false is overridden", file: "sharing: {mps: {failRequestsGreaterThanOne: false, renameByDefault: true, resources: [{name: gpu, replicas: 4}]}}",
			strategy: SharingStrategyMPS, failOverOne: true, replicas: 4, replicatedAt: "sharing.mps"},
		{name: "timeSlicing beside mps is ignored", file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 8}]}, mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			wantWarn: []string{"sharing.timeSlicing: ignored, as NVIDIA's plugin ignores it when sharing.mps is set"},
			strategy: SharingStrategyMPS, failOverOne: true, replicas: 2, replicatedAt: "sharing.mps"},
		{name: "empty mps section wins over timeSlicing", file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 8}]}, mps: {}}",
			wantWarn: []string{"sharing.mps: no resources to share", "sharing.timeSlicing: ignored"},
			strategy: SharingStrategyNone, replicatedAt: "sharing.mps"},
		{name: "rename and devices ignored", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/mps, devices: [0], replicas: 3}]}}",
			wantWarn: []string{"sharing.mps.resources[0].rename: ignored", "sharing.mps.resources[0].devices: ignored"},
			strategy: SharingStrategyMPS, failOverOne: true, replicas: 3, replicatedAt: "sharing.mps"},
		{name: "time-slicing alone", file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 8}]}}",
			strategy: SharingStrategyTimeSlicing, replicas: 8, replicatedAt: "sharing.timeSlicing"},
		{name: "no sharing", file: "version: v1", strategy: SharingStrategyNone, replicatedAt: "sharing.timeSlicing"},

		{name: "replicas 1", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 1}]}}",
			wantErr: []string{"sharing.mps.resources[0].replicas: Invalid value: 1: must be between 2 and"}},
		// 49 > 48 clients of one MPS server.
		{name: "replicas over the MPS client limit", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 49}]}}",
			wantErr: []string{"sharing.mps.resources[0].replicas: Invalid value: 49: an MPS server takes at most 48 clients"}},
		{name: "MIG resource", file: "flags: {migStrategy: mixed}\nsharing: {mps: {resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2}]}}",
			wantErr: []string{"sharing.mps.resources[0].name", "not supported for MIG devices"}},
		// NVIDIA's plugin refuses migStrategy mixed with MPS at start, MIG
		// devices or not ("using --mig-strategy=mixed is not supported
		// with MPS").
		{name: "mixed strategy with MPS", file: "flags: {migStrategy: mixed}\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			wantErr: []string{"flags.migStrategy: Forbidden", "migStrategy mixed is not supported with MPS"}},
		{name: "single strategy with MPS", file: "flags: {migStrategy: single}\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			strategy: SharingStrategyMPS, failOverOne: true, replicas: 2, replicatedAt: "sharing.mps"},
		{name: "mixed strategy with an empty MPS section", file: "flags: {migStrategy: mixed}\nsharing: {mps: {}}",
			wantWarn: []string{"sharing.mps: no resources to share"}, strategy: SharingStrategyNone, replicatedAt: "sharing.mps"},
		{name: "MIG device by index", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [\"0:1\"]}]}}",
			wantErr: []string{"sharing.mps.resources[0].gpupackDevices[0]", "not supported for MIG devices"}},
		{name: "bad name", file: "sharing: {mps: {resources: [{name: example.com/gpu, replicas: 2}]}}",
			wantErr: []string{"sharing.mps.resources[0].name", "RFC 1123 subdomain"}},
		{name: "unknown key in mps", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}], replica: 3}}",
			wantWarn: []string{"sharing.mps.replica"}, strategy: SharingStrategyMPS, failOverOne: true, replicas: 2, replicatedAt: "sharing.mps"},
		{name: "replicas a word", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: many}]}}",
			wantErr: []string{"sharing.mps.resources[0].replicas"}},
		{name: "relative mpsRoot", file: "flags: {mpsRoot: run/mps}\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			wantErr: []string{"flags.mpsRoot: Invalid value: \"run/mps\": must be an absolute path"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, w, err := Decode([]byte(tc.file))
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tc.wantErr {
					require.ErrorContains(t, err, want)
				}
				return
			}
			require.NoError(t, err)
			for _, want := range tc.wantWarn {
				require.True(t, containsPrefix(w.Strings(), want), "want a warning %q in %q", want, w)
			}
			require.Equal(t, tc.strategy, c.Sharing.Strategy())
			require.Equal(t, tc.failOverOne, c.Sharing.FailRequestsGreaterThanOne())
			ts, p := c.Sharing.Replicated()
			require.Equal(t, tc.replicatedAt, p.String())
			if tc.replicas > 0 {
				require.Equal(t, tc.replicas, ts.Resources[0].Replicas)
				require.Equal(t, ReplicaPolicyPacked, ts.ReplicaPolicy, "defaulted")
			}
		})
	}
}

func TestMPSRoot(t *testing.T) {
	c, err := Parse([]byte("version: v1"))
	require.NoError(t, err)
	require.Equal(t, "/run/nvidia/mps", c.Flags.MPSRoot(), "NVIDIA's default")
	c, err = Parse([]byte("flags: {mpsRoot: /var/run/mps}"))
	require.NoError(t, err)
	require.Equal(t, "/var/run/mps", c.Flags.MPSRoot())
}

func containsPrefix(list []string, s string) bool {
	for _, l := range list {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestSomeDevicesSharedNeedARename: gpupackDevices shares only some devices
// of a resource; without a name of their own for the replicas (the
// resource's own name is the target) the node would serve the devices not
// shared and the replicas of the others under one name, which the kubelet
// counts as one kind of device and the scheduler took as replicas. Such a
// file is refused, naming the field, in both sharing sections and for
// every kind of selection; NVIDIA's semantics (every device of the
// resource shared, no gpupackDevices or `all`) and a rename load.
func TestSomeDevicesSharedNeedARename(t *testing.T) {
	const wantMsg = "set renameByDefault: true or gpupackRename"
	tests := []struct {
		name    string
		file    string
		wantErr []string // empty: loads
	}{
		// The reviewer's input: time-slicing GPU 0 of 4, no rename.
		{name: "timeSlicing, an index, no rename",
			file:    "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0]}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices: Invalid value", "nvidia.com/gpu", wantMsg}},
		{name: "timeSlicing, a count, no rename",
			file:    "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: 2}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices: Invalid value: 2", wantMsg}},
		{name: "timeSlicing, a UUID, no rename",
			file:    "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [GPU-8dd88590-642d-5e6c-80c9-33854b55e870]}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices", wantMsg}},
		{name: "MPS, an index, no rename",
			file:    "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [1]}]}}",
			wantErr: []string{"sharing.mps.resources[0].gpupackDevices", wantMsg}},
		{name: "MIG devices under mixed, a MIG index, no rename",
			file:    "flags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2, gpupackDevices: [\"0:0\"]}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices", "nvidia.com/mig-1g.5gb", wantMsg}},
		{name: "MIG devices under single, no rename",
			file:    "flags: {migStrategy: single}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [\"0:0\", \"1:0\"]}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices", wantMsg}},
		// failRequestsGreaterThanOne does not make a whole GPU a replica.
		{name: "failRequestsGreaterThanOne is no rename",
			file:    "sharing: {timeSlicing: {failRequestsGreaterThanOne: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [0]}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices", wantMsg}},
		// NVIDIA's rename is ignored (as NVIDIA's plugin ignores it): no rename.
		{name: "NVIDIA's rename is ignored",
			file:    "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/ts, replicas: 2, gpupackDevices: [0]}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[0].gpupackDevices", "NVIDIA's rename is ignored"}},
		// The second resource alone is refused, with its own index.
		{name: "the second resource",
			file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/gpu-ts, replicas: 2, gpupackDevices: [0]}, " +
				"{name: nvidia.com/mig-1g.5gb, replicas: 2, gpupackDevices: 1}]}}",
			wantErr: []string{"sharing.timeSlicing.resources[1].gpupackDevices", wantMsg}},

		{name: "every device (NVIDIA's)", file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}"},
		{name: "all, no rename", file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: all}]}}"},
		{name: "MPS all, no rename", file: "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: all}]}}"},
		{name: "renameByDefault", file: "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0]}]}}"},
		{name: "gpupackRename", file: "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/gpu-ts, replicas: 4, gpupackDevices: 2}]}}"},
		{name: "MPS renameByDefault", file: "sharing: {mps: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [1]}]}}"},
		{name: "MIG renameByDefault", file: "flags: {migStrategy: mixed}\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2, gpupackDevices: [\"0:0\"]}]}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.wantErr {
				require.ErrorContains(t, err, want)
			}
		})
	}
}
