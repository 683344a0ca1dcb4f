package sharing

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// inventory8 is 8 GPUs (indexes 0-7), GPU 0 MIG-enabled with one 1g.5gb.
func inventory8() *nvml.Inventory {
	inv := &nvml.Inventory{}
	for i := range 8 {
		inv.GPUs = append(inv.GPUs, nvml.GPU{Index: i, Minor: i, UUID: "GPU-" + strconv.Itoa(i+1), NUMANode: -1})
	}
	inv.GPUs[0].MIGEnabled = true
	inv.MIG = []nvml.MIGDevice{{UUID: "MIG-a", ParentIndex: 0, ParentUUID: "GPU-1", Profile: "1g.5gb", GIID: 1}}
	return inv
}

// TestConfigAgainstTheNode: at startup gpupackDevices is checked against
// the discovered GPUs; naming a GPU the node lacks turned sharing off (or
// clamped a count) silently. (The replicas are renamed: gpupackDevices
// without a rename is refused on its own, TestSomeDevicesSharedNeedARename
// in pkg/config/v1.)
func TestConfigAgainstTheNode(t *testing.T) {
	tests := []struct {
		name, ts, want string
	}{
		{"index 99", `resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [1, 99]}]`,
			"sharing.timeSlicing.resources[0].gpupackDevices[1]: Invalid value: 99: no GPU with index 99 on this node (8 GPUs)"},
		{"unknown UUID", `resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [GPU-2, GPU-nope]}]`,
			"sharing.timeSlicing.resources[0].gpupackDevices[1]: Invalid value: \"GPU-nope\""},
		{"MIG index 0:1", `resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2, gpupackDevices: ["0:1"]}]`,
			"sharing.timeSlicing.resources[0].gpupackDevices[0]: Invalid value: \"0:1\": no MIG device 1 on GPU 0"},
		// 7 whole GPUs (GPU 0 is MIG): a count of 99 would be clamped to 7, 8 too.
		{"count 99 on 8 GPUs", `resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: 99}]`,
			"sharing.timeSlicing.resources[0].gpupackDevices: Invalid value: 99: this node has 7 nvidia.com/gpu devices"},
		{"count 8 of 7", `resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: 8}]`,
			"this node has 7 nvidia.com/gpu devices"},
		{"rename to a new name", `resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/gpu-shared, replicas: 2}]`, ""},
		// NVIDIA's devices is ignored: an index the node lacks is no error.
		{"NVIDIA devices ignored", `resources: [{name: nvidia.com/gpu, replicas: 2, devices: [1, 99]}]`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := configv1.Parse([]byte("version: v1\nflags: {migStrategy: mixed}\nsharing:\n  timeSlicing:\n    renameByDefault: true\n    " + tc.ts + "\n"))
			require.NoError(t, err, "valid on its own")
			_, err = Build(inventory8(), c)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	// Exactly the node's devices: fine; the MIG device by index and by UUID.
	for _, mig := range []string{`[MIG-a]`, `["0:0"]`} {
		c, err := configv1.Parse([]byte("version: v1\nflags: {migStrategy: mixed}\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: 7}, {name: nvidia.com/mig-1g.5gb, replicas: 2, gpupackDevices: " + mig + "}]}}"))
		require.NoError(t, err)
		res, err := Build(inventory8(), c)
		require.NoError(t, err)
		// 7 whole GPUs x 2 replicas; 1 MIG device x 2 replicas.
		require.Equal(t, map[string]int{"nvidia.com/gpu.shared": 14, "nvidia.com/mig-1g.5gb.shared": 2}, counts(res), mig)
	}
	// A GPU that discovery could not read may be the UUID meant: no error.
	inv := inventory8()
	inv.GPUs[5].UUID = nvml.PlaceholderUUID(5)
	c, err := configv1.Parse([]byte("version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [GPU-6]}]}}"))
	require.NoError(t, err)
	_, err = Build(inv, c)
	require.NoError(t, err)
}

// TestNVIDIADevicesAndRenameIgnored: the same file advertises the same
// capacity as NVIDIA's plugin, which shares every device of the resource
// and ignores rename.
func TestNVIDIADevicesAndRenameIgnored(t *testing.T) {
	c, err := configv1.Parse([]byte("sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/ts, replicas: 4, devices: [0, 1]}]}}"))
	require.NoError(t, err)
	res, err := Build(inventory(4, nil), c)
	require.NoError(t, err)
	// 4 GPUs x 4 replicas, under nvidia.com/gpu.
	require.Equal(t, map[string]int{"nvidia.com/gpu": 16}, counts(res))
}

// TestBuildRenameOntoNodeDevices: the dynamic check for names the static
// one cannot know: MIG devices advertised under mig-<profile> and a
// resource renamed to exactly that.
func TestBuildRenameOntoNodeDevices(t *testing.T) {
	c := configv1.Default()
	c.Flags.MigStrategy = ptrTo(configv1.MIGStrategyMixed)
	c.Sharing.TimeSlicing.Resources = []configv1.ReplicatedResource{{Name: ResourceGPU, GPUPackRename: "nvidia.com/mig-1g.5gb", Replicas: 2}}
	_, err := Build(inventory8(), c)
	require.ErrorContains(t, err, "sharing.timeSlicing.resources[0].gpupackRename")
	require.ErrorContains(t, err, "merge")
}

func ptrTo[T any](v T) *T { return &v }
