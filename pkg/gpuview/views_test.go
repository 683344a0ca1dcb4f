package gpuview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// box is a hand-built 4-GPU node: 0-1 NV2 (2 x 25 = 50 GB/s), 2-3 PIX,
// every other pair SYS (6 GB/s); GPUs 0,1 on NUMA 0 and 2,3 on NUMA 1;
// GPU 3 time-shared x2.
func box() *topology.Node {
	n := fixture.Build("n", "V100", 4, 2, func(i, j int) topology.Link {
		switch {
		case i == 0 && j == 1:
			return fixture.NV(2)
		case i == 2 && j == 3:
			return fixture.PIX
		}
		return fixture.SYS
	})
	n.GPUs[3].Replicas = 2
	return n
}

func gpuNodeObject(t *testing.T, name string, topo *topology.Node, inUse []protocol.PodDevices) corev1.Node {
	t.Helper()
	n := fixture.MakeNode().Name(name).Annotations()
	if topo != nil {
		raw, err := protocol.EncodeTopology(topo)
		require.NoError(t, err)
		n.Annotations(protocol.TopologyAnnotation, raw)
	}
	if inUse != nil {
		raw, err := protocol.EncodeInUse(inUse)
		require.NoError(t, err)
		n.Annotations(protocol.InUseAnnotation, raw)
	}
	return *n.Obj()
}

func podObject(t *testing.T, name, node string, chosen map[string][]string, asks int64) corev1.Pod {
	t.Helper()
	p := fixture.MakePod().Named(name).Node(node).Container("main").Annotations()
	if asks > 0 {
		p.Limit("nvidia.com/gpu", asks)
	}
	if chosen != nil {
		raw, err := protocol.EncodeDevices(protocol.Devices{Resources: chosen})
		require.NoError(t, err)
		p.Annotations(protocol.DevicesAnnotation, raw)
	}
	return *p.Obj()
}

// fixtureCluster: node "box" where default/train holds GPUs 0 and 2 (the
// scheduler chose 0 and 1: the handoff differs) and default/share replica
// 0 of GPU 3 (as chosen); node "bad" with a malformed topology; node "cpu"
// without annotations (not a GPU node); default/wait pending, asking 2
// GPUs; default/web with no GPU.
func fixtureCluster(t *testing.T) *Cluster {
	t.Helper()
	b := box()
	u := func(i int) string { return b.GPUs[i].UUID }
	nodes := []corev1.Node{
		gpuNodeObject(t, "box", b, []protocol.PodDevices{
			{PodRef: protocol.PodRef{Namespace: "default", Name: "train", UID: "uid-train"}, Devices: []string{u(0), u(2)}},
			{PodRef: protocol.PodRef{Namespace: "default", Name: "share", UID: "uid-share"}, Devices: []string{deviceid.ReplicaID(u(3), 0)}},
		}),
		{ObjectMeta: metav1.ObjectMeta{Name: "bad", Annotations: map[string]string{protocol.TopologyAnnotation: "{{{"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}},
	}
	pods := []corev1.Pod{
		podObject(t, "train", "box", map[string][]string{"nvidia.com/gpu": {u(0), u(1)}}, 2),
		podObject(t, "share", "box", map[string][]string{"nvidia.com/gpu.shared": {deviceid.ReplicaID(u(3), 0)}}, 0),
		podObject(t, "wait", "", nil, 2),
		podObject(t, "web", "box", nil, 0),
	}
	return FromObjects(nodes, pods)
}

// whole2 is a workload of 2-GPU pods only.
func whole2(t *testing.T) *score.Distribution {
	return dist(t, score.Weighted{Type: score.TaskType{Kind: score.KindWhole, Count: 2}, Weight: 1})
}

func TestWriteNodesGolden(t *testing.T) {
	c := fixtureCluster(t)
	var buf bytes.Buffer
	require.NoError(t, c.WriteNodes(&buf, whole2(t)))
	// "cpu" has no gpupack annotation: not a GPU node, not listed.
	// box under whole:2: free capacity GPU 1 (1) + half of GPU 3 (1
	// replica of 2 free) = 1.5; no two free whole GPUs (GPU 3 is
	// time-shared): a 2-GPU pod can use none of it: 1.5 GPUs stranded.
	require.Equal(t, `node bad: no usable GPU topology: decoding gpupack.io/topology: malformed JSON: invalid character '{' looking for beginning of object key string

node box: 4 x V100, fragmentation 1.50 GPUs
  GPU  MODEL  0    1    2    3    NUMA  HELD BY
  0    V100   X    NV2  SYS  SYS  0     default/train
  1    V100   NV2  X    SYS  SYS  0     free
  2    V100   SYS  SYS  X    PIX  1     default/train
  3    V100   SYS  SYS  PIX  X    1     default/share x1 (1/2)

`, buf.String())
}

func TestWritePodsGolden(t *testing.T) {
	c := fixtureCluster(t)
	var buf bytes.Buffer
	require.NoError(t, WritePods(&buf, c.PodViews()))
	// train: given {0,2} (SYS, 6 GB/s) where the best pair is 0-1 (NV2,
	// 2 x 25 = 50 GB/s): 6/50 = 0.12; web asks no GPU: not listed.
	require.Equal(t, `POD            NODE  CHOSEN                            GIVEN            HANDOFF  GPUS   SET QUALITY
default/share  box   nvidia.com/gpu.shared=GPU-n-3::0  = chosen         exact    -      -
default/train  box   nvidia.com/gpu=GPU-n-0,GPU-n-1    GPU-n-0,GPU-n-2  differs  {0,2}  0.12 (ring 6 of 50 GB/s, ring over SYS)
default/wait   -     -                                 -                pending  -      -
`, buf.String())
}

// The cluster's pods table names devices by the node's GPU indexes and
// says "= chosen" for an exact handoff; wide prints every ID in full.
func TestWritePodTableGolden(t *testing.T) {
	c := fixtureCluster(t)
	for _, tc := range []struct {
		name string
		o    PodTableOptions
		want string
	}{
		{"default", PodTableOptions{}, `POD            NODE  CHOSEN                      GIVEN     HANDOFF  SET QUALITY
default/share  box   nvidia.com/gpu.shared=3::0  = chosen  exact    -
default/train  box   nvidia.com/gpu=0,1          0,2       differs  0.12 (ring 6 of 50 GB/s, ring over SYS)
default/wait   -     -                           -         pending  -
`},
		{"wide", PodTableOptions{Wide: true}, `POD            NODE  CHOSEN                            GIVEN            HANDOFF  GPUS   SET QUALITY
default/share  box   nvidia.com/gpu.shared=GPU-n-3::0  GPU-n-3::0       exact    -      -
default/train  box   nvidia.com/gpu=GPU-n-0,GPU-n-1    GPU-n-0,GPU-n-2  differs  {0,2}  0.12 (ring 6 of 50 GB/s, ring over SYS)
default/wait   -     -                                 -                pending  -      -
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, c.WritePodTable(&buf, c.PodViews(), tc.o))
			require.Equal(t, tc.want, buf.String())
		})
	}
}

// deviceLabel names devices by the node's GPUs: whole GPUs by index (runs
// of three or more as ranges), replicas as i::n, MIG devices by GPU and
// slices; IDs the node lacks keep their (shortened) UUIDs, last.
func TestDeviceLabel(t *testing.T) {
	n := fixture.DGX1V100("d")
	for i := range n.GPUs {
		n.GPUs[i].UUID = fmt.Sprintf("GPU-%08x-a496-541d-97b0-9442896f29d7", i)
	}
	fixture.WithMIG(n, 7, 4, "3g.40gb", "3g.40gb")
	n.MIG[1].UUID = "MIG-097ff166-a057-59ab-a83b-d60f5bc31196"
	u := func(i int) string { return n.GPUs[i].UUID }
	for _, tc := range []struct {
		name string
		ids  []string
		want string
	}{
		{"none", nil, "-"},
		{"one", []string{u(3)}, "3"},
		{"two apart", []string{u(5), u(1)}, "1,5"},
		{"a run of eight", []string{u(7), u(6), u(5), u(4), u(3), u(2), u(1), u(0)}, "0-7"},
		{"runs and singles", []string{u(0), u(1), u(2), u(3), u(5), u(6)}, "0-3,5,6"},
		{"replicas by GPU and number", []string{deviceid.ReplicaID(u(2), 10), deviceid.ReplicaID(u(2), 3), deviceid.ReplicaID(u(0), 1)}, "0::1,2::3,2::10"},
		{"MIG devices", []string{n.MIG[1].UUID, n.MIG[0].UUID}, "7[0-3],7[4-7]"},
		{"MIG replica", []string{deviceid.ReplicaID(n.MIG[1].UUID, 2)}, "7[4-7]::2"},
		{"whole first, then the rest", []string{n.MIG[0].UUID, deviceid.ReplicaID(u(1), 0), u(4)}, "4,1::0,7[0-3]"},
		{"unknown IDs last, shortened", []string{"GPU-3bdeaa45-a496-541d-97b0-9442896f29d7", u(0), "stand-in"}, "0,GPU-3bdeaa45,stand-in"},
		{"malformed replica number", []string{u(0) + "::x"}, "GPU-00000000::x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, deviceLabel(n, tc.ids))
		})
	}
}

func TestFragGolden(t *testing.T) {
	c := fixtureCluster(t)
	v, err := c.Frag(whole2(t))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WriteFrag(&buf, v))
	require.Equal(t, `NODE   GPUS  FREE  FRAGMENTATION
bad    -     -     ! decoding gpupack.io/topology: malformed JSON: invalid character '{' looking for beginning of object key string
box    4     1.50  1.50
TOTAL              1.50

TASK TYPE  SHARE  STRANDED  FRAGMENTATION
whole:2    100%   1.50      1.50
`, buf.String())
}

func TestNodeViews(t *testing.T) {
	c := fixtureCluster(t)
	vs := c.NodeViews(whole2(t))
	require.Len(t, vs, 2)
	require.Equal(t, "bad", vs[0].Name)
	require.Contains(t, vs[0].Error, "malformed JSON")
	require.Empty(t, vs[0].GPUs)
	box := vs[1]
	require.Empty(t, box.Error)
	require.Equal(t, "4 x V100", box.Summary)
	require.InDelta(t, 1.5, box.Fragmentation, 1e-9)
	require.Len(t, box.GPUs, 4)
	require.Equal(t, []string{"X", "NV2", "SYS", "SYS"}, box.GPUs[0].Links)
	require.Equal(t, []string{"default/train"}, box.GPUs[0].HeldBy)
	require.Equal(t, "fully used", box.GPUs[0].State)
	require.Equal(t, "free", box.GPUs[1].State)
	require.Equal(t, "partly used", box.GPUs[3].State)
	require.Equal(t, 2, box.GPUs[3].Replicas)
	require.Equal(t, []ShareView{{Pod: "default/share", Replicas: 1}}, box.GPUs[3].Shares)

	// The JSON carries the same, with the set quality's path as text.
	b, err := json.Marshal(c.PodViews())
	require.NoError(t, err)
	require.Contains(t, string(b), `"quality":{"ringGBps":6,"bestGBps":50,"ratio":0.12,"path":"ring over SYS"}`)
	var back []PodView
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, PathSYS, back[1].Quality.Path)
	var p RingPath
	require.Error(t, p.UnmarshalText([]byte("ring over carrier pigeon")))
}

// The per-type parts add up to the node's fragmentation: F_n = sum_m p_m
// F_n,m, each F_n,m from score.Fragmentation under that type alone.
func TestFragByTypeAddsUp(t *testing.T) {
	c := fixtureCluster(t)
	v, err := c.Frag(nil)
	require.NoError(t, err)
	require.Len(t, v.Types, len(score.DefaultDistribution().Types))
	sum := 0.0
	for _, tf := range v.Types {
		sum += tf.Fragmentation
		require.InDelta(t, tf.P*tf.Stranded, tf.Fragmentation, 1e-9)
	}
	require.InDelta(t, v.Total, sum, 1e-9)
	require.Positive(t, v.Total)
}

// A malformed in-use report leaves the node's map without usage and says
// why; a report naming a pod by UID only finds its name from the pods.
func TestMalformedInUse(t *testing.T) {
	b := box()
	n := gpuNodeObject(t, "box", b, nil)
	n.Annotations[protocol.InUseAnnotation] = `{"version":"v7","pods":[]}`
	c := FromObjects([]corev1.Node{n}, nil)
	require.Contains(t, c.Side.Nodes[0].Error, "version")
	var buf bytes.Buffer
	require.NoError(t, c.WriteNodes(&buf, nil))
	require.Contains(t, buf.String(), "  ! gpupack.io/in-use")

	n = gpuNodeObject(t, "box", b, []protocol.PodDevices{{PodRef: protocol.PodRef{UID: "uid-train"}, Devices: []string{b.GPUs[0].UUID}}})
	c = FromObjects([]corev1.Node{n}, []corev1.Pod{podObject(t, "train", "box", nil, 1)})
	require.Equal(t, "default/train", c.Side.Nodes[0].Pods[0].Pod)
	pv := c.PodViews()
	require.Len(t, pv, 1)
	require.Equal(t, HandoffNoChoice, pv[0].Handoff)
	require.Equal(t, []int{0}, pv[0].GPUs)
}

func TestIDsLabelShortensNVMLUUIDs(t *testing.T) {
	for _, c := range []struct {
		name string
		ids  []string
		want string
	}{
		{"none", nil, "-"},
		{"GPU UUID: prefix and first 8 hex digits", []string{"GPU-3bdeaa45-a496-541d-97b0-9442896f29d7"}, "GPU-3bdeaa45"},
		{"replica suffix kept", []string{"GPU-3bdeaa45-a496-541d-97b0-9442896f29d7::3"}, "GPU-3bdeaa45::3"},
		{"MIG UUID", []string{"MIG-097ff166-a057-59ab-a83b-d60f5bc31196"}, "MIG-097ff166"},
		{"two, in order", []string{"GPU-aaaaaaaa-0000-0000-0000-000000000000", "GPU-bbbbbbbb-0000-0000-0000-000000000000"}, "GPU-aaaaaaaa,GPU-bbbbbbbb"},
		{"not a UUID: kept", []string{"GPU-n-0", "GPU-unreadable-3", "0"}, "GPU-n-0,GPU-unreadable-3,0"},
		{"too short to be a UUID: kept", []string{"GPU-3bdeaa45-a496-541d-97b0-9442896f29"}, "GPU-3bdeaa45-a496-541d-97b0-9442896f29"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, idsLabel(c.ids))
		})
	}
}

// A node whose topology reads but whose in-use report does not has GPUs in
// an unknown state, not free ones: frag leaves it out of the figures (as a
// node without a readable topology) and says why, and nodes shows its map
// with the usage unknown. Counting it free made the cluster's total and
// the node's own figure look as if nothing ran there.
func TestUnreadableInUseIsNotFree(t *testing.T) {
	b := box()
	for _, tc := range []struct {
		name, inUse, wantErr string
	}{
		{"malformed JSON", `[1,2`, "gpupack.io/in-use: malformed JSON"},
		{"newer version", `{"version":"v7","pods":[]}`, "version"},
		{"empty", ``, "gpupack.io/in-use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := gpuNodeObject(t, "bad", b, nil)
			bad.Annotations[protocol.InUseAnnotation] = tc.inUse
			good := gpuNodeObject(t, "good", b, []protocol.PodDevices{
				{PodRef: protocol.PodRef{Namespace: "default", Name: "train", UID: "uid-train"}, Devices: []string{b.GPUs[0].UUID}}})
			c := FromObjects([]corev1.Node{bad, good}, nil)
			// 8-GPU pods fit neither 4-GPU node: all free capacity is
			// stranded. good: GPUs 1, 2 and 3 free = 3 GPUs; bad, counted
			// free, would add 4 (the total 7).
			whole8 := dist(t, score.Weighted{Type: score.TaskType{Kind: score.KindWhole, Count: 8}, Weight: 1})

			v, err := c.Frag(whole8)
			require.NoError(t, err)
			require.Len(t, v.Nodes, 2)
			require.Equal(t, "bad", v.Nodes[0].Node)
			require.Contains(t, v.Nodes[0].Error, tc.wantErr)
			require.Equal(t, 4, v.Nodes[0].GPUs, "its topology is known")
			require.Zero(t, v.Nodes[0].FreeCapacity)
			require.Zero(t, v.Nodes[0].Fragmentation)
			require.InDelta(t, 3.0, v.Nodes[1].FreeCapacity, 1e-9)
			require.InDelta(t, 3.0, v.Nodes[1].Fragmentation, 1e-9)
			require.InDelta(t, 3.0, v.Total, 1e-9)
			require.InDelta(t, 3.0, v.Types[0].Fragmentation, 1e-9)
			require.InDelta(t, 3.0, v.Types[0].Stranded, 1e-9)
			var buf bytes.Buffer
			require.NoError(t, WriteFrag(&buf, v))
			require.Regexp(t, `(?m)^bad\s+4\s+-\s+! `+regexp.QuoteMeta(v.Nodes[0].Error)+`$`, buf.String())
			require.Regexp(t, `(?m)^TOTAL\s+3\.00$`, buf.String())

			vs := c.NodeViews(whole8)
			require.Equal(t, "bad", vs[0].Name)
			require.True(t, vs[0].UsageUnknown)
			require.Zero(t, vs[0].Fragmentation)
			require.Len(t, vs[0].GPUs, 4)
			for _, g := range vs[0].GPUs {
				require.Equal(t, "unknown", g.State)
			}
			require.False(t, vs[1].UsageUnknown)
			require.InDelta(t, 3.0, vs[1].Fragmentation, 1e-9)
			require.Equal(t, "fully used", vs[1].GPUs[0].State)
			require.Equal(t, "free", vs[1].GPUs[1].State)
			buf.Reset()
			require.NoError(t, c.WriteNodes(&buf, whole8))
			require.Contains(t, buf.String(), "node bad: 4 x V100, fragmentation unknown (in-use report unreadable)\n")
			require.Regexp(t, `(?m)^  1\s+V100\s+NV2\s+X\s+SYS\s+SYS\s+0\s+unknown$`, buf.String())
			require.Contains(t, buf.String(), "node good: 4 x V100, fragmentation 3.00 GPUs\n")
		})
	}
}

// A node that publishes no in-use report (publish.inUse: false, or not
// written yet) shows the scheduler's choices of the pods bound to it as
// their holders, as the scheduler itself counts them, with a note saying
// so; it showed every GPU free while pods ran there. A malformed choice,
// a pending pod's choice and a choice on another node are not counted.
func TestNoInUseReportShowsChoices(t *testing.T) {
	b := box()
	u := func(i int) string { return b.GPUs[i].UUID }
	quiet := gpuNodeObject(t, "quiet", b, nil)
	other := gpuNodeObject(t, "other", b, []protocol.PodDevices{})
	broken := podObject(t, "broken", "quiet", nil, 1)
	broken.Annotations[protocol.DevicesAnnotation] = "{bad"
	pods := []corev1.Pod{
		podObject(t, "train", "quiet", map[string][]string{"nvidia.com/gpu": {u(0), u(1)}}, 2),
		podObject(t, "share", "quiet", map[string][]string{"nvidia.com/gpu.shared": {deviceid.ReplicaID(u(3), 1)}}, 0),
		podObject(t, "elsewhere", "other", map[string][]string{"nvidia.com/gpu": {u(2)}}, 1),
		podObject(t, "wait", "", map[string][]string{"nvidia.com/gpu": {u(2)}}, 1),
		broken,
	}
	c := FromObjects([]corev1.Node{quiet, other}, pods)
	whole8 := dist(t, score.Weighted{Type: score.TaskType{Kind: score.KindWhole, Count: 8}, Weight: 1})

	vs := c.NodeViews(whole8)
	require.Equal(t, "quiet", vs[1].Name)
	q := vs[1]
	require.Empty(t, q.Error)
	require.False(t, q.UsageUnknown)
	require.Contains(t, q.Note, "no gpupack.io/in-use report")
	require.Equal(t, []string{"default/train"}, q.GPUs[0].HeldBy)
	require.Equal(t, []string{"default/train"}, q.GPUs[1].HeldBy)
	require.Equal(t, "free", q.GPUs[2].State, "default/elsewhere's choice is on other, default/wait's on no node")
	require.Equal(t, []ShareView{{Pod: "default/share", Replicas: 1}}, q.GPUs[3].Shares)
	// 8-GPU pods fit no 4-GPU node: the free capacity is stranded. quiet:
	// GPU 2 (1) + one of GPU 3's two replicas (0.5) = 1.5; other: all 4
	// free (its report lists no pod).
	require.InDelta(t, 1.5, q.Fragmentation, 1e-9)
	require.Empty(t, vs[0].Note, "other publishes a report")
	require.InDelta(t, 4.0, vs[0].Fragmentation, 1e-9)
	v, err := c.Frag(whole8)
	require.NoError(t, err)
	require.InDelta(t, 5.5, v.Total, 1e-9)

	var buf bytes.Buffer
	require.NoError(t, c.WriteNodes(&buf, whole8))
	require.Contains(t, buf.String(), "  note: no gpupack.io/in-use report")
	require.Regexp(t, `(?m)^  0\s+V100\s+X\s+NV2\s+SYS\s+SYS\s+0\s+default/train$`, buf.String())

	pv := c.PodViews()
	byName := map[string]PodView{}
	for _, p := range pv {
		byName[p.Pod] = p
	}
	require.Equal(t, HandoffNotReported, byName["default/train"].Handoff)
	require.Equal(t, []int{0, 1}, byName["default/train"].GPUs)
}

// WriteWorkload names the workload behind the fragmentation figures, and
// its task types and shares when asked, wrapped as the report's lists.
func TestWriteWorkload(t *testing.T) {
	long := make([]score.Weighted, 0, 16)
	for k := 1; k <= 16; k++ {
		long = append(long, score.Weighted{Type: score.TaskType{Kind: score.KindShared, Milli: 50 * k}, Weight: 1})
	}
	for _, tc := range []struct {
		name   string
		d      *score.Distribution
		source string
		types  bool
		want   string
	}{
		{"source only", whole2(t), "--workload", false, "fragmentation workload: --workload\n"},
		{"with types", whole2(t), "--workload", true, "fragmentation workload: --workload\n  whole:2 100%\n"},
		{"default", nil, "GPUPack's default prior", true, "fragmentation workload: GPUPack's default prior\n" +
			"  whole:1 50%, whole:2 4%, whole:4 3%, whole:8 3%, shared:800m 15%, shared:500m 13%, shared:250m 7%, shared:100m 5%\n"},
		{"wrapped", dist(t, long...), "x", true, "fragmentation workload: x\n" +
			"  shared:50m 6%, shared:100m 6%, shared:150m 6%, shared:200m 6%, shared:250m 6%, shared:300m 6%, shared:350m 6%,\n" +
			"  shared:400m 6%, shared:450m 6%, shared:500m 6%, shared:550m 6%, shared:600m 6%, shared:650m 6%, shared:700m 6%,\n" +
			"  shared:750m 6%, shared:800m 6%\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewWorkloadView(tc.d, tc.source)
			require.Equal(t, tc.source, v.Source)
			var buf bytes.Buffer
			require.NoError(t, WriteWorkload(&buf, v, tc.types))
			require.Equal(t, tc.want, buf.String())
		})
	}
}

// A MIG device's placement is data in -o json|yaml ({start, size}); the
// label "[4-7]" stays the tables'.
func TestMIGPlacement(t *testing.T) {
	b := box()
	b.GPUs[0].MIGEnabled = true
	b.MIG = []topology.MIGDevice{
		{UUID: "MIG-a", Parent: 0, Profile: "1g.10gb", Start: 6, Size: 1, Healthy: true},
		{UUID: "MIG-b", Parent: 0, Profile: "3g.40gb", Start: 0, Size: 4, Healthy: true},
	}
	c := FromObjects([]corev1.Node{gpuNodeObject(t, "box", b, []protocol.PodDevices{})}, nil)
	vs := c.NodeViews(nil)
	mig := vs[0].GPUs[0].MIG
	require.Len(t, mig, 2)
	require.Equal(t, MIGSlices{Start: 6, Size: 1}, mig[0].Placement)
	require.Equal(t, "[6]", mig[0].Slices)
	require.Equal(t, MIGSlices{Start: 0, Size: 4}, mig[1].Placement)
	require.Equal(t, "[0-3]", mig[1].Slices)
	raw, err := json.Marshal(mig[1])
	require.NoError(t, err)
	require.JSONEq(t, `{"uuid":"MIG-b","profile":"3g.40gb","slices":{"start":0,"size":4},"healthy":true}`, string(raw))
}
