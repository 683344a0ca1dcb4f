package deviceplugin_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// healthOf returns, per device ID of every resource, whether the plugin
// lists it healthy (what the next ListAndWatch update sends), and the
// published GPU health flags by index.
func healthOf(mgr *deviceplugin.Manager) (devices map[string]bool, gpus map[int]bool) {
	devices, gpus = map[string]bool{}, map[int]bool{}
	for _, p := range mgr.Plugins() {
		for _, d := range p.Devices() {
			devices[d.ID] = d.Health == pluginapi.Healthy
		}
	}
	for _, g := range mgr.Node().GPUs {
		gpus[g.Index] = g.Healthy
	}
	return devices, gpus
}

// TestMIGEventOnAGPUServedWhole: under migStrategy none a MIG-enabled GPU
// is advertised whole, so a fault of one of its GPU instances is a fault of
// the device a pod holds: the whole GPU goes unhealthy, in ListAndWatch and
// in gpupack.io/topology, as NVIDIA's plugin does (its MIG filter applies to
// MIG devices only). Under mixed only the MIG device does. A MIG device's
// mark carried over a rebuild to none takes its GPU out too.
func TestMIGEventOnAGPUServedWhole(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		carry    bool // the MIG device's mark comes from the Manager replaced (Options.Unhealthy)
		// gpu0: GPU 0's published health afterwards; mig: the MIG device's
		// listed health (mixed only).
		gpu0, mig bool
	}{
		{name: "none: the GPU served whole", strategy: "none", gpu0: false},
		{name: "none: a mark carried over a rebuild", strategy: "none", carry: true, gpu0: false},
		{name: "mixed: the MIG device only", strategy: "mixed", gpu0: true, mig: false},
		{name: "mixed: a mark carried over a rebuild", strategy: "mixed", carry: true, gpu0: true, mig: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb", "3g.20gb"}}))
			require.NoError(t, err)
			lib := m.Lib(t)
			inv, err := lib.Discover()
			require.NoError(t, err)
			var target nvml.MIGDevice
			for _, d := range inv.MIG {
				if d.ParentIndex == 0 {
					target = d
					break
				}
			}
			require.NotEmpty(t, target.UUID)
			cfg, err := configv1.Parse([]byte("version: v1\nflags: {migStrategy: " + tc.strategy + "}"))
			require.NoError(t, err)
			opts := deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir()}
			if tc.carry {
				opts.Unhealthy = []string{target.UUID}
			}
			mgr, err := deviceplugin.New(opts)
			require.NoError(t, err)
			if !tc.carry {
				mgr.Health().Handle(context.Background(), nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventXID, XID: 94, GIID: target.GIID, CIID: target.CIID})
			}
			devices, gpus := healthOf(mgr)
			require.Equal(t, tc.gpu0, gpus[0], "GPU 0 published health")
			for i := 1; i < 8; i++ {
				require.True(t, gpus[i], "GPU %d", i)
			}
			if tc.strategy == "none" {
				require.Equal(t, tc.gpu0, devices[m.UUID(0)], "GPU 0 listed to the kubelet")
				require.Equal(t, []string{m.UUID(0)}, mgr.Health().UnhealthyUUIDs(), "what the next rebuild carries")
			} else {
				h, ok := devices[target.UUID]
				require.True(t, ok)
				require.Equal(t, tc.mig, h)
			}
		})
	}
}
