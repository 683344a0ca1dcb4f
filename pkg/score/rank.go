package score

import (
	"math"
	"slices"

	"github.com/gpupack/gpupack/pkg/topology"
)

// Node ranking: how the scheduler plugin's Score/NormalizeScore and the
// simulator's gpupack policy turn the best choice on every feasible node
// into a node score. Both call exactly these functions; the node with the
// highest score wins, ties at random (kube-scheduler's selectHost).
//
// Raw figure of a node (Score): its fragmentation gain in steps of
// Resolution GPUs, -round(FragDelta / Resolution).
//
// Normalized (NormalizeScore), over the feasible nodes: each node's blend
//
//	v = (wf * raw + wt * topo) / wf
//	topo = MaxNodeScore * min(1, ring / ideal ring of the node's shape,
//	       min(ring, F) / best min(ideal, F) among the nodes of its family)
//
// (F = NVLinkFloorGBps, one NVLink lane: the two ratios are explained
// below; topo only for a request with a set of 2 or more GPUs whose link
// quality counts, Ideal > 0; otherwise v = raw: for single GPUs, shares
// and MIG devices quality is 1 everywhere), then
//
//	score = max(0, MaxNodeScore - round(best v - v))
//
// so the best node gets 100 and every fragmentation step behind it costs one
// point: steps near the best keep their own score (a min-max over the nodes,
// or a weighted average rounded to 0..100, would merge adjacent steps when
// one node is far off or the weights are large). The blend keeps the
// weights' order: with the defaults (wf 1, wt 2) a multi-GPU set at half the
// best ring costs 100 points, more than 5 GPUs of fragmentation (topology
// wins for multi-GPU pods). With wf = 0 the unit is one topology point
// (v = topo).
//
// topo is the smaller of two ratios. First, the set against the best its
// own node's shape offers (Choice.QualityRatio): scattered GPUs lose to a
// free NVLink group of the same shape. Second, across shapes, the ring
// against the best ideal among the nodes of the same family (Ranked.Family:
// GPUs of one compute capability) with both capped at one NVLink lane
// (NVLinkFloorGBps): a PCIe-only set loses to an all-NVLink set on another
// node of the same GPUs (A100 PCIe against A100 SXM), but one NVLink ring is
// as good as another. Uncapped, 2- and 4-GPU pods were pulled from NVLink
// pairs onto the NVSwitch nodes and broke the free 8-GPU groups that 8-GPU
// pods need (gpusim, openb default: -0.3 points of GPU allocation, 8-GPU
// tasks failing before 90% arrived); with the own-shape ratio alone, a
// 4-GPU training pod took a PCIe box over a free NVLink quad of the same
// GPUs (DESIGN.md section 5: quality against any shape).
//
// Why within a family (a departure from DESIGN.md's "any shape"): between
// GPU models the compute differs far more than the links (a T4 against a
// V100), and which model a pod runs on is the pod's choice (a node
// selector, an affinity, the trace's model constraint), not the links'.
// Compared across models, the link term sent multi-GPU pods from PCIe
// boxes of other models onto the NVLink hosts that 8-GPU pods need: in
// gpusim, with nearly every task multi-GPU, 3.6 points of allocation below
// fgd, and behind it on the openb multi-GPU family (docs/gpusim.md).

// MaxNodeScore is the highest normalized node score (kube-scheduler's
// fwk.MaxNodeScore; pkg/score imports nothing from Kubernetes, the plugin
// checks they agree).
const MaxNodeScore int64 = 100

// NVLinkFloorGBps caps ring bandwidths when sets are compared across node
// shapes: one lane of the slowest NVLink (topology.LaneGBps(1)), above every
// PCIe class. Any all-NVLink ring reaches it.
var NVLinkFloorGBps = topology.LaneGBps(1)

// DefaultResolution is the fragmentation change, in GPUs, that counts as one
// step of node score: changes within it tie. 0.05 GPU is about what FGD's
// integer sigmoid score resolves near zero; 100 steps span 5 GPUs.
const DefaultResolution = 0.05

// CPUOnlyResolution is the Rank resolution (GPUs) for pods without GPUs:
// their fragmentation changes (ResourceDelta: the GPU capacity the tasks
// their CPU and memory would have held can take) are small and many nodes
// have none; 1e-6 GPU is as good as exact, so the node where they strand
// least wins outright. The plugin and gpusim rank CPU-only pods with it.
const CPUOnlyResolution = 1e-6

// CPUOnlyRaw is a CPU-only pod's raw figure on a node (the plugin's Score,
// gpusim's ranking; Normalize them as any raw): first minus the GPU
// capacity its CPU and memory strand there (strand, ResourceDelta, GPUs)
// in steps of CPUOnlyResolution; then, between nodes that strand the same,
// minus the free GPU capacity the node's CPU and memory still feed (fed,
// FedCapacity; 0 for a node without GPUs) in quarters of a GPU, at most 99
// points (24.75 GPUs): after Normalize (best 100, a point per unit behind,
// at least 0) no fed capacity reaches the floor, so of two nodes in
// Normalize's range the one that strands less scores more (nodes more than
// 100 points behind the best all score 0). In kube-scheduler, at GPUPack's weight 10, a
// fed GPU is 40 points: a preferred affinity of weight 2 (200) outweighs
// 5 GPUs.
//
// Why the second key: nodes that strand nothing now are of three kinds:
// those whose GPUs are all in use (or that have none) and those whose free
// GPUs their CPU and memory can no longer feed anyway, whose cores no GPU
// pod can use, and those with CPU to spare for their free GPUs, which the
// next CPU-heavy pods may drain. Ties went to any of them at random.
// In gpusim (no CPU-only nodes) its effect is within the seeds' spread
// (docs/gpusim.md); in a cluster it sends CPU-only pods to CPU nodes and
// busy GPU nodes before GPU nodes whose cores still feed free GPUs.
//
// The result is within +-2^41 (Raw's clamp times the scale), exact in the
// float64 arithmetic of Normalize.
func CPUOnlyRaw(strand, fed float64) int64 {
	raw := Rank{Resolution: CPUOnlyResolution}.Raw(strand)
	points := int64(0)
	if fed > 0 { // NaN and negatives count as none
		points = int64(math.Round(min(fed*cpuOnlyFedSteps, float64(MaxNodeScore-1))))
	}
	return raw*cpuOnlyScale - points
}

const (
	// cpuOnlyFedSteps are CPUOnlyRaw's points per fed GPU.
	cpuOnlyFedSteps = 4
	// cpuOnlyScale is CPUOnlyRaw's points per CPUOnlyResolution step:
	// more than Normalize's range (MaxNodeScore), so more than any
	// difference of the fed term.
	cpuOnlyScale = 1024
)

// Rank are the ranking's parameters; zero values take the defaults.
type Rank struct {
	// Resolution is DefaultResolution when <= 0.
	Resolution float64
	// FragWeight and TopoWeight blend fragmentation and link quality for
	// multi-GPU requests (plugin args fragmentationWeight, topologyWeight;
	// both 0: 1 and 2).
	FragWeight, TopoWeight int64
}

// DefaultRank is the ranking of the plugin's default args.
var DefaultRank = Rank{Resolution: DefaultResolution, FragWeight: DefaultFragWeight, TopoWeight: DefaultTopoWeight}

// The default weights of fragmentation and topology in a node's score (the
// scheduler plugin's fragmentationWeight and topologyWeight defaults).
const (
	DefaultFragWeight = 1
	DefaultTopoWeight = 2
)

func (r Rank) withDefaults() Rank {
	if r.Resolution <= 0 {
		r.Resolution = DefaultResolution
	}
	if r.FragWeight <= 0 && r.TopoWeight <= 0 {
		r.FragWeight, r.TopoWeight = DefaultRank.FragWeight, DefaultRank.TopoWeight
	}
	r.FragWeight, r.TopoWeight = max(0, r.FragWeight), max(0, r.TopoWeight)
	return r
}

// Raw is a node's raw score for a choice (or a pod's plan) whose node
// fragmentation change is fragDelta GPUs: -round(fragDelta / Resolution).
func (r Rank) Raw(fragDelta float64) int64 {
	r = r.withDefaults()
	v := math.Round(-fragDelta / r.Resolution)
	// A node's fragmentation is bounded by its GPUs (at most 64): clamp so
	// that a NaN or absurd figure cannot overflow the arithmetic.
	switch {
	case math.IsNaN(v):
		return math.MinInt32
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < math.MinInt32:
		return math.MinInt32
	}
	return int64(v)
}

// Ranked is one feasible node in Normalize.
type Ranked struct {
	// Raw is the node's Raw figure.
	Raw int64
	// Ring is the ring bandwidth of the request's multi-GPU set on the node
	// and Ideal the best ring the node's shape offers for that size (for a
	// pod with several multi-GPU sets: the worst set's); Ideal is 0
	// when the request has no set of 2 or more GPUs whose quality counts
	// (single GPU, shares, MIG, topology hint none).
	Ring, Ideal float64
	// Family is the compute class of the node's GPUs (e.g. the CUDA compute
	// capability "8.0"): the across-shape ratio compares a node's ring only
	// with the ideals of the nodes of its own family. "" is an unknown
	// family: such a node is compared with every node (DESIGN.md's "any
	// shape"), and it does not count in a known family's best.
	Family string
	// Score is Normalize's answer, 0..MaxNodeScore.
	Score int64
}

// Normalize sets every node's Score from the raws and qualities of all of
// them, as the package comment above says.
func (r Rank) Normalize(nodes []Ranked) {
	if len(nodes) == 0 {
		return
	}
	r = r.withDefaults()
	multi := false
	for _, n := range nodes {
		multi = multi || n.Ideal > 0
	}
	wf, wt := float64(r.FragWeight), float64(r.TopoWeight)
	if !multi || wt == 0 {
		wf, wt = 1, 0
	}
	// v is wf * frag + wt * topo in the units of one fragmentation step
	// (or of one topology point when wf is 0); the best node gets
	// MaxNodeScore and the others lose a point per unit behind it.
	unit := wf
	if unit == 0 {
		unit = wt
	}
	var ideals familyIdeals // only a request whose link quality counts reads them
	if wt > 0 {
		ideals = bestIdeals(nodes)
	}
	v := func(n *Ranked) float64 {
		topo := 0.0
		if wt > 0 && n.Ideal > 0 {
			across := ratio(min(n.Ring, NVLinkFloorGBps), ideals.of(n.Family))
			topo = float64(MaxNodeScore) * min(ratio(n.Ring, n.Ideal), across)
			if math.IsNaN(topo) { // a NaN ring: no quality, not a NaN best for all
				topo = 0
			}
		}
		return (wf*float64(n.Raw) + wt*topo) / unit
	}
	best := math.Inf(-1)
	for i := range nodes {
		best = max(best, v(&nodes[i]))
	}
	for i := range nodes {
		n := &nodes[i]
		n.Score = max(0, MaxNodeScore-int64(math.Round(best-v(n))))
	}
}

// familyIdeal is the best ideal ring (capped at NVLinkFloorGBps) among the
// ranked nodes of one family.
type familyIdeal struct {
	family string
	ideal  float64
}

type familyIdeals []familyIdeal

// bestIdeals is the best capped ideal ring of each family among nodes (a
// cluster has a handful of families: a linear list). Only nodes where
// quality counts (Ideal > 0) take part: a NaN ideal would otherwise make
// its family's best NaN and every score of the cycle 0.
func bestIdeals(nodes []Ranked) familyIdeals {
	var out familyIdeals
	for _, n := range nodes {
		c, ok := cappedIdeal(n)
		if !ok {
			continue
		}
		i := slices.IndexFunc(out, func(f familyIdeal) bool { return f.family == n.Family })
		if i < 0 {
			out = append(out, familyIdeal{n.Family, c})
			continue
		}
		out[i].ideal = max(out[i].ideal, c)
	}
	return out
}

// of is the best capped ideal of family, or of every node for the unknown
// family "".
func (fs familyIdeals) of(family string) float64 {
	best := 0.0
	for _, f := range fs {
		if family == "" {
			best = max(best, f.ideal)
		} else if f.family == family {
			return f.ideal
		}
	}
	return best
}

// cappedIdeal is n's ideal ring capped at NVLinkFloorGBps, the figure
// families are compared by; false when link quality does not count on n
// (Ideal 0, negative or NaN).
func cappedIdeal(n Ranked) (float64, bool) {
	if !(n.Ideal > 0) {
		return 0, false
	}
	return min(n.Ideal, NVLinkFloorGBps), true
}

// FamiliesMatter reports whether Normalize's result over nodes can depend
// on their Family: only when the nodes where link quality counts offer
// different capped ideal rings can a family's best differ from the best
// of all. A caller that reads families at a cost (the plugin, from its
// scheduling snapshot) skips them when it is false.
func FamiliesMatter(nodes []Ranked) bool {
	first, seen := 0.0, false
	for _, n := range nodes {
		c, ok := cappedIdeal(n)
		switch {
		case !ok:
		case !seen:
			first, seen = c, true
		case c != first:
			return true
		}
	}
	return false
}
