package gpupack

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/score"
)

// NodeFit is the plugin's Filter answer for a pod on one node, with the
// figures Score would rank a fitting node by.
type NodeFit struct {
	Node string `json:"node"`
	Fits bool   `json:"fits"`
	// Reason is Filter's message when the pod does not fit.
	Reason string `json:"reason,omitempty"`
	// Unresolvable: freeing devices on the node would not help (Filter's
	// UnschedulableAndUnresolvable): it has no usable GPUs (no or
	// malformed annotations), does not serve the request, or the request
	// would not fit it even with none of its devices in use.
	Unresolvable bool `json:"unresolvable,omitempty"`
	// FragDelta is the node's fragmentation increase (GPUs) at the best
	// device choice; QualityRatio the worst multi-GPU set's link quality
	// over the best the node's shape offers (1: best, or no multi-GPU set).
	FragDelta    float64 `json:"fragDelta,omitempty"`
	QualityRatio float64 `json:"qualityRatio,omitempty"`
	// SupplyCost is what the choice takes from the cluster's supply of
	// constrained task types, in expected GPUs of their future tasks left
	// without a host (score.Pricing.Cost); Score adds it to FragDelta.
	SupplyCost float64 `json:"supplyCost,omitempty"`
	// Score is this plugin's normalized score (0..100, NormalizeScore) of a
	// fitting node among the fitting nodes listed: the fragmentation steps
	// behind the best node, blended for a multi-GPU set with its link
	// quality against its own shape and against the fitting nodes of its
	// GPU family (their compute capability labels). nil for a node that
	// does not fit. kube-scheduler may score a sample of the nodes only,
	// and adds its other score plugins.
	Score *int64 `json:"score,omitempty"`
}

// MarshalJSON writes a fitting node's fragDelta, qualityRatio and
// supplyCost always, 0 included: omitted, a reader (jq's
// select(.fragDelta < 0)) took the missing key for null, which sorts below
// every number. A node that does not fit has none of them.
func (f NodeFit) MarshalJSON() ([]byte, error) {
	type plain NodeFit // without this method
	if !f.Fits {
		return json.Marshal(plain(f))
	}
	return json.Marshal(struct {
		plain
		FragDelta    float64 `json:"fragDelta"`
		QualityRatio float64 `json:"qualityRatio"`
		SupplyCost   float64 `json:"supplyCost"`
	}{plain(f), f.FragDelta, f.QualityRatio, f.SupplyCost})
}

// Explain says, node by node, whether pod fits as this plugin's PreFilter
// and Filter decide, from nodes (their gpupack.io/topology and
// gpupack.io/in-use annotations, allocatable CPU and memory) and pods (the
// pods holding devices and resources). args are the plugin's args (nil:
// the defaults); the workload is the args' prior, as a freshly started
// scheduler has it. Only this plugin's answer: kube-scheduler's other
// plugins (resources, taints, affinity) are not asked. A pod without GPU
// requests, or with a malformed request, returns an error.
func Explain(ctx context.Context, args runtime.Object, pod *v1.Pod, nodes []*v1.Node, pods []*v1.Pod) ([]NodeFit, error) {
	pl, err := build(args, nil, time.Now)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*v1.Pod{}
	for _, p := range pods {
		if p.UID == pod.UID || p.Spec.NodeName == "" || podutil.IsPodTerminal(p) {
			continue
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		// A malformed choice holds the pod's requests, as the plugin's
		// informer takes it; the node's in-use report counts the devices.
		_ = pl.cache.AddPod(p)
	}
	for _, n := range nodes {
		// As the plugin's node informer: Score's supply counts every node
		// (a node's decoding error is Filter's answer below).
		_, _ = pl.cache.UpdateNode(n)
	}
	cs := framework.NewCycleState()
	infos := make([]fwk.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		ni := framework.NewNodeInfo(byNode[n.Name]...)
		ni.SetNode(n)
		infos = append(infos, ni)
	}
	noGPU := fmt.Errorf("pod %s/%s asks for no GPU resource this plugin schedules", pod.Namespace, pod.Name)
	if _, st := pl.PreFilter(ctx, cs, pod, infos); !st.IsSuccess() {
		if st.IsSkip() {
			return nil, noGPU
		}
		return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, st.AsError())
	}
	s, err := readState(cs)
	if err != nil { // a CPU-only pod that lists a GPU resource at 0 (zero.go)
		return nil, noGPU
	}
	s.pricing = pl.cache.Pricing(pl.workload.Distribution())
	fits := make([]NodeFit, 0, len(infos))
	ranked := make([]score.Ranked, 0, len(infos))
	for _, ni := range infos {
		f, r := pl.explainNode(ctx, cs, s, pod, ni)
		fits = append(fits, f)
		ranked = append(ranked, r)
	}
	pl.scoreFits(fits, ranked)
	slices.SortStableFunc(fits, func(a, b NodeFit) int { return strings.Compare(a.Node, b.Node) })
	return fits, nil
}

// explainNode is Filter on one node, and for a fitting node the plan
// Score ranks it by and its entry for NormalizeScore (Raw as Score's
// rawOf, the plan's ring and ideal, the node's GPU family).
func (pl *GPUPack) explainNode(ctx context.Context, cs fwk.CycleState, s *cycleState, pod *v1.Pod, ni fwk.NodeInfo) (NodeFit, score.Ranked) {
	f := NodeFit{Node: ni.Node().Name}
	if st := pl.Filter(ctx, cs, pod, ni); !st.IsSuccess() {
		f.Reason = strings.Join(st.Reasons(), "; ")
		f.Unresolvable = st.Code() == fwk.UnschedulableAndUnresolvable
		return f, score.Ranked{}
	}
	p, view, err := pl.planView(ni, s)
	if err != nil { // Filter just planned the same: not expected
		f.Reason = "gpupack: " + err.Error()
		return f, score.Ranked{}
	}
	f.Fits, f.FragDelta, f.QualityRatio = true, p.fragDelta, p.ratio
	if s.pricing.Priced() {
		f.SupplyCost = pl.supplyCost(s, view, p)
	}
	return f, score.Ranked{Raw: pl.rank.Raw(f.FragDelta + f.SupplyCost), Ring: p.ring, Ideal: p.ideal, Family: gpuFamily(ni.Node())}
}

// scoreFits sets the Score of the fitting nodes: Rank.Normalize over them,
// as NormalizeScore does over the nodes kube-scheduler scored.
func (pl *GPUPack) scoreFits(fits []NodeFit, ranked []score.Ranked) {
	var idx []int
	var fitting []score.Ranked
	for i, f := range fits {
		if f.Fits {
			idx = append(idx, i)
			fitting = append(fitting, ranked[i])
		}
	}
	pl.rank.Normalize(fitting)
	for k, i := range idx {
		fits[i].Score = &fitting[k].Score
	}
}
