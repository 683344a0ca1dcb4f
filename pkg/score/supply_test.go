package score_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestSlots(t *testing.T) {
	dgx := score.NewState(fixture.DGX1V100("n"))
	shared := score.NewState(fixture.Shared(fixture.PCIe("s", "T4", 8), 4))
	small := score.NewState(fixture.PCIe("p", "T4", 8))
	small.SetAllocatable(96000, 393216)
	for _, tc := range []struct {
		name  string
		s     *score.State
		t     score.TaskType
		taken score.Taken
		want  int64
	}{
		{"8 free / 2", dgx, score.TaskType{Kind: score.KindWhole, Count: 2}, score.Taken{}, 4},
		{"8 free / 3", dgx, score.TaskType{Kind: score.KindWhole, Count: 3}, score.Taken{}, 2},
		{"another model", dgx, score.TaskType{Kind: score.KindWhole, Count: 1, Model: "A100"}, score.Taken{}, 0},
		{"shares: 8 GPUs x 1000m / 500m", shared, score.TaskType{Kind: score.KindShared, Milli: 500}, score.Taken{}, 16},
		{"whole GPUs on time-shared GPUs", shared, score.TaskType{Kind: score.KindWhole, Count: 8}, score.Taken{}, 1},
		{"cores within allocatable", small, score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 64000}, score.Taken{}, 1},
		{"more cores than allocatable", small, score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 120000}, score.Taken{}, 0},
		// Taken: 7 free GPUs / 2 = 3.
		{"after one GPU", dgx, score.TaskType{Kind: score.KindWhole, Count: 2}, score.Taken{Whole: topology.SetOf(0)}, 3},
		// GPU 0 keeps 3 of 4 replicas = 750m: one 500m task; 7 x 2 + 1 = 15.
		{"after a replica", shared, score.TaskType{Kind: score.KindShared, Milli: 500},
			score.Taken{Shares: []score.Share{{GPU: 0, Replicas: 1}}}, 15},
		// ... and GPU 0 is no longer entirely free: 7 / 8 = 0 whole sets.
		{"a replica breaks the free node", shared, score.TaskType{Kind: score.KindWhole, Count: 8},
			score.Taken{Shares: []score.Share{{GPU: 0, Replicas: 1}}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s.Clone()
			if tc.taken.Whole != 0 {
				s.Apply(score.Choice{Kind: score.KindWhole, GPUs: tc.taken.Whole})
			}
			for _, sh := range tc.taken.Shares {
				s.Apply(score.Choice{Kind: score.KindShared, GPUs: topology.SetOf(sh.GPU), Shares: []score.Share{sh}})
			}
			require.Equal(t, tc.want, s.Slots(tc.t))
		})
	}
}

// trainingCluster is one NVSwitch host with 128 cores (the only host of a
// 120-core 8-GPU task) and two 96-core PCIe hosts, all free.
func trainingCluster(t *testing.T) (nvs, pcie1, pcie2 *score.State) {
	t.Helper()
	nvs = score.NewState(fixture.NVSwitch("g3", "A100", 8, 12))
	nvs.SetAllocatable(128000, 786432)
	pcie1 = score.NewState(fixture.PCIe("g2a", "A100", 8))
	pcie1.SetAllocatable(96000, 393216)
	pcie2 = score.NewState(fixture.PCIe("g2b", "A100", 8))
	pcie2.SetAllocatable(96000, 393216)
	return nvs, pcie1, pcie2
}

func TestSupplyPricesTheOnlyHostOfARareType(t *testing.T) {
	big := score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 120000}
	any8 := score.TaskType{Kind: score.KindWhole, Count: 8}
	d, err := score.NewDistribution([]score.Weighted{{Type: big, Weight: 1}, {Type: any8, Weight: 1}})
	require.NoError(t, err)
	nvs, pcie1, pcie2 := trainingCluster(t)
	sp := score.NewSupply[string](d)
	sp.Update("g3", nvs)
	sp.Update("g2a", pcie1)
	sp.Update("g2b", pcie2)
	require.Equal(t, []int64{1, 3}, sp.Slots()) // big fits g3 only; any 8-GPU task every host
	require.InDelta(t, 24, sp.Free(), 1e-9)

	// N = 24 free GPUs / 8 GPUs a task = 3 tasks; big's demand
	// lambda = 0.5 x 3 = 1.5 for S = 1 slot, its base (every 8-GPU task)
	// lambda = 1 x 3 = 3 for S = 3:
	// excess = P(Pois(1.5) >= 1) - P(Pois(3) >= 3)
	//        = (1 - e^-1.5) - (1 - e^-3 (1 + 3 + 4.5)) = 0.77687 - 0.57681.
	excess := (1 - math.Exp(-1.5)) - (1 - math.Exp(-3)*8.5)
	pr := sp.Pricing()
	require.True(t, pr.Priced())
	all := score.Taken{Whole: topology.GPUSet(0xff)}
	require.InDelta(t, 8*excess, pr.Cost(nvs, all), 1e-9, "taking the NVSwitch host costs big's slot")
	require.InDelta(t, 8*excess, pr.Cost(nvs, score.Taken{Whole: topology.SetOf(3)}), 1e-9, "so does breaking it")
	require.Zero(t, pr.Cost(pcie1, all), "a PCIe host is no big task's")
	require.Zero(t, pr.Cost(nvs, score.Taken{}), "taking nothing costs nothing")

	// Once the NVSwitch host is gone, nothing is left to protect.
	used := nvs.Clone()
	used.Apply(score.Choice{Kind: score.KindWhole, GPUs: 0xff})
	sp.Update("g3", used)
	require.Equal(t, []int64{0, 2}, sp.Slots())
	require.False(t, sp.Pricing().Priced())
	sp.Remove("g2b")
	require.Equal(t, []int64{0, 1}, sp.Slots())
	require.InDelta(t, 8, sp.Free(), 1e-9)
}

// A type constrained by its model alone is its own base: not priced, even
// with one host.
func TestSupplyDoesNotPriceModelConstraints(t *testing.T) {
	a100 := score.TaskType{Kind: score.KindWhole, Count: 8, Model: "A100"}
	two := score.TaskType{Kind: score.KindWhole, Count: 2}
	d, err := score.NewDistribution([]score.Weighted{{Type: a100, Weight: 1}, {Type: two, Weight: 9}})
	require.NoError(t, err)
	sp := score.NewSupply[string](d)
	sp.Update("a100", score.NewState(fixture.NVSwitch("a", "A100", 8, 12)))
	sp.Update("t4", score.NewState(fixture.PCIe("t", "T4", 8)))
	require.Equal(t, []int64{1, 8}, sp.Slots())
	require.False(t, sp.Pricing().Priced())
}

// A type many hosts can serve is not priced: its base is as scarce.
func TestSupplyDoesNotPriceCommonTypes(t *testing.T) {
	mid := score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 64000}
	d, err := score.NewDistribution([]score.Weighted{{Type: mid, Weight: 1}})
	require.NoError(t, err)
	nvs, pcie1, pcie2 := trainingCluster(t)
	sp := score.NewSupply[string](d)
	for k, s := range map[string]*score.State{"g3": nvs, "g2a": pcie1, "g2b": pcie2} {
		sp.Update(k, s)
	}
	// mid fits all three hosts, as its base does: excess 0.
	require.False(t, sp.Pricing().Priced())
}

// A new distribution's types are counted on the nodes already there; the
// same types are not counted again.
func TestSupplySetDistribution(t *testing.T) {
	one := score.TaskType{Kind: score.KindWhole, Count: 1}
	d1, err := score.NewDistribution([]score.Weighted{{Type: one, Weight: 1}})
	require.NoError(t, err)
	nvs, pcie1, _ := trainingCluster(t)
	sp := score.NewSupply[string](d1)
	sp.Update("g3", nvs)
	sp.Update("g2a", pcie1)
	require.Equal(t, []int64{16}, sp.Slots())
	four := score.TaskType{Kind: score.KindWhole, Count: 4, CPUMilli: 100000}
	d2, err := score.NewDistribution([]score.Weighted{{Type: four, Weight: 1}, {Type: one, Weight: 3}})
	require.NoError(t, err)
	sp.SetDistribution(d2)
	require.Same(t, d2, sp.Distribution())
	require.Equal(t, []int64{2, 16}, sp.Slots()) // 100 cores: g3's two quads only
}

// Bad input: no GPUs free, a distribution of MIG types only, a nil
// distribution: nothing priced, no panic.
func TestSupplyDegenerate(t *testing.T) {
	mig := score.TaskType{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.5gb"}
	d, err := score.NewDistribution([]score.Weighted{{Type: mig, Weight: 1}})
	require.NoError(t, err)
	nvs, _, _ := trainingCluster(t)
	sp := score.NewSupply[string](d)
	sp.Update("g3", nvs)
	require.False(t, sp.Pricing().Priced())
	require.Zero(t, sp.Pricing().Cost(nvs, score.Taken{Whole: 1}))
	empty := score.NewSupply[int](nil)
	require.Same(t, score.DefaultDistribution(), empty.Distribution())
	require.False(t, empty.Pricing().Priced())
	var nilPricing *score.Pricing
	require.Zero(t, nilPricing.Cost(nvs, score.Taken{Whole: 1}))
}
