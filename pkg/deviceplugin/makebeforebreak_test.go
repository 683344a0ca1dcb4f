package deviceplugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestSocketRemovedKeepsDevicesHealthy: when someone removes our socket the
// plugin serves again on a new one, and the kubelet must never be left
// without an endpoint for the resource meanwhile: a kubelet whose last
// endpoint disconnects marks every device unhealthy and refuses the pods
// it admits until the next endpoint's devices arrive (CI caught
// TestChurnWithSeveralResources in that window: "no healthy devices
// present"). The previous server now stops only once the new one is
// registered, so a watcher polling the kubelet's allocatable through
// several removals never sees fewer than the 8 GPUs of the DGX A100, and a
// pod asking for all 8 is admitted right after each re-registration.
func TestSocketRemovedKeepsDevicesHealthy(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	p := startPlugin(t, dir, pluginOpts{machine: fake.DGXA100})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	pl := pluginNamed(t, p.mgr, "nvidia.com/gpu")

	var lowest atomic.Int64
	lowest.Store(8)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			healthy, _ := k.counts()
			if n := healthy["nvidia.com/gpu"]; n < lowest.Load() {
				lowest.Store(n)
			}
		}
	})
	for round := range 5 {
		old := pl.Socket()
		require.NoError(t, os.Remove(old))
		require.Eventually(t, func() bool {
			s := pl.Socket()
			return s != "" && s != old && pl.RegisteredWith(dir+"/kubelet.sock")
		}, 10*time.Second, time.Millisecond, "round %d: served again and registered", round)
		name := fmt.Sprintf("pod-%d", round)
		ids, _, err := k.allocate(name, "nvidia.com/gpu", 8, nil)
		require.NoError(t, err, "round %d", round)
		require.Len(t, ids, 8)
		k.Forget(types.UID("uid-" + name)) // fixture's Named: UID "uid-<name>"
	}
	close(stop)
	wg.Wait()
	require.Equal(t, int64(8), lowest.Load(), "the kubelet's allocatable dropped while we served again")
	require.Len(t, ourSockets(t, dir), 1, "the previous servers' sockets are removed")
	// The previous servers are stopped, not only unlinked: the kubelet
	// keeps the stream of every endpoint it registered until that
	// endpoint's server ends it, so only the current server has one.
	require.Eventually(t, func() bool {
		open := deviceplugin.OpenStreams(pl)
		return len(open) == 1 && open[generationOf(t, pl.Socket())] == 1
	}, 10*time.Second, time.Millisecond, "streams by server: %v", deviceplugin.OpenStreams(pl))
}

// TestFailedServeKeepsPreviousServer: when the plugin cannot listen on its
// new socket, the previous server goes on serving the kubelet (its
// stream, and the kubelet's connection for Allocate, outlive the removed
// socket file): the kubelet keeps every device healthy and admits pods.
// The next resync serves again once it can, and only then stops the
// previous server. Before, a failed listen stopped the previous server
// at once, and the kubelet marked all 8 GPUs unhealthy.
func TestFailedServeKeepsPreviousServer(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	p := startPlugin(t, dir, pluginOpts{machine: fake.DGXA100})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	pl := pluginNamed(t, p.mgr, "nvidia.com/gpu")
	old := pl.Socket()
	gen := generationOf(t, old)

	// A non-empty directory where the next socket goes: listen cannot
	// remove it, so serving again fails until it is gone.
	block := strings.TrimSuffix(old, fmt.Sprintf("-%d.sock", gen)) + fmt.Sprintf("-%d.sock", gen+1)
	require.NoError(t, os.MkdirAll(filepath.Join(block, "x"), 0o700))
	require.NoError(t, os.Remove(old))
	// The removal's event is handled (the failed start logs); for a
	// second, the kubelet's allocatable never drops.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		healthy, _ := k.counts()
		require.Equal(t, int64(8), healthy["nvidia.com/gpu"], "the kubelet lost the previous server")
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, old, pl.Socket(), "still the previous server's")
	require.True(t, pl.Connected(), "the kubelet still streams from the previous server")
	ids, _, err := k.allocate("pod-a", "nvidia.com/gpu", 8, nil)
	require.NoError(t, err, "admitted through the previous server")
	require.Len(t, ids, 8)
	k.Forget(types.UID("uid-pod-a"))

	require.NoError(t, os.RemoveAll(block))
	require.Eventually(t, func() bool {
		p.clock.Step(deviceplugin.DefaultResyncPeriod)
		s := pl.Socket()
		return s != old && s != "" && pl.RegisteredWith(filepath.Join(dir, "kubelet.sock"))
	}, 10*time.Second, 10*time.Millisecond, "served again at a resync")
	require.Eventually(t, func() bool {
		open := deviceplugin.OpenStreams(pl)
		return len(open) == 1 && open[generationOf(t, pl.Socket())] == 1
	}, 10*time.Second, time.Millisecond, "the previous server stopped once the new one registered")
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
}

// generationOf is the server generation in a socket path's name
// (gpupack-<resource>-<instance>-<generation>.sock).
func generationOf(t *testing.T, socket string) uint64 {
	t.Helper()
	name := strings.TrimSuffix(filepath.Base(socket), ".sock")
	gen, err := strconv.ParseUint(name[strings.LastIndex(name, "-")+1:], 10, 64)
	require.NoError(t, err, socket)
	return gen
}
