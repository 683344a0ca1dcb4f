package gpucache_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// devicesValue is a gpupack.io/devices value naming ids under resource.
func devicesValue(t *testing.T, resources map[string][]string) string {
	t.Helper()
	v, err := protocol.EncodeDevices(protocol.Devices{Resources: resources})
	require.NoError(t, err)
	return v
}

// A pod bound to a node with a gpupack.io/devices that decodes and has the
// right count, but names devices the node does not have (a node deleted and
// re-created under the same name with new GPUs while the pod was assumed
// or bound; a manifest copied from a pod of another node; a device that is
// not of the resource the pod asks). The device plugin cannot honour such a
// set (the kubelet's available devices do not include it) and gives the pod
// devices of its own choice, so the pod holds its requests' count of the
// node's devices. Until the in-use report names them, the cache should
// count that many (stand-ins, as for a pod without the annotation).
func TestReviewAnnotationNamingUnknownDevicesHoldsItsCount(t *testing.T) {
	dgx := fixture.DGX1V100("x")
	other := fixture.DGX1V100("old") // the same machine before it was re-created: other UUIDs
	tabled := fixture.DGX1V100("t")
	tabled.Resources = []topology.Resource{{Name: "example.com/gpu", Kind: topology.KindGPU}}
	for _, tc := range []struct {
		name      string
		topo      *topology.Node
		resources map[string][]string
		res       string
		count     int64
		wantUsed  int
	}{
		{name: "both devices unknown (node re-created)", topo: dgx, res: "nvidia.com/gpu", count: 2,
			resources: map[string][]string{"nvidia.com/gpu": {other.GPUs[0].UUID, other.GPUs[1].UUID}}, wantUsed: 2},
		{name: "one known, one unknown", topo: dgx, res: "nvidia.com/gpu", count: 2,
			resources: map[string][]string{"nvidia.com/gpu": {dgx.GPUs[0].UUID, other.GPUs[1].UUID}}, wantUsed: 2},
		{name: "made-up IDs", topo: dgx, res: "nvidia.com/gpu", count: 1,
			resources: map[string][]string{"nvidia.com/gpu": {"GPU-does-not-exist"}}, wantUsed: 1},
		{name: "table name, unknown device", topo: tabled, res: "example.com/gpu", count: 2,
			resources: map[string][]string{"example.com/gpu": {other.GPUs[2].UUID, other.GPUs[3].UUID}}, wantUsed: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			_, _ = c.UpdateNode(annotated(t, "n", "96", tc.topo))
			pod := fixture.MakePod().Named("p").GPUs(tc.res, tc.count).
				Annotations(protocol.DevicesAnnotation, devicesValue(t, tc.resources)).Obj()
			pod.Spec.NodeName = "n"
			_ = c.AddPod(pod)
			v, err := c.ViewNode(annotated(t, "n", "96", tc.topo))
			require.NoError(t, err)
			require.InDelta(t, float64(8-tc.wantUsed), v.State.FreeCapacity(), 1e-9,
				"the pod holds %d of the node's GPUs; used %v", tc.wantUsed, c.Used("n"))
		})
	}
}

// The same through Reserve: a pod assumed on node n (Reserve chose GPUs
// 0 and 1), the node deleted and re-created under the same name with
// other GPUs before the binding lands, then the informer reports the pod
// bound with the old IDs. The kubelet gives it 2 of the new GPUs; the
// cache should count 2 used.
func TestReviewNodeRecreatedUnderAnAssumedPod(t *testing.T) {
	before, after := fixture.DGX1V100("before"), fixture.DGX1V100("after")
	c := gpucache.New()
	c.AddArgsNames(argsNames)
	_, _ = c.UpdateNode(annotated(t, "n", "96", before))
	ids := []string{before.GPUs[1].UUID, before.GPUs[2].UUID}
	pod := fixture.MakePod().Named("p").GPUs("nvidia.com/gpu", 2).Obj()
	c.Assume(pod.UID, "n", ids)
	c.RemoveNode("n")
	_, _ = c.UpdateNode(annotated(t, "n", "96", after))
	bound := pod.DeepCopy()
	bound.Spec.NodeName = "n"
	bound.Annotations = map[string]string{protocol.DevicesAnnotation: devicesValue(t, map[string][]string{"nvidia.com/gpu": ids})}
	_ = c.AddPod(bound)
	v, err := c.ViewNode(annotated(t, "n", "96", after))
	require.NoError(t, err)
	require.InDelta(t, 6.0, v.State.FreeCapacity(), 1e-9, "the pod runs on 2 of the new node's 8 GPUs; used %v", c.Used("n"))
}

// MIG layout changed under a running pod (nvidia-smi mig / mig-manager
// destroyed its instance and made others): the kubelet keeps listing the
// pod's old MIG UUID, the device plugin withholds the whole parent GPU
// (pkg/sharing/gone.go, docs/architecture.md "MIG devices gone"), and the
// in-use report names the old UUID. The scheduler should not count the
// parent GPU's new MIG devices free: it would place a pod on a device the
// plugin withholds (the kubelet refuses the pod at admission) or, where
// the plugin is behind, share the GPU with the old instance's holder.
func TestReviewMIGLayoutChangedUnderAHolder(t *testing.T) {
	old := fixture.WithMIG(fixture.PCIe("m", "A100", 2), 0, 1, "1g.5gb", "1g.5gb")
	held := old.MIG[0].UUID
	newer := fixture.PCIe("m", "A100", 2)
	newer.GPUs[0].MIGEnabled = true
	newer.MIG = []topology.MIGDevice{
		{UUID: "MIG-new-0", Parent: 0, Profile: "1g.5gb", Start: 4, Size: 1, Healthy: true},
		{UUID: "MIG-new-1", Parent: 0, Profile: "1g.5gb", Start: 5, Size: 1, Healthy: true},
		{UUID: "MIG-new-2", Parent: 0, Profile: "1g.5gb", Start: 6, Size: 1, Healthy: true},
	}
	for _, tc := range []struct {
		name string
		pod  func(t *testing.T) *v1.Pod
	}{
		{name: "gpupack's pod (annotated)", pod: func(t *testing.T) *v1.Pod {
			return fixture.MakePod().Named("p").GPUs("nvidia.com/mig-1g.5gb", 1).
				Annotations(protocol.DevicesAnnotation, devicesValue(t, map[string][]string{"nvidia.com/mig-1g.5gb": {held}})).Obj()
		}},
		{name: "another scheduler's pod", pod: func(t *testing.T) *v1.Pod {
			return fixture.MakePod().Named("p").GPUs("nvidia.com/mig-1g.5gb", 1).Obj()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			node := withInUse(t, annotated(t, "n", "96", old), map[string][]string{"uid-p": {held}})
			_, _ = c.UpdateNode(node)
			pod := tc.pod(t)
			pod.Spec.NodeName = "n"
			_ = c.AddPod(pod)
			// The layout changes; the report still names the old instance,
			// and its GPU beside it (nodepublish: the device plugin
			// remembers the parent and withholds it whole). A stand-in
			// would hold one of the 3 new devices; the GPU holds all.
			node2 := withInUse(t, annotated(t, "n", "96", newer), map[string][]string{"uid-p": {held, old.GPUs[0].UUID}})
			_, _ = c.UpdateNode(node2)
			v, err := c.ViewNode(node2)
			require.NoError(t, err)
			got, ok := score.Choose(v.State, score.Request{Kind: score.KindMIG, MIGProfile: "1g.5gb", Count: 1}, nil)
			require.False(t, ok, "GPU 0 is held (withheld whole by the device plugin): its new MIG device %v must not be given; used %v", got.DeviceIDs, c.Used("n"))
		})
	}
}

// A pod of another scheduler asking more time-shared replicas than fit on
// one GPU under the node's packed policy holds them all as stand-ins, over
// both GPUs: 2 GPUs x 12000 replicas, a foreign pod of 18000 (12000 + 6000,
// or any split), then another pod's replica beside them. The stand-ins
// were taken one replica at a time, each ID found by scanning the GPU's
// replicas from 0: quadratic, seconds per rebuild of the node's usage
// State under the cache's write lock (BenchmarkForeignManyReplicaStandIns
// measures it).
func TestReviewForeignManyReplicasStandInsAreQuick(t *testing.T) {
	const reps, asked = 12000, 18000
	c, pod := manyReplicaStandIns(t, reps, asked)
	require.NoError(t, c.AddPod(pod))
	require.Len(t, c.Used("n"), asked, "the foreign pod's 18000 replicas")
	c.Assume(types.UID("q"), "n", []string{"GPU-r-1::0"})
	used := c.Used("n")
	// 18000 stand-ins + q's replica (a stand-in never takes a device
	// another pod holds): 18001 of the 24000.
	require.Len(t, used, asked+1)
	require.True(t, used["GPU-r-1::0"])
}

// manyReplicaStandIns is a node "n" of 2 T4s with reps replicas each and a
// foreign pod bound to it asking asked replicas.
func manyReplicaStandIns(tb testing.TB, reps, asked int) (*gpucache.Cache, *v1.Pod) {
	topo := fixture.Shared(fixture.PCIe("r", "T4", 2), reps)
	c := gpucache.New()
	c.AddArgsNames(argsNames)
	_, _ = c.UpdateNode(annotated(tb, "n", "96", topo))
	pod := fixture.MakePod().Named("f").GPUs("nvidia.com/gpu.shared", int64(asked)).Obj()
	pod.Spec.NodeName = "n"
	return c, pod
}

// BenchmarkForeignManyReplicaStandIns is one rebuild of a node's usage
// State with a foreign pod's stand-ins of 18000 replicas over 2 GPUs of
// 12000 (an Assume on the node).
func BenchmarkForeignManyReplicaStandIns(b *testing.B) {
	c, pod := manyReplicaStandIns(b, 12000, 18000)
	require.NoError(b, c.AddPod(pod))
	for i := 0; b.Loop(); i++ {
		c.Assume(types.UID("q"), "n", []string{fmt.Sprintf("GPU-r-1::%d", i%2)})
		_ = c.Used("n")
	}
}

// The other side of the same check: a bound pod whose gpupack.io/devices
// names more devices than its containers ask (or names devices of a
// resource it does not ask at all: a CPU-only copy of a GPU pod's
// manifest, bound by the default scheduler). The device plugin's handoff
// refuses such a set (fitsSpec: another size than the container asks) and
// the kubelet gives the pod what it asks, so the pod holds its requests'
// count; the cache counts every device the annotation names, for as long
// as the pod runs: the extra GPUs are never given to anyone (the in-use
// report never names them, and nothing else takes them off).
func TestReviewAnnotationNamingMoreThanAskedHoldsOnlyTheAsk(t *testing.T) {
	dgx := fixture.DGX1V100("x")
	four := []string{dgx.GPUs[4].UUID, dgx.GPUs[5].UUID, dgx.GPUs[6].UUID, dgx.GPUs[7].UUID}
	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		wantFree float64
	}{
		{name: "asks 2, annotation names 4", pod: fixture.MakePod().Named("p").GPUs("nvidia.com/gpu", 2).Obj(), wantFree: 6},
		{name: "asks no GPU, annotation names 4", pod: fixture.MakePod().Named("p").Container("main").Obj(), wantFree: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			node := annotated(t, "n", "96", dgx)
			_, _ = c.UpdateNode(node)
			pod := tc.pod.DeepCopy()
			pod.Annotations = map[string]string{protocol.DevicesAnnotation: devicesValue(t, map[string][]string{"nvidia.com/gpu": four})}
			pod.Spec.NodeName = "n"
			_ = c.AddPod(pod)
			v, err := c.ViewNode(node)
			require.NoError(t, err)
			require.InDelta(t, tc.wantFree, v.State.FreeCapacity(), 1e-9, "used %v", c.Used("n"))
		})
	}
}
