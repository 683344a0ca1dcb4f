package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	configv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A CPU-only pod goes where its CPU strands the fewest GPUs. The workload's
// only task type needs 1 GPU and 8 cores; the pod asks 4 cores.
//
//	tight (16 cores, 2 free T4): 16 / 8 = 2 tasks before, 12 / 8 = 1
//	    after: 1 GPU stranded, -1e6 steps of 1e-6 GPU: score 0
//	roomy (64 cores, 2 free T4): 60 cores still hold both GPUs' tasks: 0
//	big (256 cores, 8 free T4): 252 / 8 = 31 tasks, more than 8 GPUs: 0
//	starved (4 cores, 8 free T4): holds no task before or after: 0
//	plain (no GPUs): nothing to strand: 0
//	broken (a malformed topology annotation), pending (nvidia.com/gpu
//	    allocatable, no annotation yet): GPUs gpupack cannot see: 0
//
// Between nodes that strand nothing the one whose CPU feeds fewer free
// GPUs wins (score.CPUOnlyRaw, score.FedCapacity): plain and starved (0)
// over roomy (2 fed: 8 points) over big (8 fed: 32) over broken and
// pending (taken as feeding the most: 99). Each winner is listed last:
// the harness keeps the first of tied nodes.
//
// GPUPack's Filter does not run for it (PreFilter skips it: a node without
// a topology annotation is fine), and nothing is reserved or bound by
// GPUPack.
func TestCPUOnlyPodStrandsNoGPU(t *testing.T) {
	alloc := func(n *v1.Node, cpu string) *v1.Node {
		n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse("64Gi")}
		return n
	}
	tight := alloc(gpuNode(t, "tight", fixture.PCIe("t", "T4", 2)), "16")
	roomy := alloc(gpuNode(t, "roomy", fixture.PCIe("r", "T4", 2)), "64")
	big := alloc(gpuNode(t, "big", fixture.PCIe("b", "T4", 8)), "256")
	plain := alloc(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, "16")
	starved := alloc(gpuNode(t, "starved", fixture.PCIe("s", "T4", 8)), "4")
	broken := alloc(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "broken", Annotations: map[string]string{protocol.TopologyAnnotation: "{not json"}}}, "64")
	pending := alloc(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pending"}}, "64")
	pending.Status.Allocatable["nvidia.com/gpu"] = resource.MustParse("8")
	w, err := score.NewWorkload(score.WorkloadOptions{Pin: true, Prior: []score.Weighted{
		{Type: score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 8000}, Weight: 1}}})
	require.NoError(t, err)
	for _, tc := range []struct {
		nodes []*v1.Node
		want  string
	}{
		{[]*v1.Node{tight, roomy}, "roomy"},
		{[]*v1.Node{tight, plain}, "plain"},
		{[]*v1.Node{big, roomy}, "roomy"},
		{[]*v1.Node{roomy, plain}, "plain"},
		{[]*v1.Node{big, tight, roomy}, "roomy"},
		{[]*v1.Node{roomy, starved}, "starved"},
		{[]*v1.Node{broken, big}, "big"},
		{[]*v1.Node{pending, big}, "big"},
		{[]*v1.Node{broken, pending, tight}, "broken"},
	} {
		h := newHarness(t, nil, tc.nodes)
		h.pl.workload = w
		node, ids, st, _ := h.schedule(fixture.MakePod().Named("cpu").RequestQuantity(string(v1.ResourceCPU), resource.MustParse("4")).Obj())
		require.Nil(t, st)
		require.Equal(t, tc.want, node)
		require.Empty(t, ids, "GPUPack reserves no device for a CPU-only pod")
	}

	// A pod asking for nothing is not scored: every node 0 points, the
	// harness keeps the first.
	h := newHarness(t, nil, []*v1.Node{tight, roomy})
	h.pl.workload = w
	empty := fixture.MakePod().Named("none").RequestQuantity(string(v1.ResourceCPU), resource.MustParse("0")).Obj()
	empty.Spec.Containers[0].Resources.Requests = nil
	node, _, st, _ := h.schedule(empty)
	require.Nil(t, st)
	require.Equal(t, "tight", node)
}

// gpusim's online mode learns with score.PluginWorkloadOptions: they must
// be what the plugin's default args give.
func TestPluginWorkloadOptionsAreTheDefaultArgs(t *testing.T) {
	o := score.PluginWorkloadOptions()
	require.InDelta(t, float64(configv1.DefaultPriorWeight), o.PriorWeight, 0)
	require.InDelta(t, float64(configv1.DefaultHalfLife), o.HalfLife, 0)
	require.InDelta(t, score.DefaultTolerance, o.Tolerance, 0)
	require.Equal(t, score.DefaultSnapshotInterval, o.SnapshotInterval)
	require.InDelta(t, score.DefaultMaxLag, o.MaxLag, 0)
	require.False(t, o.Pin)
	require.Nil(t, o.Prior, "the default prior (score.DefaultPrior)")
}
