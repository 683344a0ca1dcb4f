package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func TestMalformedInUseMakesNodeUnusable(t *testing.T) {
	// We cannot know which GPUs are in use on "broken": it gets no GPU pod
	// (with the reason), "ok" still does.
	broken := gpuNode(t, "broken", fixture.DGX1V100("x"))
	broken.Annotations[protocol.InUseAnnotation] = `{"version":"v1","pods":[{"devices":[""]}]}`
	h := newHarness(t, nil, []*v1.Node{broken, gpuNode(t, "ok", fixture.DGX1V100("y"))})
	pod := gpuPod("p", "nvidia.com/gpu", 1)
	state := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	require.True(t, st.IsSuccess())
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("broken")
	require.NoError(t, err)
	st = h.fh.RunFilterPlugins(h.ctx, state, pod, ni)
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	require.Contains(t, st.Message(), "gpupack.io/in-use report is unreadable, so which GPUs are in use is unknown")
	node, _, st2, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
	require.Nil(t, st2)
	require.Equal(t, "ok", node)
}
