package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func TestSignPod(t *testing.T) {
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", fixture.DGX1V100("sig"))})
	sign := func(p *v1.Pod) ([]fwk.SignFragment, *fwk.Status) { return h.pl.SignPod(h.ctx, p) }
	a, st := sign(gpuPod("a", "nvidia.com/gpu", 2))
	require.Nil(t, st)
	require.Equal(t, []fwk.SignFragment{{Key: protocol.RequestsSignature, Value: []string{"hint=preferred", "main/nvidia.com/gpu=2"}}}, a)
	b, _ := sign(gpuPod("b", "nvidia.com/gpu", 2))
	require.Equal(t, a, b, "same request, same signature")
	c, _ := sign(gpuPod("c", "nvidia.com/gpu", 2, "gpupack.io/topology", "required"))
	require.NotEqual(t, a, c, "the hint is signed")
	none, st := sign(&v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "web"}}}})
	require.Nil(t, st)
	require.Equal(t, []fwk.SignFragment{{Key: protocol.RequestsSignature, Value: []string{"hint=preferred"}}}, none)
	_, st = sign(gpuPod("bad", "nvidia.com/gpu", -1))
	require.Equal(t, fwk.Unschedulable, st.Code())
	// Everything Filter and Score read is signed: pods that differ in it
	// must not be batched (the batch gives the next pod the first one's
	// ranking). The pod's replica policy places its replicas; a regular
	// init container's request is one pod-level request whose replicas
	// are placed per container's new ones (choosePooled), so pods of one
	// peak but other splits plan differently:
	//   init 1 + app 2: the app reuses 1 and adds 1, chunks [1 1], peak 2
	//   init 2 + app 2: the app reuses both, chunks [2], peak 2
	// and fragmentation counts the pod's CPU and memory.
	shared := func(name string, initN, appN int64) *v1.Pod {
		return fixture.MakePod().Named(name).InitContainer("i").Limit("nvidia.com/gpu.shared", initN).
			Container("a").Limit("nvidia.com/gpu.shared", appN).Obj()
	}
	for _, tc := range []struct {
		name string
		a, b *v1.Pod
	}{
		{"replica policy", gpuPod("p1", "nvidia.com/gpu.shared", 2), gpuPod("p2", "nvidia.com/gpu.shared", 2, "gpupack.io/replica-policy", "spread")},
		{"pooled split", shared("s1", 1, 2), shared("s2", 2, 2)},
		{"CPU", fixture.MakePod().Named("c1").GPUs("nvidia.com/gpu", 1).Request("cpu", 1).Obj(),
			fixture.MakePod().Named("c2").GPUs("nvidia.com/gpu", 1).Request("cpu", 32).Obj()},
		{"memory", fixture.MakePod().Named("m1").GPUs("nvidia.com/gpu", 1).Request("memory", 1<<30).Obj(),
			fixture.MakePod().Named("m2").GPUs("nvidia.com/gpu", 1).Request("memory", 64<<30).Obj()},
	} {
		sa, st := sign(tc.a)
		require.Nil(t, st)
		sb, st := sign(tc.b)
		require.Nil(t, st)
		require.NotEqual(t, sa, sb, tc.name)
	}
}
