//go:build realgpu

package deviceplugin_test

// Real-GPU smoke test (make gpu-smoke): the device plugin's resources on the
// real driver, served to the real kubelet device manager in-process, and one
// health watch. It reads only; it never changes MIG mode or resets a GPU.

import (
	"context"
	"os"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestRealGPUDevicePlugin(t *testing.T) {
	lib := nvml.New(gonvml.New())
	if err := lib.Init(); err != nil {
		t.Skipf("no NVIDIA driver: %v", err)
	}
	t.Cleanup(func() { _ = lib.Shutdown() })

	for _, strategy := range []string{configv1.MIGStrategyNone, configv1.MIGStrategyMixed} {
		t.Run("mig-strategy-"+strategy, func(t *testing.T) {
			cfg := configv1.Default()
			cfg.Flags.MigStrategy = &strategy
			dir := socketDir(t)
			k := startKubelet(t, dir)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir})
			require.NoError(t, err)
			inv := mgr.Inventory()
			t.Logf("driver %s, CUDA %s, %d GPUs, %d MIG devices", inv.DriverVersion, inv.CUDADriverVersion, len(inv.GPUs), len(inv.MIG))
			require.NoError(t, topology.Render(os.Stdout, mgr.Node()))
			want := map[string]int64{}
			for _, p := range mgr.Plugins() {
				want[p.Name()] = int64(len(p.Devices()))
				for _, d := range p.Devices() {
					t.Logf("resource %s device %s %s", p.Name(), d.ID, d.Health)
				}
			}
			require.NotEmpty(t, want)

			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
			done := make(chan error, 1)
			go func() { done <- mgr.Run(ctx) }()
			k.waitCounts(want) // registered, all healthy
			t.Logf("kubelet device manager capacity: %v", want)

			// One health watch: a few seconds of real NVML events; nothing
			// should turn unhealthy on an idle machine.
			time.Sleep(3 * time.Second)
			healthy, _ := k.counts()
			require.Equal(t, want, healthy)
			cancel()
			require.NoError(t, <-done)
		})
	}
}
