package gpuview

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// catalogNode discovers a catalog machine as the device plugin does.
func catalogNode(t *testing.T, name, machine string, opts ...fake.Option) NodeState {
	t.Helper()
	topo, err := fake.Topology(machine, opts...)
	require.NoError(t, err)
	return NodeState{Name: name, Topo: topo}
}

// gpus returns the UUIDs of the node's GPUs at the given indexes.
func gpus(ns NodeState, idx ...int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = ns.Topo.GPUs[i].UUID
	}
	return out
}

// replicas returns n replica IDs of GPU i, from replica number first on.
func replicas(ns NodeState, i, first, n int) []string {
	var out []string
	for r := first; r < first+n; r++ {
		out = append(out, deviceid.ReplicaID(ns.Topo.GPUs[i].UUID, r))
	}
	return out
}

func whole(pod string, ids []string) Placement {
	class := "inference"
	if len(ids) > 1 {
		class = "training"
	}
	return Placement{Pod: pod, Class: class, Devices: map[string][]string{"nvidia.com/gpu": ids}}
}

func dist(t *testing.T, ws ...score.Weighted) *score.Distribution {
	t.Helper()
	d, err := score.NewDistribution(ws)
	require.NoError(t, err)
	return d
}

// demoClasses are make demo's workload classes.
var demoClasses = []string{"training", "inference", "mig", "shared"}

var (
	whole1 = score.TaskType{Kind: score.KindWhole, Count: 1}
	whole4 = score.TaskType{Kind: score.KindWhole, Count: 4}
)

// The DGX-1 link table (pkg/nvml/fake/machines.go), as bandwidth with
// NVLink2 at 25 GB/s per lane (pkg/topology/link.go): NV1 = 25, NV2 = 50,
// SYS = 6.
//
//	      0    1    2    3    4    5    6    7
//	0     X   NV1  NV1  NV2  NV2  SYS  SYS  SYS
//	1    NV1   X   NV2  NV1  SYS  NV2  SYS  SYS
//	2    NV1  NV2   X   NV2  SYS  SYS  NV1  SYS
//	3    NV2  NV1  NV2   X   SYS  SYS  SYS  NV1
//	4    NV2  SYS  SYS  SYS   X   NV1  NV1  NV2
//	5    SYS  NV2  SYS  SYS  NV1   X   NV2  NV1
//	6    SYS  SYS  NV1  SYS  NV1  NV2   X   NV2
//	7    SYS  SYS  SYS  NV1  NV2  NV1  NV2   X
//
// The NV2 links form one 8-cycle 0-3-2-1-5-6-7-4-0 with no 4-cycle, so the
// best ring is 50 for 2 and 8 GPUs and 25 for 4 GPUs.
func TestSetQuality(t *testing.T) {
	cases := []struct {
		name, machine string
		set           topology.GPUSet
		ring, ideal   float64
		ratio         float64
		path          RingPath
	}{
		// Every ring over {0,1,2,3} uses one of GPU0's NV1 links (its
		// links there are 25, 25, 50): ring 25; best 4-set is 25: 25/25.
		{"dgx1 quad", fake.DGX1V100, topology.SetOf(0, 1, 2, 3), 25, 25, 1, PathNVLink},
		// {0,1,4,5}: ring 0-1-5-4-0 = 25, 50, 25, 50 -> 25; as good as a quad.
		{"dgx1 two pairs across the cube", fake.DGX1V100, topology.SetOf(0, 1, 4, 5), 25, 25, 1, PathNVLink},
		// {0,1,2,4}: GPU4 reaches 0 (NV2) and 1, 2 only by SYS: every ring
		// has a SYS hop: 6/25 = 0.24.
		{"dgx1 quad with a cross-socket GPU", fake.DGX1V100, topology.SetOf(0, 1, 2, 4), 6, 25, 0.24, PathSYS},
		// Pairs: {0,3} NV2 50/50 = 1; {0,1} NV1 25/50 = 0.5; {0,5} SYS 6/50 = 0.12.
		{"dgx1 NV2 pair", fake.DGX1V100, topology.SetOf(0, 3), 50, 50, 1, PathNVLink},
		{"dgx1 NV1 pair", fake.DGX1V100, topology.SetOf(0, 1), 25, 50, 0.5, PathNVLink},
		{"dgx1 SYS pair", fake.DGX1V100, topology.SetOf(0, 5), 6, 50, 0.12, PathSYS},
		// All 8 GPUs ring over the NV2 8-cycle: 50/50.
		{"dgx1 all", fake.DGX1V100, topology.FirstN(8), 50, 50, 1, PathNVLink},
		// PCIe box: {0,1} one switch PIX 16, the best pair: 16/16; {0,2}
		// across sockets SYS 6/16 = 0.375.
		{"pcie PIX pair", fake.PCIe4GPU2Socket, topology.SetOf(0, 1), 16, 16, 1, PathPCIe},
		{"pcie SYS pair", fake.PCIe4GPU2Socket, topology.SetOf(0, 2), 6, 16, 0.375, PathSYS},
		// NVLink bridge pairs: {0,1} NV12 = 12 x 25 = 300; {0,2} NODE 10:
		// 10/300.
		{"bridge pair", fake.A100PCIeBridge, topology.SetOf(0, 1), 300, 300, 1, PathNVLink},
		{"bridge broken pair", fake.A100PCIeBridge, topology.SetOf(0, 2), 10, 300, 10.0 / 300, PathPCIe},
		// NVSwitch: every pair NS12 = 300: any set is ideal.
		{"dgx-a100 any pair", fake.DGXA100, topology.SetOf(0, 5), 300, 300, 1, PathNVLink},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := catalogNode(t, "n", tc.machine)
			q := setQuality(&ns, "demo/p", tc.set)
			require.Equal(t, tc.ring, q.Ring)
			require.Equal(t, tc.ideal, q.Ideal)
			require.InDelta(t, tc.ratio, q.Ratio, 1e-9)
			require.Equal(t, tc.path, q.Path)
		})
	}
}

func TestNodeFragmentation(t *testing.T) {
	// whole:1 and whole:4 half each.
	d14 := dist(t, score.Weighted{Type: whole1, Weight: 1}, score.Weighted{Type: whole4, Weight: 1})
	cases := []struct {
		name    string
		machine string
		shared  map[int]int // GPU -> replicas advertised
		pods    func(NodeState) []Placement
		d       *score.Distribution
		want    float64
	}{
		{
			// Free {4,5,6,7} is a full quad (ring 25 = best): whole:4 can
			// use all 4, whole:1 too: F = 0.
			name: "dgx1 quad taken", machine: fake.DGX1V100, d: d14, want: 0,
			pods: func(ns NodeState) []Placement { return []Placement{whole("demo/t", gpus(ns, 0, 1, 2, 3))} },
		},
		{
			// Free {3,5,6,7}: GPU3 reaches 5, 6 by SYS only: best ring 6,
			// ratio 6/25 = 0.24; whole:4 strands 4 - 4 x 0.24 = 3.04;
			// F = 0.5 x 0 + 0.5 x 3.04 = 1.52.
			name: "dgx1 quad split", machine: fake.DGX1V100, d: d14, want: 1.52,
			pods: func(ns NodeState) []Placement { return []Placement{whole("demo/t", gpus(ns, 0, 1, 2, 4))} },
		},
		{
			// GPU0 time-shared x4 with 1 replica held: free capacity 0.75
			// + 3 = 3.75; whole:1 uses the 3 free GPUs: F = 0.75.
			name: "pcie shared replica, whole:1", machine: fake.PCIe4GPU2Socket, shared: map[int]int{0: 4},
			d: dist(t, score.Weighted{Type: whole1, Weight: 1}), want: 0.75,
			pods: func(ns NodeState) []Placement {
				return []Placement{{Pod: "demo/s", Class: "shared", Devices: map[string][]string{"nvidia.com/gpu.shared": replicas(ns, 0, 0, 1)}}}
			},
		},
		{
			// shared:500m can only use GPU0 (3/4 free >= 1/2); GPUs 1-3
			// are not time-shared: F = 3.
			name: "pcie shared replica, shared:500m", machine: fake.PCIe4GPU2Socket, shared: map[int]int{0: 4},
			d: dist(t, score.Weighted{Type: score.TaskType{Kind: score.KindShared, Milli: 500}, Weight: 1}), want: 3,
			pods: func(ns NodeState) []Placement {
				return []Placement{{Pod: "demo/s", Class: "shared", Devices: map[string][]string{"nvidia.com/gpu.shared": replicas(ns, 0, 0, 1)}}}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := catalogNode(t, "n", tc.machine)
			for i, r := range tc.shared {
				ns.Topo.GPUs[i].Replicas = r
			}
			ns.Pods = tc.pods(ns)
			nu := analyzeNode(&ns)
			require.Empty(t, nu.unknown)
			require.InDelta(t, tc.want, nu.fragmentation(tc.d), 1e-9)
		})
	}
}

// threeNodes is one side of three nodes:
//   - dgx1: demo/train-a on {0,1,2,3}, demo/infer-a on GPU 4;
//   - a100: MIG on GPU 0 (1g.5gb [0], 1g.5gb [1], 3g.20gb [4-7]) with
//     demo/mig-a on the first 1g and demo/mig-b on the 3g; GPU 1
//     time-shared x4 with demo/shared-a x2 and demo/shared-b x1; GPU 7
//     unhealthy;
//   - pcie: all free.
func threeNodes(t *testing.T) Side {
	t.Helper()
	dgx1 := catalogNode(t, "dgx1", fake.DGX1V100)
	dgx1.Pods = []Placement{whole("demo/train-a", gpus(dgx1, 0, 1, 2, 3)), whole("demo/infer-a", gpus(dgx1, 4))}

	a100 := catalogNode(t, "a100", fake.DGXA100, fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb", "3g.20gb"}}))
	require.Len(t, a100.Topo.MIG, 3)
	mig := a100.Topo.MIG
	require.Equal(t, []string{"1g.5gb", "1g.5gb", "3g.20gb"}, []string{mig[0].Profile, mig[1].Profile, mig[2].Profile})
	a100.Topo.GPUs[1].Replicas = 4
	a100.Topo.GPUs[7].Healthy = false
	a100.Pods = []Placement{
		{Pod: "demo/mig-a", Class: "mig", Devices: map[string][]string{"nvidia.com/mig-1g.5gb": {mig[0].UUID}}},
		{Pod: "demo/mig-b", Class: "mig", Devices: map[string][]string{"nvidia.com/mig-3g.20gb": {mig[2].UUID}}},
		{Pod: "demo/shared-a", Class: "shared", Devices: map[string][]string{"nvidia.com/gpu.shared": replicas(a100, 1, 0, 2)}},
		{Pod: "demo/shared-b", Class: "shared", Devices: map[string][]string{"nvidia.com/gpu.shared": replicas(a100, 1, 2, 1)}},
	}

	pcie := catalogNode(t, "pcie", fake.PCIe4GPU2Socket)
	return Side{Profile: "gpupack-scheduler", Nodes: []NodeState{dgx1, a100, pcie}, Pending: []string{"demo/train-big"}}
}

func TestAnalyzeSide(t *testing.T) {
	side := threeNodes(t)
	d := dist(t, score.Weighted{Type: whole1, Weight: 1}, score.Weighted{Type: whole4, Weight: 1})
	m := AnalyzeSide(&side, d)

	require.Empty(t, m.Problems)
	require.Equal(t, 3, m.Nodes)
	// 8 + 8 + 4 GPUs.
	require.Equal(t, 20, m.GPUs)
	// dgx1: 5 full (0-4), 3 free; a100: GPU0 MIG 2/3 partly, GPU1 3/4
	// replicas partly, GPUs 2-6 free, GPU7 unhealthy; pcie: 4 free.
	require.Equal(t, 3+5+4, m.Free)
	require.Equal(t, 2, m.Partly)
	require.Equal(t, 5, m.Full)
	require.Equal(t, 1, m.Unhealthy)
	require.Equal(t, 2, m.MIGUsed)
	require.Equal(t, 3, m.MIGTotal)
	require.Equal(t, 3, m.ReplicasUsed)
	require.Equal(t, 4, m.ReplicasTotal)
	// 5 whole + 1g (1/7) + 3g (3/7) + 3 of 4 replicas (0.75) = 6.3214...
	// of 20 GPUs = 31.6%.
	require.InDelta(t, 5+1.0/7+3.0/7+0.75, m.GPUEquiv, 1e-9)
	require.InDelta(t, 100*(5+4.0/7+0.75)/20, m.AllocPercent(), 1e-9)
	// Only pcie has every GPU free.
	require.Equal(t, 1, m.WholeNodesFree)
	// a100: free whole GPUs {2,3,4,5,6} all NS12 (GPU0 MIG, GPU1 shared,
	// GPU7 unhealthy); dgx1: {5,6,7} linked (5-6 NV2, 5-7 NV1, 6-7 NV2);
	// pcie: no NVLink.
	require.Equal(t, []int{5, 3}, m.FreeNVLinkGroups)
	// Fragmentation under whole:1 / whole:4, half each:
	//   dgx1: free {5,6,7}: whole:1 0, whole:4 3 GPUs < 4: strands 3 -> 1.5
	//   a100: usable {1..6}, capacity 0.25 + 5 = 5.25; whole:1 strands
	//         0.25; whole:4: 5 free NS GPUs, ratio 1: strands 0.25 -> 0.25
	//   pcie: all 4 free, the 4-set is the node's best: 0
	require.InDelta(t, 1.5+0.25+0, m.Fragmentation, 1e-9)
	require.Len(t, m.Multi, 1)
	require.Equal(t, "demo/train-a", m.Multi[0].Pod)
	require.Equal(t, topology.SetOf(0, 1, 2, 3), m.Multi[0].GPUs)
	require.InDelta(t, 1.0, m.MeanRatio, 1e-9)
	require.Zero(t, m.OverSYS)
	require.Zero(t, m.OverPCIe)
	require.Equal(t, []string{"demo/train-big"}, m.Pending)
	// train-a; infer-a; mig-a, mig-b; shared-a, shared-b.
	require.Equal(t, map[string]int{"training": 1, "inference": 1, "mig": 2, "shared": 2}, m.Placed)
}

func TestMultiGPUMean(t *testing.T) {
	// Three DGX-1 pods: {0,1,2,4} 6/25 = 0.24 (SYS); {3,7} NV1 25/50 =
	// 0.5; {5,6} NV2 50/50 = 1. Mean = (0.24 + 0.5 + 1) / 3 = 0.58.
	ns := catalogNode(t, "dgx1", fake.DGX1V100)
	ns.Pods = []Placement{
		whole("demo/a", gpus(ns, 0, 1, 2, 4)),
		whole("demo/b", gpus(ns, 3, 7)),
		whole("demo/c", gpus(ns, 5, 6)),
		whole("demo/single", nil), // holds nothing: not a multi-GPU pod
	}
	m := AnalyzeSide(&Side{Profile: "default-scheduler", Nodes: []NodeState{ns}}, score.DefaultDistribution())
	require.Len(t, m.Multi, 3)
	require.InDelta(t, (0.24+0.5+1)/3, m.MeanRatio, 1e-9)
	require.Equal(t, 1, m.OverSYS)
	require.Zero(t, m.OverPCIe)
	require.Equal(t, 8, m.Full)
}

func TestMIGFraction(t *testing.T) {
	cases := []struct {
		profile string
		size    int
		want    float64
	}{
		{"1g.5gb", 1, 1.0 / 7},
		{"3g.20gb", 4, 3.0 / 7},
		{"7g.40gb", 8, 1},
		{"1c.2g.10gb", 2, 2.0 / 7}, // the GPU instance is 2g
		{"1g.10gb+me", 1, 1.0 / 7},
		{"weird", 2, 2.0 / 8}, // no "<n>g": memory slices over 8
	}
	for _, tc := range cases {
		t.Run(tc.profile, func(t *testing.T) {
			require.InDelta(t, tc.want, migFraction(topology.MIGDevice{Profile: tc.profile, Size: tc.size}), 1e-9)
		})
	}
}

func TestMalformed(t *testing.T) {
	dgx1 := catalogNode(t, "dgx1", fake.DGX1V100)
	uuid0 := dgx1.Topo.GPUs[0].UUID
	cases := []struct {
		name        string
		node        NodeState
		wantUnknown int
		wantProblem string // substring of a problem line
		check       func(t *testing.T, m *SideMetrics, out string)
	}{
		{
			name: "nil topology",
			node: NodeState{Name: "ghost", Pods: []Placement{whole("demo/x", []string{"GPU-a", "GPU-b"})}},
			// both IDs are unknown
			wantUnknown: 2, wantProblem: "unknown device GPU-a",
		},
		{
			name:        "unknown GPU",
			node:        NodeState{Name: "dgx1", Topo: dgx1.Topo, Pods: []Placement{whole("demo/x", []string{"GPU-not-here"})}},
			wantUnknown: 1, wantProblem: "demo/x holds unknown device GPU-not-here",
		},
		{
			// GPU 0 is not time-shared (Replicas 0): no replica IDs exist.
			name: "replica of an unshared GPU",
			node: NodeState{Name: "dgx1", Topo: dgx1.Topo, Pods: []Placement{
				{Pod: "demo/s", Devices: map[string][]string{"nvidia.com/gpu.shared": {deviceid.ReplicaID(uuid0, 0)}}}}},
			wantUnknown: 1, wantProblem: "unknown device " + uuid0 + "::0",
		},
		{
			name: "bad replica syntax",
			node: NodeState{Name: "dgx1", Topo: dgx1.Topo, Pods: []Placement{
				{Pod: "demo/s", Devices: map[string][]string{"nvidia.com/gpu.shared": {uuid0 + "::x"}}}}},
			wantUnknown: 1, wantProblem: "unknown device",
		},
		{
			name: "device held twice",
			node: NodeState{Name: "dgx1", Topo: dgx1.Topo, Pods: []Placement{
				whole("demo/a", []string{uuid0}), whole("demo/b", []string{uuid0})}},
			wantProblem: "held by both demo/a and demo/b",
		},
		{
			// Two GPUs, no link matrix, a MIG device on a GPU the node lacks:
			// links render as "?", the pair's ring is the unknown figure (4).
			name: "broken topology",
			node: NodeState{Name: "broken", Topo: &topology.Node{
				GPUs: []topology.GPU{{Index: 0, UUID: "GPU-0", Healthy: true}, {Index: 1, UUID: "GPU-1", Healthy: true}},
				MIG:  []topology.MIGDevice{{UUID: "MIG-x", Parent: 5, Profile: "1g.5gb", Size: 1, Healthy: true}},
			}, Pods: []Placement{
				whole("demo/pair", []string{"GPU-0", "GPU-1"}),
				{Pod: "demo/m", Devices: map[string][]string{"nvidia.com/mig-1g.5gb": {"MIG-x"}}},
			}},
			check: func(t *testing.T, m *SideMetrics, out string) {
				require.Len(t, m.Multi, 1)
				require.Equal(t, float64(topology.UnknownGBps), m.Multi[0].Ring)
				require.Equal(t, PathSYS, m.Multi[0].Path)
				require.Regexp(t, `(?m)^\s+0\s+\?\s+X\s+\?\s+0\s+demo/pair$`, out)
			},
		},
		{
			name: "empty node",
			node: NodeState{Name: "empty", Topo: &topology.Node{}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			side := Side{Profile: "p", Nodes: []NodeState{tc.node}}
			m := AnalyzeSide(&side, score.DefaultDistribution())
			require.Equal(t, tc.wantUnknown, m.Unknown)
			if tc.wantProblem != "" {
				require.True(t, containsSub(m.Problems, tc.wantProblem), "problems %q lack %q", m.Problems, tc.wantProblem)
			} else {
				require.Empty(t, m.Problems)
			}
			var buf bytes.Buffer
			require.NoError(t, WriteReport(&buf, []Side{side}, nil, nil))
			if tc.wantUnknown > 0 {
				require.Contains(t, buf.String(), "! unknown device")
			}
			if tc.check != nil {
				tc.check(t, m, buf.String())
			}
		})
	}
}

func TestSharedReplicaOverAdvertised(t *testing.T) {
	// GPU 0 has 2 replicas: ::2 does not exist.
	ns := catalogNode(t, "pcie", fake.PCIe4GPU2Socket)
	ns.Topo.GPUs[0].Replicas = 2
	ns.Pods = []Placement{{Pod: "demo/s", Devices: map[string][]string{"nvidia.com/gpu.shared": replicas(ns, 0, 1, 2)}}}
	nu := analyzeNode(&ns)
	// ::1 is known, ::2 is not: 1 of 2 replicas used, GPU 0 partly used.
	require.Len(t, nu.unknown, 1)
	require.Equal(t, gpuPartly, nu.state(0))
	require.InDelta(t, 0.5, nu.equivalents(0), 1e-9)
}

func containsSub(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func TestWriteReport(t *testing.T) {
	ours := threeNodes(t)
	// The other side: the same pool, the training pod on {0,1,2,4} (a SYS
	// ring, 6/25 = 0.24), the inference pod pending.
	theirs := threeNodes(t)
	theirs.Profile = "default-scheduler"
	dgx1 := &theirs.Nodes[0]
	dgx1.Pods = []Placement{whole("demo/train-a", gpus(*dgx1, 0, 1, 2, 4))}
	theirs.Pending = []string{"demo/infer-a"}

	d := dist(t, score.Weighted{Type: whole1, Weight: 1}, score.Weighted{Type: whole4, Weight: 1})
	var buf bytes.Buffer
	require.NoError(t, WriteReport(&buf, []Side{ours, theirs}, d, demoClasses))
	out := buf.String()
	t.Log("\n" + out)

	for _, l := range strings.Split(out, "\n") {
		require.LessOrEqual(t, len([]rune(l)), 120, "line too wide: %q", l)
	}
	lines := []string{
		`^==== gpupack-scheduler: 3 nodes, 20 GPUs ====$`,
		`^node dgx1: 8 x V100-SXM2-16GB, fragmentation 1\.50 GPUs$`,
		`^\s+0\s+V100-SXM2-16GB\s+X\s+NV1\s+NV1\s+NV2\s+NV2\s+SYS\s+SYS\s+SYS\s+0\s+demo/train-a$`,
		`^\s+4\s+V100-SXM2-16GB\s+NV2\s+SYS\s+SYS\s+SYS\s+X\s+NV1\s+NV1\s+NV2\s+1\s+demo/infer-a$`,
		`^\s+7\s+V100-SXM2-16GB(\s+\S+){8}\s+1\s+free$`,
		`^\s+GPU\s+MODEL\s+LINKS\s+NUMA\s+HELD BY$`, // the uniform NVSwitch box
		`^\s+0\s+A100-SXM4-40GB\s+all NS12\s+3\s+MIG, 2/3 instances used$`,
		`^\s+└ 1g\.5gb\s+\[0\]\s+demo/mig-a$`,
		`^\s+└ 1g\.5gb\s+\[1\]\s+free$`,
		`^\s+└ 3g\.20gb\s+\[4-7\]\s+demo/mig-b$`,
		`^\s+1\s+A100-SXM4-40GB\s+all NS12\s+3\s+demo/shared-a x2, demo/shared-b x1 \(3/4\)$`,
		`^\s+7\s+A100-SXM4-40GB\s+all NS12\s+5\s+UNHEALTHY, free$`,
		`^\s+2\s+T4\s+SYS\s+SYS\s+X\s+PHB\s+1\s+free$`,
		`^\s+demo/train-a\s+dgx1\s+\{0,1,2,3\}\s+ring 25 GB/s of best 25\s+1\.00\s+NVLink ring$`,
		`^\s+demo/train-a\s+dgx1\s+\{0,1,2,4\}\s+ring 6 GB/s of best 25\s+0\.24\s+ring over SYS$`,
		// summary rows: ours, then theirs
		`^\s+METRIC\s+gpupack-scheduler\s+default-scheduler$`,
		// theirs: one whole GPU less: 5.32 of 20 = 26.6%
		`^\s+GPU-equivalents allocated\s+6\.32 of 20 \(31\.6%\)\s+5\.32 of 20 \(26\.6%\)$`,
		`^\s+pods placed\s+6 of 7\s+5 of 6$`,
		`^\s+placed by class \(training/inference/mig/shared\)\s+1/1/2/2\s+1/0/2/2$`,
		// the headline, one line per side
		`^  gpupack-scheduler: placed 6 of 7 pods \(1 pending\), 6\.32 GPU-equivalents allocated of 20 GPUs \(31\.6%\)$`,
		`^  default-scheduler: placed 5 of 6 pods \(1 pending\), 5\.32 GPU-equivalents allocated of 20 GPUs \(26\.6%\)$`,
		// theirs: dgx1 free {3,5,6,7}: 0.5 x (4 - 4 x 0.24) = 1.52; + 0.25
		// free: dgx1 3 (theirs 4), a100 5 + 0.25 (GPU 7 unhealthy), pcie 4
		`^\s+fragmentation of free capacity \(FGD, GPUs\)\s+1\.75 of 12\.25\s+1\.77 of 13\.25$`,
		`^node dgx1: 8 x V100-SXM2-16GB, fragmentation 1\.52 GPUs$`,
		`^\s+mean set quality \(1\.00 = best\)\s+1\.00\s+0\.24$`,
		`^\s+multi-GPU rings over SYS\s+0\s+1$`,
		// theirs: dgx1 free {3,5,6,7}: 3-7 NV1 joins them: one group of 4
		`^\s+free NVLink groups \(2\+ GPUs\)\s+2 \(largest 5\)\s+2 \(largest 5\)$`,
		`^\s+pending pods\s+1\s+1$`,
		`^\s+pending \(default-scheduler\): demo/infer-a$`,
		`^\s+pending \(gpupack-scheduler\): demo/train-big$`,
		// what fragmentation means, and its workload: no MIG or shared
		// type here, so no word about them
		`^  fragmentation \(FGD\): the expected free GPU capacity, in GPUs, that the task types of the workload below`,
		`^  fragmentation workload: task types and their shares of the pods \(whole:k = k whole GPUs,`,
		`^    whole:1 50%, whole:4 50%$`,
	}
	for _, re := range lines {
		require.Regexp(t, regexp.MustCompile(`(?m)`+re), out)
	}
}

func TestWriteReportWorkloadSource(t *testing.T) {
	side := threeNodes(t)
	d := dist(t, score.Weighted{Type: whole1, Weight: 2},
		score.Weighted{Type: score.TaskType{Kind: score.KindShared, Milli: 250}, Weight: 1},
		score.Weighted{Type: score.TaskType{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.5gb"}, Weight: 1})
	var buf bytes.Buffer
	require.NoError(t, WriteReportWith(&buf, []Side{side}, ReportOptions{
		Workload: d, WorkloadSource: "the demo's own workload mix, not the scheduler's learned or default workload",
	}))
	out := buf.String()
	t.Log("\n" + out)
	for _, l := range strings.Split(out, "\n") {
		require.LessOrEqual(t, len([]rune(l)), 120, "line too wide: %q", l)
	}
	// Notes are wrapped: compare them as one paragraph.
	flat := strings.Join(strings.Fields(out), " ")
	require.Contains(t, flat, "a free whole GPU counts for the MIG and time-shared types, which cannot use it")
	require.Contains(t, flat, "fragmentation workload: the demo's own workload mix, not the scheduler's learned or default workload. Task types")
	require.Regexp(t, `(?m)^    whole:1 50%, shared:250m 25%, mig:1g\.5gb 25%$`, out)
	// Without classes: no per-class row, the placed count stays.
	require.NotContains(t, out, "placed by class")
	require.Regexp(t, `(?m)^\s+pods placed\s+6 of 7$`, out)

	// WriteReport with no workload names the default prior.
	buf.Reset()
	require.NoError(t, WriteReport(&buf, []Side{side}, nil, nil))
	require.Contains(t, strings.Join(strings.Fields(buf.String()), " "), "fragmentation workload: GPUPack's default prior (args workload.prior). Task types")
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriteReportWriterError(t *testing.T) {
	side := threeNodes(t)
	err := WriteReport(&failWriter{after: 3}, []Side{side}, nil, nil)
	require.ErrorContains(t, err, "disk full")
}

func TestWriteReportWideNodes(t *testing.T) {
	// A 16-GPU NVSwitch box (uniform: one LINKS column) with GPU 0 shared by
	// 7 pods, and an 8-GPU PCIe box (a full matrix): no line over 120
	// columns, every holder shown, wrapped under HELD BY.
	big := catalogNode(t, "nvswitch-16gpu-with-a-long-node-name", fake.NVSwitch16GPU)
	big.Topo.GPUs[0].Replicas = 8
	for k := range 7 {
		big.Pods = append(big.Pods, Placement{Pod: "demo-namespace/inference-shared-" + strconv.Itoa(k), Class: "shared",
			Devices: map[string][]string{"nvidia.com/gpu.shared": replicas(big, 0, k, 1)}})
	}
	bridge := catalogNode(t, "bridge", fake.A100PCIeBridge)
	bridge.Pods = []Placement{whole("demo-namespace/training-with-a-long-name-0", gpus(bridge, 0, 1))}
	var buf bytes.Buffer
	require.NoError(t, WriteReport(&buf, []Side{{Profile: "gpupack-scheduler", Nodes: []NodeState{big, bridge}}}, nil, nil))
	out := buf.String()
	for _, l := range strings.Split(out, "\n") {
		require.LessOrEqual(t, len([]rune(l)), 120, "line too wide: %q", l)
	}
	for k := range 7 {
		require.Contains(t, out, "demo-namespace/inference-shared-"+strconv.Itoa(k)+" x1")
	}
	require.Regexp(t, `(?m)^\s+0\s+V100-SXM3-32GB\s+all NS6\s+0\s+demo-namespace/inference-shared-0 x1, .*,$`, out)
	require.Regexp(t, `(?m)^\s+demo-namespace/inference-shared-6 x1 \(7/8\)$`, out)
	// big: GPUs 1-15 free and NVSwitched; bridge: pairs {2,3} {4,5} {6,7}.
	require.Regexp(t, `(?m)^\s+free NVLink groups \(2\+ GPUs\)\s+4 \(largest 15\)$`, out)
	require.Regexp(t, `(?m)^\s+0\s+A100-PCIE-40GB\s+X\s+NV12\s+NODE\s+NODE\s+SYS\s+SYS\s+SYS\s+SYS\s+0\s+demo-namespace/training`, out)
}
