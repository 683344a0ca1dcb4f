package score_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

// oldNormalize is Rank.Normalize as it was before GPU families (b938cab^):
// the across-shape ratio against the best capped ideal among all nodes.
func oldNormalize(r score.Rank, nodes []score.Ranked) {
	if len(nodes) == 0 {
		return
	}
	if r.FragWeight <= 0 && r.TopoWeight <= 0 {
		r.FragWeight, r.TopoWeight = score.DefaultFragWeight, score.DefaultTopoWeight
	}
	r.FragWeight, r.TopoWeight = max(0, r.FragWeight), max(0, r.TopoWeight)
	ratio := func(q, ideal float64) float64 {
		switch {
		case ideal <= 0 || q >= ideal:
			return 1
		case q <= 0:
			return 0
		}
		return q / ideal
	}
	multi := false
	for _, n := range nodes {
		multi = multi || n.Ideal > 0
	}
	wf, wt := float64(r.FragWeight), float64(r.TopoWeight)
	if !multi || wt == 0 {
		wf, wt = 1, 0
	}
	unit := wf
	if unit == 0 {
		unit = wt
	}
	bestIdeal := 0.0
	for _, n := range nodes {
		bestIdeal = max(bestIdeal, min(n.Ideal, score.NVLinkFloorGBps))
	}
	v := func(n *score.Ranked) float64 {
		topo := 0.0
		if wt > 0 && n.Ideal > 0 {
			across := ratio(min(n.Ring, score.NVLinkFloorGBps), bestIdeal)
			topo = float64(score.MaxNodeScore) * min(ratio(n.Ring, n.Ideal), across)
		}
		return (wf*float64(n.Raw) + wt*topo) / unit
	}
	best := math.Inf(-1)
	for i := range nodes {
		best = max(best, v(&nodes[i]))
	}
	for i := range nodes {
		n := &nodes[i]
		n.Score = max(0, score.MaxNodeScore-int64(math.Round(best-v(n))))
	}
}

// bandwidths are the ring and ideal figures the random nodes draw from:
// none, PCIe classes (6 SYS .. 16 PIX), the NVLink floor (20), NVLink
// rings (25 .. 300), the odd ones (negative, +Inf) and a random one.
func randomBandwidth(rng *rand.Rand) float64 {
	choices := []float64{0, 0, 6, 12, 16, 20, 25, 50, 100, 300, -1, math.Inf(1)}
	if rng.IntN(len(choices)+1) == len(choices) {
		return rng.Float64() * 400
	}
	return choices[rng.IntN(len(choices))]
}

func randomRank(rng *rand.Rand) score.Rank {
	ranks := []score.Rank{score.DefaultRank, {}, {FragWeight: 1}, {TopoWeight: 1}, {FragWeight: 3, TopoWeight: 1},
		{FragWeight: -1, TopoWeight: 5}, {FragWeight: 1, TopoWeight: 1000}}
	return ranks[rng.IntN(len(ranks))]
}

func randomNodes(rng *rand.Rand, n int, families []string) []score.Ranked {
	nodes := make([]score.Ranked, n)
	for i := range nodes {
		raw := int64(rng.IntN(601) - 300)
		if rng.IntN(50) == 0 {
			raw = math.MinInt32 // Raw's clamp of a NaN figure
		}
		nodes[i] = score.Ranked{Raw: raw, Ring: randomBandwidth(rng), Ideal: randomBandwidth(rng),
			Family: families[rng.IntN(len(families))]}
		if rng.IntN(4) == 0 { // a set at its node's best
			nodes[i].Ring = nodes[i].Ideal
		}
	}
	return nodes
}

func scoresOf(nodes []score.Ranked) []int64 {
	out := make([]int64, len(nodes))
	for i, n := range nodes {
		out[i] = n.Score
	}
	return out
}

// With every node in one family (any one name, "" too) Normalize is the
// formula before families, node for node, over random inputs (0..60 nodes,
// Ideal 0 mixed in, negative and infinite rings and ideals, every weight).
func TestNormalizeOneFamilyIsTheOldFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 5000 {
		fam := []string{"", "8.0", "7.5", "G2"}[iter%4]
		nodes := randomNodes(rng, rng.IntN(61), []string{fam})
		r := randomRank(rng)
		old := append([]score.Ranked(nil), nodes...)
		oldNormalize(r, old)
		r.Normalize(nodes)
		require.Equal(t, scoresOf(old), scoresOf(nodes), "iteration %d, rank %+v, nodes %+v", iter, r, nodes)
	}
}

// refNormalize is the rule written out per family with a map: a node's
// across-shape ratio is min(ring, F) over the best min(ideal, F) of the
// nodes of its family whose quality counts (Ideal > 0); a node of the
// unknown family "" is compared with the best of every node.
func refNormalize(r score.Rank, nodes []score.Ranked) {
	byFamily := map[string][]int{}
	for i, n := range nodes {
		byFamily[n.Family] = append(byFamily[n.Family], i)
	}
	if len(nodes) == 0 {
		return
	}
	if r.FragWeight <= 0 && r.TopoWeight <= 0 {
		r.FragWeight, r.TopoWeight = score.DefaultFragWeight, score.DefaultTopoWeight
	}
	r.FragWeight, r.TopoWeight = max(0, r.FragWeight), max(0, r.TopoWeight)
	multi := false
	for _, n := range nodes {
		multi = multi || n.Ideal > 0
	}
	wf, wt := float64(r.FragWeight), float64(r.TopoWeight)
	if !multi || wt == 0 {
		wf, wt = 1, 0
	}
	unit := wf
	if unit == 0 {
		unit = wt
	}
	bestOf := map[string]float64{}
	all := 0.0
	for fam, members := range byFamily {
		for _, i := range members {
			bestOf[fam] = max(bestOf[fam], min(nodes[i].Ideal, score.NVLinkFloorGBps))
			all = max(all, min(nodes[i].Ideal, score.NVLinkFloorGBps))
		}
	}
	bestOf[""] = all
	ratio := func(q, ideal float64) float64 {
		switch {
		case ideal <= 0 || q >= ideal:
			return 1
		case q <= 0:
			return 0
		}
		return q / ideal
	}
	vs := make([]float64, len(nodes))
	best := math.Inf(-1)
	for i, n := range nodes {
		topo := 0.0
		if wt > 0 && n.Ideal > 0 {
			topo = 100 * min(ratio(n.Ring, n.Ideal), ratio(min(n.Ring, score.NVLinkFloorGBps), bestOf[n.Family]))
		}
		vs[i] = (wf*float64(n.Raw) + wt*topo) / unit
		best = max(best, vs[i])
	}
	for i := range nodes {
		nodes[i].Score = max(0, 100-int64(math.Round(best-vs[i])))
	}
}

// With families: scores stay in 0..100, the best node gets 100, and every
// node's score is the reference rule's (a map of families), from 0 to 1000
// nodes in up to 50 families.
func TestNormalizeFamiliesProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 2000 {
		nFam := 1 + rng.IntN(50)
		families := make([]string, nFam)
		for i := range families {
			families[i] = fmt.Sprintf("%d.%d", 5+i/10, i%10)
		}
		families[0] = ""
		n := rng.IntN(40)
		if iter%100 == 0 {
			n = 1000
		}
		nodes := randomNodes(rng, n, families)
		r := randomRank(rng)
		ref := append([]score.Ranked(nil), nodes...)
		refNormalize(r, ref)
		r.Normalize(nodes)
		require.Equal(t, scoresOf(ref), scoresOf(nodes), "iteration %d", iter)
		if n == 0 {
			continue
		}
		top := int64(-1)
		for _, s := range scoresOf(nodes) {
			require.GreaterOrEqual(t, s, int64(0))
			require.LessOrEqual(t, s, score.MaxNodeScore)
			top = max(top, s)
		}
		require.Equal(t, score.MaxNodeScore, top, "iteration %d: the best node gets 100", iter)
	}
}

// Edge cases of families, by hand (weights 1 and 2, F = 20 GB/s).
func TestNormalizeFamilyEdges(t *testing.T) {
	cases := []struct {
		name  string
		nodes []score.Ranked
		want  []int64
	}{
		{
			// One node: the best, 100, whatever its ring.
			name:  "one node",
			nodes: []score.Ranked{{Raw: -7, Ring: 6, Ideal: 16, Family: "8.0"}},
			want:  []int64{100},
		},
		{
			// Family 7.5's only node has Ideal 0 (no quality counts
			// there): topo 0, v = 0; the 8.0 pair: PCIe 16 of 16 against
			// 8.0's best 20: 0.8 -> v = 160; NVLink 25 of 25: v = 200.
			// best 200: 100 - 200 = 0 (floor), 60, 100.
			name: "a family whose only member has Ideal 0",
			nodes: []score.Ranked{{Raw: 0, Family: "7.5"}, {Raw: 0, Ring: 16, Ideal: 16, Family: "8.0"},
				{Raw: 0, Ring: 25, Ideal: 25, Family: "8.0"}},
			want: []int64{0, 60, 100},
		},
		{
			// Ideal 0 nodes inside a family change nothing: 8.0's best is
			// still 16 (the PCIe box's own): topo 1, v = 200 for the box
			// and raw 150 for the Ideal-0 node: 100 and 50.
			name:  "Ideal 0 beside a PCIe box of the same family",
			nodes: []score.Ranked{{Raw: 0, Ring: 16, Ideal: 16, Family: "8.0"}, {Raw: 150, Family: "8.0"}},
			want:  []int64{100, 50},
		},
		{
			// A negative Ideal counts as none (topo 0): it must not lower
			// its family's best below the PCIe box's 16: box v = 200;
			// negative node v = 0: 100 and 0.
			name:  "negative Ideal",
			nodes: []score.Ranked{{Raw: 0, Ring: 16, Ideal: 16, Family: "8.0"}, {Raw: 0, Ring: 16, Ideal: -5, Family: "8.0"}},
			want:  []int64{100, 0},
		},
		{
			// +Inf ideal caps at 20: the 16-of-16 box in the same family
			// gets min(1, 16/20) = 0.8 -> 160; the Inf node's own ratio
			// 300/Inf = 0 -> v = 0. best 160: 100 and 100 - 160 -> 0.
			name:  "infinite Ideal",
			nodes: []score.Ranked{{Raw: 0, Ring: 16, Ideal: 16, Family: "9.0"}, {Raw: 0, Ring: 300, Ideal: math.Inf(1), Family: "9.0"}},
			want:  []int64{100, 0},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			score.DefaultRank.Normalize(tc.nodes)
			require.Equal(t, tc.want, scoresOf(tc.nodes))
		})
	}
}

// A NaN ring or ideal (no real topology yields one, but Normalize must
// not let one node's figure unrank all the others): the NaN node's link
// quality counts as none (topo 0), the others rank as without it.
func TestNormalizeNaN(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name  string
		nodes []score.Ranked
		want  []int64
	}{
		{
			// NaN Ideal in family 8.0: not a quality that counts (topo 0,
			// v = raw 0); the box 16 of 16 against 8.0's best (the NVLink
			// node's 20): 0.8 -> 160; NVLink 25 of 25: 200.
			// best 200: 0, 60, 100.
			name: "NaN Ideal",
			nodes: []score.Ranked{{Raw: 0, Ring: 16, Ideal: nan, Family: "8.0"}, {Raw: 0, Ring: 16, Ideal: 16, Family: "8.0"},
				{Raw: 0, Ring: 25, Ideal: 25, Family: "8.0"}},
			want: []int64{0, 60, 100},
		},
		{
			// NaN Ring on a node whose quality counts: topo 0, v = 0;
			// the NVLink node v = 200: 0 and 100.
			name:  "NaN Ring",
			nodes: []score.Ranked{{Raw: 0, Ring: nan, Ideal: 16, Family: "8.0"}, {Raw: 0, Ring: 25, Ideal: 25, Family: "8.0"}},
			want:  []int64{0, 100},
		},
		{
			// The NaN node alone in its family: the same, and the other
			// family is untouched: 16 of 16, alone in 7.5: v = 200.
			name:  "NaN Ring in another family",
			nodes: []score.Ranked{{Raw: 0, Ring: nan, Ideal: 25, Family: "8.0"}, {Raw: -3, Ring: 16, Ideal: 16, Family: "7.5"}},
			want:  []int64{0, 100},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			score.DefaultRank.Normalize(tc.nodes)
			require.Equal(t, tc.want, scoresOf(tc.nodes))
		})
	}
}
