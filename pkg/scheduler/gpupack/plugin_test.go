package gpupack

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// harness is the scheduler framework with only GPUPack (plus the mandatory
// queue sort and binder) over a snapshot of nodes and pods.
type harness struct {
	t     *testing.T
	ctx   context.Context
	fh    framework.Framework
	pl    *GPUPack
	nodes []*v1.Node
	cs    *clientsetfake.Clientset
	inf   informers.SharedInformerFactory
}

func gpuNode(t *testing.T, name string, topo *topology.Node, inUse ...string) *v1.Node {
	t.Helper()
	raw, err := protocol.EncodeTopology(topo)
	require.NoError(t, err)
	n := fixture.MakeNode().Name(name).Annotations(protocol.TopologyAnnotation, raw)
	if len(inUse) > 0 {
		v, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "other", Name: "p", UID: "x"}, Devices: inUse}})
		require.NoError(t, err)
		n.Annotations(protocol.InUseAnnotation, v)
	}
	return n.Obj()
}

// gpuPod is the shorthand of this package's tables: a pod asking n of res
// in one container, with annotations as key, value pairs.
func gpuPod(name, res string, n int64, annotations ...string) *v1.Pod {
	return fixture.MakePod().Named(name).GPUs(res, n).Annotations(annotations...).Obj()
}

func newHarness(t *testing.T, args runtime.Object, nodes []*v1.Node, pods ...*v1.Pod) *harness {
	t.Helper()
	return newHarnessWith(t, harnessOptions{}, args, nodes, pods...)
}

// harnessOptions add to the harness's framework: more plugins (e.g.
// DefaultPreemption at PostFilter) and options (e.g. a pod nominator).
type harnessOptions struct {
	plugins []tf.RegisterPluginFunc
	options []frameworkruntime.Option
	// share, when set, is another harness whose clientset and informer
	// factory this one uses: a second profile of the same scheduler.
	share *harness
	// beforeStart runs once the plugin is built, before the informers
	// start (e.g. to slow a handler down).
	beforeStart func(h *harness)
}

func newHarnessWith(t *testing.T, o harnessOptions, args runtime.Object, nodes []*v1.Node, pods ...*v1.Pod) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	objs := []runtime.Object{}
	for _, n := range nodes {
		objs = append(objs, n)
	}
	for _, p := range pods {
		objs = append(objs, p)
	}
	cs := clientsetfake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(cs, 0)
	if o.share != nil {
		cs, inf = o.share.cs, o.share.inf
	}
	h := &harness{t: t, ctx: ctx, nodes: nodes, cs: cs, inf: inf}
	factory := func(ctx context.Context, obj runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		if args != nil {
			obj = args
		}
		pl, err := NewWithClock(ctx, obj, fh, func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC) })
		h.pl = pl
		return pl, err
	}
	snapshot := cache.NewSnapshot(pods, nodes)
	fh, err := tf.NewFramework(ctx, append([]tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		// GPUPack binds first (as in manifests/scheduler/config.yaml);
		// DefaultBinder binds the pods it skips.
		tf.RegisterPluginAsExtensions(Name, factory, "PreFilter", "Filter", "PreScore", "Score", "Reserve", "Bind"),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, o.plugins...), "gpupack-scheduler",
		append([]frameworkruntime.Option{
			frameworkruntime.WithSnapshotSharedLister(snapshot),
			frameworkruntime.WithMutableSnapshotLister(snapshot),
			frameworkruntime.WithClientSet(cs),
			frameworkruntime.WithInformerFactory(inf),
			// The scheduling queue is the nominator in kube-scheduler; none
			// nominated unless the test's options say so.
			frameworkruntime.WithPodNominator(&nominator{pods: map[string][]fwk.PodInfo{}}),
		}, o.options...)...,
	)
	require.NoError(t, err)
	if o.beforeStart != nil {
		o.beforeStart(h)
	}
	inf.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	h.fh = fh
	return h
}

// filterOn runs PreFilter (which must succeed) and the framework's Filter
// of pod on node, and returns the cycle state and Filter's status.
func (h *harness) filterOn(pod *v1.Pod, node string) (fwk.CycleState, *fwk.Status) {
	h.t.Helper()
	state := newCycleState(h.t, h, pod)
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get(node)
	require.NoError(h.t, err)
	return state, h.fh.RunFilterPlugins(h.ctx, state, pod, ni)
}

// schedule runs one scheduling cycle up to Reserve and returns the chosen
// node (the highest total score; ties by name) and the reserved devices.
func (h *harness) schedule(pod *v1.Pod) (string, []string, *fwk.Status, fwk.CycleState) {
	h.t.Helper()
	return h.scheduleWith(pod, nil)
}

// scheduleWith is schedule that hands the feasible nodes' scores to
// checkScores (when not nil) before it picks the node.
func (h *harness) scheduleWith(pod *v1.Pod, checkScores func([]fwk.NodePluginScores)) (string, []string, *fwk.Status, fwk.CycleState) {
	h.t.Helper()
	state := framework.NewCycleState()
	if _, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod); !st.IsSuccess() {
		return "", nil, st, state
	}
	var feasible []fwk.NodeInfo
	var reasons []string
	lister := h.fh.SnapshotSharedLister().NodeInfos()
	for _, n := range h.nodes {
		ni, err := lister.Get(n.Name)
		require.NoError(h.t, err)
		if st := h.fh.RunFilterPlugins(h.ctx, state, pod, ni); st.IsSuccess() {
			feasible = append(feasible, ni)
		} else {
			reasons = append(reasons, n.Name+": "+st.Message())
		}
	}
	if len(feasible) == 0 {
		return "", nil, fwk.NewStatus(fwk.Unschedulable, reasons...), state
	}
	require.True(h.t, h.fh.RunPreScorePlugins(h.ctx, state, pod, feasible).IsSuccess())
	scores, st := h.fh.RunScorePlugins(h.ctx, state, pod, feasible)
	require.True(h.t, st.IsSuccess(), st.Message())
	if checkScores != nil {
		checkScores(scores)
	}
	slices.SortStableFunc(scores, func(a, b fwk.NodePluginScores) int {
		if a.TotalScore != b.TotalScore {
			return int(b.TotalScore - a.TotalScore)
		}
		return 0
	})
	node := scores[0].Name
	if st := h.fh.RunReservePluginsReserve(h.ctx, state, pod, node); !st.IsSuccess() {
		return "", nil, st, state
	}
	_, ids, _ := h.pl.cache.PodDevices(pod.UID)
	slices.Sort(ids)
	return node, ids, nil, state
}

func ids(n *topology.Node, idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, n.GPUs[i].UUID)
	}
	slices.Sort(out)
	return out
}

func TestFourGPUsGoToTheNVLinkQuad(t *testing.T) {
	// Node "scattered": DGX-1 with GPUs 1,2,4,7 in use (in-use report), so
	// 0,3,5,6 are free: 0-3 2 lanes, 5-6 2 lanes, 0-5/0-6/3-5/3-6 SYS: best
	// ring 0-3-?: any ring crosses SYS twice: 6 GB/s.
	// Node "quad": DGX-1 with 0,1,2,3 in use: 4,5,6,7 free, ring 4-7-6-5:
	// 2,2,2,1 lanes: 25 GB/s = the ideal quad.
	// Fragmentation gain favours "scattered" (it uses up GPUs that cannot
	// form a good quad): frag score 100 there, 0 on "quad"; topology: 100 x
	// 25/25 = 100 on "quad", 100 x 6/25 = 24 on "scattered". With weights
	// 1 and 2: quad (0 + 200)/3 = 67, scattered (100 + 48)/3 = 49.
	scattered := fixture.DGX1V100("s")
	quad := fixture.DGX1V100("q")
	nodes := []*v1.Node{
		gpuNode(t, "scattered", scattered, ids(scattered, 1, 2, 4, 7)...),
		gpuNode(t, "quad", quad, ids(quad, 0, 1, 2, 3)...),
	}
	h := newHarness(t, nil, nodes)
	node, got, st, _ := h.schedule(gpuPod("train", "nvidia.com/gpu", 4))
	require.Nil(t, st)
	require.Equal(t, "quad", node)
	require.Equal(t, ids(quad, 4, 5, 6, 7), got)

	// topology: required on the scattered node alone is rejected.
	h2 := newHarness(t, nil, nodes[:1])
	_, _, st, _ = h2.schedule(gpuPod("strict", "nvidia.com/gpu", 4, "gpupack.io/topology", "required"))
	require.NotNil(t, st)
	require.Contains(t, st.Message(), "topology: required")
}

func TestOneGPUKeepsTheGoodPairs(t *testing.T) {
	// DGX-1 V100 with 0,1,2,5,6 reported in use: free {3,4,7}. Pairs: 4-7
	// 2 lanes (50 GB/s, the ideal pair), 3-7 1 lane (25), 3-4 SYS (6).
	// Taking 3 leaves 4-7 (2-GPU fragment 2-2*1 = 0), taking 4 leaves 3-7
	// (2-2*25/50 = 1, x p(whole 2) .04 = +.04), taking 7 leaves 3-4
	// (2-2*6/50 = 1.76, +.0704): the pod takes GPU 3, the card whose loss
	// breaks no good pair. A second pod then takes 4 or 7, never 3 again.
	n := fixture.DGX1V100("p")
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "p", n, ids(n, 0, 1, 2, 5, 6)...)})
	_, got, st, _ := h.schedule(gpuPod("one", "nvidia.com/gpu", 1))
	require.Nil(t, st)
	require.Equal(t, ids(n, 3), got)
	_, got2, st, _ := h.schedule(gpuPod("two", "nvidia.com/gpu", 1))
	require.Nil(t, st)
	require.Len(t, got2, 1)
	require.Contains(t, ids(n, 4, 7), got2[0])
}

func TestNeverChoosesUnhealthyOrInUse(t *testing.T) {
	// DGX-1: GPU 3 unhealthy, GPUs 0,1,2 reported in use by the node: the
	// free healthy GPUs are 4..7; 5 single-GPU pods: 4 succeed on 4..7,
	// the fifth finds none.
	n := fixture.DGX1V100("h")
	n.GPUs[3].Healthy = false
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "h", n, ids(n, 0, 1, 2)...)})
	var all []string
	for i := range 5 {
		node, got, st, _ := h.schedule(gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", 1))
		if i == 4 {
			require.NotNil(t, st)
			require.Contains(t, st.Message(), "no free healthy whole GPU for 1 x nvidia.com/gpu (0 free)")
			continue
		}
		require.Nil(t, st)
		require.Equal(t, "h", node)
		all = append(all, got...)
	}
	slices.Sort(all)
	require.Equal(t, ids(n, 4, 5, 6, 7), all, "two pods in a row never share a GPU")
}

func TestReserveUnreserveRestoresCache(t *testing.T) {
	n := fixture.DGX1V100("r")
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "r", n)})
	before := h.pl.cache.Used("r")
	pod := gpuPod("p", "nvidia.com/gpu", 2)
	_, got, st, state := h.schedule(pod)
	require.Nil(t, st)
	require.Len(t, got, 2)
	require.Len(t, h.pl.cache.Used("r"), 2)
	h.fh.RunReservePluginsUnreserve(h.ctx, state, pod, "r")
	require.Equal(t, before, h.pl.cache.Used("r"))
	// The same pod scheduled again gets the same (best) pair.
	_, again, st, _ := h.schedule(pod)
	require.Nil(t, st)
	require.Equal(t, got, again)
}

func TestMIGOnlyWhereAFreeInstanceExists(t *testing.T) {
	// Node "a": GPU 0 has 1g.5gb x2, the first one in use. Node "b": GPU 0
	// has 3g.20gb only. A 1g.5gb pod fits only "a", on the second device.
	a := fixture.WithMIG(fixture.NVSwitch("a", "A100", 2, 12), 0, 1, "1g.5gb", "1g.5gb")
	b := fixture.WithMIG(fixture.NVSwitch("b", "A100", 2, 12), 0, 4, "3g.20gb")
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "a", a, a.MIG[0].UUID), gpuNode(t, "b", b)})
	node, got, st, _ := h.schedule(gpuPod("m1", "nvidia.com/mig-1g.5gb", 1))
	require.Nil(t, st)
	require.Equal(t, "a", node)
	require.Equal(t, []string{a.MIG[1].UUID}, got)
	_, _, st, _ = h.schedule(gpuPod("m2", "nvidia.com/mig-1g.5gb", 1))
	require.NotNil(t, st, "both 1g.5gb are now taken")
	// An unhealthy instance is never chosen.
	b.MIG[0].Healthy = false
	h2 := newHarness(t, nil, []*v1.Node{gpuNode(t, "b", b)})
	_, _, st, _ = h2.schedule(gpuPod("m3", "nvidia.com/mig-3g.20gb", 1))
	require.NotNil(t, st)
}

func TestMalformedTopologyIsFilteredOut(t *testing.T) {
	good := fixture.DGX1V100("g")
	bad := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bad", Annotations: map[string]string{protocol.TopologyAnnotation: `{"version":"v9"}`}}}
	junk := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "junk", Annotations: map[string]string{protocol.TopologyAnnotation: `{{{`}}}
	h := newHarness(t, nil, []*v1.Node{bad, junk, gpuNode(t, "good", good)})
	pod := gpuPod("p", "nvidia.com/gpu", 1)
	for name, want := range map[string]string{"bad": `unsupported version "v9"`, "junk": "malformed JSON"} {
		_, st := h.filterOn(pod, name)
		require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
		require.Contains(t, st.Message(), want)
	}
	node, _, st2, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
	require.Nil(t, st2)
	require.Equal(t, "good", node)
}

func TestRestartRebuildsFromPodsAndInUse(t *testing.T) {
	// Before the restart: pod "old" holds GPUs 0,1 by annotation; the node
	// reports 2 and 3 in use (another scheduler's pod, and "old" again: 1).
	// After the restart the cache must count 0,1,2,3 as used: 4 single-GPU
	// pods get exactly 4,5,6,7, the fifth none.
	n := fixture.DGX1V100("x")
	devs, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids(n, 0, 1)}})
	require.NoError(t, err)
	old := gpuPod("old", "nvidia.com/gpu", 2, protocol.DevicesAnnotation, devs)
	old.Spec.NodeName = "x"
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", n, ids(n, 1, 2, 3)...)}, old)
	require.Eventually(t, func() bool { return len(h.pl.cache.Used("x")) == 4 }, 5*time.Second, 10*time.Millisecond)
	var all []string
	for i := range 5 {
		_, got, st, _ := h.schedule(gpuPod(fmt.Sprintf("n%d", i), "nvidia.com/gpu", 1))
		if i == 4 {
			require.NotNil(t, st)
			continue
		}
		require.Nil(t, st)
		all = append(all, got...)
	}
	slices.Sort(all)
	require.Equal(t, ids(n, 4, 5, 6, 7), all)
}

func TestBindCarriesTheDevices(t *testing.T) {
	n := fixture.DGX1V100("b")
	pod := gpuPod("p", "nvidia.com/gpu", 1)
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "b", n)}, pod)
	var bindings []*v1.Binding
	h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		bindings = append(bindings, a.(k8stesting.CreateAction).GetObject().(*v1.Binding))
		return true, nil, nil
	})
	node, got, st, state := h.schedule(pod)
	require.Nil(t, st)
	require.True(t, h.fh.RunBindPlugins(h.ctx, state, pod, node).IsSuccess())
	// One Binding, to the chosen node, carrying the devices and the time.
	require.Len(t, bindings, 1)
	b := bindings[0]
	require.Equal(t, v1.ObjectReference{Kind: "Node", Name: node}, b.Target)
	require.Equal(t, pod.UID, b.UID)
	d, err := protocol.DecodeDevices(b.Annotations[protocol.DevicesAnnotation])
	require.NoError(t, err)
	require.Equal(t, got, d.Resources["nvidia.com/gpu"])
	require.Equal(t, "2026-01-02T03:04:05.000000006Z", b.Annotations[protocol.AssumedAtAnnotation])

	// A pod with no device choice is left to the next binder.
	cpu := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cpu", Namespace: "default", UID: "cpu"}}
	require.True(t, h.pl.Bind(h.ctx, framework.NewCycleState(), cpu, node).IsSkip())
	require.Len(t, bindings, 1)
}
