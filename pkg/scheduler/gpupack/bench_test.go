package gpupack

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/parallelize"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BenchmarkScorePerNode measures, per node and warm (topology decoded,
// memo filled), GPUPack's Filter+Score (Filter makes the device plan that
// Score reuses; both are timed) and NodeResourcesFit's Score
// (LeastAllocated on cpu/memory) on the same node.
func BenchmarkScorePerNode(b *testing.B) {
	for _, tc := range []struct {
		name string
		topo *topology.Node
		used []int
		gpus int64
	}{
		{"dgx1-8gpu/1gpu", fixture.DGX1V100("b8"), []int{0, 5}, 1},
		{"dgx1-8gpu/2gpu", fixture.DGX1V100("b8"), []int{0, 5}, 2},
		{"dgx1-8gpu/4gpu", fixture.DGX1V100("b8"), nil, 4},
		{"nvswitch-16gpu/1gpu", fixture.NVSwitch("b16", "H100", 16, 18), []int{0, 5, 9}, 1},
		{"nvswitch-16gpu/4gpu", fixture.NVSwitch("b16", "H100", 16, 18), []int{0, 5, 9}, 4},
		{"pcie-16gpu/2gpu", fixture.PCIe("p16", "T4", 16), []int{0, 5, 9}, 2},
	} {
		t := &testing.T{}
		node := gpuNode(t, "n", tc.topo, ids(tc.topo, tc.used...)...)
		node.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi")}
		node.Status.Capacity = node.Status.Allocatable
		pod := gpuPod("p", "nvidia.com/gpu", tc.gpus)
		pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("16Gi")}
		h := newHarnessB(b, node)
		ni := framework.NewNodeInfo()
		ni.SetNode(node)

		b.Run(tc.name+"/GPUPack", func(b *testing.B) {
			cs := framework.NewCycleState()
			if _, st := h.pl.PreFilter(h.ctx, cs, pod, nil); !st.IsSuccess() {
				b.Fatal(st)
			}
			for b.Loop() {
				// Warm: the node's last plan answers (planFor), as for
				// the next pod asking the same of an unchanged node.
				if st := h.pl.Filter(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
				if _, st := h.pl.Score(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
			}
		})
		b.Run(tc.name+"/NodeResourcesFit", func(b *testing.B) {
			fit, err := noderesources.NewFit(h.ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
				Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
			}}, h.fh, feature.Features{})
			if err != nil {
				b.Fatal(err)
			}
			sp := fit.(fwk.ScorePlugin)
			cs := framework.NewCycleState()
			if st := fit.(fwk.PreScorePlugin).PreScore(h.ctx, cs, pod, []fwk.NodeInfo{ni}); !st.IsSuccess() {
				b.Fatal(st)
			}
			for b.Loop() {
				if _, st := sp.Score(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
			}
		})
	}
}

func newHarnessB(b *testing.B, nodes ...*v1.Node) *harness {
	t := &testing.T{}
	_ = t
	var h *harness
	b.Run("setup", func(b *testing.B) { b.Skip() })
	h = newHarness(&testing.T{}, nil, nodes)
	return h
}

// BenchmarkCycle1000Nodes is one scheduling cycle's Filter+Score over 1000
// DGX-1 nodes whose usage is random (up to 256 usage patterns), reported
// per node, with the workload learning after every cycle (as Reserve does)
// so that changed snapshots cost what they cost; NodeResourcesFit's Score
// over the same nodes is the baseline.
func BenchmarkCycle1000Nodes(b *testing.B) {
	const n = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	var nodes []*v1.Node
	var infos []fwk.NodeInfo
	for i := range n {
		topo := fixture.DGX1V100(fmt.Sprintf("c%d", i))
		var used []int
		for g := range 8 {
			if rng.IntN(2) == 0 {
				used = append(used, g)
			}
		}
		if len(used) == 8 {
			used = used[:7]
		}
		node := gpuNode(&testing.T{}, fmt.Sprintf("n%d", i), topo, ids(topo, used...)...)
		node.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi")}
		node.Status.Capacity = node.Status.Allocatable
		nodes = append(nodes, node)
		ni := framework.NewNodeInfo()
		ni.SetNode(node)
		infos = append(infos, ni)
	}
	h := newHarnessB(b, nodes...)
	pod := gpuPod("p", "nvidia.com/gpu", 1)
	pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("16Gi")}
	kinds := []score.TaskType{{Kind: score.KindWhole, Count: 1}, {Kind: score.KindWhole, Count: 2}, {Kind: score.KindShared, Milli: 500}}
	b.Run("GPUPack", func(b *testing.B) {
		k := 0
		for b.Loop() {
			cs := framework.NewCycleState()
			if _, st := h.pl.PreFilter(h.ctx, cs, pod, infos); !st.IsSuccess() {
				b.Fatal(st)
			}
			for _, ni := range infos {
				if st := h.pl.Filter(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
				if _, st := h.pl.Score(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
			}
			h.pl.workload.Observe(kinds[k%len(kinds)])
			k++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/node")
	})
	b.Run("NodeResourcesFit", func(b *testing.B) {
		fit, err := noderesources.NewFit(h.ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
			Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
		}}, h.fh, feature.Features{})
		if err != nil {
			b.Fatal(err)
		}
		sp := fit.(fwk.ScorePlugin)
		for b.Loop() {
			cs := framework.NewCycleState()
			if st := fit.(fwk.PreScorePlugin).PreScore(h.ctx, cs, pod, infos); !st.IsSuccess() {
				b.Fatal(st)
			}
			for _, ni := range infos {
				if _, st := sp.Score(h.ctx, cs, pod, ni); !st.IsSuccess() {
					b.Fatal(st)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/node")
	})
}

// BenchmarkPodCycle is GPUPack's whole share of scheduling one pod in a
// large cluster, per pod: PreFilter, Filter and Score on the nodes one
// cycle evaluates (kube-scheduler's default at 5000 nodes: 10%, 500,
// taken round-robin from where the last cycle stopped), PreScore,
// NormalizeScore, Reserve on the best node and the informer's report of
// the bound pod. Pods ask 1, 2 or 4 GPUs and one core (as
// test/throughput's stream does); the oldest pods go away so that the
// cluster keeps 2000 running. Run with -benchmem: allocations per pod
// feed the GC that the scheduler's other goroutines pay for too.
func BenchmarkPodCycle(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) { benchPodCycle(b, n) })
	}
}

// BenchmarkWarmCycle is BenchmarkPodCycle's cycle (PreFilter, Filter on
// the 500 nodes after the last cycle's, PreScore, Score, NormalizeScore)
// without Reserve: nothing changes, so every node answers from its last
// plans, as most nodes do in a steady stream. It is the per-node cost of
// the hot path (the node's view and last plans looked up) in a cluster too
// large for the CPU caches, reported per node Filter saw.
func BenchmarkWarmCycle(b *testing.B) {
	const n, evaluated = 5000, 500
	h, infos := benchCluster(b, n)
	pods := warmPods()
	start, k, seen := 0, 0, 0
	cpu0 := processCPU(b)
	for b.Loop() {
		pod := pods[k%len(pods)]
		k++
		cs := framework.NewCycleState()
		var filtered int
		_, start, filtered = benchCycle(b, h, cs, pod, infos, start, evaluated)
		seen += filtered
	}
	reportPerNode(b, seen, cpu0)
}

// BenchmarkWarmCycleParallel is BenchmarkWarmCycle with Filter and Score
// run as kube-scheduler runs them, on its parallelizer's 16 workers
// (parallelism's default) over the 500 nodes: what it adds to the serial
// figures is the cost of the workers' contention (shared locks and
// counters), which grows with the cores (-cpu 1,2,...).
func BenchmarkWarmCycleParallel(b *testing.B) {
	const n, evaluated, workers = 5000, 500, 16
	h, infos := benchCluster(b, n)
	par := parallelize.NewParallelizer(workers)
	pods := warmPods()
	start, k, seen := 0, 0, 0
	cpu0 := processCPU(b)
	for b.Loop() {
		pod := pods[k%len(pods)]
		k++
		cs := framework.NewCycleState()
		if _, st := h.pl.PreFilter(h.ctx, cs, pod, infos); !st.IsSuccess() {
			b.Fatal(st)
		}
		window := make([]fwk.NodeInfo, evaluated)
		for j := range window {
			window[j] = infos[(start+j)%n]
		}
		start = (start + evaluated) % n
		seen += evaluated
		fits := make([]bool, evaluated)
		par.Until(h.ctx, evaluated, func(j int) {
			fits[j] = h.pl.Filter(h.ctx, cs, pod, window[j]).IsSuccess()
		}, "Filter")
		feasible := window[:0:0]
		for j, ok := range fits {
			if ok {
				feasible = append(feasible, window[j])
			}
		}
		if st := h.pl.PreScore(h.ctx, cs, pod, feasible); !st.IsSuccess() {
			b.Fatal(st)
		}
		scores := make(fwk.NodeScoreList, len(feasible))
		par.Until(h.ctx, len(feasible), func(j int) {
			sc, _ := h.pl.Score(h.ctx, cs, pod, feasible[j])
			scores[j] = fwk.NodeScore{Name: feasible[j].Node().Name, Score: sc}
		}, "Score")
		if st := h.pl.NormalizeScore(h.ctx, cs, pod, scores); !st.IsSuccess() {
			b.Fatal(st)
		}
	}
	reportPerNode(b, seen, cpu0)
}

// warmPods are the warm cycles' pods: 1, 2 and 4 GPUs, one core each.
func warmPods() []*v1.Pod {
	var pods []*v1.Pod
	for i, g := range []int64{1, 2, 4} {
		pod := gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", g)
		pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}
		pods = append(pods, pod)
	}
	return pods
}

// reportPerNode reports the benchmark's wall and CPU time per node Filter
// saw (seen), the CPU counted from cpu0 (processCPU at the start). CPU
// time (GC included) is what the machine's other load disturbs least.
func reportPerNode(b *testing.B, seen int, cpu0 time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seen), "ns/node")
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(seen), "cpu-ns/node")
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCluster is n DGX-1 nodes with 128 cores and 1 TiB each, known to
// the plugin's cache and to the framework's snapshot (infos).
func benchCluster(b *testing.B, n int) (*harness, []fwk.NodeInfo) {
	topo := fixture.DGX1V100("c")
	raw, err := protocol.EncodeTopology(topo)
	if err != nil {
		b.Fatal(err)
	}
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("128"), v1.ResourceMemory: resource.MustParse("1Ti")}
	nodes := make([]*v1.Node, n)
	for i := range nodes {
		nodes[i] = &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gpu-node-%05d", i), Annotations: map[string]string{protocol.TopologyAnnotation: raw}}}
		nodes[i].Status.Allocatable, nodes[i].Status.Capacity = alloc, alloc
	}
	// Not newHarnessB: a sub-benchmark would hide this one's figures.
	h := newHarness(&testing.T{}, nil, nodes)
	lister := h.fh.SnapshotSharedLister().NodeInfos()
	infos := make([]fwk.NodeInfo, n)
	for i, node := range nodes {
		if infos[i], err = lister.Get(node.Name); err != nil {
			b.Fatal(err)
		}
	}
	// The informer's handlers decode the nodes in the background: wait
	// for them, then point the cache at the snapshot's Node objects (in a
	// scheduler the snapshot and the informer share them).
	for h.pl.cache.(*gpucache.Cache).Decoded() < n {
		time.Sleep(10 * time.Millisecond)
	}
	for _, node := range nodes {
		h.pl.cache.UpdateNode(node)
	}
	return h, infos
}

// benchCycle runs one pod's scheduling cycle up to NormalizeScore as
// kube-scheduler does: PreFilter, Filter from node start on until evaluated
// nodes fit (or every node was seen), PreScore, Score and NormalizeScore
// over those. It returns the normalized scores, where the next cycle's
// Filter starts, and how many nodes Filter saw.
func benchCycle(b testing.TB, h *harness, cs fwk.CycleState, pod *v1.Pod, infos []fwk.NodeInfo, start, evaluated int) (fwk.NodeScoreList, int, int) {
	n := len(infos)
	if _, st := h.pl.PreFilter(h.ctx, cs, pod, infos); !st.IsSuccess() {
		b.Fatal(st)
	}
	feasible, seen := infos[:0:0], 0
	for j := 0; j < n && len(feasible) < evaluated; j++ {
		ni := infos[(start+j)%n]
		seen++
		if st := h.pl.Filter(h.ctx, cs, pod, ni); st.IsSuccess() {
			feasible = append(feasible, ni)
		}
	}
	if st := h.pl.PreScore(h.ctx, cs, pod, feasible); !st.IsSuccess() {
		b.Fatal(st)
	}
	scores := make(fwk.NodeScoreList, len(feasible))
	for j, ni := range feasible {
		s, st := h.pl.Score(h.ctx, cs, pod, ni)
		if !st.IsSuccess() {
			b.Fatal(st)
		}
		scores[j] = fwk.NodeScore{Name: ni.Node().Name, Score: s}
	}
	if st := h.pl.NormalizeScore(h.ctx, cs, pod, scores); !st.IsSuccess() {
		b.Fatal(st)
	}
	return scores, (start + len(feasible)) % n, seen
}

func benchPodCycle(b *testing.B, n int) {
	const evaluated, running = 500, 2000
	h, infos := benchCluster(b, n)
	logger := klog.FromContext(h.ctx)
	rng := rand.New(rand.NewPCG(3, 4))
	gpus := []int64{1, 1, 1, 1, 1, 1, 1, 2, 2, 4}
	var live []*v1.Pod
	start, k := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		pod := gpuPod(fmt.Sprintf("p%d", k), "nvidia.com/gpu", gpus[rng.IntN(len(gpus))])
		pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}
		k++
		cs := framework.NewCycleState()
		var scores fwk.NodeScoreList
		scores, start, _ = benchCycle(b, h, cs, pod, infos, start, evaluated)
		best := slices.MaxFunc(scores, func(a, b fwk.NodeScore) int { return cmp.Compare(a.Score, b.Score) })
		if st := h.pl.Reserve(h.ctx, cs, pod, best.Name); !st.IsSuccess() {
			b.Fatal(st)
		}
		// The informer reports the pod bound with its devices.
		r, _ := reservedOf(cs)
		value, err := protocol.EncodeDevices(r.devices)
		if err != nil {
			b.Fatal(err)
		}
		bound := pod.DeepCopy()
		bound.Spec.NodeName = best.Name
		bound.Annotations[protocol.DevicesAnnotation] = value
		h.pl.onPod(logger, bound)
		if live = append(live, bound); len(live) > running {
			h.pl.cache.Forget(live[0].UID)
			live = live[1:]
		}
	}
}

// BenchmarkFilterRejects is Filter on a node that a pod of several GPU
// requests (no last plans: every Filter plans) does not fit now but would
// empty, as every node of a full cluster answers each pending pod: the
// plan, then the plan on the node's empty State that tells Unschedulable
// from UnschedulableAndUnresolvable (errNeverFits). The plan alone on the
// same node is the baseline. DGX-1 with GPUs 0-5 in use: 2 free.
func BenchmarkFilterRejects(b *testing.B) {
	topo := fixture.DGX1V100("x")
	node := gpuNode(&testing.T{}, "n", topo, ids(topo, 0, 1, 2, 3, 4, 5)...)
	h := newHarnessB(b, node)
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
	}{
		{"2x2gpu", fixture.MakePod().Named("a").Container("a").Limit("nvidia.com/gpu", 2).Container("b").Limit("nvidia.com/gpu", 2).Obj()},
		{"2+4gpu", fixture.MakePod().Named("c").Container("a").Limit("nvidia.com/gpu", 2).Container("b").Limit("nvidia.com/gpu", 4).Obj()},
	} {
		cs := framework.NewCycleState()
		if _, st := h.pl.PreFilter(h.ctx, cs, tc.pod, nil); !st.IsSuccess() {
			b.Fatal(st)
		}
		s, err := readState(cs)
		if err != nil {
			b.Fatal(err)
		}
		view, err := h.pl.cache.ViewNodeInfo(ni)
		if err != nil {
			b.Fatal(err)
		}
		reqs, err := h.pl.resolveAll(view.Topology, s.requests)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/plan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, failed := planOn(view.State, reqs, h.pl.workload.Distribution(), false); failed < 0 {
					b.Fatal("fits")
				}
			}
		})
		b.Run(tc.name+"/Filter", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if st := h.pl.Filter(h.ctx, cs, tc.pod, ni); st.Code() != fwk.Unschedulable {
					b.Fatal(st)
				}
			}
		})
	}
}
