package deviceplugin_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestKubeletChurn: kubelet restarts back to back (twice, three times
// quickly), our socket removed while no kubelet runs, an XID while the
// kubelet is down: each new kubelet ends with the right healthy count and
// can allocate, and one socket of ours is left.
func TestKubeletChurn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		restarts int
		down     func(t *testing.T, p *plugin, dir string)
		want     int64
	}{
		{"twice quickly", 2, nil, 8},
		{"three times quickly", 3, nil, 8},
		{"our socket removed while the kubelet is down", 1, func(t *testing.T, p *plugin, dir string) {
			require.NoError(t, os.Remove(p.mgr.Plugins()[0].Socket()))
		}, 8},
		{"XID while the kubelet is down", 2, func(t *testing.T, p *plugin, dir string) {
			p.machine.InjectXID(4, 48)
			require.Eventually(t, func() bool { return !p.mgr.Health().Healthy(4) }, 5*time.Second, 5*time.Millisecond)
		}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := socketDir(t)
			k := startKubelet(t, dir)
			p := startPlugin(t, dir, pluginOpts{machine: fake.DGXH100})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			for i := range tc.restarts {
				k.Stop()
				if tc.down != nil && i == 0 {
					tc.down(t, p, dir)
				}
				k = startKubelet(t, dir)
			}
			k.waitCounts(map[string]int64{"nvidia.com/gpu": tc.want})
			n := 0
			require.Eventually(t, func() bool {
				n++
				ids, _, err := k.allocate("pod-"+strconv.Itoa(n), "nvidia.com/gpu", tc.want, nil)
				return err == nil && len(ids) == int(tc.want)
			}, 10*time.Second, 50*time.Millisecond)
			require.Eventually(t, func() bool { return len(ourSockets(t, dir)) == 1 }, 5*time.Second, 10*time.Millisecond,
				fmt.Sprintf("sockets: %v", ourSockets(t, dir)))
			k.Stop()
		})
	}
}
