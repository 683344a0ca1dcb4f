package deviceplugin_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/test/harness"
)

// TestHandoffKubeletRestartRegisteredBeforeItsSocketEvent is
// TestHandoffKubeletRestartInProcess in the order that made it flaky, held
// in place: the restarted kubelet removes the plugin's socket, then creates
// kubelet.sock, and the plugin handles the removal first: it serves again
// and registers with the new kubelet, which admits its batch ("early" then
// "late", by creation time) before the plugin handles kubelet.sock's
// creation. Each pod gets its own set: the plugin marks the batch when its
// registration reaches a kubelet it has not seen, before that kubelet can
// ask for an allocation. (Before, only the kubelet.sock event marked it:
// here after the admissions, so the handoff answered in arrival order and
// early got late's set, late early's.)
func TestHandoffKubeletRestartRegisteredBeforeItsSocketEvent(t *testing.T) {
	dir := socketDir(t)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(1)))
	ctx := klog.NewContext(context.Background(), logger)
	hk, err := harness.StartKubelet(ctx, dir)
	require.NoError(t, err)
	k := &kubelet{t: t, Kubelet: hk}
	pods := &fixture.PodLister{}
	h := deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(deviceplugin.NewPodResources(servePodResources(t, k))))

	// Once armed, the removal of ours is held until the new kubelet
	// listens (so that handling it registers with that kubelet), and the
	// creation of kubelet.sock, which comes after it, until the batch is
	// admitted.
	var armed atomic.Bool
	var ours atomic.Pointer[string]
	listening, admitted := make(chan struct{}), make(chan struct{})
	releaseRemove := sync.OnceFunc(func() { close(listening) })
	releaseCreate := sync.OnceFunc(func() { close(admitted) })
	kubeletSocket := filepath.Join(dir, harness.KubeletSocket)
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", handoff: h, beforeRun: func(m *deviceplugin.Manager) {
		deviceplugin.LoseDirEvents(m, func(ev fsnotify.Event) bool {
			if !armed.Load() {
				return false
			}
			switch {
			case ev.Has(fsnotify.Remove) && filepath.Clean(ev.Name) == *ours.Load():
				<-listening
			case ev.Has(fsnotify.Create) && filepath.Clean(ev.Name) == kubeletSocket:
				<-admitted
			}
			return false
		})
	}})
	t.Cleanup(hk.Stop) // before the plugin stops (cleanups run last first)
	t.Cleanup(func() { // a failed test does not leave the plugin's events held
		releaseRemove()
		releaseCreate()
	})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	socket := filepath.Clean(p.mgr.Plugins()[0].Socket())
	ours.Store(&socket)
	armed.Store(true)
	late := bound(t, "late", 20, "required", uuidOf(p, 0), uuidOf(p, 3))
	early := bound(t, "early", 10, "", uuidOf(p, 1), uuidOf(p, 6))
	require.NoError(t, hk.Restart(func() error {
		for _, pod := range []*v1.Pod{late, early} { // the informer's (bind) order
			pods.Add(pod)
			h.Observe(pod)
		}
		return nil
	}))
	releaseRemove()
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8}) // registered, kubelet.sock's event still held

	got := admitBatch(t, ctx, hk, late, early)
	require.Equal(t, map[string][]string{
		"early": sortedIDs([]string{uuidOf(p, 1), uuidOf(p, 6)}),
		"late":  sortedIDs([]string{uuidOf(p, 0), uuidOf(p, 3)}),
	}, got)
}
