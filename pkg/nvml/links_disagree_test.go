package nvml_test

import (
	"fmt"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// Two GPUs that count different NVLink lanes to each other (a lane reads down
// at one end only, or one end names the wrong peer) keep the lanes both ends
// report, with a warning, instead of failing discovery of the whole node.
// DGX-1 V100 wiring: GPU 0's links 0->1, 1->2, 2,3->3, 4,5->4, so
// 0-1 NV1, 0-2 NV1, 0-3 NV2, 0-4 NV2.
func TestDiscoverNVLinkEndsDisagree(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, m *fake.Machine)
		// lanes are the wanted NVLink lanes of GPU 0 to GPUs 1..4.
		lanes [5]int
		// warnings are the pairs logged as disagreeing: gpu, peer, lanes,
		// peerLanes, using.
		warnings [][5]int
	}{
		{
			// GPU 0 reads its link 3 (to GPU 3) down, GPU 3 both its
			// lanes to GPU 0 up: 1 vs 2, min(1, 2) = 1.
			name: "one side reads a lane down",
			break_: func(_ *testing.T, m *fake.Machine) {
				d := m.Device(0)
				orig := d.GetNvLinkStateFunc
				d.GetNvLinkStateFunc = func(link int) (gonvml.EnableState, gonvml.Return) {
					if link == 3 {
						return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
					}
					return orig(link)
				}
			},
			lanes:    [5]int{0, 1, 1, 1, 2},
			warnings: [][5]int{{0, 3, 1, 2, 1}},
		},
		{
			// Both ends take one of the two 0-3 lanes down: they agree
			// on 2 - 1 = 1 lane, nothing to warn about.
			name: "both sides read a lane down",
			break_: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.LinkDown(0, 3, 1))
			},
			lanes: [5]int{0, 1, 1, 1, 2},
		},
		{
			name:   "no lane down",
			break_: func(*testing.T, *fake.Machine) {},
			lanes:  [5]int{0, 1, 1, 2, 2},
		},
		{
			// Every link of GPU 0 reaches a bus ID that is no GPU of the
			// node: GPU 0 counts no lanes, its peers 1, 1, 2, 2 to it:
			// min(0, n) = 0 for each pair.
			name: "one side reaches an unknown GPU",
			break_: func(_ *testing.T, m *fake.Machine) {
				m.Device(0).GetNvLinkRemotePciInfoFunc = func(int) (gonvml.PciInfo, gonvml.Return) {
					return fake.PciInfo("0000:ee:00.0", 0), gonvml.SUCCESS
				}
			},
			lanes:    [5]int{0, 0, 0, 0, 0},
			warnings: [][5]int{{0, 1, 0, 1, 0}, {0, 2, 0, 1, 0}, {0, 3, 0, 2, 0}, {0, 4, 0, 2, 0}},
		},
		{
			// GPU 0 claims its 2 lanes to GPU 3 go to GPU 1: GPU 0 sees
			// 1 + 2 = 3 lanes to GPU 1, GPU 1 sees 1: min(3, 1) = 1; GPU 0
			// sees 0 lanes to GPU 3, GPU 3 sees 2: min(0, 2) = 0.
			name: "one side names the wrong peer",
			break_: func(_ *testing.T, m *fake.Machine) {
				d := m.Device(0)
				orig := d.GetNvLinkRemotePciInfoFunc
				bus1 := m.BusID(1)
				d.GetNvLinkRemotePciInfoFunc = func(link int) (gonvml.PciInfo, gonvml.Return) {
					if link == 2 || link == 3 {
						return fake.PciInfo(bus1, 0), gonvml.SUCCESS
					}
					return orig(link)
				}
			},
			lanes:    [5]int{0, 1, 1, 0, 2},
			warnings: [][5]int{{0, 1, 3, 1, 1}, {0, 3, 0, 2, 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGX1V100)
			require.NoError(t, err)
			tc.break_(t, m)
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			lib := nvml.New(m.Interface(), nvml.WithLogger(logger))
			require.NoError(t, lib.Init())
			inv, err := lib.Discover()
			require.NoError(t, err)
			require.Len(t, inv.GPUs, 8)
			for _, g := range inv.GPUs {
				require.NoError(t, g.Degraded, "GPU %d", g.Index)
			}
			for peer := 1; peer <= 4; peer++ {
				require.Equal(t, tc.lanes[peer], inv.Links[0][peer].NVLinks, "lanes 0-%d", peer)
				require.Equal(t, inv.Links[0][peer], inv.Links[peer][0], "link %d-0", peer)
				require.False(t, inv.Links[0][peer].NVSwitch, "link 0-%d", peer)
			}
			// GPUs 5..7 are untouched: 5-6 NV2 (DGX-1 V100).
			require.Equal(t, 2, inv.Links[5][6].NVLinks)

			var lines []string
			for _, l := range strings.Split(logger.GetSink().(ktesting.Underlier).GetBuffer().String(), "\n") {
				if strings.Contains(l, "disagree on their NVLink lanes") {
					lines = append(lines, l)
				}
			}
			require.Len(t, lines, len(tc.warnings), "warnings:\n%s", strings.Join(lines, "\n"))
			for k, w := range tc.warnings {
				for _, want := range []string{
					fmt.Sprintf(`gpu="%d (%s)"`, w[0], m.UUID(w[0])),
					fmt.Sprintf(`peer="%d (%s)"`, w[1], m.UUID(w[1])),
					fmt.Sprintf("lanes=%d", w[2]),
					fmt.Sprintf("peerLanes=%d", w[3]),
					fmt.Sprintf("using=%d", w[4]),
				} {
					require.Contains(t, lines[k], want)
				}
			}
		})
	}
}
