package topology_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestValidateValid(t *testing.T) {
	for _, tc := range append(testNodes(), namedNode{"mig", fixture.MixedStates("dgxa100")}) {
		require.NoError(t, tc.node.Validate(), tc.name)
	}
	// The diagonal is ignored, as long as it holds a known class.
	n := fixture.DGX1V100("dgx1")
	n.Links[2][2] = topology.Link{Class: topology.ClassNVLink}
	require.NoError(t, n.Validate())
	// Compute instances of one GPU instance share its slices.
	n = fixture.MixedStates("dgxa100")
	n.MIG = append(n.MIG, topology.MIGDevice{UUID: "MIG-cccc", Parent: 0, Profile: "1c.3g.20gb", Start: 0, Size: 4})
	require.NoError(t, n.Validate())
}

// TestValidateReportsAll: every problem is reported, not just the first.
func TestValidateReportsAll(t *testing.T) {
	n := fixture.DGX1V100("dgx1")
	n.GPUs[1].Index = 5
	n.GPUs[2].Replicas = -3
	n.Links[0][4].NVLinks = 1 // 2 on the other side
	n.MIG = []topology.MIGDevice{{UUID: "MIG-x", Parent: 10, Size: 1}}
	err := n.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"GPU at position 1 has index 5",
		"GPU 2 has -3 replicas",
		"link 4-0 (NV2) differs from link 0-4 (NV1)",
		"MIG device 0 has parent GPU 10",
	} {
		require.ErrorContains(t, err, want)
	}
}

// TestValidateMIGSlicesOverflow: Start+Size overflowed for a Start near
// MaxInt and passed; every placement outside [0, MaxMIGSlices) is rejected.
func TestValidateMIGSlicesOverflow(t *testing.T) {
	const maxInt = int(^uint(0) >> 1)
	for _, tc := range []struct {
		start, size int
		ok          bool
	}{
		{start: maxInt, size: 1},      // the input: MaxInt+1 wraps negative
		{start: maxInt - 3, size: 7},  // wraps too
		{start: 1, size: maxInt},      // size alone too large
		{start: 0, size: maxInt},      //
		{start: -1, size: 2},          //
		{start: 7, size: 2},           // 7+2 = 9 > 8
		{start: 8, size: 1},           // 8+1 > 8
		{start: 7, size: 1, ok: true}, // the last slice
		{start: 0, size: 8, ok: true}, // the whole GPU (7g)
	} {
		n := fixture.MixedStates("dgxa100")
		n.MIG[0].Start, n.MIG[0].Size = tc.start, tc.size
		err := n.Validate()
		if tc.ok {
			require.NoError(t, err, "start %d size %d", tc.start, tc.size)
			continue
		}
		require.ErrorContains(t, err, "MIG device 0 has slices", "start %d size %d", tc.start, tc.size)
	}
}

// TestValidateDeviceNames: a GPU or MIG UUID must be able to name a kubelet
// device and its replicas (deviceid.ValidateUUID), and a MIG device's
// profile a resource (nvidia.com/mig-<profile>). Such a node was accepted
// and scored; the Binding the scheduler then wrote was refused every time.
func TestValidateDeviceNames(t *testing.T) {
	long := "GPU-" + strings.Repeat("a", 250) // 254 bytes: 254 + len("::") + 10 digits > 256
	for _, tc := range []struct {
		name string
		edit func(n *topology.Node)
		want string // "" for valid
	}{
		{"plain UUIDs", func(*topology.Node) {}, ""},
		{"UUID with a space", func(n *topology.Node) { n.GPUs[0].UUID = "GPU a" }, `GPU 0: device ID "GPU a": contains a space`},
		{"UUID with NUL", func(n *topology.Node) { n.GPUs[1].UUID = "GPU-\x00" }, "GPU 1: device ID"},
		{"UUID with a newline", func(n *topology.Node) { n.GPUs[1].UUID = "GPU-\n" }, "contains a space, control or invalid character"},
		{"UUID too long for its replica IDs", func(n *topology.Node) { n.GPUs[2].UUID = long }, "longer than 244 bytes"},
		{"UUID of 244 bytes", func(n *topology.Node) { n.GPUs[2].UUID = long[:244] }, ""},
		{"UUID with the replica separator", func(n *topology.Node) { n.GPUs[3].UUID = "GPU-1::2" }, `contains the replica separator "::"`},
		{"MIG UUID with a tab", func(n *topology.Node) { n.MIG[0].UUID = "MIG-\tx" }, "MIG device 0: device ID"},
		{"MIG profile empty", func(n *topology.Node) { n.MIG[0].Profile = "" }, `MIG device 0 has MIG profile ""`},
		{"MIG profile with a slash", func(n *topology.Node) { n.MIG[1].Profile = "a b/c" }, `MIG device 1 has MIG profile "a b/c"`},
		{"MIG profile with media extensions", func(n *topology.Node) { n.MIG[1].Profile = "1g.10gb+me" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := fixture.MixedStates("dgxa100")
			require.NotEmpty(t, n.MIG)
			tc.edit(n)
			err := n.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// IsMIGProfileName: NVIDIA's names, as users' config files must write them.
func TestIsMIGProfileName(t *testing.T) {
	for p, want := range map[string]bool{
		"1g.5gb": true, "7g.80gb": true, "1c.2g.10gb": true, "1g.10gb+me": true, "1g.20gb+me.all": true,
		"1g.24gb+gfx": true, "1g.12gb-me": true,
		"": false, "banana": false, "1g.10GB": false, "1g.5gb.shared": false, "g.5gb": false, "1g.gb": false,
		"1g 5gb": false, "mig-1g.5gb": false,
	} {
		require.Equal(t, want, topology.IsMIGProfileName(p), p)
	}
}
