package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNVIDIAConfigCorpus loads each NVIDIA-format config in
// testdata/nvidia-config with the device-plugin binary
// (--fake=M --config=F --print-topology) and compares the resources it
// advertises with what NVIDIA's k8s-device-plugin advertises for the same
// file on the same node, written out by hand from NVIDIA's documentation.
func TestNVIDIAConfigCorpus(t *testing.T) {
	// DGX A100: 8 x A100-SXM4-40GB.
	a100 := []string{"--fake", "dgx-a100"}
	// DGX-1: 8 x V100 (compute capability 7.0); a 4 x T4 PCIe box.
	v100 := []string{"--fake", "dgx-1-v100"}
	pcie4 := []string{"--fake", "pcie-4gpu-2socket"}
	// All 8 GPUs MIG-enabled, 7 x 1g.5gb each.
	seven := "1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb"
	allSmall := []string{"--fake", "dgx-a100", "--fake-mig",
		"0=" + seven + ",1=" + seven + ",2=" + seven + ",3=" + seven + ",4=" + seven + ",5=" + seven + ",6=" + seven + ",7=" + seven}
	// GPUs 0 and 1 MIG-enabled with mixed profiles; 6 whole GPUs.
	mixed := []string{"--fake", "dgx-a100", "--fake-mig", "0=3g.20gb+2g.10gb+1g.5gb+1g.5gb,1=3g.20gb+3g.20gb"}
	tests := []configCase{
		{"empty.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"no-version.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"every-field.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"nvidia-logged-config.json", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"json-config.json", a100, map[string]int{"nvidia.com/gpu": 16}, ""},                           // single without MIG: 8 GPUs x 2
		{"time-slicing.yaml", a100, map[string]int{"nvidia.com/gpu": 80}, ""},                          // 8 x 10
		{"time-slicing-rename-by-default.yaml", a100, map[string]int{"nvidia.com/gpu.shared": 32}, ""}, // 8 x 4
		// rename and devices ignored: all 8 GPUs x 3 under nvidia.com/gpu.
		{"time-slicing-devices-and-rename.yaml", a100, map[string]int{"nvidia.com/gpu": 24}, ""},
		{"time-slicing-replicas-one.yaml", a100, nil, "sharing.timeSlicing.resources[0].replicas: Invalid value: 1"},
		// NVIDIA: one set of MPS replicas per GPU, under the resource's name.
		{"mps.yaml", a100, map[string]int{"nvidia.com/gpu": 80}, ""},                          // 8 x 10
		{"mps.yaml", v100, map[string]int{"nvidia.com/gpu": 80}, ""},                          // 8 x 10 (10 <= 16 clients on 7.0)
		{"mps.yaml", pcie4, map[string]int{"nvidia.com/gpu": 40}, ""},                         // 4 x 10
		{"mps-rename-by-default.yaml", a100, map[string]int{"nvidia.com/gpu.shared": 32}, ""}, // 8 x 4
		// MPS wins over timeSlicing; rename and devices ignored: 8 x 2 under nvidia.com/gpu.
		{"mps-and-time-slicing.yaml", a100, map[string]int{"nvidia.com/gpu": 16}, ""},
		// NVIDIA's plugin refuses migStrategy mixed with MPS at start,
		// whether the node serves MIG devices or not; so does gpupack.
		{"mps-mig-mixed.yaml", a100, nil, "migStrategy mixed is not supported with MPS"},
		{"mps-mig-mixed.yaml", mixed, nil, "migStrategy mixed is not supported with MPS"},
		{"mps-mig-resource.json", a100, nil, "sharing.mps.resources[0].name"},
		{"mps-replicas-one.yaml", a100, nil, "sharing.mps.resources[0].replicas: Invalid value: 1"},
		{"mps-many-clients.yaml", a100, map[string]int{"nvidia.com/gpu": 160}, ""}, // 8 x 20 (<= 48 clients on 8.0)
		{"mps-many-clients.yaml", v100, nil, "takes at most 16 MPS clients"},
		{"mig-single.yaml", allSmall, map[string]int{"nvidia.com/gpu": 56}, ""}, // 8 x 7
		// single needs one profile on every GPU; NVIDIA's plugin refuses a mixed node too.
		{"mig-single.yaml", mixed, nil, "MIG strategy single"},
		{"mig-mixed.yaml", mixed, map[string]int{
			"nvidia.com/gpu": 6, "nvidia.com/mig-3g.20gb": 3, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-1g.5gb": 2}, ""},
		// NVIDIA's plugin with migStrategy none advertises every GPU whole.
		{"no-version.yaml", mixed, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"mig-mixed-time-slicing.yaml", mixed, map[string]int{
			"nvidia.com/gpu.shared":         12, // 6 whole x 2
			"nvidia.com/mig-3g.20gb.shared": 9,  // 3 x 3
			"nvidia.com/mig-2g.10gb.shared": 2,  // 1 x 2
			"nvidia.com/mig-1g.5gb.shared":  4,  // 2 x 2
		}, ""},
		{"cdi-annotations.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"cdi-cri.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"volume-mounts.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"cdi-cri.yaml", mixed, map[string]int{"nvidia.com/gpu": 8}, ""},
	}
	runConfigCases(t, "--config", filepath.Join(repoRoot(t), "testdata", "nvidia-config"), tests)
}

// configCase is one NVIDIA-format config file on one catalog machine.
type configCase struct {
	file    string
	machine []string
	// nvidia is what NVIDIA's plugin advertises for the file on the node.
	nvidia map[string]int
	// wantErr: NVIDIA's plugin refuses the file too (or the kubelet
	// would), or gpupack refuses what NVIDIA silently drops.
	wantErr string
}

// runConfigCases runs the device-plugin binary on each case's file in dir,
// given with flag (--config or its --config-file name), and compares what it
// advertises with NVIDIA's figure or its error with wantErr.
func runConfigCases(t *testing.T, flag, dir string, tests []configCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.file+"/"+strings.Join(tc.machine[1:], " "), func(t *testing.T) {
			t.Parallel()
			args := append([]string{flag, filepath.Join(dir, tc.file), "--print-topology"}, tc.machine...)
			stdout, stderr, code := runBinary(t, nil, args...)
			if tc.wantErr != "" {
				require.NotZero(t, code, stdout)
				require.Contains(t, stderr, tc.wantErr)
				return
			}
			require.Zero(t, code, stderr)
			require.Equal(t, tc.nvidia, advertised(t, stdout))
		})
	}
}

// requireCovered fails for a file of dir (directories skipped) whose name
// does not open a case in the test source src.
func requireCovered(t *testing.T, src, dir string) {
	t.Helper()
	text, err := os.ReadFile(src)
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.IsDir() {
			continue // heldout/ has its own test
		}
		require.Contains(t, string(text), `{"`+filepath.Base(f)+`"`, "no expectation for %s", f)
	}
}

// TestCorpusIsCovered: every file of the corpus has its expectation in
// TestNVIDIAConfigCorpus, so a file added without one fails here.
func TestCorpusIsCovered(t *testing.T) {
	requireCovered(t, "corpus_test.go", filepath.Join(repoRoot(t), "testdata", "nvidia-config"))
}
