package deviceplugin_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
