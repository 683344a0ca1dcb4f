package nodepublish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// allocations stands in for the kubelet's PodResources answer.
type allocations struct {
	m   map[types.NamespacedName]map[string]map[string][]string
	err error
}

func (a allocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return a.m, a.err
}

type pods []*v1.Pod

func (p pods) List(labels.Selector) ([]*v1.Pod, error) { return p, nil }

// recorder counts what the publisher reports.
type recorder struct {
	devices   []nodepublish.PodDevice
	missed    []string
	malformed []string
}

func (r *recorder) SetPodDevices(d []nodepublish.PodDevice) { r.devices = d }
func (r *recorder) HandoffNotHonoured(res string)           { r.missed = append(r.missed, res) }
func (r *recorder) MalformedDevice(res string)              { r.malformed = append(r.malformed, res) }

func pod(name, uid string, scheduled []string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid)}}
	if scheduled != nil {
		s, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": scheduled}})
		if err != nil {
			panic(err)
		}
		p.Annotations = map[string]string{protocol.DevicesAnnotation: s}
	}
	return p
}

// The in-use report keeps only the plugin's resources, carries the pod's UID
// from the lister, and a pod holding a device outside the scheduler's set
// carries that set and is counted and reported once, however often it is read.
func TestInUseReport(t *testing.T) {
	alloc := allocations{m: map[types.NamespacedName]map[string]map[string][]string{
		{Namespace: "default", Name: "honoured"}: {"main": {"nvidia.com/gpu": {"GPU-a", "GPU-b"}}},
		{Namespace: "default", Name: "missed"}:   {"main": {"nvidia.com/gpu": {"GPU-c"}}},
		{Namespace: "default", Name: "other"}:    {"main": {"example.com/nic": {"nic-0"}}},
	}}
	rec := &recorder{}
	events := record.NewFakeRecorder(10)
	p := nodepublish.New(nodepublish.Options{
		PodResources: alloc, Metrics: rec, Recorder: events,
		Pods: pods{pod("honoured", "u1", []string{"GPU-a", "GPU-b"}), pod("missed", "u2", []string{"GPU-d"})},
	})
	for range 2 {
		got, err := p.InUse(context.Background(), []string{"nvidia.com/gpu"}, nil)
		require.NoError(t, err)
		require.ElementsMatch(t, []protocol.PodDevices{
			{PodRef: protocol.PodRef{Namespace: "default", Name: "honoured", UID: "u1"}, Devices: []string{"GPU-a", "GPU-b"}},
			{PodRef: protocol.PodRef{Namespace: "default", Name: "missed", UID: "u2"}, Devices: []string{"GPU-c"}, Scheduled: []string{"GPU-d"}},
		}, got)
	}
	// 2 devices of "honoured" + 1 of "missed"; the NIC is not ours.
	require.Len(t, rec.devices, 3)
	require.Equal(t, []string{"nvidia.com/gpu"}, rec.missed, "counted once over two reads")
	require.Len(t, events.Events, 1)
	require.Contains(t, <-events.Events, nodepublish.ReasonScheduledSetNotHonoured)
}

// A config reload that serves the node's devices under new names (here
// renameByDefault turned on: nvidia.com/gpu's replicas become
// nvidia.com/gpu.shared; MIG strategy single -> mixed: nvidia.com/gpu's MIG
// devices become nvidia.com/mig-1g.5gb) leaves running pods holding them
// under the old names in the kubelet's answer. They stay in the in-use
// report (before: dropped, so the scheduler saw those GPUs free and gave
// them again); another plugin's devices, and IDs of no device of the node,
// stay out.
func TestInUseKeepsDevicesUnderFormerNames(t *testing.T) {
	node := &topology.Node{
		GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", MIGEnabled: true}, {Index: 1, UUID: "GPU-b"}},
		MIG:  []topology.MIGDevice{{UUID: "MIG-a0", Parent: 0, Profile: "1g.5gb", Size: 1}},
	}
	tests := []struct {
		name      string
		resources []string // served now
		node      *topology.Node
		held      map[string][]string // resource -> IDs the pod holds
		want      []string            // the pod's devices in the report; nil: not reported
	}{
		{name: "replicas under the name before renameByDefault", resources: []string{"nvidia.com/gpu.shared"}, node: node,
			held: map[string][]string{"nvidia.com/gpu": {"GPU-b::0", "GPU-b::3"}}, want: []string{"GPU-b::0", "GPU-b::3"}},
		{name: "MIG device under the single strategy's name", resources: []string{"nvidia.com/mig-1g.5gb"}, node: node,
			held: map[string][]string{"nvidia.com/gpu": {"MIG-a0"}}, want: []string{"MIG-a0"}},
		{name: "whole GPU under a former rename", resources: []string{"nvidia.com/gpu"}, node: node,
			held: map[string][]string{"nvidia.com/t4": {"GPU-b"}}, want: []string{"GPU-b"}},
		{name: "another plugin's device", resources: []string{"nvidia.com/gpu"}, node: node,
			held: map[string][]string{"example.com/nic": {"nic-0"}}},
		{name: "only the node's IDs of a foreign resource", resources: []string{"nvidia.com/gpu"}, node: node,
			held: map[string][]string{"example.com/mixed": {"nic-0", "GPU-a"}}, want: []string{"GPU-a"}},
		{name: "a GPU of another node", resources: []string{"nvidia.com/gpu"}, node: node,
			held: map[string][]string{"nvidia.com/gpu.shared": {"GPU-z::0"}}},
		{name: "no node: the names alone", resources: []string{"nvidia.com/gpu.shared"},
			held: map[string][]string{"nvidia.com/gpu": {"GPU-b::0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alloc := allocations{m: map[types.NamespacedName]map[string]map[string][]string{
				{Namespace: "default", Name: "running"}: {"main": tt.held},
			}}
			p := nodepublish.New(nodepublish.Options{PodResources: alloc})
			got, err := p.InUse(context.Background(), tt.resources, tt.node)
			require.NoError(t, err)
			if tt.want == nil {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.ElementsMatch(t, tt.want, got[0].Devices)
		})
	}
}

// podsOf is the pods of an in-use annotation: name -> devices.
func podsOf(t *testing.T, node *v1.Node) map[string][]string {
	t.Helper()
	u, err := protocol.DecodeInUse(node.Annotations[protocol.InUseAnnotation])
	require.NoError(t, err)
	out := map[string][]string{}
	for _, p := range u.Pods {
		out[p.Name] = p.Devices
	}
	return out
}

// One malformed device ID in the kubelet's answer (before: EncodeInUse
// refused the whole report, Run retried it without end and the scheduler
// kept the last one, GPUs of finished pods counted used) is left out alone:
// the report still names every good device, of the same pod and of the
// others, and the per-pod metric and the not-honoured check do not see it.
// The ID is logged and counted once while the kubelet lists it. A
// well-formed ID is never dropped as malformed: another node's GPU under
// the plugin's name stays (the scheduler ignores what its topology lacks),
// under another name ours leaves it out, as before.
func TestInUseLeavesOutMalformedIDs(t *testing.T) {
	node := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-b"}, {Index: 2, UUID: "GPU-c"}}}
	tests := []struct {
		name string
		held map[string][]string // resource -> IDs of pod "mixed", beside GPU-a
		// want is pod "mixed"'s devices in the report; malformed the
		// resources counted (once each, the ID logged once).
		want, malformed []string
	}{
		{name: "a space", held: map[string][]string{"nvidia.com/gpu": {"GPU-b x"}},
			want: []string{"GPU-a"}, malformed: []string{"nvidia.com/gpu"}},
		{name: "empty", held: map[string][]string{"nvidia.com/gpu": {""}},
			want: []string{"GPU-a"}, malformed: []string{"nvidia.com/gpu"}},
		{name: "too long", held: map[string][]string{"nvidia.com/gpu": {"GPU-" + strings.Repeat("b", deviceid.MaxLen)}},
			want: []string{"GPU-a"}, malformed: []string{"nvidia.com/gpu"}},
		{name: "a newline", held: map[string][]string{"nvidia.com/gpu": {"GPU-b\n"}},
			want: []string{"GPU-a"}, malformed: []string{"nvidia.com/gpu"}},
		{name: "invalid UTF-8", held: map[string][]string{"nvidia.com/gpu": {"GPU-b\xff"}},
			want: []string{"GPU-a"}, malformed: []string{"nvidia.com/gpu"}},
		{name: "a malformed replica of the node's GPU under a former name", held: map[string][]string{"nvidia.com/gpu.shared": {"GPU-b::1 x", "GPU-c::0"}},
			want: []string{"GPU-a", "GPU-c::0"}, malformed: []string{"nvidia.com/gpu.shared"}},
		{name: "between good IDs of the same resource", held: map[string][]string{"nvidia.com/gpu": {"GPU-b", "gpu 1", "GPU-c"}},
			want: []string{"GPU-a", "GPU-b", "GPU-c"}, malformed: []string{"nvidia.com/gpu"}},
		{name: "another node's GPU under the plugin's name", held: map[string][]string{"nvidia.com/gpu": {"GPU-z"}},
			want: []string{"GPU-a", "GPU-z"}},
		{name: "another node's GPU under another name", held: map[string][]string{"nvidia.com/gpu.shared": {"GPU-z::0"}},
			want: []string{"GPU-a"}},
		{name: "another plugin's malformed ID", held: map[string][]string{"example.com/nic": {"nic 0"}},
			want: []string{"GPU-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := map[string][]string{}
			for res, ids := range tt.held {
				held[res] = ids
			}
			held["nvidia.com/gpu"] = append([]string{"GPU-a"}, held["nvidia.com/gpu"]...)
			alloc := allocations{m: map[types.NamespacedName]map[string]map[string][]string{
				{Namespace: "default", Name: "mixed"}: {"main": held},
				{Namespace: "default", Name: "good"}:  {"main": {"nvidia.com/gpu": {"GPU-a::1"}}},
			}}
			client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
			rec := &recorder{}
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			ctx := klog.NewContext(context.Background(), logger)
			// The pod's scheduled set is what it holds, less the bad ID:
			// a dropped ID is no device outside it.
			p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", PodResources: alloc, Metrics: rec,
				Pods: pods{pod("mixed", "u1", tt.want)}})
			for range 3 {
				require.NoError(t, p.PublishInUse(ctx, []string{"nvidia.com/gpu"}, node))
			}
			got := podsOf(t, getNode(t, client, "n1"))
			require.ElementsMatch(t, tt.want, got["mixed"])
			require.Equal(t, []string{"GPU-a::1"}, got["good"])
			var metricIDs []string
			for _, d := range rec.devices {
				require.NoError(t, deviceid.Validate(d.Device), "the per-pod metric")
				metricIDs = append(metricIDs, d.Device)
			}
			require.ElementsMatch(t, append([]string{"GPU-a::1"}, tt.want...), metricIDs)
			require.Equal(t, tt.malformed, rec.malformed, "counted once over three reports")
			require.Empty(t, rec.missed, "a dropped ID is no device outside the scheduled set")
			lines := 0
			for _, e := range logger.GetSink().(ktesting.Underlier).GetBuffer().Data() {
				if strings.Contains(e.Message, "malformed device ID") {
					lines++
				}
			}
			require.Equal(t, len(tt.malformed), lines, "logged once over three reports")
		})
	}
}

// The reviewer's case: one pod holding nvidia.com/gpu "gpu 1" stopped the
// node's whole in-use report, so a finished pod's GPU stayed in the last
// one. Run now publishes the report without it, and the finished pod's GPU
// leaves it.
func TestRunPublishesTheReportPastAMalformedID(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{
		protocol.InUseAnnotation: `{"version":"v1","pods":[{"namespace":"default","name":"finished","uid":"u0","devices":["GPU-b"]}]}`,
	}}})
	alloc := allocations{m: map[types.NamespacedName]map[string]map[string][]string{
		{Namespace: "default", Name: "running"}: {"main": {"nvidia.com/gpu": {"GPU-a"}}},
		{Namespace: "default", Name: "bad"}:     {"main": {"nvidia.com/gpu": {"gpu 1"}}},
	}}
	rec := &recorder{}
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", PodResources: alloc, Metrics: rec, InUse: true,
		Clock: testingclock.NewFakeClock(time.Unix(1764500000, 0))})
	src := source{node: &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-b"}}, Links: links(2, nil)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, src); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		return err == nil && !strings.Contains(n.Annotations[protocol.InUseAnnotation], "finished")
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]string{"running": {"GPU-a"}}, podsOf(t, getNode(t, client, "n1")))
	require.Equal(t, []string{"nvidia.com/gpu"}, rec.malformed)
}

// Ever new malformed IDs are logged and counted up to MaxMalformed at
// once, then one line says no more are; the memory of them stays bounded,
// and an ID the kubelet stops listing is forgotten, so one that comes back
// is noted again.
func TestInUseMalformedIDsBounded(t *testing.T) {
	answer := func(n int, prefix string) allocations {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s %d", prefix, i)
		}
		return allocations{m: map[types.NamespacedName]map[string]map[string][]string{
			{Namespace: "default", Name: "p"}: {"main": {"nvidia.com/gpu": append(ids, "GPU-a")}},
		}}
	}
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	ctx := klog.NewContext(context.Background(), logger)
	count := func() (lines, more int) {
		for _, e := range logger.GetSink().(ktesting.Underlier).GetBuffer().Data() {
			switch {
			case strings.Contains(e.Message, "more malformed device IDs"):
				more++
			case strings.Contains(e.Message, "malformed device ID"):
				lines++
			}
		}
		return lines, more
	}
	src := &answerSource{}
	rec := &recorder{}
	p := nodepublish.New(nodepublish.Options{PodResources: src, Metrics: rec})
	for _, step := range []struct {
		name                string
		answer              allocations
		wantLines, wantMore int
		wantTracked         int
	}{
		{"over the bound", answer(nodepublish.MaxMalformed+100, "gpu"), nodepublish.MaxMalformed, 1, nodepublish.MaxMalformed},
		{"the same again", answer(nodepublish.MaxMalformed+100, "gpu"), nodepublish.MaxMalformed, 1, nodepublish.MaxMalformed},
		{"other IDs, fewer", answer(10, "other"), nodepublish.MaxMalformed + 10, 1, 10},
		{"none", answer(0, ""), nodepublish.MaxMalformed + 10, 1, 0},
		{"back again", answer(10, "other"), nodepublish.MaxMalformed + 20, 1, 10},
	} {
		src.a = step.answer
		got, err := p.InUse(ctx, []string{"nvidia.com/gpu"}, nil)
		require.NoError(t, err, step.name)
		require.Len(t, got, 1, step.name)
		require.Equal(t, []string{"GPU-a"}, got[0].Devices, step.name)
		lines, more := count()
		require.Equal(t, step.wantLines, lines, step.name)
		require.Equal(t, step.wantMore, more, step.name)
		require.Len(t, rec.malformed, step.wantLines, step.name)
		require.Equal(t, step.wantTracked, p.MalformedTracked(), step.name)
	}
}

// answerSource is a PodResources API whose answer a test changes.
type answerSource struct{ a allocations }

func (s *answerSource) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return s.a.Allocated(ctx)
}

// Without a PodResources API, or when it fails, InUse errors (and Run
// retries).
func TestInUseErrors(t *testing.T) {
	_, err := nodepublish.New(nodepublish.Options{}).InUse(context.Background(), []string{"nvidia.com/gpu"}, nil)
	require.Error(t, err)
	boom := errors.New("kubelet gone")
	_, err = nodepublish.New(nodepublish.Options{PodResources: allocations{err: boom}}).InUse(context.Background(), nil, nil)
	require.ErrorIs(t, err, boom)
}

func links(n int, pairs map[[2]int]topology.LinkClass) [][]topology.Link {
	out := make([][]topology.Link, n)
	for i := range out {
		out[i] = make([]topology.Link, n)
	}
	for p, c := range pairs {
		out[p[0]][p[1]] = topology.Link{Class: c}
		out[p[1]][p[0]] = topology.Link{Class: c}
	}
	return out
}

func TestNVLinkKind(t *testing.T) {
	nv, sw := topology.ClassNVLink, topology.ClassNVSwitch
	for _, tc := range []struct {
		name  string
		n     int
		pairs map[[2]int]topology.LinkClass
		want  string
	}{
		{"PCIe only", 4, nil, "none"},
		{"bridged pairs", 4, map[[2]int]topology.LinkClass{{0, 1}: nv, {2, 3}: nv}, "pairs"},
		{"GPU 1 has two NVLink peers", 3, map[[2]int]topology.LinkClass{{0, 1}: nv, {1, 2}: nv}, "mesh"},
		{"any NVSwitch", 2, map[[2]int]topology.LinkClass{{0, 1}: sw}, "switch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, nodepublish.NVLinkKind(&topology.Node{GPUs: make([]topology.GPU, tc.n), Links: links(tc.n, tc.pairs)}))
		})
	}
}

// gfdNode is a DGX A100-like node for GFD's labels.
func gfdNode(migStrategy string, mig bool) *gfd.Node {
	g := gfd.GPU{Name: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, ComputeCapability: "8.0", MIGCapable: true, MIGEnabled: mig, PCIClass: 0x030200}
	n := &gfd.Node{DriverVersion: "550.54.15", CUDADriverVersion: "12.4", GPUs: []gfd.GPU{g}, MachineType: "DGXA100 920-23687-2530-000", MIGStrategy: migStrategy, Sharing: gfd.Sharing{Strategy: gfd.SharingNone}}
	if mig {
		n.MIG = []gfd.MIGDevice{{Parent: 0, Profile: "3g.40gb", MemoryMiB: 40192, Multiprocessors: 42, CopyEngines: 3, Decoders: 2, GISlices: 3, CISlices: 3}}
	}
	return n
}

func getNode(t *testing.T, c *fake.Clientset, name string) *v1.Node {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return n
}

// PublishNode server-side applies the topology annotation and the labels:
// GFD's (a DGX A100's here) and gpupack.io/nvlink, dated by the clock.
func TestPublishNode(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	n := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}}, Links: links(1, nil)}
	clk := testingclock.NewFakeClock(time.Unix(1764500000, 0))
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Topology: true, Labels: true, Clock: clk})
	require.NoError(t, p.PublishNode(context.Background(), n, gfdNode("none", false)))
	node := getNode(t, client, "n1")
	require.Contains(t, node.Annotations, protocol.TopologyAnnotation)
	require.Equal(t, map[string]string{
		"nvidia.com/cuda.driver.major": "550", "nvidia.com/cuda.driver.minor": "54", "nvidia.com/cuda.driver.rev": "15",
		"nvidia.com/cuda.driver-version.major": "550", "nvidia.com/cuda.driver-version.minor": "54",
		"nvidia.com/cuda.driver-version.revision": "15", "nvidia.com/cuda.driver-version.full": "550.54.15",
		"nvidia.com/cuda.runtime.major": "12", "nvidia.com/cuda.runtime.minor": "4",
		"nvidia.com/cuda.runtime-version.major": "12", "nvidia.com/cuda.runtime-version.minor": "4", "nvidia.com/cuda.runtime-version.full": "12.4",
		"nvidia.com/gfd.timestamp": "1764500000",
		"nvidia.com/gpu.machine":   "DGXA100-920-23687-2530-000",
		"nvidia.com/gpu.product":   "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "81920",
		"nvidia.com/gpu.family": "ampere", "nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": "0",
		"nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none", "nvidia.com/gpu.mode": "compute",
		"nvidia.com/mig.capable": "true", "nvidia.com/mps.capable": "false",
		protocol.LabelNVLink: "none",
	}, node.Labels)
	for _, mf := range node.ManagedFields {
		require.Equal(t, nodepublish.FieldManager, mf.Manager)
		require.Equal(t, metav1.ManagedFieldsOperationApply, mf.Operation)
	}
}

// Labels the plugin no longer sets are removed; labels and annotations of
// other managers stay; the in-use annotation (a merge patch) is not
// touched by the apply; turning a publication off removes what it wrote.
func TestPublishNodeRemovesStaleLabels(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"}}})
	// Another writer (the GPU Operator, an admin) owns these.
	_, err := client.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"nvidia.com/gpu.deploy.device-plugin":"true","nvidia.com/mig.config":"all-1g.10gb"},"annotations":{"example.com/note":"x"}}}`),
		metav1.PatchOptions{FieldManager: "gpu-operator"})
	require.NoError(t, err)
	n := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true, MIGEnabled: true}}, Links: links(1, nil)}
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Topology: true, Labels: true, InUse: true,
		PodResources: allocations{}, Clock: testingclock.NewFakeClock(time.Unix(1764500000, 0))})
	others := map[string]string{"kubernetes.io/hostname": "n1", "nvidia.com/gpu.deploy.device-plugin": "true", "nvidia.com/mig.config": "all-1g.10gb"}
	requireOthers := func(node *v1.Node) {
		t.Helper()
		for k, v := range others {
			require.Equal(t, v, node.Labels[k], k)
		}
		require.Equal(t, "x", node.Annotations["example.com/note"])
	}

	// MIG single: the per-profile labels of nvidia.com/gpu.
	require.NoError(t, p.PublishNode(ctx, n, gfdNode("single", true)))
	node := getNode(t, client, "n1")
	requireOthers(node)
	require.Equal(t, "single", node.Labels["nvidia.com/mig.strategy"])
	require.Equal(t, "42", node.Labels["nvidia.com/gpu.multiprocessors"])
	require.Equal(t, "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", node.Labels["nvidia.com/gpu.product"])
	// The in-use report is a merge patch beside the apply.
	require.NoError(t, p.PublishInUse(ctx, nil, nil))
	require.Contains(t, getNode(t, client, "n1").Annotations, protocol.InUseAnnotation)

	// MIG mixed: the single strategy's labels go, the profile's come.
	require.NoError(t, p.PublishNode(ctx, n, gfdNode("mixed", true)))
	node = getNode(t, client, "n1")
	requireOthers(node)
	require.Equal(t, "mixed", node.Labels["nvidia.com/mig.strategy"])
	require.Equal(t, "1", node.Labels["nvidia.com/mig-3g.40gb.count"])
	for _, k := range []string{"nvidia.com/gpu.multiprocessors", "nvidia.com/gpu.slices.gi", "nvidia.com/gpu.engines.copy"} {
		require.NotContains(t, node.Labels, k, "stale label %s", k)
	}
	require.Equal(t, "NVIDIA-A100-SXM4-80GB", node.Labels["nvidia.com/gpu.product"])

	// MIG off: no mig.strategy, no profile labels.
	n.GPUs[0].MIGEnabled = false
	require.NoError(t, p.PublishNode(ctx, n, gfdNode("none", false)))
	node = getNode(t, client, "n1")
	requireOthers(node)
	for k := range node.Labels {
		require.False(t, strings.HasPrefix(k, "nvidia.com/mig-") || k == "nvidia.com/mig.strategy", "stale label %s", k)
	}

	// publish.labels off (a GFD runs beside us): every label of ours goes,
	// the annotations stay.
	p.Reconfigure(nodepublish.Settings{Topology: true, InUse: true})
	require.NoError(t, p.PublishNode(ctx, n, gfdNode("none", false)))
	node = getNode(t, client, "n1")
	require.Equal(t, others, node.Labels)
	require.Contains(t, node.Annotations, protocol.TopologyAnnotation)
	require.Contains(t, node.Annotations, protocol.InUseAnnotation)

	// publish.topology off too: the topology annotation goes, in-use stays.
	p.Reconfigure(nodepublish.Settings{InUse: true})
	require.NoError(t, p.PublishNode(ctx, n, gfdNode("none", false)))
	node = getNode(t, client, "n1")
	require.NotContains(t, node.Annotations, protocol.TopologyAnnotation)
	require.Contains(t, node.Annotations, protocol.InUseAnnotation)
	requireOthers(node)

	// And back on.
	p.Reconfigure(nodepublish.Settings{Topology: true, Labels: true, InUse: true})
	require.NoError(t, p.PublishNode(ctx, n, gfdNode("none", false)))
	node = getNode(t, client, "n1")
	require.Equal(t, "NVIDIA-A100-SXM4-80GB", node.Labels["nvidia.com/gpu.product"])
	require.Contains(t, node.Annotations, protocol.TopologyAnnotation)
}

// A label value the apiserver would refuse is left out; the rest lands.
func TestPublishNodeLeavesOutInvalidValues(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	n := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Healthy: true}}, Links: links(1, nil)}
	g := gfdNode("none", false)
	g.MachineType = "System Product Name (To be filled by O.E.M.)"
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Labels: true})
	require.NoError(t, p.PublishNode(context.Background(), n, g))
	node := getNode(t, client, "n1")
	require.NotContains(t, node.Labels, "nvidia.com/gpu.machine")
	require.Equal(t, "NVIDIA-A100-SXM4-80GB", node.Labels["nvidia.com/gpu.product"])
}

// An earlier gpupack wrote its labels and the topology annotation with
// merge patches (an Update entry of the same field manager). The first
// apply takes them over: a label it no longer writes (the clique) goes at
// once, the others go when the apply drops them; the in-use annotation
// stays the merge patch's.
func TestPublishNodeTakesOverAnEarlierGpupacksLabels(t *testing.T) {
	for _, labelsOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("labels %v", labelsOn), func(t *testing.T) {
			ctx := context.Background()
			client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
			// The kubelet's label. (On an apiserver every field has an owner;
			// the fake leaves the fields of objects it starts with unowned.)
			_, err := client.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, []byte(`{"metadata":{"labels":{"kubernetes.io/hostname":"n1"}}}`), metav1.PatchOptions{FieldManager: "kubelet"})
			require.NoError(t, err)
			_, err = client.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, []byte(`{"metadata":{
				"labels":{"nvidia.com/gpu.product":"NVIDIA-A100-SXM4-80GB","nvidia.com/gpu.count":"1","nvidia.com/gpu.clique":"c.1","gpupack.io/nvlink":"none"},
				"annotations":{"gpupack.io/topology":"old","gpupack.io/in-use":"old"}}}`), metav1.PatchOptions{FieldManager: nodepublish.FieldManager})
			require.NoError(t, err)
			n := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Healthy: true}}, Links: links(1, nil)}
			p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Topology: true, Labels: labelsOn})
			require.NoError(t, p.PublishNode(ctx, n, gfdNode("none", false)))
			node := getNode(t, client, "n1")
			require.NotContains(t, node.Labels, "nvidia.com/gpu.clique", "written before, not now: gone")
			require.Equal(t, "old", node.Annotations[protocol.InUseAnnotation], "the merge patch's")
			require.NotEqual(t, "old", node.Annotations[protocol.TopologyAnnotation])
			if labelsOn {
				require.Equal(t, "NVIDIA-A100-SXM4-80GB", node.Labels["nvidia.com/gpu.product"])
			} else {
				require.Equal(t, map[string]string{"kubernetes.io/hostname": "n1"}, node.Labels)
			}
			for _, mf := range node.ManagedFields {
				if mf.Manager == nodepublish.FieldManager && mf.Operation == metav1.ManagedFieldsOperationUpdate {
					// The annotations map itself (".") stays the merge patch's.
					require.JSONEq(t, `{"f:metadata":{"f:annotations":{".":{},"f:gpupack.io/in-use":{}}}}`, string(mf.FieldsV1.Raw))
				}
			}
			// Later publications send one apply each, nothing more.
			var writes int
			client.PrependReactor("*", "nodes", func(a clienttesting.Action) (bool, runtime.Object, error) {
				if a.GetVerb() == "patch" {
					writes++
				}
				return false, nil, nil
			})
			p.Reconfigure(nodepublish.Settings{Topology: true})
			require.NoError(t, p.PublishNode(ctx, n, gfdNode("none", false)))
			require.Equal(t, 1, writes)
			require.Equal(t, map[string]string{"kubernetes.io/hostname": "n1"}, getNode(t, client, "n1").Labels, "labels off: every label of ours gone")
		})
	}
}

// stalledAllocations answers its first read with old, after release is
// closed, and every later read with new at once; started is closed when
// the first read begins.
type stalledAllocations struct {
	started, release chan struct{}
	calls            atomic.Int32
	old, new         map[types.NamespacedName]map[string]map[string][]string
}

func (a *stalledAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	if a.calls.Add(1) == 1 {
		close(a.started)
		<-a.release
		return a.old, nil
	}
	return a.new, nil
}

// lockedRecorder is a recorder safe for concurrent rounds.
type lockedRecorder struct {
	mu sync.Mutex
	recorder
}

func (r *lockedRecorder) SetPodDevices(d []nodepublish.PodDevice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recorder.SetPodDevices(d)
}

func (r *lockedRecorder) stored() []nodepublish.PodDevice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.devices
}

// A round that read the kubelet before an allocation and finishes after a
// newer round must not leave its older read in the per-pod metric: rounds
// take turns, so the latest read is the one stored (CI once saw the
// metric without the newest pod).
func TestInUseRoundsStoreTheLatestRead(t *testing.T) {
	train := map[string]map[string][]string{"main": {"nvidia.com/gpu": {"GPU-a", "GPU-b"}}}
	alloc := &stalledAllocations{
		started: make(chan struct{}), release: make(chan struct{}),
		old: map[types.NamespacedName]map[string]map[string][]string{{Namespace: "default", Name: "train"}: train},
		new: map[types.NamespacedName]map[string]map[string][]string{
			{Namespace: "default", Name: "train"}:    train,
			{Namespace: "default", Name: "notebook"}: {"main": {"nvidia.com/gpu": {"GPU-c"}}},
		},
	}
	rec := &lockedRecorder{}
	p := nodepublish.New(nodepublish.Options{PodResources: alloc, Metrics: rec})
	resources := []string{"nvidia.com/gpu"}

	older := make(chan error, 1)
	go func() { _, err := p.InUse(context.Background(), resources, nil); older <- err }()
	<-alloc.started // the older round has begun its read
	newer := make(chan error, 1)
	go func() { _, err := p.InUse(context.Background(), resources, nil); newer <- err }()
	// Give the newer round the chance to finish first, as it did before
	// rounds took turns; it now waits for the older round.
	select {
	case err := <-newer:
		require.NoError(t, err)
		newer <- nil
	case <-time.After(100 * time.Millisecond):
	}
	close(alloc.release)
	require.NoError(t, <-older)
	require.NoError(t, <-newer)
	// The newer read: train's 2 devices + notebook's 1.
	require.Len(t, rec.stored(), 3)
}

// goneSource is a running device plugin that remembers the parents of MIG
// devices destroyed under running pods (GoneMIGSource).
type goneSource struct {
	source
	gone map[string]string
}

func (s goneSource) GoneMIGParents() map[string]string { return s.gone }

// A pod still listed with a MIG device that the node no longer has (its
// instance destroyed; the device plugin withholds its GPU whole) is
// reported with that GPU beside the device, so the scheduler counts the GPU
// held; before, the report named only the gone device, which the
// scheduler cannot place, and the GPU's new MIG devices counted free.
func TestInUseNamesTheParentOfAGoneMIGDevice(t *testing.T) {
	node := &topology.Node{GPUs: []topology.GPU{
		{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-40GB", MIGEnabled: true, Healthy: true},
		{Index: 1, UUID: "GPU-b", Model: "NVIDIA A100-SXM4-40GB", Healthy: true},
	}}
	tests := []struct {
		name string
		held map[string][]string // resource -> devices of pod "train"
		gone map[string]string
		want []string
	}{
		{name: "gone MIG device under a served name (MIG single)", held: map[string][]string{"nvidia.com/gpu": {"MIG-old"}},
			gone: map[string]string{"MIG-old": "GPU-a"}, want: []string{"MIG-old", "GPU-a"}},
		{name: "under a name not served (MIG strategy changed since)", held: map[string][]string{"nvidia.com/mig-2g.10gb": {"MIG-old"}},
			gone: map[string]string{"MIG-old": "GPU-a"}, want: []string{"MIG-old", "GPU-a"}},
		{name: "a replica of a gone MIG device", held: map[string][]string{"nvidia.com/mig-1g.5gb": {"MIG-old::1"}},
			gone: map[string]string{"MIG-old": "GPU-a"}, want: []string{"MIG-old::1", "GPU-a"}},
		{name: "two gone devices of one GPU: the GPU once", held: map[string][]string{"nvidia.com/mig-1g.5gb": {"MIG-old", "MIG-old2"}},
			gone: map[string]string{"MIG-old": "GPU-a", "MIG-old2": "GPU-a"}, want: []string{"MIG-old", "MIG-old2", "GPU-a"}},
		{name: "memory of devices no pod holds adds nothing", held: map[string][]string{"nvidia.com/gpu": {"GPU-b"}},
			gone: map[string]string{"MIG-old": "GPU-a"}, want: []string{"GPU-b"}},
		{name: "no memory: the gone device alone, under a served name", held: map[string][]string{"nvidia.com/gpu": {"MIG-old"}},
			want: []string{"MIG-old"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
			alloc := allocations{m: map[types.NamespacedName]map[string]map[string][]string{
				{Namespace: "default", Name: "train"}: {"main": tc.held},
			}}
			p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", PodResources: alloc, InUse: true,
				Clock: testingclock.NewFakeClock(time.Unix(1764500000, 0))})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.Run(ctx, goneSource{source: source{node: node}, gone: tc.gone})
			}()
			t.Cleanup(func() { cancel(); <-done })
			require.Eventually(t, func() bool {
				n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
				return err == nil && n.Annotations[protocol.InUseAnnotation] != ""
			}, 5*time.Second, 10*time.Millisecond)
			require.ElementsMatch(t, tc.want, podsOf(t, getNode(t, client, "n1"))["train"])
		})
	}
}
