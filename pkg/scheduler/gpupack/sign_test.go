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
}
