package nvml_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

type migWant struct {
	parent  int
	profile string
	start   int
	size    int
	mem     uint64
}

func TestDiscoverMIG(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		layout  map[int][]string
		want    []migWant
	}{
		{
			name:    "dgx-a100 mixed",
			machine: fake.DGXA100,
			layout: map[int][]string{
				0: {"1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"},
				3: {"7g.40gb"},
				5: {"4g.20gb", "1g.5gb", "1g.5gb", "1g.5gb"},
				6: {"1c.2g.10gb", "1g.5gb+me"},
			},
			// A100 40GB has 8 memory slices. GPU 0: 1g at 0 and 1, 2g at 2
			// (slices 2-3), 3g at 4 (slices 4-7; a 3g takes 4 slices).
			// GPU 5: 4g only fits at 0 (slices 0-3), the 1g's then take 4, 5, 6.
			want: []migWant{
				{0, "1g.5gb", 0, 1, 4864}, {0, "1g.5gb", 1, 1, 4864}, {0, "2g.10gb", 2, 2, 9856}, {0, "3g.20gb", 4, 4, 19968},
				{3, "7g.40gb", 0, 8, 40192},
				{5, "4g.20gb", 0, 4, 19968}, {5, "1g.5gb", 4, 1, 4864}, {5, "1g.5gb", 5, 1, 4864}, {5, "1g.5gb", 6, 1, 4864},
				{6, "1c.2g.10gb", 0, 2, 9856}, {6, "1g.5gb+me", 2, 1, 4864},
			},
		},
		{
			name:    "dgx-a100 1g listed before 4g",
			machine: fake.DGXA100,
			layout:  map[int][]string{1: {"1g.5gb", "4g.20gb"}},
			// 4g.20gb has the single placement {0,4}; the 1g goes to slice 4.
			want: []migWant{{1, "1g.5gb", 4, 1, 4864}, {1, "4g.20gb", 0, 4, 19968}},
		},
		{
			// 3g+2g+1g+1g is valid on A100 only with the 3g on the right:
			// the search moves it there (2g 0-1, 1g 2, 1g 3, 3g 4-7).
			name:    "dgx-a100 3g placed right",
			machine: fake.DGXA100,
			layout:  map[int][]string{2: {"3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"}},
			want:    []migWant{{2, "3g.20gb", 4, 4, 19968}, {2, "2g.10gb", 0, 2, 9856}, {2, "1g.5gb", 2, 1, 4864}, {2, "1g.5gb", 3, 1, 4864}},
		},
		{
			name:    "dgx-h100",
			machine: fake.DGXH100,
			layout:  map[int][]string{7: {"3g.40gb", "2g.20gb", "1g.10gb"}},
			want:    []migWant{{7, "3g.40gb", 0, 4, 40960}, {7, "2g.20gb", 4, 2, 20480}, {7, "1g.10gb", 6, 1, 10240}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _, inv := discover(t, tc.machine, fake.WithMIG(tc.layout))
			for i, g := range inv.GPUs {
				_, on := tc.layout[i]
				require.Equal(t, on, g.MIGEnabled, "GPU %d", i)
			}
			require.Len(t, inv.MIG, len(tc.want))
			seen := map[string]bool{}
			for k, w := range tc.want {
				d := inv.MIG[k]
				require.Equal(t, w.parent, d.ParentIndex, "MIG %d", k)
				require.Equal(t, m.UUID(w.parent), d.ParentUUID)
				require.Equal(t, w.profile, d.Profile, "MIG %d", k)
				require.Equal(t, w.start, d.Start, "MIG %d start", k)
				require.Equal(t, w.size, d.Size, "MIG %d size", k)
				require.Equal(t, w.mem, d.MemoryMiB, "MIG %d memory", k)
				require.True(t, strings.HasPrefix(d.UUID, "MIG-"), d.UUID)
				require.False(t, seen[d.UUID])
				seen[d.UUID] = true
				require.GreaterOrEqual(t, d.GIID, 0)
				require.GreaterOrEqual(t, d.CIID, 0)
			}
			node := inv.Topology()
			require.Len(t, node.MIG, len(tc.want))
			for k, w := range tc.want {
				require.Equal(t, w.parent, node.MIG[k].Parent)
				require.Equal(t, w.profile, node.MIG[k].Profile)
				require.Equal(t, w.start, node.MIG[k].Start)
				require.Equal(t, w.size, node.MIG[k].Size)
				require.True(t, node.MIG[k].Healthy)
				require.True(t, node.GPUs[w.parent].MIGEnabled)
			}
		})
	}
}

func TestWithMIGErrors(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		layout  map[int][]string
		errText string
	}{
		{"unknown profile", fake.DGXA100, map[int][]string{0: {"9g.99gb"}}, "unknown MIG profile"},
		{"H100 profile on A100", fake.DGXA100, map[int][]string{0: {"1g.10gb+me"}}, "unknown MIG profile"},
		// 4g takes slices 0-3 and 3g 4-7: no slice is left for the 1g.
		{"does not fit", fake.DGXA100, map[int][]string{0: {"4g.20gb", "3g.20gb", "1g.5gb"}}, "do not fit"},
		{"two 7g", fake.DGXA100, map[int][]string{0: {"7g.40gb", "7g.40gb"}}, "do not fit"},
		{"no such GPU", fake.DGXA100, map[int][]string{8: {"1g.5gb"}}, "no GPU 8"},
		{"not MIG capable", fake.DGX1V100, map[int][]string{0: {"1g.5gb"}}, "not MIG capable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fake.New(tc.machine, fake.WithMIG(tc.layout))
			require.ErrorContains(t, err, tc.errText)
		})
	}
	_, err := fake.New("no-such-machine")
	require.ErrorContains(t, err, "unknown machine")
}

func TestProfileName(t *testing.T) {
	tests := []struct {
		gi, ci    int
		mem, rent uint64
		want      string
	}{
		// A100 40GB: 4864/40960 = 0.119 -> rounded up to 1/8 -> 40 GB x 1/8 = 5 GB.
		{0, 0, 4864, 40960, "1g.5gb"},
		{1, 0, 9856, 40960, "1c.2g.10gb"},
		{1, 1, 9856, 40960, "2g.10gb"},
		{4, 4, 40192, 40960, "7g.40gb"},
		{7, 0, 4864, 40960, "1g.5gb+me"},
		// H100 80GB: 10240/81920 = 1/8 -> 10 GB.
		{0, 0, 10240, 81920, "1g.10gb"},
	}
	for _, tc := range tests {
		got, err := nvml.ProfileName(tc.gi, tc.ci, tc.mem, tc.rent)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err := nvml.ProfileName(99, 0, 4864, 40960)
	require.Error(t, err)
	_, err = nvml.ProfileName(0, 0, 4864, 0)
	require.Error(t, err)
}

// Each MIG device carries its attributes (GFD's per-profile labels): the
// compute instance's SMs, and the engines of its GPU instance, from the
// A100-40GB profile tables the fake is built on.
func TestMIGAttributes(t *testing.T) {
	_, _, inv := discover(t, fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb", "2g.10gb", "1g.5gb"}}))
	require.Len(t, inv.MIG, 3)
	want := map[string]nvml.MIGAttributes{
		"3g.20gb": {Multiprocessors: 42, CopyEngines: 3, Decoders: 2, GISlices: 3, CISlices: 3},
		"2g.10gb": {Multiprocessors: 28, CopyEngines: 2, Decoders: 1, GISlices: 2, CISlices: 2},
		"1g.5gb":  {Multiprocessors: 14, CopyEngines: 1, GISlices: 1, CISlices: 1},
	}
	for _, d := range inv.MIG {
		require.Equal(t, want[d.Profile], d.Attributes, d.Profile)
	}
}

// TestCheckMIG: the MIG layout read again under a running plugin. A GPU's
// MIG devices replaced (NVIDIA's mig-manager), all destroyed, or its MIG
// mode switched is ErrMIGChanged naming the GPU; the same layout is nil; a
// GPU lost or an NVML error while reading is that error, not a change; a
// GPU discovery degraded is not read.
func TestCheckMIG(t *testing.T) {
	layout := fake.WithMIG(map[int][]string{0: {"3g.20gb", "3g.20gb"}, 1: {"7g.40gb"}})
	tests := []struct {
		name    string
		change  func(t *testing.T, m *fake.Machine)
		degrade int // a GPU index whose discovery failed; -1 none
		want    string
		changed bool
		lost    bool
	}{
		{name: "unchanged", degrade: -1},
		{name: "MIG devices replaced", degrade: -1, change: func(t *testing.T, m *fake.Machine) {
			require.NoError(t, m.ReconfigureMIG(0, []string{"4g.20gb", "2g.10gb", "1g.5gb"}))
		}, want: "GPU 0 (GPU-", changed: true},
		{name: "MIG devices all destroyed", degrade: -1, change: func(t *testing.T, m *fake.Machine) {
			require.NoError(t, m.ReconfigureMIG(1, nil))
		}, want: "MIG devices gone [MIG-", changed: true},
		{name: "MIG mode enabled", degrade: -1, change: func(t *testing.T, m *fake.Machine) {
			ret, _ := m.Device(2).SetMigMode(1)
			require.Equal(t, "SUCCESS", ret.String())
		}, want: "MIG mode is now enabled", changed: true},
		{name: "GPU lost", degrade: -1, change: func(t *testing.T, m *fake.Machine) { m.LoseGPU(0) }, lost: true},
		{name: "NVML answers ERROR_UNKNOWN", degrade: -1, change: func(t *testing.T, m *fake.Machine) {
			require.NoError(t, m.Fail(1, "DeviceGetHandleByUUID", 999)) // ERROR_UNKNOWN
		}, want: "DeviceGetHandleByUUID: ERROR_UNKNOWN"},
		{name: "a degraded GPU is not read", degrade: 0, change: func(t *testing.T, m *fake.Machine) {
			require.NoError(t, m.ReconfigureMIG(0, nil))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100, layout)
			require.NoError(t, err)
			lib := m.Lib(t)
			inv, err := lib.Discover()
			require.NoError(t, err)
			if tc.degrade >= 0 {
				inv.GPUs[tc.degrade].Degraded = errors.New("read failed at discovery")
			}
			if tc.change != nil {
				tc.change(t, m)
			}
			err = lib.CheckMIG(inv)
			switch {
			case tc.changed:
				require.ErrorIs(t, err, nvml.ErrMIGChanged)
				require.ErrorContains(t, err, tc.want)
			case tc.lost:
				require.ErrorIs(t, err, nvml.ErrGPULost)
				require.NotErrorIs(t, err, nvml.ErrMIGChanged)
			case tc.want != "":
				require.ErrorContains(t, err, tc.want)
				require.NotErrorIs(t, err, nvml.ErrMIGChanged)
			default:
				require.NoError(t, err)
			}
		})
	}
}
