package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/topology"
)

// The scheduler, against a real apiserver, places a 4-GPU pod on the node
// with a free all-NVLink quad, fills every GPU exactly once, refuses the pod
// that no longer fits, and after a restart in the middle of the workload
// rebuilds its view from the pod annotations and gives no GPU twice.
func TestSchedulerExactDevicesAndRestart(t *testing.T) {
	e := newEnv(t)
	// Cluster: 8 (DGX-1 V100) + 4 (dual-socket PCIe) = 12 GPUs.
	topos := map[string]*topology.Node{
		"v100-a": e.addNode("v100-a", "dgx-1-v100"),
		"pcie-a": e.addNode("pcie-a", "pcie-4gpu-2socket"),
	}
	e.startScheduler()

	e.createPod(gpuPod("train-4", 4, nil))
	train := e.waitBound("train-4")
	require.Equal(t, "v100-a", train.Spec.NodeName, "only the DGX-1 has an NVLink quad")
	quad := indexOf(t, topos["v100-a"], devicesOf(t, train))
	require.Equal(t, 4, quad.Len())
	for _, i := range quad.Indexes() {
		for _, j := range quad.Indexes() {
			if i < j {
				require.True(t, topos["v100-a"].Links[i][j].Class.IsNVLink(), "GPUs %d and %d of the quad must be NVLinked", i, j)
			}
		}
	}

	// 12 - 4 = 8 one-GPU pods fill the cluster.
	for i := range 8 {
		e.createPod(gpuPod(podName("infer", i), 1, nil))
	}
	for i := range 8 {
		e.waitBound(podName("infer", i))
	}
	requireEachGPUOnce(t, e, topos, 12)

	// Nothing is left: the next pod waits.
	e.createPod(gpuPod("extra", 1, nil))
	e.requireUnschedulable("extra")

	// Restart the scheduler, free one GPU: exactly that GPU goes to the waiting pod.
	e.stopScheduler()
	freed, err := e.client.CoreV1().Pods("default").Get(context.Background(), podName("infer", 3), metav1.GetOptions{})
	require.NoError(t, err)
	freedIDs := devicesOf(t, freed)
	require.NoError(t, e.client.CoreV1().Pods("default").Delete(context.Background(), freed.Name,
		metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	e.startScheduler()
	extra := e.waitBound("extra")
	require.Equal(t, freed.Spec.NodeName, extra.Spec.NodeName)
	require.Equal(t, freedIDs, devicesOf(t, extra), "the only free GPU is the one freed")
	requireEachGPUOnce(t, e, topos, 12)
}

// requireEachGPUOnce checks that the bound pods hold want GPUs in all and that
// no GPU of any node is held twice. A GPU is its node and its ID: nodes of
// one machine type may not share UUIDs, but a check keyed by ID alone
// would report, or hide, double assignments across nodes if they did.
func requireEachGPUOnce(t *testing.T, e *env, topos map[string]*topology.Node, want int) {
	t.Helper()
	pods, err := e.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	type device struct{ node, id string }
	held := map[device]string{} // (node, device ID) -> pod
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		ids := devicesOf(t, &p)
		indexOf(t, topos[p.Spec.NodeName], ids) // every ID is a GPU of the pod's node
		for _, id := range ids {
			d := device{p.Spec.NodeName, id}
			other, dup := held[d]
			require.False(t, dup, "GPU %s of %s given to %s and %s", id, d.node, other, p.Name)
			held[d] = p.Name
		}
	}
	require.Len(t, held, want)
}
