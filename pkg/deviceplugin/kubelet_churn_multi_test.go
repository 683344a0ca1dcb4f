package deviceplugin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestChurnWithSeveralResources: the kubelet churn of TestKubeletChurn and
// our sockets removed by someone while the kubelet runs, on a node that
// serves two resources (GPU 0 time-shared in 4 replicas under
// nvidia.com/gpu.shared, GPUs 1-7 whole): every resource ends registered
// with the last kubelet with its healthy count, and one socket each.
func TestChurnWithSeveralResources(t *testing.T) {
	tests := []struct {
		name string
		// churn runs against the running kubelet and returns the kubelet
		// the test ends with.
		churn func(t *testing.T, k *kubelet, p *plugin, dir string) *kubelet
		want  map[string]int64
	}{
		{name: "three kubelet restarts quickly", churn: func(t *testing.T, k *kubelet, _ *plugin, dir string) *kubelet {
			for range 3 {
				k.Stop()
				k = startKubelet(t, dir)
			}
			return k
		}, want: map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7}},
		{name: "our sockets removed while the kubelet runs, three times quickly", churn: func(t *testing.T, k *kubelet, p *plugin, _ string) *kubelet {
			for range 3 {
				for _, pl := range p.mgr.Plugins() {
					if s := pl.Socket(); s != "" {
						_ = os.Remove(s) // may be served again meanwhile
					}
				}
			}
			return k
		}, want: map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7}},
		{name: "a socket removed right after a kubelet restart", churn: func(t *testing.T, k *kubelet, p *plugin, dir string) *kubelet {
			k.Stop()
			k = startKubelet(t, dir)
			for _, pl := range p.mgr.Plugins() {
				if s := pl.Socket(); s != "" {
					_ = os.Remove(s)
				}
			}
			return k
		}, want: map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7}},
		{name: "GPU 0 flaps while the kubelet restarts", churn: func(t *testing.T, k *kubelet, p *plugin, dir string) *kubelet {
			for range 3 {
				p.machine.InjectXID(0, 48)
				require.Eventually(t, func() bool { return !p.mgr.Health().Healthy(0) }, 5*time.Second, time.Millisecond)
				k.Stop()
				k = startKubelet(t, dir)
				require.Eventually(t, func() bool {
					p.clock.Step(10 * time.Second)
					return p.mgr.Health().Healthy(0)
				}, 10*time.Second, time.Millisecond)
			}
			p.machine.InjectXID(0, 48) // ends unhealthy: 0 shared replicas
			require.Eventually(t, func() bool { return !p.mgr.Health().Healthy(0) }, 5*time.Second, time.Millisecond)
			return k
		}, want: map[string]int64{"nvidia.com/gpu.shared": 0, "nvidia.com/gpu": 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := socketDir(t)
			k := startKubelet(t, dir)
			p := startPlugin(t, dir, pluginOpts{machine: fake.DGXA100, config: sharedGPU0})
			k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7})
			k = tc.churn(t, k, p, dir)
			k.waitCounts(tc.want)
			require.Eventually(t, func() bool {
				for _, pl := range p.mgr.Plugins() {
					if pl.Socket() == "" || !pl.RegisteredWith(dir+"/kubelet.sock") {
						return false
					}
					if _, err := os.Stat(pl.Socket()); err != nil {
						return false
					}
				}
				return len(ourSockets(t, dir)) == 2
			}, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("sockets: %v", ourSockets(t, dir)))
			// The kubelet can allocate what it counts.
			ids, _, err := k.allocate("pod-whole", "nvidia.com/gpu", 7, nil)
			require.NoError(t, err)
			require.Len(t, ids, 7)
			k.Stop()
		})
	}
}

// TestPluginDirMissingAtStart: without the kubelet's device-plugin
// directory (no kubelet device manager on this node) Run ends at once with
// an error naming it, serves nothing and creates nothing there: the
// DaemonSet's container fails and is restarted, as the manifest intends.
func TestPluginDirMissingAtStart(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		wantErr string
	}{
		{name: "missing", prepare: func(*testing.T, string) {}, wantErr: "no such file or directory"},
		{name: "a file in its place", prepare: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(dir, nil, 0o600))
		}, wantErr: "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), "device-plugins")
			tc.prepare(t, dir)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: m.Lib(t), Config: configv1.Default(), PluginDir: dir})
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() { done <- mgr.Run(context.Background()) }()
			select {
			case err := <-done:
				require.ErrorContains(t, err, dir)
				require.ErrorContains(t, err, tc.wantErr)
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not end")
			}
			for _, p := range mgr.Plugins() {
				require.Empty(t, p.Socket(), p.Name())
			}
			if tc.name == "missing" {
				_, err := os.Stat(dir)
				require.ErrorIs(t, err, os.ErrNotExist, "the directory is not created")
			}
		})
	}
}

// TestPluginDirRemovedWhileRunning: the device-plugin directory removed
// (or moved away) under a running plugin ends its watch: a kubelet.sock
// created in a new directory there would never be seen, and the node
// would keep no GPUs with the plugin alive. Run ends with an error naming
// the directory, so the container is restarted and starts over; before,
// it ran on unregistered for good.
func TestPluginDirRemovedWhileRunning(t *testing.T) {
	tests := []struct {
		name   string
		remove func(dir string) error
	}{
		// RemoveAll races the plugin, which serves again when its socket
		// goes (the directory is then not empty for a moment): retried, as
		// an admin's rm -rf would be.
		{name: "removed", remove: removeAllRetried},
		{name: "moved away", remove: func(dir string) error { return os.Rename(dir, dir+".old") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), "dp")
			require.NoError(t, os.Mkdir(dir, 0o755))
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: m.Lib(t), Config: configv1.Default(), PluginDir: dir})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- mgr.Run(ctx) }()
			require.Eventually(t, func() bool { return len(ourSockets(t, dir)) == 1 }, 10*time.Second, time.Millisecond)
			require.NoError(t, tc.remove(dir))
			select {
			case err := <-done:
				require.ErrorContains(t, err, "the device-plugin directory "+dir+" was removed")
			case <-time.After(10 * time.Second):
				t.Fatal("Run went on without its directory")
			}
		})
	}
}

// removeAllRetried removes dir and everything in it, retrying while a
// process still creates files in it (at most 100 tries, 10 ms apart).
func removeAllRetried(dir string) error {
	var err error
	for range 100 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}
