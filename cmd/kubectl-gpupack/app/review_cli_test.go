package app

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// explain of a bound pod leaves the pod out of the cluster it is explained
// against: its own devices in its node's in-use report do not hold the node
// against it. default/train holds GPUs 0-3 of dgx (8 GPUs; infer holds 5 and
// was chosen 4): without train, 6 are free and it fits there; it said "no 4
// free healthy whole GPUs ... (2 free)", its own four counted as taken.
func TestExplainBoundPodOwnDevicesAreFree(t *testing.T) {
	d := newDemo(t)
	out, _, err, _ := d.run(t, "explain", "train", "-o", "json")
	require.NoError(t, err)
	var v fitList
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, "dgx", v.BoundTo)
	var dgx *bool
	for _, it := range v.Items {
		if it.Node == "dgx" {
			dgx = &it.Fits
			require.True(t, it.Fits, "train on its own node: %s", it.Reason)
		}
	}
	require.NotNil(t, dgx)

	// The other pods' devices still count: big (16 GPUs) fits nowhere,
	// infer (1 GPU) still fits dgx.
	out, _, err, _ = d.run(t, "explain", "infer", "-o", "json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	for _, it := range v.Items {
		if it.Node == "dgx" {
			require.True(t, it.Fits, it.Reason)
		}
	}
}

// withoutPodInUse drops only the bound pod's entry, on a copy of its node.
func TestWithoutPodInUse(t *testing.T) {
	d := newDemo(t)
	var nodes []corev1.Node
	var train *corev1.Pod
	for _, o := range d.objects {
		switch o := o.(type) {
		case *corev1.Node:
			nodes = append(nodes, *o)
		case *corev1.Pod:
			if o.Name == "train" {
				train = o
			}
		}
	}
	before := nodes[0].Annotations[protocol.InUseAnnotation]
	got := withoutPodInUse(nodes, train)
	require.Equal(t, before, nodes[0].Annotations[protocol.InUseAnnotation], "the caller's node is not changed")
	u, err := protocol.DecodeInUse(got[0].Annotations[protocol.InUseAnnotation])
	require.NoError(t, err)
	require.Len(t, u.Pods, 1)
	require.Equal(t, "infer", u.Pods[0].Name, "the other pods' devices still count")
	pending := train.DeepCopy()
	pending.Spec.NodeName = ""
	require.Equal(t, nodes, withoutPodInUse(nodes, pending))
}
