package score_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestDecisionTable pins which GPUs a whole-GPU request of 1, 2, 4 and 8
// GPUs gets on the catalog machines (as the device plugin discovers and
// publishes them), empty and part-used, under the default workload and the
// default topology hint (preferred). Each row is answered the same by the
// entries of pkg/score (choose.go): Choose (the scheduler's Reserve and
// gpusim), Evaluate (the scheduler's Filter and Score: the same GPUs, no
// IDs) and Preferred (the device plugin, with the free GPUs as the
// kubelet's available list).
//
// How to read the reasons. The default workload (score.DefaultPrior) is
// whole 1 (p .50), whole 2 (.04), whole 4 (.03), whole 8 (.03) and shared
// tasks (.40 in all). The catalog GPUs are not time-shared, so the shared
// types can use none of the free capacity: each GPU taken lowers
// fragmentation by .40. Whole-k tasks strand every free GPU when fewer
// than k are free, and otherwise (k >= 2) the free GPUs times (1 - r), r
// the best free k-set's ring bandwidth over the best the shape offers.
// Among feasible sets the choice takes the least fragmentation increase,
// then the best ring bandwidth (then sum of pairwise bandwidth), then the
// least bandwidth to the GPUs left free ("boundary"), then the smallest
// bitmask (the set whose highest differing GPU index is lower: {1,2} =
// 0b110 beats {0,3} = 0b1001).
func TestDecisionTable(t *testing.T) {
	type row struct {
		name  string
		used  []int
		count int
		want  []int // nil: does not fit
	}
	machines := []struct {
		machine string
		rows    []row
	}{
		{
			// DGX-1 V100 hybrid cube-mesh, 25 GB/s a lane:
			//       0    1    2    3    4    5    6    7
			//   0   X   NV1  NV1  NV2  NV2  SYS  SYS  SYS
			//   1  NV1   X   NV2  NV1  SYS  NV2  SYS  SYS
			//   2  NV1  NV2   X   NV2  SYS  SYS  NV1  SYS
			//   3  NV2  NV1  NV2   X   SYS  SYS  SYS  NV1
			//   4  NV2  SYS  SYS  SYS   X   NV1  NV1  NV2
			//   5  SYS  NV2  SYS  SYS  NV1   X   NV2  NV1
			//   6  SYS  SYS  NV1  SYS  NV1  NV2   X   NV2
			//   7  SYS  SYS  SYS  NV1  NV2  NV1  NV2   X
			// Best pair: NV2, 50 GB/s. Best 4-ring: 25 GB/s (a quad).
			machine: "dgx-1-v100",
			rows: []row{
				// Every GPU has 6 lanes and 3 SYS peers: all tie on
				// fragmentation and boundary (6*25 + 3*6 = 168): bitmask.
				{"empty, 1 GPU: all alike, lowest", nil, 1, []int{0}},
				// NV2 pairs 0-3, 1-2, 0-4, 1-5, 2-3, 4-7, 5-6, 6-7 all keep a
				// 25 GB/s quad free; 1-2 and 0-3 have the least boundary:
				// 1: 4 lanes (100) + SYS 4,6,7 (18) = 118; 2: 118; 236 in all
				// (0-3 too); {1,2} = 0b110 < {0,3} = 0b1001.
				{"empty, 2 GPUs: NV2 pair 1+2", nil, 2, []int{1, 2}},
				// A quad is the only 4-set with a 25 GB/s ring and the best
				// sum ((1+1+2+2+1+2)*25 = 225; 0-3-7-4 rings 25 too but sums
				// 187); both quads tie: bitmask.
				{"empty, 4 GPUs: a quad", nil, 4, []int{0, 1, 2, 3}},
				{"empty, 8 GPUs: the node", nil, 8, []int{0, 1, 2, 3, 4, 5, 6, 7}},
				// 3 and 4 lost their NV2 partner 0; both have the least
				// bandwidth to the free GPUs (1+2+1 lanes + 3 SYS = 118).
				{"GPU 0 used, 1 GPU: worst-linked card", []int{0}, 1, []int{3}},
				// NV2 pairs that keep quad {4,5,6,7}: 1-2 (boundary 93+93 =
				// 186) and 2-3 (2: 2+1 lanes + 18 = 93; 3: 1+1 lanes + 18 =
				// 68; 161): 2+3 leaves the better-linked GPUs free.
				{"GPU 0 used, 2 GPUs: NV2 pair 2+3", []int{0}, 2, []int{2, 3}},
				// The one whole quad left.
				{"GPU 0 used, 4 GPUs: the free quad", []int{0}, 4, []int{4, 5, 6, 7}},
				{"GPU 0 used, 8 GPUs: 7 free", []int{0}, 8, nil},
				// The second 2-GPU pod on the node (after 1+2): the other NV2
				// pair of the first quad keeps quad {4,5,6,7} whole.
				{"GPUs 1,2 used, 2 GPUs: NV2 pair 0+3", []int{1, 2}, 2, []int{0, 3}},
				{"GPUs 1,2 used, 1 GPU: worst-linked card", []int{1, 2}, 1, []int{3}},
				{"GPUs 1,2 used, 4 GPUs: the free quad", []int{1, 2}, 4, []int{4, 5, 6, 7}},
				// Free {1,2,3,4,6,7}. Fragmentation before quality: an NV2 pair
				// such as 2+3 leaves {1,4,6,7}, whose best 4-ring is 6 GB/s
				// (1 reaches 4, 6, 7 only over SYS): whole 4 strands
				// 4*(1-6/25)*.03 = .0912 more. 1+4 (SYS, 6 of 50 GB/s) leaves
				// {2,3,6,7}: ring 2-3-7-6 (NV2, NV1, NV2, NV1) = 25 GB/s and
				// NV2 pairs 2-3, 6-7.
				{"GPUs 0,5 used, 2 GPUs: SYS pair 1+4 keeps a 4-ring", []int{0, 5}, 2, []int{1, 4}},
				// Leaves the NV2 pair 4-7 (whole 2 strands nothing); 2,3,6,7
				// would leave 1-4 (SYS: 2*(1-6/50)*.04 = .0704).
				{"GPUs 0,5 used, 4 GPUs: keep NV2 pair 4+7", []int{0, 5}, 4, []int{1, 2, 3, 6}},
				// 1 has the least bandwidth to the free GPUs (2 lanes to 2,
				// 1 to 3, SYS to 4, 6, 7: 75 + 18 = 93).
				{"GPUs 0,5 used, 1 GPU: worst-linked card", []int{0, 5}, 1, []int{1}},
			},
		},
		{
			// DGX A100: 8 GPUs on NVSwitch, 12 lanes of NVLink 3 each
			// (300 GB/s) between every pair: every set of one size ties on
			// fragmentation, quality and boundary; the bitmask decides.
			machine: "dgx-a100",
			rows: []row{
				{"empty, 1 GPU", nil, 1, []int{0}},
				{"empty, 2 GPUs", nil, 2, []int{0, 1}},
				{"empty, 4 GPUs", nil, 4, []int{0, 1, 2, 3}},
				{"empty, 8 GPUs", nil, 8, []int{0, 1, 2, 3, 4, 5, 6, 7}},
				{"GPUs 1,2 used, 1 GPU", []int{1, 2}, 1, []int{0}},
				// {0,3} = 0b1001 < {0,4} = 0b10001 < {3,4} = 0b11000.
				{"GPUs 1,2 used, 2 GPUs", []int{1, 2}, 2, []int{0, 3}},
				{"GPUs 1,2 used, 4 GPUs", []int{1, 2}, 4, []int{0, 3, 4, 5}},
				{"GPUs 1,2 used, 8 GPUs: 6 free", []int{1, 2}, 8, nil},
			},
		},
		{
			// 4 PCIe GPUs on two sockets: 0-1 PIX (16 GB/s), 2-3 PHB (12),
			// 0/1 to 2/3 SYS (6). Best pair PIX 16 GB/s; best 4-ring 6.
			machine: "pcie-4gpu-2socket",
			rows: []row{
				// Taking 0 or 1 leaves PHB 2-3 as the best pair (12/16):
				// whole 2 strands 3 - 3*.75 = .75 (*.04 = .03); taking 2 or 3
				// leaves PIX 0-1 (16 = ideal). 2 and 3 tie on boundary
				// (6+6+12 = 24): bitmask.
				{"empty, 1 GPU: from the weaker pair", nil, 1, []int{2}},
				// Keeps the PIX pair (the best) free.
				{"empty, 2 GPUs: PHB pair, keeps PIX pair", nil, 2, []int{2, 3}},
				{"empty, 4 GPUs: the node", nil, 4, []int{0, 1, 2, 3}},
				{"empty, 8 GPUs: 4 GPUs only", nil, 8, nil},
				// 1 lost its PIX partner; taking it leaves the PHB pair.
				{"GPU 0 used, 1 GPU: the orphan", []int{0}, 1, []int{1}},
				{"GPU 0 used, 2 GPUs: the whole pair", []int{0}, 2, []int{2, 3}},
				{"GPU 0 used, 4 GPUs: 3 free", []int{0}, 4, nil},
				// 0 and 3 left (SYS): either strands the other; bitmask.
				{"GPUs 1,2 used, 1 GPU", []int{1, 2}, 1, []int{0}},
				{"GPUs 1,2 used, 2 GPUs: the only pair, SYS", []int{1, 2}, 2, []int{0, 3}},
			},
		},
		{
			// 8 A100 PCIe cards bridged in pairs by 12 NVLink 3 lanes
			// (300 GB/s): 0-1, 2-3, 4-5, 6-7; NODE (10 GB/s) within a socket
			// ({0..3}, {4..7}), SYS (6) across. Best pair 300; best 4-ring 10
			// (two pairs of one socket); best 8-ring 6.
			machine: "a100-pcie-8gpu-nvbridge",
			rows: []row{
				{"empty, 1 GPU: all alike, lowest", nil, 1, []int{0}},
				{"empty, 2 GPUs: a bridged pair", nil, 2, []int{0, 1}},
				// Two pairs of one socket (ring 10 over NODE); the other
				// socket's two pairs stay.
				{"empty, 4 GPUs: one socket", nil, 4, []int{0, 1, 2, 3}},
				{"empty, 8 GPUs: the node", nil, 8, []int{0, 1, 2, 3, 4, 5, 6, 7}},
				// 1 lost its bridge partner: taking it leaves 3 whole pairs.
				{"GPU 0 used, 1 GPU: the orphan", []int{0}, 1, []int{1}},
				// A whole pair of the used socket keeps socket {4..7} whole
				// for a 4-GPU task.
				{"GPU 0 used, 2 GPUs: bridged pair 2+3", []int{0}, 2, []int{2, 3}},
				{"GPU 0 used, 4 GPUs: the free socket", []int{0}, 4, []int{4, 5, 6, 7}},
				{"GPU 0 used, 8 GPUs: 7 free", []int{0}, 8, nil},
				{"GPUs 1,2 used, 1 GPU: an orphan", []int{1, 2}, 1, []int{0}},
				// Fragmentation before quality: the two orphans (NODE, 10 of
				// 300 GB/s) leave socket {4..7} (4-ring 10 = ideal); pair 4+5
				// would leave {0,3,6,7}, best 4-ring 6 GB/s: whole 4 strands
				// 4*(1-6/10)*.03 = .048 more.
				{"GPUs 1,2 used, 2 GPUs: the orphans keep a socket", []int{1, 2}, 2, []int{0, 3}},
				// Leaves bridged pair 6+7 for a 2-GPU task.
				{"GPUs 1,2 used, 4 GPUs: keep pair 6+7", []int{1, 2}, 4, []int{0, 3, 4, 5}},
			},
		},
	}
	for _, m := range machines {
		node, err := fake.Topology(m.machine)
		require.NoError(t, err)
		for _, tt := range m.rows {
			t.Run(m.machine+"/"+tt.name, func(t *testing.T) {
				used := usedSet(uuids(node, tt.used...)...)
				req := score.Request{Kind: score.KindWhole, Count: tt.count}
				want := uuids(node, tt.want...)
				slices.Sort(want) // device IDs come sorted

				// Scheduler's Reserve and gpusim.
				s, _ := score.StateOf(node, used)
				c, ok := score.Choose(s, req, nil)
				require.Equal(t, tt.want != nil, ok, "fits")
				require.Equal(t, want, c.DeviceIDs, "Choose: %s", c)

				// Scheduler's Filter and Score.
				e, ok := score.Evaluate(s, req, score.DefaultDistribution())
				require.Equal(t, tt.want != nil, ok, "fits")
				require.Equal(t, topology.SetOf(tt.want...), e.GPUs, "Evaluate: %s", e)
				require.InDelta(t, c.FragDelta, e.FragDelta, 1e-12)

				// Device plugin: the kubelet offers the free GPUs.
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
