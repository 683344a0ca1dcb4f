package gpupack

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// reservedDevices schedules pod up to Reserve and returns the choice Bind
// will write into gpupack.io/devices (nil: Bind skips the pod and
// DefaultBinder binds it with no devices annotation).
func reservedDevices(t *testing.T, h *harness, pod *v1.Pod) (string, map[string][]string, map[string]map[string][]string, *fwk.Status) {
	t.Helper()
	node, _, st, state := h.schedule(pod)
	if st != nil {
		return "", nil, nil, st
	}
	r, bst := reservedOf(state)
	if r == nil {
		require.True(t, bst.IsSkip())
		return node, nil, nil, nil
	}
	return node, r.devices.Resources, r.devices.Containers, nil
}

// failRequestsGreaterThanOne refuses a CONTAINER's request of more
// than one replica (the kubelet's Allocate is per container). A pod whose
// regular init container and two app containers each ask 1 replica is
// checked as one pod-level request of 2 (the peak: 1, 1 reused, 1 new) and
// rejected as unresolvable, though no container asks more than 1; without
// the init container the pod fits.
func TestFailRequestsGreaterThanOneIsPerContainer(t *testing.T) {
	for _, c := range []struct {
		name string
		pod  *v1.Pod
	}{
		{"no init", fixture.MakePod().Named("a").Container("c").Limit("nvidia.com/gpu", 1).Container("d").Limit("nvidia.com/gpu", 1).Obj()},
		{"init", fixture.MakePod().Named("b").InitContainer("i").Limit("nvidia.com/gpu", 1).Container("c").Limit("nvidia.com/gpu", 1).Container("d").Limit("nvidia.com/gpu", 1).Obj()},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := replicaNode("f", "nvidia.com/gpu", 4, topology.PolicyPacked, func(r *topology.Resource) { r.FailRequestsGreaterThanOne = true })
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "f", n)})
			_, res, ctrs, st := reservedDevices(t, h, c.pod)
			require.Nil(t, st)
			require.Len(t, res["nvidia.com/gpu"], 2)
			for ctr, m := range ctrs {
				require.Len(t, m["nvidia.com/gpu"], 1, ctr)
			}
		})
	}
}

// A pod asking a name the args know (nvidia.com/gpu) and a name only
// the node's resource table publishes (example.com/tsgpu), while the node
// informer has not delivered that node yet: PreFilter learns new names only
// for pods with NO known GPU request, so the replica request is dropped and
// the pod is bound with devices for nvidia.com/gpu alone.
func TestLearnWithAKnownName(t *testing.T) {
	// GPUs 0 and 1 time-shared under example.com/tsgpu, 2 and 3 whole
	// under nvidia.com/gpu (a GPU the node time-shares is not served whole).
	n := fixture.PCIe("l", "T4", 4)
	n.GPUs[0].Replicas, n.GPUs[1].Replicas = 4, 4
	n.Resources = []topology.Resource{
		{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
		{Name: "example.com/tsgpu", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked},
	}
	h := newSnapshotOnlyHarness(t, []*v1.Node{gpuNode(t, "l", n)})
	require.False(t, h.pl.cache.Published("example.com/tsgpu"), "precondition: the table is not read yet")
	pod := fixture.MakePod().Named("both").Container("a").Limit("nvidia.com/gpu", 1).Limit("example.com/tsgpu", 1).Obj()
	node, res, _, st := reservedDevices(t, h, pod)
	require.Nil(t, st)
	require.Equal(t, "l", node)
	require.Len(t, res["nvidia.com/gpu"], 1)
	require.Len(t, res["example.com/tsgpu"], 1, "the replica request is placed too")
}

// newSnapshotOnlyHarness is newHarness whose nodes are in the scheduler's
// snapshot but not (yet) in the node informer.
func newSnapshotOnlyHarness(t *testing.T, nodes []*v1.Node) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	cs := clientsetfake.NewClientset()
	inf := informers.NewSharedInformerFactory(cs, 0)
	h := &harness{t: t, ctx: ctx, nodes: nodes, cs: cs, inf: inf}
	factory := func(ctx context.Context, obj runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		pl, err := NewWithClock(ctx, obj, fh, func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC) })
		h.pl = pl
		return pl, err
	}
	snapshot := cache.NewSnapshot(nil, nodes)
	fh, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterPluginAsExtensions(Name, factory, "PreFilter", "Filter", "PreScore", "Score", "Reserve", "Bind"),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, "gpupack-scheduler",
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithMutableSnapshotLister(snapshot),
		frameworkruntime.WithClientSet(cs),
		frameworkruntime.WithInformerFactory(inf),
		frameworkruntime.WithPodNominator(&nominator{pods: map[string][]fwk.PodInfo{}}),
	)
	require.NoError(t, err)
	inf.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	h.fh = fh
	return h
}

// A regular init container asking replicas makes the resource one
// pod-level request of the kubelet's peak, placed under the packed policy
// as ONE GPU's replicas. init 4, app containers 4 and 4 (peak 8; the
// kubelet allocates 4, 4 reused, 4 new: each container packs on one GPU)
// never fit a fresh node of 4 GPUs x 4 replicas; neither does init 1 (peak
// 1 + 3 + 4 = 8). The same pod without its init container (8 replicas,
// two requests of 4) fits.
func TestPooledReplicasPlacedPerContainer(t *testing.T) {
	for _, c := range []struct {
		name string
		pod  *v1.Pod
	}{
		{"no init", fixture.MakePod().Named("a").Container("c").Limit("nvidia.com/gpu.shared", 4).Container("d").Limit("nvidia.com/gpu.shared", 4).Obj()},
		{"init 4", fixture.MakePod().Named("b").InitContainer("i").Limit("nvidia.com/gpu.shared", 4).Container("c").Limit("nvidia.com/gpu.shared", 4).Container("d").Limit("nvidia.com/gpu.shared", 4).Obj()},
		{"init 1", fixture.MakePod().Named("c").InitContainer("i").Limit("nvidia.com/gpu.shared", 1).Container("c").Limit("nvidia.com/gpu.shared", 4).Container("d").Limit("nvidia.com/gpu.shared", 4).Obj()},
	} {
		t.Run(c.name, func(t *testing.T) {
			sh := fixture.Shared(fixture.NVSwitch("s", "A100", 4, 12), 4)
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "s", sh)})
			_, res, ctrs, st := reservedDevices(t, h, c.pod)
			require.Nil(t, st)
			require.Len(t, res["nvidia.com/gpu.shared"], 8) // 4 + 4 kept by c and d
			require.Len(t, ctrs["c"]["nvidia.com/gpu.shared"], 4)
			require.Len(t, ctrs["d"]["nvidia.com/gpu.shared"], 4)
			// Packed per container, as each container's Allocate packs:
			// c's 4 on one GPU, d's 4 on one GPU.
			for _, ctr := range []string{"c", "d"} {
				gpus := map[string]bool{}
				for _, id := range ctrs[ctr]["nvidia.com/gpu.shared"] {
					uuid, _ := deviceid.UUIDOf(id)
					gpus[uuid] = true
				}
				require.Len(t, gpus, 1, "container %s's replicas on one GPU: %v", ctr, ctrs[ctr])
			}
		})
	}
}
