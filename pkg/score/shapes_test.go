package score_test

import (
	"slices"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// shapeNode discovers a machine (catalog or fake.ShapeNames) as the device
// plugin does, after break_ (nil: none) changed it.
func shapeNode(t *testing.T, name string, break_ func(m *fake.Machine) error) *topology.Node {
	t.Helper()
	m, err := fake.New(name)
	require.NoError(t, err)
	if break_ != nil {
		require.NoError(t, break_(m))
	}
	n, err := m.Topology()
	require.NoError(t, err)
	return n
}

// TestShapesChooseWhole pins the whole-GPU choice on the shapes the
// catalog lacks and on machines with NVLink lanes down, through Choose,
// Evaluate and Preferred (as TestDecisionTable does for the catalog), and
// checks every choice's quality ratio is within 0..1.
//
// Reasons as in TestDecisionTable: under the default workload (whole 1
// p .50, 2 .04, 4 .03, 8 .03, shared .40) fragmentation comes first, then
// ring and pairwise bandwidth (unless the hint is none; required accepts
// only the shape's best ring), then the least bandwidth to the GPUs left
// free, then the smallest mask. Bandwidths: NS18 450, NS12/NV12 300, NV4
// 100, NV2 50, NV1 25, PIX 16, PXB 14, NODE 10, SYS 6 (GB/s).
func TestShapesChooseWhole(t *testing.T) {
	h100Degraded := func(m *fake.Machine) error { return m.LinkDown(3, -1, 6) }
	h100OffFabric := func(m *fake.Machine) error { return m.LinkDown(3, -1, 18) }
	dgx1Lane := func(m *fake.Machine) error { return m.LinkDown(0, 3, 1) }
	type row struct {
		name  string
		used  []int
		count int
		hint  score.TopologyHint
		model string
		want  []int // nil: does not fit
		ratio float64
	}
	machines := []struct {
		machine string
		break_  func(m *fake.Machine) error
		rows    []row
	}{
		{
			// Every pair NS18: all sets of a size tie; the mask decides.
			machine: fake.HGXH200, rows: []row{
				{name: "1 GPU", count: 1, want: []int{0}, ratio: 1},
				{name: "2 GPUs", count: 2, want: []int{0, 1}, ratio: 1},
				{name: "4 GPUs", count: 4, want: []int{0, 1, 2, 3}, ratio: 1},
				{name: "8 GPUs", count: 8, want: []int{0, 1, 2, 3, 4, 5, 6, 7}, ratio: 1},
				{name: "GPUs 0,5 used, 4 GPUs", used: []int{0, 5}, count: 4, want: []int{1, 2, 3, 4}, ratio: 1},
				{name: "GPUs 0,5 used, 8 GPUs: 6 free", used: []int{0, 5}, count: 8},
			},
		},
		{
			// Every pair NV4 (fully connected): the mask decides.
			machine: fake.HGXA1004GPU, rows: []row{
				{name: "2 GPUs", count: 2, want: []int{0, 1}, ratio: 1},
				{name: "4 GPUs", count: 4, want: []int{0, 1, 2, 3}, ratio: 1},
				{name: "GPU 0 used, 1 GPU", used: []int{0}, count: 1, want: []int{1}, ratio: 1},
				{name: "GPU 0 used, 2 GPUs", used: []int{0}, count: 2, want: []int{1, 2}, ratio: 1},
				{name: "8 GPUs: 4 on the node", count: 8},
			},
		},
		{
			// NV4 bridges 0-1, 2-3, 4-5, 6-7; PIX 0-2, 1-3, 4-6, 5-7; PXB
			// the other pairs of a socket; SYS across.
			machine: fake.A6000NVBridge, rows: []row{
				// Every GPU: NV4 + PIX + PXB + 4 SYS = 100+16+14+24 = 154 to
				// the others: all alike, mask.
				{name: "1 GPU", count: 1, want: []int{0}, ratio: 1},
				// A bridged pair: any other pair leaves a GPU without its
				// bridge (whole 2 then strands more).
				{name: "2 GPUs: a bridged pair", count: 2, want: []int{0, 1}, ratio: 1},
				// A socket's quad: ring 16 = the best 4-ring.
				{name: "4 GPUs: a socket", count: 4, want: []int{0, 1, 2, 3}, ratio: 1},
				// 0 lost its bridge partner: the single GPU takes it, so the
				// bridged pairs stay free.
				{name: "GPU 1 used, 1 GPU: the orphan", used: []int{1}, count: 1, want: []int{0}, ratio: 1},
				{name: "GPU 1 used, 2 GPUs: a whole bridged pair", used: []int{1}, count: 2, want: []int{2, 3}, ratio: 1},
				{name: "GPUs 0-2 used, 1 GPU: the orphan", used: []int{0, 1, 2}, count: 1, want: []int{3}, ratio: 1},
				// Free {0,2,4,5,6,7}. The orphans 0+2 (PIX, 16/100) leave
				// the quad {4,5,6,7} (ring 16, ratio 1); a bridged pair
				// such as 4+5 leaves {0,2,6,7}, whose best 4-ring crosses
				// sockets (6/16): whole 4 strands 4*(1-6/16)*.03 = .075
				// more. Required takes the best pair, 100.
				{name: "GPUs 1,3 used, 2 GPUs: the orphans", used: []int{1, 3}, count: 2, want: []int{0, 2}, ratio: 16.0 / 100},
				{name: "GPUs 1,3 used, 2 GPUs required: a bridged pair", used: []int{1, 3}, count: 2, hint: score.HintRequired, want: []int{4, 5}, ratio: 1},
			},
		},
		{
			// Two A100 (NV12) and two T4 (PIX), SYS between.
			machine: fake.MixedA100T4, rows: []row{
				// Taking an A100 leaves the T4 pair (16/300) as the best
				// pair: a T4 keeps the NV12 pair free.
				{name: "1 GPU: a T4", count: 1, want: []int{2}, ratio: 1},
				{name: "2 GPUs: the T4 pair keeps the A100 pair", count: 2, want: []int{2, 3}, ratio: 16.0 / 300},
				{name: "2 GPUs required: the A100 pair", count: 2, hint: score.HintRequired, want: []int{0, 1}, ratio: 1},
				// Measured against the best pair of its model: ratio 1.
				{name: "2 A100s", count: 2, model: "NVIDIA A100-PCIE-40GB", want: []int{0, 1}, ratio: 1},
				{name: "2 T4s", count: 2, model: "Tesla T4", want: []int{2, 3}, ratio: 1},
				{name: "3 T4s: 2 on the node", count: 3, model: "Tesla T4"},
				{name: "GPU 2 used, 2 GPUs", used: []int{2}, count: 2, want: []int{0, 1}, ratio: 1},
				{name: "4 GPUs: the node", count: 4, want: []int{0, 1, 2, 3}, ratio: 1},
			},
		},
		{
			// DGX-1 with one of 0-3's two lanes down (NV1).
			machine: fake.DGX1V100, break_: dgx1Lane, rows: []row{
				// 0 and 3 lost a lane: 5 lanes + 3 SYS = 125+18 = 143 to the
				// others, the least; mask.
				{name: "1 GPU: a GPU of the weak link", count: 1, want: []int{0}, ratio: 1},
				// Quad 0-3 sums 200 (225 - 25), quad 4-7 225.
				{name: "4 GPUs: the intact quad", count: 4, want: []int{4, 5, 6, 7}, ratio: 1},
				{name: "8 GPUs", count: 8, want: []int{0, 1, 2, 3, 4, 5, 6, 7}, ratio: 1},
			},
		},
		{
			// DGX H100, GPU 3 on 12 of 18 switch lanes: its pairs NS12.
			machine: fake.DGXH100, break_: h100Degraded, rows: []row{
				// The single GPU takes the worst-linked card: 7 x 300 =
				// 2100 to the others against 3150.
				{name: "1 GPU: the degraded GPU", count: 1, want: []int{3}, ratio: 1},
				{name: "2 GPUs", count: 2, want: []int{0, 1}, ratio: 1},
				{name: "4 GPUs required: NS18 only", count: 4, hint: score.HintRequired, want: []int{0, 1, 2, 4}, ratio: 1},
				{name: "7 GPUs: all but the degraded", count: 7, want: []int{0, 1, 2, 4, 5, 6, 7}, ratio: 1},
				// 8 GPUs can only ring at 300: the ideal, ratio 1.
				{name: "8 GPUs", count: 8, want: []int{0, 1, 2, 3, 4, 5, 6, 7}, ratio: 1},
				{name: "GPU 3 used, 4 GPUs", used: []int{3}, count: 4, want: []int{0, 1, 2, 4}, ratio: 1},
			},
		},
		{
			// DGX H100, GPU 3 off the fabric: NODE to 0-2, SYS to 4-7.
			machine: fake.DGXH100, break_: h100OffFabric, rows: []row{
				{name: "1 GPU: the GPU off the fabric", count: 1, want: []int{3}, ratio: 1},
				// NS18 pairs tie but on boundary: a pair of socket 1 reaches
				// GPU 3 over SYS (6), one of socket 0 over NODE (10):
				// 4+5: 2 x (5 x 450 + 6) = 4512 < 0+1: 2 x (5 x 450 + 10) = 4520.
				{name: "2 GPUs: away from GPU 3", count: 2, want: []int{4, 5}, ratio: 1},
				// Likewise the NS18 quad of socket 1.
				{name: "4 GPUs required: NS18 only", count: 4, hint: score.HintRequired, want: []int{4, 5, 6, 7}, ratio: 1},
				{name: "8 GPUs: ring 10 is the ideal", count: 8, want: []int{0, 1, 2, 3, 4, 5, 6, 7}, ratio: 1},
			},
		},
	}
	for _, m := range machines {
		node := shapeNode(t, m.machine, m.break_)
		for _, tt := range m.rows {
			t.Run(m.machine+"/"+tt.name, func(t *testing.T) {
				used := usedSet(uuids(node, tt.used...)...)
				req := score.Request{Kind: score.KindWhole, Count: tt.count, Topology: tt.hint, Model: tt.model}
				want := uuids(node, tt.want...)
				slices.Sort(want)

				s, _ := score.StateOf(node, used)
				c, ok := score.Choose(s, req, nil)
				require.Equal(t, tt.want != nil, ok, "fits")
				require.Equal(t, want, c.DeviceIDs, "Choose: %s", c)
				if ok {
					require.InDelta(t, tt.ratio, c.QualityRatio(), 1e-12, "Choose: %s", c)
					require.GreaterOrEqual(t, c.QualityRatio(), 0.0)
					require.LessOrEqual(t, c.QualityRatio(), 1.0)
				}

				e, ok := score.Evaluate(s, req, score.DefaultDistribution())
				require.Equal(t, tt.want != nil, ok, "fits")
				require.Equal(t, topology.SetOf(tt.want...), e.GPUs, "Evaluate: %s", e)

				var avail []string
				for i, g := range node.GPUs {
					if !topology.SetOf(tt.used...).Has(i) {
						avail = append(avail, g.UUID)
					}
				}
				ids, err := score.Preferred(node, req, avail, nil, nil)
				if tt.want == nil {
					require.ErrorIs(t, err, score.ErrNoFit)
				} else {
					require.NoError(t, err)
				}
				require.Equal(t, want, ids, "device plugin's choice")
			})
		}
	}
}

// TestShapesChooseMIG: on H200 and A100-80GB MIG layouts, a request for
// each profile gets a free device of that profile, on a GPU in MIG mode;
// a profile the node has none of does not fit; whole GPUs come from the
// GPUs not in MIG mode.
func TestShapesChooseMIG(t *testing.T) {
	tests := []struct {
		machine string
		layout  map[int][]string
		wholes  topology.GPUSet // GPUs not in MIG mode
		absent  string
	}{
		{
			machine: fake.HGXH200,
			layout: map[int][]string{
				0: {"1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb"},
				1: {"7g.141gb"}, 2: {"4g.71gb", "3g.71gb"}, 3: {"2g.35gb", "2g.35gb", "3g.71gb"},
				4: {"1g.35gb", "1g.35gb", "1g.18gb+me"},
			},
			wholes: topology.SetOf(5, 6, 7), absent: "1g.10gb",
		},
		{
			machine: fake.DGXA10080GB,
			layout:  map[int][]string{0: {"1g.10gb+me", "1g.10gb", "2g.20gb", "3g.40gb"}, 7: {"4g.40gb", "1g.20gb", "1g.20gb"}},
			wholes:  topology.SetOf(1, 2, 3, 4, 5, 6), absent: "7g.80gb",
		},
	}
	for _, tc := range tests {
		t.Run(tc.machine, func(t *testing.T) {
			node, err := fake.Topology(tc.machine, fake.WithMIG(tc.layout))
			require.NoError(t, err)
			s := score.NewState(node)
			for _, profiles := range tc.layout {
				for _, p := range profiles {
					c, ok := score.Choose(s, score.Request{Kind: score.KindMIG, Count: 1, MIGProfile: p}, nil)
					require.True(t, ok, p)
					require.Len(t, c.MIG, 1, p)
					got := node.MIG[c.MIG[0]]
					require.Equal(t, p, got.Profile)
					require.True(t, node.GPUs[got.Parent].MIGEnabled, p)
					require.Equal(t, 1.0, c.QualityRatio())
				}
			}
			_, ok := score.Choose(s, score.Request{Kind: score.KindMIG, Count: 1, MIGProfile: tc.absent}, nil)
			require.False(t, ok)
			c, ok := score.Choose(s, score.Request{Kind: score.KindWhole, Count: tc.wholes.Len()}, nil)
			require.True(t, ok)
			require.Equal(t, tc.wholes, c.GPUs)
			_, ok = score.Choose(s, score.Request{Kind: score.KindWhole, Count: tc.wholes.Len() + 1}, nil)
			require.False(t, ok)
		})
	}
}

// TestShapesNoGPU: a node whose NVML lists no GPU fits no request of any
// kind, has no fragmentation, and the device plugin's choice says so.
func TestShapesNoGPU(t *testing.T) {
	node := shapeNode(t, fake.DGXH100, func(m *fake.Machine) error {
		m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.SUCCESS }
		return nil
	})
	s := score.NewState(node)
	for _, req := range []score.Request{
		{Kind: score.KindWhole, Count: 1},
		{Kind: score.KindWhole, Count: 8, Topology: score.HintRequired},
		{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.18gb"},
		{Kind: score.KindShared, Count: 1},
		{Kind: score.KindShared, Count: 2, Policy: score.Spread},
	} {
		_, ok := score.Choose(s, req, nil)
		require.False(t, ok, "%+v", req)
		_, ok = score.Evaluate(s, req, nil)
		require.False(t, ok, "%+v", req)
	}
	require.Zero(t, score.Fragmentation(s, nil))
	_, err := score.Preferred(node, score.Request{Kind: score.KindWhole, Count: 1}, nil, nil, nil)
	require.ErrorIs(t, err, score.ErrNoFit)
}
