package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func TestQueueingHints(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", fixture.DGX1V100("q"))})
	pl := h.pl
	pending := gpuPod("pending", "nvidia.com/gpu", 4)
	base := gpuNode(t, "n", fixture.DGX1V100("q"))
	withInUse := gpuNode(t, "n", fixture.DGX1V100("q"), fixture.DGX1V100("q").GPUs[0].UUID)
	otherTopo := gpuNode(t, "n", fixture.NVSwitch("q", "H100", 8, 18))
	relabelled := base.DeepCopy()
	relabelled.Labels = map[string]string{"team": "a"}
	relabelled.Annotations["unrelated"] = "x"
	plain := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cpu-only"}}

	nodeCases := []struct {
		name     string
		old, new *v1.Node
		want     fwk.QueueingHint
	}{
		{"GPU node added", nil, base, fwk.Queue},
		{"CPU-only node added", nil, plain, fwk.QueueSkip},
		{"in-use report changed", withInUse, base, fwk.Queue},
		{"topology changed", base, otherTopo, fwk.Queue},
		{"unrelated label and annotation", base, relabelled, fwk.QueueSkip},
	}
	for _, tt := range nodeCases {
		t.Run(tt.name, func(t *testing.T) {
			var oldObj any
			if tt.old != nil {
				oldObj = tt.old
			}
			got, err := pl.isSchedulableAfterNodeChange(logger, pending, oldObj, tt.new)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	annotated := gpuPod("held", "nvidia.com/gpu", 2, protocol.DevicesAnnotation, `{"version":"v1","resources":{"nvidia.com/gpu":["GPU-q-0","GPU-q-1"]}}`)
	annotated.Spec.NodeName = "n"
	gpuNoAnno := gpuPod("gpu", "nvidia.com/gpu", 1)
	gpuNoAnno.Spec.NodeName = "n"
	cpuPod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: v1.PodSpec{NodeName: "n", Containers: []v1.Container{{Name: "c",
		Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}}}
	podCases := []struct {
		name    string
		deleted *v1.Pod
		want    fwk.QueueingHint
	}{
		{"GPU pod with devices deleted", annotated, fwk.Queue},
		{"GPU pod placed by another scheduler deleted", gpuNoAnno, fwk.Queue},
		{"CPU pod deleted", cpuPod, fwk.QueueSkip},
	}
	for _, tt := range podCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pl.isSchedulableAfterPodDelete(logger, pending, tt.deleted, nil)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	events, err := pl.EventsToRegister(h.ctx)
	require.NoError(t, err)
	require.Len(t, events, 2)
	require.Equal(t, fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAnnotation}, events[0].Event)
	require.Equal(t, fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, events[1].Event)
}
