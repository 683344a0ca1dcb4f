package topology

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLaneGBps(t *testing.T) {
	tests := []struct {
		version int
		want    float64
	}{
		{version: 1, want: 20}, // P100
		{version: 2, want: 25}, // V100
		{version: 3, want: 25}, // A100: 12 lanes x 25 = 300 GB/s one way
		{version: 4, want: 25}, // H100: 18 x 25 = 450
		{version: 5, want: 50}, // B200: 18 x 50 = 900
		{version: 6, want: 50}, // Rubin: 1800 one way, read as 36 x 50 (never below NVLink 5)
		{version: 0, want: 25}, // unknown
		{version: 9, want: 25}, // a version not yet known
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, LaneGBps(tc.version), "NVLink %d", tc.version)
	}
	// Every NVLink lane beats every PCIe class (the class order is the
	// bandwidth order below NVLink).
	for v := 0; v <= 9; v++ {
		require.Greater(t, LaneGBps(v), float64(SameBoardGBps), "NVLink %d", v)
	}
}
