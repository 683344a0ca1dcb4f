package deviceplugin_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func TestRegistrationAndCapacity(t *testing.T) {
	sevenSmall := []string{"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"}
	tests := []struct {
		name string
		o    pluginOpts
		want map[string]int64
	}{
		{"dgx-h100 whole", pluginOpts{machine: "dgx-h100"}, map[string]int64{"nvidia.com/gpu": 8}},
		{
			"dgx-a100 mixed MIG",
			pluginOpts{machine: "dgx-a100", config: "version: v1\nflags: {migStrategy: mixed}",
				fake: []fake.Option{fake.WithMIG(map[int][]string{
					0: sevenSmall,
					1: {"3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"},
					2: {"7g.40gb"},
				})}},
			// GPUs 3-7 whole = 5; 1g.5gb: 7 on GPU0 + 2 on GPU1 = 9.
			map[string]int64{"nvidia.com/gpu": 5, "nvidia.com/mig-1g.5gb": 9, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-7g.40gb": 1},
		},
		{
			"time-sliced renamed",
			pluginOpts{machine: "dgx-a100", config: "version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 10, gpupackDevices: [0, 1]}]}}"},
			// GPUs 0,1 x 10 replicas = 20 shared; GPUs 2-7 whole = 6.
			map[string]int64{"nvidia.com/gpu.shared": 20, "nvidia.com/gpu": 6},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, _ := setup(t, tt.o)
			k.waitCounts(tt.want)
		})
	}
}

// TestReservedAtOnceStaysRegistered is the flake of TestOneBadGPUAtStart
// (1 run in ~40): a plugin that serves again and registers before the
// kubelet has noticed its previous server's stream end. On one socket path
// the kubelet refused the registration ("device plugin already connected")
// and, in refusing it, lost the old client whose end would have freed the
// path: every retry was refused and the GPUs stayed at the old count. Each
// Serve now has a path of its own; here 30 back-to-back re-serves leave the
// kubelet with all 8 GPUs and one socket of ours in the directory.
func TestReservedAtOnceStaysRegistered(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	p := startPlugin(t, dir, pluginOpts{machine: fake.DGX1V100, kubelet: k})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	pl := p.mgr.Plugins()[0]
	kubeletSocket := filepath.Join(dir, deviceplugin.KubeletSocketName)
	ctx := context.Background()
	seen := map[string]bool{pl.Socket(): true}
	for i := range 30 {
		require.NoError(t, pl.Serve(ctx, dir), "serve %d", i)
		require.False(t, seen[pl.Socket()], "serve %d reuses a socket path", i)
		seen[pl.Socket()] = true
		require.NoError(t, pl.Register(ctx, kubeletSocket), "register %d", i)
	}
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	ours, err := filepath.Glob(filepath.Join(dir, "gpupack-*.sock"))
	require.NoError(t, err)
	require.Equal(t, []string{pl.Socket()}, ours, "each Serve removes the previous socket")
}
