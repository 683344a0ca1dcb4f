package deviceplugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestLostDirectoryEvents: the device-plugin directory's events that tell
// the plugin to register again (kubelet.sock created, our socket removed)
// are lost, as a full inotify queue (fsnotify.ErrEventOverflow) or an event
// coalesced away loses them. The plugin must not stay unregistered for
// good: the overflow error, or else the slow resync ticker (on the
// Manager's clock), checks every plugin's socket and the kubelet's identity
// and serves or registers again. The kubelet ends with all 8 GPUs, which it
// can allocate, and one socket of ours is left.
func TestLostDirectoryEvents(t *testing.T) {
	tests := []struct {
		name string
		// churn loses its events; the kubelet the test ends with.
		churn func(t *testing.T, k *kubelet, p *plugin, dir string) *kubelet
		// wake makes the plugin look again: the overflow error, or the
		// resync tick.
		overflow bool
	}{
		{name: "kubelet restarted, tick", churn: restartKubelet},
		{name: "kubelet restarted, queue overflow", churn: restartKubelet, overflow: true},
		{name: "kubelet restarted twice, tick", churn: func(t *testing.T, k *kubelet, p *plugin, dir string) *kubelet {
			return restartKubelet(t, restartKubelet(t, k, p, dir), p, dir)
		}},
		{name: "our socket removed by someone, tick", churn: func(t *testing.T, k *kubelet, p *plugin, _ string) *kubelet {
			require.NoError(t, os.Remove(p.mgr.Plugins()[0].Socket()))
			return k
		}},
		{name: "our socket removed by someone, queue overflow", churn: func(t *testing.T, k *kubelet, p *plugin, _ string) *kubelet {
			require.NoError(t, os.Remove(p.mgr.Plugins()[0].Socket()))
			return k
		}, overflow: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := socketDir(t)
			k := startKubelet(t, dir)
			var lose atomic.Bool
			var inject chan<- error
			p := startPlugin(t, dir, pluginOpts{machine: fake.DGXH100, kubelet: k, beforeRun: func(m *deviceplugin.Manager) {
				inject = deviceplugin.LoseDirEvents(m, func(fsnotify.Event) bool { return lose.Load() })
			}})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			lose.Store(true)
			k = tc.churn(t, k, p, dir)
			if tc.overflow {
				inject <- fsnotify.ErrEventOverflow
			} else {
				p.clock.Step(deviceplugin.DefaultResyncPeriod)
			}
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			pl := p.mgr.Plugins()[0]
			require.Eventually(t, func() bool {
				_, err := os.Stat(pl.Socket())
				return err == nil && pl.RegisteredWith(filepath.Join(dir, deviceplugin.KubeletSocketName)) && pl.Connected() &&
					len(ourSockets(t, dir)) == 1
			}, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("sockets: %v", ourSockets(t, dir)))
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			n := 0
			require.Eventually(t, func() bool {
				n++
				ids, _, err := k.allocate(fmt.Sprintf("pod-%d", n), "nvidia.com/gpu", 8, nil)
				return err == nil && len(ids) == 8
			}, 10*time.Second, 50*time.Millisecond)
			k.Stop()
		})
	}
}

// restartKubelet stops k and starts a new kubelet in dir.
func restartKubelet(t *testing.T, k *kubelet, _ *plugin, dir string) *kubelet {
	k.Stop()
	return startKubelet(t, dir)
}
