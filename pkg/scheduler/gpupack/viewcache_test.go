package gpupack

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// noGeneration is a NodeInfo that counts no generations: the cache reads
// its free CPU and memory on every Filter and Score, as before it kept
// them by generation.
type noGeneration struct{ fwk.NodeInfo }

func (noGeneration) GetGeneration() int64 { return 0 }

// The same random stream of pods (1, 2 or 4 GPUs, 1-24 cores, on nodes
// of 32-64 cores, so that CPU runs out and moves the choices), arriving
// and leaving, with CPU-only pods of another scheduler landing now and
// then (free CPU moves, GPU usage does not), gets the same nodes and devices whether the cache finds a
// node's view by the NodeInfo's generation or reads its free resources
// every time. The NodeInfos follow the pods as the scheduler's snapshot
// does (AddPod/RemovePod: new generations).
func TestPlacementSameWithoutGenerationKeyedViews(t *testing.T) {
	shapes := []func(string) *topology.Node{
		fixture.DGX1V100,
		func(n string) *topology.Node { return fixture.NVSwitch(n, "H100", 8, 18) },
		func(n string) *topology.Node { return fixture.PCIe(n, "T4", 8) },
	}
	var nodesA, nodesB []*v1.Node
	for i := range 12 {
		topo := shapes[i%len(shapes)](fmt.Sprintf("t%d", i))
		for _, nodes := range []*[]*v1.Node{&nodesA, &nodesB} {
			n := gpuNode(t, fmt.Sprintf("n%02d", i), topo)
			n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse(fmt.Sprint(32 + 16*(i%3))), v1.ResourceMemory: resource.MustParse("256Gi")}
			n.Status.Capacity = n.Status.Allocatable
			*nodes = append(*nodes, n)
		}
	}
	type side struct {
		h      *harness
		infos  []fwk.NodeInfo // as Filter and Score get them
		byName map[string]*framework.NodeInfo
		live   []*v1.Pod
	}
	mk := func(nodes []*v1.Node, wrap bool) *side {
		s := &side{h: newHarness(t, nil, nodes), byName: map[string]*framework.NodeInfo{}}
		lister := s.h.fh.SnapshotSharedLister().NodeInfos()
		for _, n := range nodes {
			ni, err := lister.Get(n.Name)
			require.NoError(t, err)
			s.byName[n.Name] = ni.(*framework.NodeInfo)
			if wrap {
				ni = noGeneration{ni}
			}
			s.infos = append(s.infos, ni)
		}
		return s
	}
	a, b := mk(nodesA, false), mk(nodesB, true)
	// A task mix whose CPU needs strand GPUs on nodes short of CPU, so
	// that free CPU moves fragmentation and the choices.
	for _, s := range []*side{a, b} {
		var prior []score.Weighted
		for _, c := range []int64{4, 8, 12, 16, 24} {
			prior = append(prior, score.Weighted{Type: score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: c * 1000}, Weight: 2},
				score.Weighted{Type: score.TaskType{Kind: score.KindWhole, Count: 2, CPUMilli: 2 * c * 1000}, Weight: 1})
		}
		wl, err := score.NewWorkload(score.WorkloadOptions{Prior: prior, Pin: true})
		require.NoError(t, err)
		s.h.pl.workload = wl
	}
	logger := klog.FromContext(a.h.ctx)
	rng := rand.New(rand.NewPCG(5, 6))
	start := 0
	placed := 0
	for k := range 400 {
		gpus := []int64{1, 1, 1, 2, 2, 4}[rng.IntN(6)]
		cores := fmt.Sprint(1 + rng.IntN(24))
		leave := len(a.live) > 0 && rng.IntN(3) == 0
		leaveAt := 0
		if leave {
			leaveAt = rng.IntN(len(a.live))
		}
		// A CPU-only pod another scheduler placed: the node's free CPU
		// moves, its GPU usage does not.
		cpuOnlyAt, cpuOnlyCores := -1, int64(4+rng.IntN(20))
		if rng.IntN(3) == 0 {
			cpuOnlyAt = rng.IntN(len(nodesA))
		}
		var got [2]string
		var next int
		for i, s := range []*side{a, b} {
			if cpuOnlyAt >= 0 {
				ni := s.byName[nodesA[cpuOnlyAt].Name]
				if ni.Requested.MilliCPU+cpuOnlyCores*1000 <= ni.Allocatable.MilliCPU {
					p := fixture.MakePod().Name(fmt.Sprintf("cpu%d", k)).UID(fmt.Sprintf("cpu%d", k)).
						RequestQuantity(string(v1.ResourceCPU), *resource.NewQuantity(cpuOnlyCores, resource.DecimalSI)).Obj()
					p.Spec.NodeName = ni.Node().Name
					ni.AddPod(p)
				}
			}
			if leave {
				p := s.live[leaveAt]
				s.live = slices.Delete(s.live, leaveAt, leaveAt+1)
				s.h.pl.cache.Forget(p.UID)
				require.NoError(t, s.byName[p.Spec.NodeName].RemovePod(logger, p))
			}
			pod := gpuPod(fmt.Sprintf("p%d", k), "nvidia.com/gpu", gpus)
			pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cores)}
			cs := framework.NewCycleState()
			scores, st, _ := benchCycle(t, s.h, cs, pod, s.infos, start, len(s.infos))
			next = st
			if len(scores) == 0 {
				got[i] = "unschedulable"
				continue
			}
			best := slices.MaxFunc(scores, func(x, y fwk.NodeScore) int { return cmp.Compare(x.Score, y.Score) })
			require.True(t, s.h.pl.Reserve(s.h.ctx, cs, pod, best.Name).IsSuccess())
			r, _ := reservedOf(cs)
			value, err := protocol.EncodeDevices(r.devices)
			require.NoError(t, err)
			got[i] = fmt.Sprint(best.Name, " ", value, " ", scores)
			bound := pod.DeepCopy()
			bound.Spec.NodeName = best.Name
			bound.Annotations[protocol.DevicesAnnotation] = value
			s.h.pl.onPod(logger, bound)
			s.byName[best.Name].AddPod(bound)
			s.live = append(s.live, bound)
		}
		start = next
		require.Equal(t, got[1], got[0], "pod %d (%d GPUs, %s cores)", k, gpus, cores)
		if got[0] != "unschedulable" {
			placed++
		}
	}
	require.Greater(t, placed, 100, "most pods find a node")
}
