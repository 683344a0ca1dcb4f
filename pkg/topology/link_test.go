package topology

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLinkBandwidth(t *testing.T) {
	tests := []struct {
		name     string
		link     Link
		versionA int
		versionB int
		want     float64
	}{
		{"NVLink1 x4", Link{Class: ClassNVLink, NVLinks: 4}, 1, 1, 4 * 20},
		{"NVLink2 x2 (DGX-1)", Link{Class: ClassNVLink, NVLinks: 2}, 2, 2, 2 * 25},
		{"NVSwitch NVLink3 x12 (DGX A100)", Link{Class: ClassNVSwitch, NVLinks: 12}, 3, 3, 12 * 25},
		{"NVSwitch NVLink4 x18 (DGX H100)", Link{Class: ClassNVSwitch, NVLinks: 18}, 4, 4, 18 * 25},
		{"NVSwitch NVLink5 x18 (GB200)", Link{Class: ClassNVSwitch, NVLinks: 18}, 5, 5, 18 * 50},
		{"mixed versions use the smaller", Link{Class: ClassNVLink, NVLinks: 2}, 5, 1, 2 * 20},
		{"one version unknown uses the other", Link{Class: ClassNVLink, NVLinks: 2}, 0, 5, 2 * 50},
		{"both unknown: 25 per lane", Link{Class: ClassNVLink, NVLinks: 3}, 0, 0, 3 * 25},
		{"version out of range: 25 per lane", Link{Class: ClassNVLink, NVLinks: 1}, 9, 9, 25},
		{"NVLink with no lanes counts one", Link{Class: ClassNVLink}, 2, 2, 25},
		{"same board", Link{Class: ClassSameBoard}, 2, 2, 18},
		{"PIX", Link{Class: ClassPIX}, 0, 0, 16},
		{"PXB", Link{Class: ClassPXB}, 0, 0, 14},
		{"PHB", Link{Class: ClassPHB}, 0, 0, 12},
		{"NODE", Link{Class: ClassNODE}, 0, 0, 10},
		{"SYS", Link{Class: ClassSYS}, 0, 0, 6},
		{"unknown", Link{}, 0, 0, 4},
		{"invalid class counts as unknown", Link{Class: 200}, 0, 0, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{
				GPUs:  []GPU{{Index: 0, NVLinkVersion: tc.versionA}, {Index: 1, NVLinkVersion: tc.versionB}},
				Links: [][]Link{{{}, tc.link}, {tc.link, {}}},
			}
			require.Equal(t, tc.want, n.Bandwidth(0, 1))
			require.Equal(t, tc.want, n.Bandwidth(1, 0))
			require.Zero(t, n.Bandwidth(0, 0))
			require.Zero(t, n.Bandwidth(0, 2))
			require.Zero(t, n.Bandwidth(-1, 0))
		})
	}
}

func TestBandwidthMissingMatrix(t *testing.T) {
	n := &Node{GPUs: []GPU{{Index: 0}, {Index: 1}}}
	require.Equal(t, float64(UnknownGBps), n.Bandwidth(0, 1))
}

// TestClassOrder checks that for the PCIe classes the class order is the
// bandwidth order, and that one lane of the slowest NVLink beats them all.
func TestClassOrder(t *testing.T) {
	prev := 0.0
	for c := ClassUnknown; c <= ClassSameBoard; c++ {
		bw := Link{Class: c}.GBps(0)
		require.Greater(t, bw, prev, "class %v", c)
		prev = bw
	}
	require.Greater(t, Link{Class: ClassNVLink, NVLinks: 1}.GBps(1), prev)
	require.Greater(t, Link{Class: ClassNVSwitch, NVLinks: 1}.GBps(1), prev)
}

func TestLinkString(t *testing.T) {
	for _, tc := range []struct {
		link Link
		want string
	}{
		{Link{Class: ClassNVLink, NVLinks: 2}, "NV2"},
		{Link{Class: ClassNVSwitch, NVLinks: 12}, "NS12"},
		{Link{Class: ClassSameBoard}, "BRD"},
		{Link{Class: ClassPIX}, "PIX"},
		{Link{Class: ClassPXB}, "PXB"},
		{Link{Class: ClassPHB}, "PHB"},
		{Link{Class: ClassNODE}, "NODE"},
		{Link{Class: ClassSYS}, "SYS"},
		{Link{}, "?"},
		{Link{Class: 99}, "?"},
	} {
		require.Equal(t, tc.want, tc.link.String())
	}
}
