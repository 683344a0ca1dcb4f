package gpucache_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Informer events out of order or twice, and node annotations changing
// under held devices: the node's free capacity follows what the pods
// hold. Node "n": 2 PCIe GPUs time-shared 4 ways (8 replicas) unless a
// step changes the topology.
func TestReviewEventOrderAndTopologyChangesKeepTheCount(t *testing.T) {
	shared := func(reps int) *topology.Node { return fixture.Shared(fixture.PCIe("n", "T4", 2), reps) }
	g0 := shared(4).GPUs[0].UUID
	rep := func(k int) string { return deviceid.ReplicaID(g0, k) }
	bound := func(t *testing.T, name string, ids ...string) *v1.Pod {
		p := fixture.MakePod().Named(name).GPUs("nvidia.com/gpu.shared", int64(len(ids))).Obj()
		p.Annotations = map[string]string{"gpupack.io/devices": devicesValue(t, map[string][]string{"nvidia.com/gpu.shared": ids})}
		p.Spec.NodeName = "n"
		return p
	}
	type env struct {
		t    *testing.T
		c    *gpucache.Cache
		topo *topology.Node
	}
	setTopo := func(n *topology.Node) func(e *env) {
		return func(e *env) { e.topo = n; _, _ = e.c.UpdateNode(annotated(e.t, "n", "96", n)) }
	}
	for _, tc := range []struct {
		name     string
		steps    []func(e *env)
		wantFree float64
	}{
		{name: "delete of a pod never seen", steps: []func(e *env){func(e *env) { e.c.Forget("never") }}, wantFree: 2},
		{name: "update (bound) before add, then the add again", steps: []func(e *env){func(e *env) {
			p := bound(e.t, "a", rep(0), rep(1))
			_ = e.c.AddPod(p)
			_ = e.c.AddPod(p)
		}}, wantFree: 1.5},
		{name: "assumed, the GPU turns unhealthy: still held; healthy again: still held", steps: []func(e *env){
			func(e *env) { e.c.Assume("a", "n", []string{rep(0)}) },
			func(e *env) { n := shared(4); n.GPUs[0].Healthy = false; setTopo(n)(e) },
			setTopo(shared(4)),
		}, wantFree: 1.75},
		{name: "replicas 4 -> 2 under holders of replicas 2 and 3: GPU 0 full", steps: []func(e *env){
			func(e *env) { _ = e.c.AddPod(bound(e.t, "a", rep(2))) },
			func(e *env) { _ = e.c.AddPod(bound(e.t, "b", rep(3))) },
			setTopo(shared(2)),
		}, wantFree: 1},
		{name: "time-slicing off under a replica holder: GPU 0 taken whole", steps: []func(e *env){
			func(e *env) { _ = e.c.AddPod(bound(e.t, "a", rep(1))) },
			setTopo(fixture.PCIe("n", "T4", 2)),
		}, wantFree: 1},
		{name: "time-slicing on under a whole-GPU holder: all of GPU 0's replicas taken", steps: []func(e *env){
			setTopo(fixture.PCIe("n", "T4", 2)),
			func(e *env) { e.c.Assume("a", "n", []string{g0}) },
			setTopo(shared(4)),
		}, wantFree: 1},
		{name: "Reserve, Unreserve, Reserve elsewhere on the node", steps: []func(e *env){
			func(e *env) { e.c.Assume("a", "n", []string{rep(0)}) },
			func(e *env) { e.c.Unassume("a") },
			func(e *env) { e.c.Assume("a", "n", []string{rep(1), rep(2)}) },
		}, wantFree: 1.5},
		{name: "node deleted and re-added (same GPUs) under a bound pod", steps: []func(e *env){
			func(e *env) { _ = e.c.AddPod(bound(e.t, "a", rep(0))) },
			func(e *env) { e.c.RemoveNode("n") },
			setTopo(shared(4)),
		}, wantFree: 1.75},
		{name: "a bound pod that finishes frees its replica", steps: []func(e *env){
			func(e *env) { _ = e.c.AddPod(bound(e.t, "a", rep(0))) },
			func(e *env) { p := bound(e.t, "a", rep(0)); p.Status.Phase = v1.PodSucceeded; _ = e.c.AddPod(p) },
		}, wantFree: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, c: gpucache.New()}
			e.c.AddArgsNames(argsNames)
			setTopo(shared(4))(e)
			for _, s := range tc.steps {
				s(e)
			}
			v, err := e.c.ViewNode(annotated(t, "n", "96", e.topo))
			require.NoError(t, err)
			require.InDelta(t, tc.wantFree, v.State.FreeCapacity(), 1e-9, "used %v", e.c.Used("n"))
		})
	}
}
