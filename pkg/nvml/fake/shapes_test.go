package fake_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestShapesBuild: every extra shape builds, stays out of the catalog's
// Names (other packages hold written expectations for each of those), and
// unknown names list both.
func TestShapesBuild(t *testing.T) {
	require.True(t, slices.IsSorted(fake.ShapeNames()))
	for _, name := range fake.ShapeNames() {
		require.NotContains(t, fake.Names(), name)
		m, err := fake.New(name)
		require.NoError(t, err, name)
		require.Equal(t, name, m.Name())
	}
	_, err := fake.New("dgx-9000")
	require.ErrorContains(t, err, fake.HGXH200)
	require.ErrorContains(t, err, fake.DGXA100)
}

// TestShapesMIG: MIG layouts on the shapes' MIG-capable GPUs, and none on
// the T4s of the mixed machine (not MIG capable).
func TestShapesMIG(t *testing.T) {
	tests := []struct {
		machine string
		layout  map[int][]string
		err     string
	}{
		{fake.HGXH200, map[int][]string{0: {"3g.71gb", "2g.35gb", "1g.18gb", "1g.18gb"}}, ""},
		{fake.HGXH200, map[int][]string{0: {"7g.141gb", "1g.18gb"}}, "do not fit together"},
		{fake.HGXH200, map[int][]string{0: {"1g.10gb"}}, `unknown MIG profile "1g.10gb" for NVIDIA H200 141GB HBM3e`},
		{fake.DGXA10080GB, map[int][]string{3: {"1g.10gb+me", "1g.20gb", "4g.40gb"}}, ""},
		{fake.MixedA100T4, map[int][]string{0: {"3g.20gb"}}, ""},
		{fake.MixedA100T4, map[int][]string{2: {"1g.5gb"}}, "GPU 2 (Tesla T4) is not MIG capable"},
		{fake.A6000NVBridge, map[int][]string{0: {"1g.5gb"}}, "not MIG capable"},
	}
	for _, tc := range tests {
		_, err := fake.New(tc.machine, fake.WithMIG(tc.layout))
		if tc.err == "" {
			require.NoError(t, err, "%s %v", tc.machine, tc.layout)
		} else {
			require.ErrorContains(t, err, tc.err, "%s %v", tc.machine, tc.layout)
		}
	}
}
