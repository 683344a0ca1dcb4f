package deviceplugin_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// servedDGX1 is a DGX-1 plugin registered with an in-process kubelet in a
// directory of its own, serving all 8 GPUs, and its first Plugin
// (nvidia.com/gpu) with the path of the kubelet's registration socket.
func servedDGX1(t *testing.T) (k *kubelet, p *plugin, pl *deviceplugin.Plugin, dir, kubeletSocket string) {
	t.Helper()
	dir = socketDir(t)
	k = startKubelet(t, dir)
	p = startPlugin(t, dir, pluginOpts{machine: fake.DGX1V100, kubelet: k})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	return k, p, p.mgr.Plugins()[0], dir, filepath.Join(dir, deviceplugin.KubeletSocketName)
}

// ourSockets are the gpupack sockets in dir.
func ourSockets(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "gpupack-*.sock"))
	require.NoError(t, err)
	return paths
}

// stop ends the plugin's Run for good (before the test's cleanup, which
// then finds it done).
func (p *plugin) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	require.NoError(t, <-p.done)
	p.done <- nil // for the cleanup
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
	k, _, pl, dir, kubeletSocket := servedDGX1(t)
	ctx := context.Background()
	seen := map[string]bool{pl.Socket(): true}
	for i := range 30 {
		require.NoError(t, pl.Serve(ctx, dir), "serve %d", i)
		require.False(t, seen[pl.Socket()], "serve %d reuses a socket path", i)
		seen[pl.Socket()] = true
		require.NoError(t, pl.Register(ctx, kubeletSocket), "register %d", i)
	}
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	require.Equal(t, []string{pl.Socket()}, ourSockets(t, dir), "each Serve removes the previous socket")
}

// TestRegisterTwiceIsOnce: a second registration of the same server with
// the same kubelet (a retry racing the kubelet.sock watch) is not sent. The
// kubelet refuses one on a path it holds and, refusing it, forgets the
// first client: it then kept advertising the GPUs after the plugin had gone
// and sent allocations to a dead socket (found by review).
func TestRegisterTwiceIsOnce(t *testing.T) {
	k, p, pl, _, kubeletSocket := servedDGX1(t)
	for range 3 {
		require.NoError(t, pl.Register(context.Background(), kubeletSocket))
	}
	require.True(t, pl.RegisteredWith(kubeletSocket))
	_, _, err := k.allocate("served", "nvidia.com/gpu", 8, nil)
	require.NoError(t, err)

	// The plugin goes: the kubelet must see it gone (allocatable 0), not
	// keep a forgotten endpoint.
	p.stop(t)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 0})
}

// TestKubeletCrashWithStaleSocket: a kubelet that dies without removing
// kubelet.sock, restarted over a directory slow to clean (2000 files). The
// new kubelet removes our socket before the stale kubelet.sock, so we serve
// again and our first registration hits the dead socket and is retried;
// the new kubelet.sock then registers the same server from the watch. Only
// one registration may reach the kubelet: with two, it forgot our client,
// and after the plugin stopped it still showed 8 allocatable GPUs (4 runs
// in 10 before the fix, found by review).
func TestKubeletCrashWithStaleSocket(t *testing.T) {
	dir := socketDir(t)
	for i := range 2000 {
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("filler-%05d", i)), nil, 0o600))
	}
	k := startKubelet(t, dir)
	p := startPlugin(t, dir, pluginOpts{machine: fake.DGX1V100})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	k.Stop()
	l, err := net.Listen("unix", filepath.Join(dir, deviceplugin.KubeletSocketName))
	require.NoError(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false) // the crashed kubelet's socket stays
	require.NoError(t, l.Close())
	k = startKubelet(t, dir)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	require.EventuallyWithT(t, func(c *assertCollect) {
		_, _, err := k.allocate(fmt.Sprintf("after-%d", time.Now().UnixNano()), "nvidia.com/gpu", 8, nil)
		requireEqualCollect(c, nil, err)
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, []string{p.mgr.Plugins()[0].Socket()}, ourSockets(t, dir))

	time.Sleep(300 * time.Millisecond) // past the first retry (50 ms)
	p.stop(t)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 0})
}
