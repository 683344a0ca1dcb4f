package gpuview

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
)

// On a node without an in-use report the holders are the scheduler's
// choices, as the scheduler counts them: a finished pod (a Job's,
// Succeeded or Failed) holds nothing there (the plugin's cache forgets it,
// as explain does). nodes showed its GPUs held and frag left them out of
// the free capacity, while explain counted them free.
func TestNoInUseReportFinishedPodsHoldNothing(t *testing.T) {
	b := box()
	u := func(i int) string { return b.GPUs[i].UUID }
	quiet := gpuNodeObject(t, "quiet", b, nil)
	done := podObject(t, "done", "quiet", map[string][]string{"nvidia.com/gpu": {u(0), u(1)}}, 2)
	done.Status.Phase = corev1.PodSucceeded
	failed := podObject(t, "failed", "quiet", map[string][]string{"nvidia.com/gpu": {u(2)}}, 1)
	failed.Status.Phase = corev1.PodFailed
	running := podObject(t, "running", "quiet", map[string][]string{"nvidia.com/gpu.shared": {u(3) + "::0"}}, 0)
	running.Status.Phase = corev1.PodRunning
	c := FromObjects([]corev1.Node{quiet}, []corev1.Pod{done, failed, running})
	whole1 := dist(t, score.Weighted{Type: score.TaskType{Kind: score.KindWhole, Count: 1}, Weight: 1})

	vs := c.NodeViews(whole1)
	require.Len(t, vs, 1)
	for i := range 3 {
		require.Equal(t, "free", vs[0].GPUs[i].State, "GPU %d: held by %v", i, vs[0].GPUs[i].HeldBy)
		require.Empty(t, vs[0].GPUs[i].HeldBy)
	}
	require.Equal(t, []ShareView{{Pod: "default/running", Replicas: 1}}, vs[0].GPUs[3].Shares, "a running pod still holds its choice")
	v, err := c.Frag(whole1)
	require.NoError(t, err)
	require.InDelta(t, 3.5, v.Nodes[0].FreeCapacity, 1e-9)

	var buf bytes.Buffer
	require.NoError(t, c.WriteNodes(&buf, whole1))
	require.NotContains(t, buf.String(), "default/done")
	require.NotContains(t, buf.String(), "default/failed")
}

// A pod on a node whose in-use report cannot be read is not "not
// reported" (a choice, no report yet): the node did report, and what it
// gave the pod is unknown, as nodes and frag say of that node.
func TestHandoffOnUnreadableReport(t *testing.T) {
	b := box()
	bad := gpuNodeObject(t, "bad", b, nil)
	bad.Annotations[protocol.InUseAnnotation] = `[1,2`
	quiet := gpuNodeObject(t, "quiet", b, nil)
	chosen := map[string][]string{"nvidia.com/gpu": {b.GPUs[0].UUID}}
	c := FromObjects([]corev1.Node{bad, quiet}, []corev1.Pod{
		podObject(t, "onbad", "bad", chosen, 1),
		podObject(t, "onquiet", "quiet", chosen, 1),
	})
	pv := c.PodViews()
	require.Len(t, pv, 2)
	require.Equal(t, "default/onbad", pv[0].Pod)
	require.Equal(t, HandoffUnreadable, pv[0].Handoff)
	require.Equal(t, HandoffNotReported, pv[1].Handoff, "no report at all: not reported")
	var buf bytes.Buffer
	require.NoError(t, c.WritePodTable(&buf, pv, PodTableOptions{}))
	require.Regexp(t, `(?m)^default/onbad\s+bad\s+nvidia.com/gpu=0\s+-\s+report unreadable\s+-$`, buf.String())
}
