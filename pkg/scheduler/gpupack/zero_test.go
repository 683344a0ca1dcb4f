package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// A container that lists a device plugin resource at 0 (a chart's
// `nvidia.com/gpu: 0`) is refused by the kubelet on a node that serves the
// resource with no healthy device: the device manager checks the
// resource's health before it sees that nothing is needed
// (devicesToAllocate: "no healthy devices present; cannot allocate
// unhealthy devices", kubernetes/kubernetes#128854), and the pod fails
// with UnexpectedAdmissionError. CPU-only scoring even prefers such a node
// (its CPU feeds no free GPU), so Filter must keep the pod off it:
//
//	sick: 2 whole GPUs, both unhealthy, nvidia.com/gpu published: refused
//	well: 2 healthy GPUs: fits
//	plain: no GPUs (nothing served): fits
//	legacy: the sick node without a resource table (what the kubelet
//	    registers is not known): fits
//	migsick: GPU 0 in MIG mode with its one 3g.20gb device unhealthy, GPU 1
//	    whole and healthy: refused for nvidia.com/mig-3g.20gb at 0, fits
//	    nvidia.com/gpu at 0 and 1
func TestZeroRequestAvoidsResourceWithoutHealthyDevice(t *testing.T) {
	table := func(n *topology.Node, rs ...topology.Resource) *topology.Node {
		n.Resources = rs
		return n
	}
	whole := topology.Resource{Name: "nvidia.com/gpu", Kind: topology.KindGPU}
	mig := topology.Resource{Name: "nvidia.com/mig-3g.20gb", Kind: topology.KindMIG, Profile: "3g.20gb"}
	sickTopo := func(prefix string) *topology.Node {
		n := fixture.PCIe(prefix, "T4", 2)
		n.GPUs[0].Healthy, n.GPUs[1].Healthy = false, false
		return n
	}
	migSick := table(fixture.WithMIG(fixture.NVSwitch("m", "A100", 2, 12), 0, 4, "3g.20gb"), whole, mig)
	migSick.MIG[0].Healthy = false
	nodes := []*v1.Node{
		gpuNode(t, "sick", table(sickTopo("s"), whole)),
		gpuNode(t, "well", table(fixture.PCIe("w", "T4", 2), whole)),
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		gpuNode(t, "legacy", sickTopo("l")),
		gpuNode(t, "migsick", migSick),
	}
	h := newHarness(t, nil, nodes)
	zero := func(name string, res ...string) *v1.Pod {
		p := fixture.MakePod().Named(name).Container("main").Request("cpu", 1)
		for _, r := range res {
			p.Request(r, 0).Limit(r, 0)
		}
		return p.Obj()
	}
	withGPU := zero("gpu-and-zero-mig", "nvidia.com/mig-3g.20gb")
	withGPU.Spec.Containers = append(withGPU.Spec.Containers, fixture.MakePod().Container("worker").Limit("nvidia.com/gpu", 1).Obj().Spec.Containers[0])
	sidecarZero := fixture.MakePod().Named("sidecar-zero").Sidecar("log").Request("nvidia.com/gpu", 0).Limit("nvidia.com/gpu", 0).
		Container("main").Request("cpu", 1).Obj()
	tests := []struct {
		name    string
		pod     *v1.Pod
		refused map[string]string // node -> part of the reason; the others fit
	}{
		{"CPU-only pod listing nvidia.com/gpu: 0", zero("z", "nvidia.com/gpu"),
			map[string]string{"sick": "nvidia.com/gpu"}},
		{"zero in a sidecar", sidecarZero, map[string]string{"sick": "nvidia.com/gpu"}},
		{"zero MIG beside a whole GPU", withGPU, map[string]string{"sick": "", "migsick": "nvidia.com/mig-3g.20gb", "plain": "", "legacy": ""}},
		// Only migsick publishes the MIG resource.
		{"zero MIG alone", zero("mig", "nvidia.com/mig-3g.20gb"), map[string]string{"migsick": "nvidia.com/mig-3g.20gb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range nodes {
				_, st := h.filterOn(tt.pod, n.Name)
				want, refused := tt.refused[n.Name]
				if !refused {
					require.True(t, st.IsSuccess(), "%s: %s", n.Name, st.Message())
					continue
				}
				require.False(t, st.IsSuccess(), n.Name)
				if want != "" {
					require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code(), n.Name)
					require.Contains(t, st.Message(), want, n.Name)
					require.Contains(t, st.Message(), "no healthy device", n.Name)
				}
			}
		})
	}
	// Its Filter now runs, so the framework also hands it the nominated
	// pods and preemption victims: nothing to account, no error.
	t.Run("AddPod and RemovePod of a CPU-only pod", func(t *testing.T) {
		pod := zero("z2", "nvidia.com/gpu")
		state := newCycleState(t, h, pod)
		ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("well")
		require.NoError(t, err)
		other := mustPodInfo(t, gpuPod("nom", "nvidia.com/gpu", 1))
		require.Nil(t, h.pl.AddPod(h.ctx, state, pod, other, ni))
		require.Nil(t, h.pl.RemovePod(h.ctx, state, pod, other, ni))
		require.True(t, h.pl.Filter(h.ctx, state, pod, ni).IsSuccess())
	})
}
