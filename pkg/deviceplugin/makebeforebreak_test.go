package deviceplugin_test

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

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
}
