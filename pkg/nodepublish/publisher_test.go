package nodepublish_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

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
	devices []nodepublish.PodDevice
	missed  []string
}

func (r *recorder) SetPodDevices(d []nodepublish.PodDevice) { r.devices = d }
func (r *recorder) HandoffNotHonoured(res string)           { r.missed = append(r.missed, res) }

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
		got, err := p.InUse(context.Background(), []string{"nvidia.com/gpu"})
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

// Without a PodResources API, or when it fails, InUse errors (and Run
// retries).
func TestInUseErrors(t *testing.T) {
	_, err := nodepublish.New(nodepublish.Options{}).InUse(context.Background(), []string{"nvidia.com/gpu"})
	require.Error(t, err)
	boom := errors.New("kubelet gone")
	_, err = nodepublish.New(nodepublish.Options{PodResources: allocations{err: boom}}).InUse(context.Background(), nil)
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

// PublishNode patches the topology annotation and the labels onto the node.
func TestPublishNode(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	n := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}}, Links: links(1, nil)}
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Topology: true, Labels: true})
	require.NoError(t, p.PublishNode(context.Background(), n, false))
	node, err := client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	require.NoError(t, err)
	require.Contains(t, node.Annotations, protocol.TopologyAnnotation)
	require.Equal(t, "NVIDIA-A100-SXM4-80GB", node.Labels[protocol.LabelProduct])
	require.Equal(t, "1", node.Labels[protocol.LabelCount])
	require.Equal(t, "81920", node.Labels[protocol.LabelMemory])
	require.Equal(t, "false", node.Labels[protocol.LabelMIGCapable])
	// A node the apiserver does not know: a clear error, no crash.
	p = nodepublish.New(nodepublish.Options{Client: client, NodeName: "absent", Topology: true})
	require.Error(t, p.PublishNode(context.Background(), n, false))
}
