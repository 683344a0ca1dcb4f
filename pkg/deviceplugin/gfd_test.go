package deviceplugin_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// The Manager's GFD facts: the inventory (MIG devices included even under
// strategy none, as GFD sees them), the host files under HostRoot, and the
// config's MIG strategy, sharing and flags.gfd.
func TestManagerGFD(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}}))
	require.NoError(t, err)
	lib := m.Lib(t)
	root := t.TempDir()
	require.NoError(t, m.WriteHostFiles(root))
	for _, tc := range []struct {
		name, config string
		hostRoot     string
		check        func(t *testing.T, n *gfd.Node)
	}{
		{"defaults", "", root, func(t *testing.T, n *gfd.Node) {
			require.Equal(t, "none", n.MIGStrategy)
			require.Equal(t, gfd.Sharing{Strategy: "none"}, n.Sharing)
			require.False(t, n.NoTimestamp)
			require.Equal(t, "DGXA100 920-23687-2530-000", n.MachineType)
			require.Len(t, n.GPUs, 8)
			require.Len(t, n.MIG, 2, "GFD sees MIG devices whatever the strategy")
			require.Equal(t, nvml.PCIClass3D, n.GPUs[0].PCIClass)
			require.Empty(t, n.Unread)
		}},
		{"MIG mixed, time-slicing, no timestamp", `
flags: {migStrategy: mixed, gfd: {noTimestamp: true}}
sharing: {timeSlicing: {resources: [{name: nvidia.com/mig-1g.5gb, replicas: 3}]}}`, root, func(t *testing.T, n *gfd.Node) {
			require.Equal(t, "mixed", n.MIGStrategy)
			require.True(t, n.NoTimestamp)
			require.Equal(t, gfd.Sharing{Strategy: "time-slicing", Resources: map[string]gfd.Replication{"nvidia.com/mig-1g.5gb": {Replicas: 3}}}, n.Sharing)
		}},
		{"no host root", "", "", func(t *testing.T, n *gfd.Node) {
			require.Empty(t, n.MachineType)
			require.Zero(t, n.GPUs[0].PCIClass)
		}},
		{"a machine type file that is not there", "flags: {gfd: {machineTypeFile: /nope}}", root, func(t *testing.T, n *gfd.Node) {
			require.Empty(t, n.MachineType)
			require.Len(t, n.Unread, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configv1.Parse([]byte("version: v1\n" + tc.config))
			require.NoError(t, err)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), HostRoot: tc.hostRoot})
			require.NoError(t, err)
			n := mgr.GFD()
			require.Same(t, n, mgr.GFD(), "read once")
			tc.check(t, n)
		})
	}
}
