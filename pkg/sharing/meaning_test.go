package sharing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestReplicaLimitIsTheCodecs: the config accepted 1024 replicas, the
// topology annotation 256: with 257..1024 the node was never published.
// One limit, checked at load.
func TestReplicaLimitIsTheCodecs(t *testing.T) {
	require.Equal(t, topology.MaxReplicas, MaxReplicas)
	cfg := func(n int) string {
		return "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: " + itoa(n) + "}]}}"
	}
	for _, n := range []int{257, 1024, 1025} {
		_, err := Parse([]byte(cfg(n)))
		require.ErrorContains(t, err, "sharing.timeSlicing.resources[0].replicas", n)
		require.ErrorContains(t, err, "between 1 and 256", n)
	}
	c, err := Parse([]byte(cfg(topology.MaxReplicas)))
	require.NoError(t, err)
	require.Equal(t, 256, c.Sharing.TimeSlicing.Resources[0].Replicas)
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestRenamesThatCollide: renames that merge two sets of devices into one
// resource are rejected with the field path.
func TestRenamesThatCollide(t *testing.T) {
	tests := []struct {
		name, ts string
		path     string
	}{
		{
			// Issue input: time-shared whole GPUs renamed into a MIG
			// profile's resource.
			name: "into a MIG resource",
			ts:   `resources: [{name: nvidia.com/gpu, rename: nvidia.com/mig-1g.5gb, replicas: 2}]`,
			path: "sharing.timeSlicing.resources[0].rename",
		},
		{
			// Issue input: two resources renamed to one name.
			name: "two renamed to one",
			ts: `resources: [{name: nvidia.com/gpu, rename: nvidia.com/shared, replicas: 2},
  {name: nvidia.com/mig-1g.5gb, rename: nvidia.com/shared, replicas: 2}]`,
			path: "sharing.timeSlicing.resources[1].rename",
		},
		{
			name: "into whole GPUs",
			ts:   `resources: [{name: nvidia.com/mig-1g.5gb, rename: nvidia.com/gpu, replicas: 2}]`,
			path: "sharing.timeSlicing.resources[0].rename",
		},
		{
			name: "into another MIG profile",
			ts:   `resources: [{name: nvidia.com/mig-1g.5gb, rename: nvidia.com/mig-2g.10gb+me, replicas: 2}]`,
			path: "sharing.timeSlicing.resources[0].rename",
		},
		{
			name: "into another configured resource",
			ts: `resources: [{name: nvidia.com/mig-1g.5gb, rename: nvidia.com/mig-2g.10gb.x, replicas: 2},
  {name: nvidia.com/mig-2g.10gb.x, replicas: 2}]`,
			path: "sharing.timeSlicing.resources[0].rename",
		},
		{
			// renameByDefault: gpu -> gpu.shared, and another renamed there.
			name: "a rename onto a default rename",
			ts: `renameByDefault: true
    resources: [{name: nvidia.com/gpu, replicas: 2}, {name: nvidia.com/mig-1g.5gb, rename: nvidia.com/gpu.shared, replicas: 2}]`,
			path: "sharing.timeSlicing.resources[1].rename",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("version: v1\nsharing:\n  timeSlicing:\n    " + tc.ts + "\n"))
			require.ErrorContains(t, err, tc.path)
		})
	}
	// Renames that keep devices apart stay valid.
	for _, ok := range []string{
		`resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu-shared, replicas: 2}]`,
		`resources: [{name: nvidia.com/mig-1g.5gb, rename: nvidia.com/mig-1g.5gb.shared, replicas: 2}, {name: nvidia.com/gpu, replicas: 4}]`,
		`renameByDefault: true
    resources: [{name: nvidia.com/gpu, replicas: 2}, {name: nvidia.com/mig-1g.5gb, replicas: 2}]`,
	} {
		_, err := Parse([]byte("version: v1\nsharing:\n  timeSlicing:\n    " + ok + "\n"))
		require.NoError(t, err, ok)
	}
}

// inventory8 is 8 GPUs (indexes 0-7), GPU 0 MIG-enabled with one 1g.5gb.
func inventory8() *nvml.Inventory {
	inv := &nvml.Inventory{}
	for i := range 8 {
		inv.GPUs = append(inv.GPUs, nvml.GPU{Index: i, Minor: i, UUID: "GPU-" + fmtInt(i+1), NUMANode: -1})
	}
	inv.GPUs[0].MIGEnabled = true
	inv.MIG = []nvml.MIGDevice{{UUID: "MIG-a", ParentIndex: 0, ParentUUID: "GPU-1", Profile: "1g.5gb", GIID: 1}}
	return inv
}

// TestConfigAgainstTheNode: at startup the config is checked against the
// discovered GPUs; naming a GPU the node lacks turned sharing off (or
// clamped a count) silently.
func TestConfigAgainstTheNode(t *testing.T) {
	tests := []struct {
		name, ts, want string
	}{
		{"index 99", `resources: [{name: nvidia.com/gpu, replicas: 2, devices: [1, 99]}]`,
			"sharing.timeSlicing.resources[0].devices[1]: Invalid value: 99: no GPU with index 99 on this node (8 GPUs)"},
		{"unknown UUID", `resources: [{name: nvidia.com/gpu, replicas: 2, devices: [GPU-2, GPU-nope]}]`,
			"sharing.timeSlicing.resources[0].devices[1]: Invalid value: \"GPU-nope\""},
		// 7 whole GPUs (GPU 0 is MIG): devices: 99 would be clamped to 7,
		// devices: 8 too.
		{"count 99 on 8 GPUs", `resources: [{name: nvidia.com/gpu, replicas: 2, devices: 99}]`,
			"sharing.timeSlicing.resources[0].devices: Invalid value: 99: this node has 7 nvidia.com/gpu devices"},
		{"count 8 of 7", `resources: [{name: nvidia.com/gpu, replicas: 2, devices: 8}]`,
			"this node has 7 nvidia.com/gpu devices"},
		// A rename to a name of its own fits.
		{"rename to a new name", `resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu-shared, replicas: 2}]`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("version: v1\nflags: {migStrategy: mixed}\nsharing:\n  timeSlicing:\n    " + tc.ts + "\n"))
			require.NoError(t, err, "valid on its own")
			_, err = Build(inventory8(), c)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	// Exactly the node's devices: fine.
	c, err := Parse([]byte("version: v1\nflags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: 7}, {name: nvidia.com/mig-1g.5gb, replicas: 2, devices: [MIG-a]}]}}"))
	require.NoError(t, err)
	res, err := Build(inventory8(), c)
	require.NoError(t, err)
	require.Len(t, res, 2)
	// A GPU that discovery could not read may be the UUID meant: no error.
	inv := inventory8()
	inv.GPUs[5].UUID = nvml.PlaceholderUUID(5)
	c, err = Parse([]byte("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: [GPU-6]}]}}"))
	require.NoError(t, err)
	_, err = Build(inv, c)
	require.NoError(t, err)
}

// TestBuildRenameOntoNodeDevices: the dynamic check for names the static
// one cannot know: MIG devices advertised under mig-<profile> and a
// resource renamed to exactly that.
func TestBuildRenameOntoNodeDevices(t *testing.T) {
	c := Default()
	c.Flags.MigStrategy = ptrTo(MIGStrategyMixed)
	c.Sharing.TimeSlicing.Resources = []ReplicatedResource{{Name: ResourceGPU, Rename: "nvidia.com/mig-1g.5gb", Replicas: 2, Devices: ReplicatedDevices{All: true}}}
	_, err := Build(inventory8(), c)
	require.ErrorContains(t, err, "sharing.timeSlicing.resources[0].rename")
	require.ErrorContains(t, err, "merge")
}

func ptrTo[T any](v T) *T { return &v }

// TestConfigSizeCap: a 50 MB file once took 65 s and 1.8 GB; anything over
// MaxConfigBytes is refused before parsing.
func TestConfigSizeCap(t *testing.T) {
	big := []byte("version: v1\n# " + strings.Repeat("x", MaxConfigBytes) + "\n")
	_, err := Parse(big)
	require.ErrorContains(t, err, "more than the 1048576 allowed")
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, big, 0o600))
	_, err = Load(path)
	require.ErrorContains(t, err, "larger than the 1048576 bytes allowed")
	// Just under the cap loads.
	ok := []byte("version: v1\n# " + strings.Repeat("x", MaxConfigBytes-20) + "\n")
	require.NoError(t, os.WriteFile(path, ok, 0o600))
	_, err = Load(path)
	require.NoError(t, err)
}

// TestUnknownFieldPath: unknown fields are named by their path, once.
func TestUnknownFieldPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replica: 2}]}}", `unknown field "sharing.timeSlicing.resources[0].replica"`},
		{"version: v1\nflags: {plugin: {passDevicesSpecs: true}}", `unknown field "flags.plugin.passDevicesSpecs"`},
		{"version: v1\nhealth: {recovery: {check: 3}}", `unknown field "health.recovery.check"`},
		{"version: v1\nbogus: 1", `unknown field "bogus"`},
	} {
		_, err := Parse([]byte(tc.in))
		require.ErrorContains(t, err, tc.want)
		require.Equal(t, 1, strings.Count(err.Error(), "unknown field"), err.Error())
	}
	// Keys that differ only in case load, as in NVIDIA's plugin.
	c, err := Parse([]byte("version: v1\nflags: {MigStrategy: mixed}"))
	require.NoError(t, err)
	require.Equal(t, MIGStrategyMixed, *c.Flags.MigStrategy)
	// Duplicate keys are an error.
	_, err = Parse([]byte("version: v1\nversion: v1\n"))
	require.Error(t, err)
}
