package topology_test

import (
	"math/rand/v2"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/topology"
)

// discoverBroken returns the topology of a machine after break_ changed it
// (lanes taken down, GPUs hidden), discovered as the device plugin does.
func discoverBroken(t *testing.T, name string, break_ func(m *fake.Machine) error) *topology.Node {
	t.Helper()
	m, err := fake.New(name)
	require.NoError(t, err)
	require.NoError(t, break_(m))
	n, err := m.Topology()
	require.NoError(t, err)
	return n
}

// shapeNodes are the shapes beyond the catalog, and catalog machines with
// NVLink lanes down, as discovered.
func shapeNodes(t *testing.T) map[string]*topology.Node {
	t.Helper()
	nodes := map[string]*topology.Node{}
	for _, name := range fake.ShapeNames() {
		nodes[name] = discover(t, name)
	}
	nodes["dgx-1 0-3 one lane down"] = discoverBroken(t, fake.DGX1V100, func(m *fake.Machine) error { return m.LinkDown(0, 3, 1) })
	nodes["dgx-h100 gpu3 12 of 18 lanes"] = discoverBroken(t, fake.DGXH100, func(m *fake.Machine) error { return m.LinkDown(3, -1, 6) })
	nodes["dgx-h100 gpu3 off the fabric"] = discoverBroken(t, fake.DGXH100, func(m *fake.Machine) error { return m.LinkDown(3, -1, 18) })
	nodes["a6000 bridge 6-7 down"] = discoverBroken(t, fake.A6000NVBridge, func(m *fake.Machine) error { return m.LinkDown(6, 7, 4) })
	// A VM: NVML answers no PCIe common ancestor and no NUMA node, so
	// every pair without NVLink is unknown (4 GB/s).
	nodes["a6000 vm"] = discoverBroken(t, fake.A6000NVBridge, func(m *fake.Machine) error {
		for i := range m.NumGPUs() {
			m.Device(i).GetTopologyCommonAncestorFunc = func(gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
				return 0, gonvml.ERROR_NOT_SUPPORTED
			}
			m.Device(i).GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) {
				return nil, gonvml.ERROR_NOT_SUPPORTED
			}
		}
		return nil
	})
	return nodes
}

// TestShapesBestSet: on every shape, the best-set search matches the brute
// force for every size, with every GPU free and with random free masks, and
// each answer's quality over the shape's ideal is within 0..1; the node
// survives the annotation codec.
func TestShapesBestSet(t *testing.T) {
	for name, n := range shapeNodes(t) {
		t.Run(name, func(t *testing.T) {
			requireRoundTrip(t, n)
			shape := n.Shape()
			shape.Reset()
			ring, sum := ringTable(n), sumTable(n)
			for _, free := range freeMasks(n, rand.New(rand.NewPCG(11, uint64(len(n.GPUs))))) {
				checkBestSet(t, name, n, ring, sum, free)
				for size := 2; size <= free.Len(); size++ {
					_, q, ok := shape.BestSet(free, size)
					require.True(t, ok)
					r := q.RingGBps / shape.Ideal(size).RingGBps
					require.True(t, r > 0 && r <= 1, "%s free %v size %d: ratio %v", name, free, size, r)
				}
			}
		})
	}
}

// TestShapesHandPicked pins the sets one would pick by hand on each shape.
// Bandwidths (pkg/topology/link.go): a lane of NVLink 3 or 4 is 25 GB/s,
// so NS18 (H100/H200) is 450, NS12 and NV12 (A100) 300, NV4 100; PIX 16,
// PXB 14, NODE 10, SYS 6. Ties go to the smallest mask.
func TestShapesHandPicked(t *testing.T) {
	nodes := shapeNodes(t)
	perfect := topology.Quality{RingGBps: topology.PerfectGBps}
	all := topology.GPUSet(0) // all: every usable GPU
	tests := []struct {
		node string
		free topology.GPUSet
		size int
		want topology.GPUSet
		q    topology.Quality
	}{
		// HGX H200: every pair NS18 = 18 x 25 = 450.
		{fake.HGXH200, all, 1, topology.SetOf(0), perfect},
		{fake.HGXH200, all, 2, topology.SetOf(0, 1), topology.Quality{RingGBps: 450, SumGBps: 450}},
		{fake.HGXH200, all, 4, topology.SetOf(0, 1, 2, 3), topology.Quality{RingGBps: 450, SumGBps: 6 * 450}},
		{fake.HGXH200, all, 8, topology.FirstN(8), topology.Quality{RingGBps: 450, SumGBps: 28 * 450}},
		// DGX A100 80GB: every pair NS12 = 12 x 25 = 300.
		{fake.DGXA10080GB, all, 2, topology.SetOf(0, 1), topology.Quality{RingGBps: 300, SumGBps: 300}},
		{fake.DGXA10080GB, all, 4, topology.SetOf(0, 1, 2, 3), topology.Quality{RingGBps: 300, SumGBps: 6 * 300}},
		{fake.DGXA10080GB, all, 8, topology.FirstN(8), topology.Quality{RingGBps: 300, SumGBps: 28 * 300}},
		// HGX A100 4-GPU: every pair NV4 = 100, fully connected.
		{fake.HGXA1004GPU, all, 2, topology.SetOf(0, 1), topology.Quality{RingGBps: 100, SumGBps: 100}},
		{fake.HGXA1004GPU, all, 3, topology.SetOf(0, 1, 2), topology.Quality{RingGBps: 100, SumGBps: 300}},
		{fake.HGXA1004GPU, all, 4, topology.FirstN(4), topology.Quality{RingGBps: 100, SumGBps: 600}},
		// A6000 NV4 bridge pairs: 2 GPUs take a bridged pair (100), never
		// a PIX pair (16).
		{fake.A6000NVBridge, all, 2, topology.SetOf(0, 1), topology.Quality{RingGBps: 100, SumGBps: 100}},
		// GPU 1 busy: the next bridged pair, not the orphan 0 with 2 (PIX).
		{fake.A6000NVBridge, topology.FirstN(8).Remove(1), 2, topology.SetOf(2, 3), topology.Quality{RingGBps: 100, SumGBps: 100}},
		// A socket's quad: ring 0-1 (100), 1-3 (PIX 16), 3-2 (100), 2-0
		// (PIX 16) = 16; sum 100+100 + 16+16 (PIX) + 14+14 (PXB) = 260.
		{fake.A6000NVBridge, all, 4, topology.SetOf(0, 1, 2, 3), topology.Quality{RingGBps: 16, SumGBps: 260}},
		// All 8: the ring crosses the sockets (SYS 6); sum 2 x 260 + 16 x 6.
		{fake.A6000NVBridge, all, 8, topology.FirstN(8), topology.Quality{RingGBps: 6, SumGBps: 2*260 + 16*6}},
		// Bridge 6-7 down: 6-7 is PXB (14), above SYS (6) to GPU 0; the
		// bridged pair 4-5 stays.
		{"a6000 bridge 6-7 down", topology.SetOf(0, 6, 7), 2, topology.SetOf(6, 7), topology.Quality{RingGBps: 14, SumGBps: 14}},
		{"a6000 bridge 6-7 down", topology.SetOf(4, 5, 6, 7), 2, topology.SetOf(4, 5), topology.Quality{RingGBps: 100, SumGBps: 100}},
		// The A6000 box as a VM sees it: bridges (100), the rest unknown
		// (4). A quad rings 100, 4, 100, 4; sum 2 x 100 + 4 x 4 = 216.
		{"a6000 vm", topology.FirstN(8).Remove(1), 2, topology.SetOf(2, 3), topology.Quality{RingGBps: 100, SumGBps: 100}},
		{"a6000 vm", all, 4, topology.SetOf(0, 1, 2, 3), topology.Quality{RingGBps: 4, SumGBps: 216}},
		// 2-switch PCIe: PIX within a pair (16), SYS across (6).
		{fake.PCIe4GPU2Switch, all, 2, topology.SetOf(0, 1), topology.Quality{RingGBps: 16, SumGBps: 16}},
		{fake.PCIe4GPU2Switch, topology.SetOf(0, 2, 3), 2, topology.SetOf(2, 3), topology.Quality{RingGBps: 16, SumGBps: 16}},
		{fake.PCIe4GPU2Switch, all, 4, topology.FirstN(4), topology.Quality{RingGBps: 6, SumGBps: 2*16 + 4*6}},
		// Mixed A100 (NV12 = 300) and T4 (PIX 16), SYS between.
		{fake.MixedA100T4, all, 2, topology.SetOf(0, 1), topology.Quality{RingGBps: 300, SumGBps: 300}},
		{fake.MixedA100T4, topology.SetOf(1, 2, 3), 2, topology.SetOf(2, 3), topology.Quality{RingGBps: 16, SumGBps: 16}},
		{fake.MixedA100T4, all, 4, topology.FirstN(4), topology.Quality{RingGBps: 6, SumGBps: 300 + 16 + 4*6}},
		// DGX-1 with one of 0-3's two lanes down (NV1 = 25): quad 0-3 sums
		// 225 - 25 = 200 < quad 4-7's 225, so 4 GPUs take 4-7.
		{"dgx-1 0-3 one lane down", all, 4, topology.SetOf(4, 5, 6, 7), topology.Quality{RingGBps: 25, SumGBps: 225}},
		// Without GPU 1, the NV2 pairs are 0-4, 2-3, 4-7, 5-6, 6-7 (0-3 no
		// longer): the smallest mask is {2,3}.
		{"dgx-1 0-3 one lane down", topology.FirstN(8).Remove(1), 2, topology.SetOf(2, 3), topology.Quality{RingGBps: 50, SumGBps: 50}},
		// All 8: GPU 0 keeps one NV2 link (to 4), so no ring of NV2 is
		// left: 25; sum 672 - 25 = 647.
		{"dgx-1 0-3 one lane down", all, 8, topology.FirstN(8), topology.Quality{RingGBps: 25, SumGBps: 647}},
		// H100, GPU 3 on 12 of 18 lanes: its pairs are NS12 (300). 4 and 7
		// GPUs leave it out; 8 ring at 300, sum 21 x 450 + 7 x 300.
		{"dgx-h100 gpu3 12 of 18 lanes", all, 4, topology.SetOf(0, 1, 2, 4), topology.Quality{RingGBps: 450, SumGBps: 6 * 450}},
		{"dgx-h100 gpu3 12 of 18 lanes", all, 7, topology.FirstN(8).Remove(3), topology.Quality{RingGBps: 450, SumGBps: 21 * 450}},
		{"dgx-h100 gpu3 12 of 18 lanes", all, 8, topology.FirstN(8), topology.Quality{RingGBps: 300, SumGBps: 21*450 + 7*300}},
		// H100, GPU 3 off the fabric: NODE (10) to 0-2, SYS (6) to 4-7.
		{"dgx-h100 gpu3 off the fabric", all, 4, topology.SetOf(0, 1, 2, 4), topology.Quality{RingGBps: 450, SumGBps: 6 * 450}},
		{"dgx-h100 gpu3 off the fabric", all, 8, topology.FirstN(8), topology.Quality{RingGBps: 10, SumGBps: 21*450 + 3*10 + 4*6}},
	}
	for _, tc := range tests {
		n := nodes[tc.node]
		require.NotNil(t, n, tc.node)
		free := tc.free
		if free == 0 {
			free = n.Usable()
		}
		set, q, ok := n.Shape().BestSet(free, tc.size)
		require.True(t, ok, "%s free %v size %d", tc.node, free, tc.size)
		require.Equal(t, tc.want, set, "%s free %v size %d", tc.node, free, tc.size)
		require.Equal(t, tc.q, q, "%s free %v size %d", tc.node, free, tc.size)
	}
}

// TestShapeNoGPU: a node with no GPU (NVML lists none) has an empty shape:
// no set of any size, a zero ideal, nothing usable.
func TestShapeNoGPU(t *testing.T) {
	n := discoverBroken(t, fake.DGXH100, func(m *fake.Machine) error {
		m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.SUCCESS }
		return nil
	})
	requireRoundTrip(t, n)
	shape := n.Shape()
	require.Equal(t, 0, shape.Len())
	require.Zero(t, n.Usable())
	for size := range 3 {
		set, q, ok := shape.BestSet(n.All(), size)
		require.False(t, ok)
		require.Zero(t, set)
		require.Equal(t, topology.Quality{}, q)
		require.Equal(t, topology.Quality{}, shape.Ideal(size))
	}
}

// TestShapesMIGLayouts: H200 and A100-80GB MIG layouts (every GPU instance
// profile, +me included) validate, survive the annotation codec, and take
// their GPUs out of the whole-GPU search.
func TestShapesMIGLayouts(t *testing.T) {
	tests := []struct {
		machine string
		layout  map[int][]string
	}{
		{fake.HGXH200, map[int][]string{
			0: {"1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb"},
			1: {"7g.141gb"}, 2: {"4g.71gb", "3g.71gb"}, 3: {"2g.35gb", "2g.35gb", "3g.71gb"},
			4: {"1g.35gb", "1g.35gb", "1g.18gb+me"}, 5: {"1c.3g.71gb", "2c.4g.71gb"},
		}},
		{fake.DGXA10080GB, map[int][]string{
			0: {"1g.10gb+me", "1g.10gb", "2g.20gb", "3g.40gb"}, 7: {"4g.40gb", "1g.20gb", "1g.20gb"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.machine, func(t *testing.T) {
			n := discover(t, tc.machine, fake.WithMIG(tc.layout))
			requireRoundTrip(t, n)
			mig := topology.GPUSet(0)
			for gpu := range tc.layout {
				mig = mig.Add(gpu)
			}
			require.Equal(t, n.All().Minus(mig), n.Usable())
			set, q, ok := n.Shape().BestSet(n.Usable(), n.Usable().Len())
			require.True(t, ok)
			require.Equal(t, n.Usable(), set)
			require.Equal(t, n.Shape().Quality(set), q)
		})
	}
}
