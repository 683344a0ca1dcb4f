//go:build realgpu

package deviceplugin_test

// Real-GPU smoke test (make gpu-smoke): the device plugin's resources on the
// real driver, served to the real kubelet device manager in-process, one
// allocation per config, one health watch, the CDI spec written from the
// real driver's files and the GFD labels. It reads only; it never changes
// MIG mode or resets a GPU.

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/topology"
)

// realDriverRoot is where the real driver's files are read for the CDI
// spec: $GPUPACK_DRIVER_ROOT, else "/".
func realDriverRoot() string {
	if r := os.Getenv("GPUPACK_DRIVER_ROOT"); r != "" {
		return r
	}
	return "/"
}

func TestRealGPUDevicePlugin(t *testing.T) {
	lib := nvml.New(gonvml.New())
	if err := lib.Init(); err != nil {
		t.Skipf("no NVIDIA driver: %v", err)
	}
	t.Cleanup(func() { _ = lib.Shutdown() })

	tests := []struct {
		name   string
		config string // NVIDIA v1 config
		cdi    bool   // a CDI strategy: the spec is written and checked
	}{
		{name: "mig-strategy-none", config: "version: v1\nflags:\n  migStrategy: none\n"},
		{name: "mig-strategy-mixed", config: "version: v1\nflags:\n  migStrategy: mixed\n"},
		{name: "time-slicing-4", config: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n"},
		{name: "cdi-cri", cdi: true, config: "version: v1\nflags:\n  nvidiaDriverRoot: " + realDriverRoot() +
			"\n  plugin:\n    deviceListStrategy: cdi-cri\n    containerDriverRoot: " + realDriverRoot() + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configv1.Parse([]byte(tt.config))
			require.NoError(t, err)
			dir := socketDir(t)
			k := startKubelet(t, dir)
			cdiDir := ""
			if tt.cdi {
				cdiDir = t.TempDir()
			}
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, CDISpecDir: cdiDir, HostRoot: "/",
				Logger: ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))})
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
			if tt.name == "time-slicing-4" {
				// 4 replicas of each whole GPU: 4 x GPUs (no MIG on this config's GPUs).
				require.Equal(t, int64(4*len(inv.GPUs)), want["nvidia.com/gpu"])
			}

			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
			done := make(chan error, 1)
			go func() { done <- mgr.Run(ctx) }()
			k.waitCounts(want) // registered, all healthy
			t.Logf("kubelet device manager capacity: %v", want)

			if want["nvidia.com/gpu"] > 0 {
				ids, env, err := k.allocate("real-"+tt.name, "nvidia.com/gpu", 1, nil)
				require.NoError(t, err)
				require.Len(t, ids, 1)
				t.Logf("allocated %v, env %v", ids, env)
			}
			if tt.cdi {
				cache, err := cdi.NewCache(cdi.WithSpecDirs(cdiDir), cdi.WithAutoRefresh(false))
				require.NoError(t, err)
				require.Empty(t, cache.GetErrors(), "the CDI spec written from the real driver validates")
				devs := cache.ListDevices()
				sort.Strings(devs)
				t.Logf("CDI devices: %v", devs)
				require.NotEmpty(t, devs)
				// The driver's libraries are in the spec (nvcdi finds them
				// under the driver root, through its ld cache when they are
				// in no standard directory, as under /usr/local/nvidia).
				var driverLibs []string
				for _, v := range cache.ListVendors() {
					for _, s := range cache.GetVendorSpecs(v) {
						for _, m := range s.ContainerEdits.Mounts {
							base := filepath.Base(m.ContainerPath)
							if base == "libcuda.so."+inv.DriverVersion || base == "libnvidia-ml.so."+inv.DriverVersion {
								driverLibs = append(driverLibs, m.ContainerPath)
							}
						}
					}
				}
				require.Len(t, driverLibs, 2, "libcuda and libnvidia-ml of driver %s in the CDI spec", inv.DriverVersion)
				for _, v := range cache.ListVendors() {
					for _, s := range cache.GetVendorSpecs(v) {
						e := s.ContainerEdits
						t.Logf("spec %s: %d devices, %d mounts, %d hooks, env %v", s.GetPath(), len(s.Devices), len(e.Mounts), len(e.Hooks), e.Env)
						for _, m := range e.Mounts {
							if strings.Contains(m.HostPath, "libnvidia-ml") || strings.Contains(m.HostPath, "libcuda.so") || strings.Contains(m.HostPath, "nvidia-smi") {
								t.Logf("mount %s -> %s", m.HostPath, m.ContainerPath)
							}
						}
					}
				}
			}
			labels := mgr.GFD()
			if labels != nil {
				t.Logf("GFD node: %+v", *labels)
			}

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
