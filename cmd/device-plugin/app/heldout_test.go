package app

import (
	"path/filepath"
	"testing"
)

// TestNVIDIAConfigHeldOut loads the held-out NVIDIA-format configs in
// testdata/nvidia-config/heldout: files transcribed from sources the
// corpus of TestNVIDIAConfigCorpus was not written from (the GPU
// Operator's time-slicing docs, NVIDIA's example health configs and issue
// reports, Bottlerocket's rendered config, a fork's MPS sample, odd YAML),
// each on several catalog machines. The expectation is what NVIDIA's
// k8s-device-plugin advertises for the file on that node, worked out from
// its documented semantics: replicas on every device of the resource
// (rename and devices ignored), name.shared with renameByDefault, a
// resource with no device on the node skipped, names without a prefix
// given nvidia.com/, MIG none/single/mixed.
func TestNVIDIAConfigHeldOut(t *testing.T) {
	// 8 x A100-SXM4-40GB; 8 x H100 80GB; 4 x T4 (CC 7.5); 8 x V100 (CC 7.0).
	a100 := []string{"--fake", "dgx-a100"}
	h100 := []string{"--fake", "dgx-h100"}
	t4 := []string{"--fake", "pcie-4gpu-2socket"}
	v100 := []string{"--fake", "dgx-1-v100"}
	// GPU 0: 3g.20gb, 2g.10gb, 2 x 1g.5gb; GPU 1: 2 x 3g.20gb; 6 whole GPUs.
	mixed := []string{"--fake", "dgx-a100", "--fake-mig", "0=3g.20gb+2g.10gb+1g.5gb+1g.5gb,1=3g.20gb+3g.20gb"}
	// All 8 A100s as 7 x 1g.5gb: 56 MIG devices.
	seven := "1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb"
	allSmall := []string{"--fake", "dgx-a100", "--fake-mig",
		"0=" + seven + ",1=" + seven + ",2=" + seven + ",3=" + seven + ",4=" + seven + ",5=" + seven + ",6=" + seven + ",7=" + seven}
	// H100 GPU 0: 3g.40gb, 2g.20gb, 2 x 1g.10gb; GPU 1: 7g.80gb; 6 whole.
	h100Mixed := []string{"--fake", "dgx-h100", "--fake-mig", "0=3g.40gb+2g.20gb+1g.10gb+1g.10gb,1=7g.80gb"}
	tests := []configCase{
		{"gpuop-any-time-slicing.yaml", a100, map[string]int{"nvidia.com/gpu": 32}, ""}, // 8 x 4
		{"gpuop-any-time-slicing.yaml", t4, map[string]int{"nvidia.com/gpu": 16}, ""},   // 4 x 4
		// migStrategy none: MIG-enabled GPUs are advertised whole, 8 x 4.
		{"gpuop-any-time-slicing.yaml", mixed, map[string]int{"nvidia.com/gpu": 32}, ""},
		{"gpuop-fine-a100-40gb.yaml", a100, map[string]int{"nvidia.com/gpu": 64}, ""}, // no MIG: 8 x 8
		{"gpuop-fine-a100-40gb.yaml", mixed, map[string]int{
			"nvidia.com/gpu":         48, // 6 whole x 8
			"nvidia.com/mig-1g.5gb":  4,  // 2 x 2
			"nvidia.com/mig-2g.10gb": 2,  // 1 x 2
			"nvidia.com/mig-3g.20gb": 9,  // 3 x 3; mig-7g.40gb has no device: skipped
		}, ""},
		{"gpuop-fine-a100-40gb.yaml", allSmall, map[string]int{"nvidia.com/mig-1g.5gb": 112}, ""}, // 56 x 2
		// The A100 config on an H100 node: its MIG profiles are other names,
		// so only the whole GPUs are shared (6 x 8).
		{"gpuop-fine-a100-40gb.yaml", h100Mixed, map[string]int{
			"nvidia.com/gpu": 48, "nvidia.com/mig-1g.10gb": 2, "nvidia.com/mig-2g.20gb": 1,
			"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-7g.80gb": 1,
		}, ""},
		{"gpuop-fine-tesla-t4.yaml", t4, map[string]int{"nvidia.com/gpu": 16}, ""}, // 4 x 4
		// 8 x 16384 = 131072 devices: NVIDIA's plugin sends them and the
		// kubelet refuses the ListAndWatch message (over its 4 MiB); gpupack
		// says so at start, naming the most replicas this node carries.
		{"issue1433-misplaced-flags.yaml", a100, nil, "more than the kubelet's 4194304-byte limit"},
		{"issue1433-misplaced-flags.yaml", t4, nil, "more than the kubelet's 4194304-byte limit"},
		{"bottlerocket-template.yaml", t4, map[string]int{"nvidia.com/gpu.shared": 8}, ""},    // 4 x 2
		{"bottlerocket-template.yaml", a100, map[string]int{"nvidia.com/gpu.shared": 16}, ""}, // 8 x 2
		// rename, devices and memoryGB ignored: every GPU x 2 under nvidia.com/gpu.
		{"nos-fork-mps.yaml", a100, map[string]int{"nvidia.com/gpu": 16}, ""},
		{"nos-fork-mps.yaml", t4, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"health-nvidia-default.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"health-gke.yaml", h100, map[string]int{"nvidia.com/gpu": 8}, ""},
		// "gpu" and "mig-3g.20gb" get the nvidia.com/ prefix.
		{"unprefixed-names.json", a100, map[string]int{"nvidia.com/gpu": 16}, ""}, // 8 x 2
		{"unprefixed-names.json", mixed, map[string]int{
			"nvidia.com/gpu":         12, // 6 x 2
			"nvidia.com/mig-3g.20gb": 12, // 3 x 4
			"nvidia.com/mig-2g.10gb": 1,
			"nvidia.com/mig-1g.5gb":  2,
		}, ""},
		// single: every MIG device is an nvidia.com/gpu, 56 x 3; no MIG: 8 x 3.
		{"comments-anchors-flow.yaml", allSmall, map[string]int{"nvidia.com/gpu": 168}, ""},
		{"comments-anchors-flow.yaml", a100, map[string]int{"nvidia.com/gpu": 24}, ""},
		{"comments-anchors-flow.yaml", mixed, nil, "MIG strategy single"},
		// devices and rename ignored: all of each resource shared.
		{"time-slicing-devices-forms.yaml", mixed, map[string]int{
			"nvidia.com/gpu":         30, // 6 x 5
			"nvidia.com/mig-1g.5gb":  4,  // 2 x 2, not renamed
			"nvidia.com/mig-2g.10gb": 1,  // not shared
			"nvidia.com/mig-3g.20gb": 6,  // 3 x 2
		}, ""},
		{"mps-h100-fail-false.yaml", h100, map[string]int{"nvidia.com/gpu.shared": 56}, ""}, // 8 x 7
		{"mps-h100-fail-false.yaml", v100, map[string]int{"nvidia.com/gpu.shared": 56}, ""}, // 7 <= 16 clients on 7.0
		{"empty-sections.yaml", t4, map[string]int{"nvidia.com/gpu": 4}, ""},
		{"every-flag-index-cdi.yaml", h100, map[string]int{"nvidia.com/gpu": 8}, ""},
		// RenameByDefault is not renameByDefault to NVIDIA: 8 x 2 under nvidia.com/gpu.
		{"rename-by-default-wrong-case.yaml", a100, map[string]int{"nvidia.com/gpu": 16}, ""},
		// klog quotes the error: the value shows as \"4\".
		{"bad-replicas-quoted.yaml", a100, nil, `sharing.timeSlicing.resources[0].replicas: Invalid value: \"4\": want int, got a string`},
		{"bad-replica-typo.yaml", a100, nil, `sharing.mps.resources[0].replicas: Required value`},
		{"bad-negative-replicas.json", t4, nil, `sharing.timeSlicing.resources[0].replicas: Invalid value: -2`},
		// single with CDI annotations and index IDs: 8 whole GPUs; all MIG:
		// 56 x 1g.5gb as nvidia.com/gpu; half-MIG refused, as by NVIDIA.
		{"mig-single-cdi-annotations-index.yaml", a100, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"mig-single-cdi-annotations-index.yaml", allSmall, map[string]int{"nvidia.com/gpu": 56}, ""},
		{"mig-single-cdi-annotations-index.yaml", mixed, nil, "MIG strategy single"},
		// yes/on/off are YAML 1.1 booleans to NVIDIA's decoder: renamed, 8 x 3.
		{"yaml11-booleans.yaml", a100, map[string]int{"nvidia.com/gpu.shared": 24}, ""},
		{"yaml11-booleans.yaml", mixed, map[string]int{"nvidia.com/gpu.shared": 24}, ""}, // none: MIG GPUs whole
		{"anchored-replicas-mixed.yaml", a100, map[string]int{"nvidia.com/gpu": 32}, ""}, // 8 x 4
		{"anchored-replicas-mixed.yaml", mixed, map[string]int{
			"nvidia.com/gpu":         24, // 6 x 4
			"nvidia.com/mig-1g.5gb":  8,  // 2 x 4
			"nvidia.com/mig-2g.10gb": 1,  // not shared
			"nvidia.com/mig-3g.20gb": 12, // 3 x 4
		}, ""},
		// NVIDIA reads the first document (8 whole GPUs) and drops the
		// second's time-slicing silently; gpupack refuses the file.
		{"bad-two-documents.yaml", a100, nil, "the file holds 2 YAML documents with content"},
		// NVIDIA runs this with the defaults (8 whole GPUs), silently; gpupack
		// refuses it and names the configs inside.
		{"bad-configmap-as-file.yaml", a100, nil, "the file is a Kubernetes ConfigMap holding the configs [a100-40gb, tesla-t4], not a config"},
	}
	runConfigCases(t, "--config-file", filepath.Join(repoRoot(t), "testdata", "nvidia-config", "heldout"), tests)
}

// TestHeldOutIsCovered: every held-out file has an expectation above.
func TestHeldOutIsCovered(t *testing.T) {
	requireCovered(t, "heldout_test.go", filepath.Join(repoRoot(t), "testdata", "nvidia-config", "heldout"))
}
