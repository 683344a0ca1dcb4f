package gpupack

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// Bind, fail, retry, with the pod informer lagging throughout:
//
//  1. cycle 1 reserves p (2 GPUs) on node "e"; the apiserver applies the
//     binding but the call fails (connection lost), and the read back
//     fails too, so Unreserve frees p's GPUs (as designed: unknown).
//  2. p is retried before the informer delivers it bound: cycle 2
//     reserves it on node "m" (or on "e" with other GPUs); the apiserver
//     refuses that binding (p is already assigned to "e"); Bind's read
//     back now works and shows p bound to "e" with cycle 1's devices.
//
// The read back is the truth about p: bound to "e" on those 2 GPUs. Bind
// should hold them (the cache takes the pod as read, as the informer will
// report it), whatever node and devices cycle 2 had chosen. holdIfApplied
// takes the pod only when it is bound to cycle 2's node with cycle 2's
// devices, so p's 2 GPUs on "e" count free until the informer catches up,
// and the next 8-GPU pod is given all 8 GPUs of "e".
func TestReviewBindRetryReadsBackAnEarlierBinding(t *testing.T) {
	e, m := fixture.DGX1V100("e"), fixture.DGX1V100("m")
	for _, tc := range []struct {
		name string
		// second is where cycle 2 reserves p.
		second string
	}{
		{name: "retry on another node", second: "m"},
		{name: "retry on the same node, other GPUs", second: "e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gpuPod("p", "nvidia.com/gpu", 2)
			h := newHarnessWith(t, harnessOptions{beforeStart: func(h *harness) {
				h.cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
					return true, watch.NewFake(), nil
				})
			}}, nil, []*v1.Node{gpuNode(t, "e", e), gpuNode(t, "m", m)}, p)
			pr := v1.SchemeGroupVersion.WithResource("pods")
			binds, gets := 0, 0
			h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "binding" {
					return false, nil, nil
				}
				binds++
				b := a.(k8stesting.CreateAction).GetObject().(*v1.Binding)
				obj, err := h.cs.Tracker().Get(pr, b.Namespace, b.Name)
				require.NoError(t, err)
				pod := obj.(*v1.Pod).DeepCopy()
				if pod.Spec.NodeName != "" {
					return true, nil, apierrors.NewConflict(pr.GroupResource(), b.Name,
						fmt.Errorf("pod %s is already assigned to node %q", b.Name, pod.Spec.NodeName))
				}
				pod.Spec.NodeName = b.Target.Name
				for k, v := range b.Annotations {
					pod.Annotations[k] = v
				}
				require.NoError(t, h.cs.Tracker().Update(pr, pod, b.Namespace, metav1.UpdateOptions{}))
				return true, nil, errors.New("http2: client connection lost")
			})
			h.cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				gets++
				if gets == 1 {
					return true, nil, errors.New("connection refused")
				}
				return false, nil, nil
			})

			// Cycle 1: bound to "e" in fact, freed by Unreserve.
			node, first, st, state := h.schedule(p)
			require.Nil(t, st)
			require.Equal(t, "e", node, "DGX-1s tie: e comes first")
			require.False(t, h.fh.RunBindPlugins(h.ctx, state, p, node).IsSuccess())
			h.fh.RunReservePluginsUnreserve(h.ctx, state, p, node)
			require.Empty(t, h.pl.cache.Used("e"), "the read back failed: freed, as designed")

			// Cycle 2, before the informer reports p bound.
			if tc.second == "e" {
				// Something else holds cycle 1's GPUs for a moment, so
				// cycle 2 picks others on "e".
				h.pl.cache.Assume("blocker", "e", first)
			}
			state2 := framework.NewCycleState()
			_, st2, _ := h.fh.RunPreFilterPlugins(h.ctx, state2, p)
			require.True(t, st2.IsSuccess())
			require.True(t, h.fh.RunReservePluginsReserve(h.ctx, state2, p, tc.second).IsSuccess())
			if tc.second == "e" {
				h.pl.cache.Forget("blocker")
			}
			require.False(t, h.fh.RunBindPlugins(h.ctx, state2, p, tc.second).IsSuccess(), "p is bound already")
			h.fh.RunReservePluginsUnreserve(h.ctx, state2, p, tc.second)
			require.Equal(t, 2, binds)

			// p runs on cycle 1's 2 GPUs of "e".
			require.Len(t, h.pl.cache.Used("e"), 2, "p runs on %v of e", first)
			// An 8-GPU pod fits only on "m" (8 free; "e" has 8 - 2 = 6).
			qNode, got, st, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 8))
			require.Nil(t, st)
			require.Equal(t, "m", qNode, "q was given %v on %s, a node where p runs on 2", got, qNode)
		})
	}
}
