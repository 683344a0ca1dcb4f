package deviceplugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestMIGLayoutChangedUnderRunningPlugin: MIG devices replaced or destroyed
// under a running plugin (NVIDIA's mig-manager, nvidia-smi mig) must not
// stay advertised: the plugin never discovered the node again, and the
// kubelet gave pods MIG UUIDs that no longer existed. The resync check
// reads the layout and Run ends with ErrRediscover naming the GPU; the next
// discovery serves the new layout, or names the GPU left with MIG mode on
// and no MIG device.
func TestMIGLayoutChangedUnderRunningPlugin(t *testing.T) {
	tests := []struct {
		name     string
		profiles []string
		// want are the resources the next Manager serves; wantErr its
		// error instead.
		want    map[string]int
		wantErr string
	}{
		// GPU 0: 3g+3g -> 7g; GPU 1 keeps its 7g; GPUs 2-7 whole.
		{name: "replaced", profiles: []string{"7g.40gb"}, want: map[string]int{"nvidia.com/gpu": 6, "nvidia.com/mig-7g.40gb": 2}},
		{name: "destroyed", wantErr: "GPU 0 (GPU-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb", "3g.20gb"}, 1: {"7g.40gb"}}))
			require.NoError(t, err)
			lib := m.Lib(t)
			cfg, err := configv1.Parse([]byte("version: v1\nflags: {migStrategy: mixed}"))
			require.NoError(t, err)
			dir := socketDir(t)
			clk := testingclock.NewFakeClock(time.Now())
			opts := deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, Clock: clk}
			mgr, err := deviceplugin.New(opts)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- mgr.Run(ctx) }()
			// GPUs 2-7 whole, mig-3g.20gb, mig-7g.40gb: one socket each.
			require.Eventually(t, func() bool { return len(ourSockets(t, dir)) == 3 }, 10*time.Second, time.Millisecond)

			require.NoError(t, m.ReconfigureMIG(0, tc.profiles))
			runErr := resyncUntilRunEnds(t, clk, done, "Run went on serving MIG devices that are gone")
			require.ErrorIs(t, runErr, deviceplugin.ErrRediscover)
			require.ErrorContains(t, runErr, "GPU 0 (GPU-")
			require.Empty(t, ourSockets(t, dir), "the old plugins stopped")

			next, err := deviceplugin.New(opts)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "has MIG mode enabled and no MIG devices")
				return
			}
			require.NoError(t, err)
			got := map[string]int{}
			for _, p := range next.Plugins() {
				got[p.Name()] = len(p.Devices())
			}
			require.Equal(t, tc.want, got)
		})
	}
}
