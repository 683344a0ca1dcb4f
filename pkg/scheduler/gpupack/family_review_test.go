package gpupack

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func computeLabels(major, minor string) map[string]string {
	return map[string]string{"nvidia.com/gpu.compute.major": major, "nvidia.com/gpu.compute.minor": minor}
}

// withCompute gives node n the compute labels major.minor; none when major
// is "" (a node of unknown family).
func withCompute(n *v1.Node, major, minor string) *v1.Node {
	if major != "" {
		n.Labels = computeLabels(major, minor)
	}
	return n
}

// Label values GFD never writes but a hand-made or other labeller's may
// (Kubernetes label values: up to 63 of [A-Za-z0-9._-], alphanumeric at
// both ends): the same capability written with leading zeros is the same
// family; a value that is not a number, or GFD's unknown major 0, is no
// family ("", as missing labels) rather than a family of its own that
// would exempt the node from the across-shape ratio.
func TestGPUFamilyOddLabelValues(t *testing.T) {
	cases := map[string]struct {
		major, minor string
		want         string
	}{
		"GFD's":              {"8", "0", "8.0"},
		"leading zeros":      {"08", "00", "8.0"},
		"two-digit major":    {"10", "0", "10.0"},
		"Blackwell 12.0":     {"12", "0", "12.0"},
		"a word":             {"eight", "0", ""},
		"minor a word":       {"8", "zero", ""},
		"dotted major":       {"8.0", "0", ""},
		"major 0 (unknown)":  {"0", "0", ""},
		"negative-looking":   {"-8", "0", ""},
		"63 digits":          {strings.Repeat("9", 63), "0", ""},
		"63 chars, not a nr": {strings.Repeat("a", 63), "0", ""},
		"space (not a label value, but a map can hold one)": {"8 ", "0", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Labels: computeLabels(tc.major, tc.minor)}}
			require.Equal(t, tc.want, gpuFamily(n))
		})
	}
}

// NormalizeScore reads each node's family from the scheduling snapshot.
// Four nodes, a 4-GPU request (weights 1 and 2, F = 20 GB/s):
//
//	pcie   A100 PCIe, 8.0, PIX ring 16 of 16, raw 0
//	sxm    A100 SXM, 8.0 written "08"/"0", NVLink 25 of 25, raw -10 (0.5 GPU)
//	t4     T4 box, 7.5, 16 of 16, raw 0
//	ghost  not in the snapshot (family ""), 16 of 16, raw 0
//
// pcie: min(1, 16 / 8.0's best 20) = 0.8: v = 160; sxm: -10 + 200 = 190;
// t4 alone in 7.5: 1, v = 200; ghost, unknown family "", is compared
// with every node's best (20): 0.8, v = 160.
// best 200: 60, 90, 100, 60.
func TestNormalizeScoreFamiliesFromTheSnapshot(t *testing.T) {
	node := func(name string, labels map[string]string) *v1.Node {
		n := gpuNode(t, name, fixture.PCIe(name, "T4", 2))
		n.Labels = labels
		return n
	}
	h := newHarness(t, nil, []*v1.Node{
		node("pcie", computeLabels("8", "0")), node("sxm", computeLabels("08", "0")), node("t4", computeLabels("7", "5")),
	})
	byNode := map[string]plan{
		"pcie":  {fragDelta: 0, ring: 16, ideal: 16},
		"sxm":   {fragDelta: 0.5, ring: 25, ideal: 25},
		"t4":    {fragDelta: 0, ring: 16, ideal: 16},
		"ghost": {fragDelta: 0, ring: 16, ideal: 16},
	}
	order := []string{"pcie", "sxm", "t4", "ghost"}
	norm := func() []int64 {
		cs := framework.NewCycleState()
		cs.Write(stateKey, &cycleState{plans: &plans{byNode: byNode}})
		list := make(fwk.NodeScoreList, len(order))
		for i, n := range order {
			list[i] = fwk.NodeScore{Name: n, Score: h.pl.rank.Raw(byNode[n].fragDelta)}
		}
		require.True(t, h.pl.NormalizeScore(h.ctx, cs, nil, list).IsSuccess())
		out := make([]int64, len(list))
		for i, ns := range list {
			out[i] = ns.Score
		}
		return out
	}
	require.Equal(t, []int64{60, 90, 100, 60}, norm())
	// Again through the pool's recycled slice: the same (no stale family).
	require.Equal(t, []int64{60, 90, 100, 60}, norm())
}

// The device plugin's labels (pkg/gfd, as NVIDIA's GFD) keep the compute
// capability under every MIG strategy: single (valid, and invalid with MIG
// on one GPU only) and mixed overwrite product, count and memory but not
// compute.major/minor, so a MIG node stays in its GPUs' family.
func TestGPUFamilyUnderMIGStrategies(t *testing.T) {
	a100 := func(mig bool) gfd.GPU {
		return gfd.GPU{Name: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, ComputeCapability: "8.0", MIGCapable: true, MIGEnabled: mig}
	}
	slice := func(parent int) gfd.MIGDevice {
		return gfd.MIGDevice{Parent: parent, Profile: "1g.5gb", MemoryMiB: 4864, Multiprocessors: 14, GISlices: 1, CISlices: 1}
	}
	cases := map[string]gfd.Node{
		"none":                  {MIGStrategy: "none", GPUs: []gfd.GPU{a100(false), a100(false)}},
		"single":                {MIGStrategy: "single", GPUs: []gfd.GPU{a100(true), a100(true)}, MIG: []gfd.MIGDevice{slice(0), slice(1)}},
		"single, invalid (one)": {MIGStrategy: "single", GPUs: []gfd.GPU{a100(true), a100(false)}, MIG: []gfd.MIGDevice{slice(0)}},
		"mixed":                 {MIGStrategy: "mixed", GPUs: []gfd.GPU{a100(true), a100(false)}, MIG: []gfd.MIGDevice{slice(0)}},
		"mixed, all MIG":        {MIGStrategy: "mixed", GPUs: []gfd.GPU{a100(true), a100(true)}, MIG: []gfd.MIGDevice{slice(0), slice(1)}},
	}
	for name, n := range cases {
		t.Run(name, func(t *testing.T) {
			n.DriverVersion, n.CUDADriverVersion = "550.54.15", "12.4"
			labels, _ := gfd.Labels(&n, time.Unix(0, 0))
			require.Equal(t, "8.0", gpuFamily(&v1.Node{ObjectMeta: metav1.ObjectMeta{Labels: labels}}))
		})
	}
}
