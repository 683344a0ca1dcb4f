package gpupack

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"

	"github.com/gpupack/gpupack/pkg/score/scoretest"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BenchmarkScorePerNode measures, per node and warm (topology decoded,
// memo filled), GPUPack's Filter+Score (Filter makes the device plan that
// Score reuses; both are timed) and NodeResourcesFit's Score
// (LeastAllocated on cpu/memory) on the same node.
func BenchmarkScorePerNode(b *testing.B) {
	for _, tc := range []struct {
		name string
		topo *topology.Node
		used []int
		gpus int64
	}{
		{"dgx1-8gpu/1gpu", scoretest.DGX1V100("b8"), []int{0, 5}, 1},
		{"dgx1-8gpu/2gpu", scoretest.DGX1V100("b8"), []int{0, 5}, 2},
		{"dgx1-8gpu/4gpu", scoretest.DGX1V100("b8"), nil, 4},
		{"nvswitch-16gpu/1gpu", scoretest.NVSwitch("b16", "H100", 16, 18), []int{0, 5, 9}, 1},
		{"nvswitch-16gpu/4gpu", scoretest.NVSwitch("b16", "H100", 16, 18), []int{0, 5, 9}, 4},
		{"pcie-16gpu/2gpu", scoretest.PCIe("p16", "T4", 16), []int{0, 5, 9}, 2},
	} {
		t := &testing.T{}
		node := gpuNode(t, "n", tc.topo, ids(tc.topo, tc.used...)...)
		node.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi")}
		node.Status.Capacity = node.Status.Allocatable
		pod := gpuPod("p", "nvidia.com/gpu", tc.gpus)
		pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("16Gi")}
		h := newHarnessB(b, node)
		ni := framework.NewNodeInfo()
		ni.SetNode(node)

		b.Run(tc.name+"/GPUPack", func(b *testing.B) {
			cs := framework.NewCycleState()
			if _, st := h.pl.PreFilter(h.ctx, cs, pod, nil); !st.IsSuccess() {
				b.Fatal(st)
			}
			for b.Loop() {
				s, _ := readState(cs)
				s.plans = map[string]*plan{}
				if st := h.pl.Filter(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
				if _, st := h.pl.Score(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
			}
		})
		b.Run(tc.name+"/NodeResourcesFit", func(b *testing.B) {
			fit, err := noderesources.NewFit(h.ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
				Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
			}}, h.fh, feature.Features{})
			if err != nil {
				b.Fatal(err)
			}
			sp := fit.(fwk.ScorePlugin)
			cs := framework.NewCycleState()
			if st := fit.(fwk.PreScorePlugin).PreScore(h.ctx, cs, pod, []fwk.NodeInfo{ni}); !st.IsSuccess() {
				b.Fatal(st)
			}
			for b.Loop() {
				if _, st := sp.Score(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
			}
		})
	}
}

func newHarnessB(b *testing.B, nodes ...*v1.Node) *harness {
	t := &testing.T{}
	_ = t
	var h *harness
	b.Run("setup", func(b *testing.B) { b.Skip() })
	h = newHarness(&testing.T{}, nil, nodes)
	return h
}
