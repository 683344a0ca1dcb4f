package deviceplugin_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// series returns the samples of one metric family as label maps with
// their values.
func series(t *testing.T, reg *prometheus.Registry, name string) []map[string]string {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	var out []map[string]string
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labelsOf(m)
			l["value"] = formatValue(m)
			out = append(out, l)
		}
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func formatValue(m *dto.Metric) string {
	v := m.GetGauge().GetValue() + m.GetCounter().GetValue() // one of them is set
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// One GPU of a node in metrics: the per-GPU series carry dcgm-exporter's
// labels (gpu index, UUID, modelName, Hostname), each device a container
// holds is one series with its pod and GPU, an XID is counted by GPU and
// XID, and the health change is a Node event (and so is the recovery).
func TestPerGPUSeriesPodDevicesAndNodeEvents(t *testing.T) {
	const nodeName = "gpu-node-1"
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	dir := socketDir(t)
	k := startKubelet(t, dir)
	reg := prometheus.NewRegistry()
	metrics := deviceplugin.NewMetrics(reg)
	metrics.SetHostname(nodeName)
	pub := nodepublish.New(nodepublish.Options{
		Client: client, NodeName: nodeName, PodResources: deviceplugin.NewPodResources(servePodResources(t, k)), Pods: &fixture.PodLister{},
		InUse: true, InUseInterval: time.Hour, Metrics: metrics,
	})
	recorder := events.NewFakeRecorder(100)
	// GPU 0 time-shared in 4 replicas (nvidia.com/gpu.shared), GPUs 1-7 whole.
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-a100", config: sharedGPU0, publisher: pub, kubelet: k, metrics: metrics,
		events: deviceplugin.NewNodeEvents(recorder, nodeName)})
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7})
	model := p.mgr.Inventory().GPUs[0].Name
	require.NotEmpty(t, model)
	gpuLabels := func(i int) map[string]string {
		return map[string]string{"gpu": strconv.Itoa(i), "UUID": uuidOf(p, i), "modelName": model, "Hostname": nodeName}
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}

	train, _, err := k.allocate("train", "nvidia.com/gpu", 2, nil)
	require.NoError(t, err)
	nb, _, err := k.allocate("notebook", "nvidia.com/gpu.shared", 1, nil)
	require.NoError(t, err)
	_, err = pub.InUse(context.Background(), []string{"nvidia.com/gpu", "nvidia.com/gpu.shared"}, nil)
	require.NoError(t, err)

	// 8 GPUs, all healthy.
	healthy := series(t, reg, "gpupack_device_plugin_gpu_healthy")
	require.Len(t, healthy, 8)
	require.Contains(t, healthy, with(gpuLabels(0), "value", "1"))

	// 2 + 1 devices held: one series each, with the GPU they live on. The
	// publisher's background rounds take turns with our InUse call, so
	// the read stored is ours or a later one (before they did, CI once saw
	// a round begun before the notebook's allocation store its older read
	// after ours: 2 series).
	pods := series(t, reg, "gpupack_device_plugin_pod_device")
	require.Len(t, pods, 3)
	for _, id := range train {
		gpu := slices.IndexFunc(p.mgr.Inventory().GPUs, func(g nvml.GPU) bool { return g.UUID == id })
		require.GreaterOrEqual(t, gpu, 1, "a whole GPU other than the shared GPU 0")
		require.Contains(t, pods, with(gpuLabels(gpu), "namespace", "default", "pod", "train", "container", "main",
			"resource", "nvidia.com/gpu", "device", id, "value", "1"))
	}
	require.Contains(t, pods, with(gpuLabels(0), "namespace", "default", "pod", "notebook", "container", "main",
		"resource", "nvidia.com/gpu.shared", "device", nb[0], "value", "1"))
	// GPU 0 serves 4 replicas, 1 held.
	require.Contains(t, series(t, reg, "gpupack_device_plugin_gpu_devices"), with(gpuLabels(0), "resource", "nvidia.com/gpu.shared", "value", "4"))
	require.Contains(t, series(t, reg, "gpupack_device_plugin_gpu_allocated_devices"), with(gpuLabels(0), "resource", "nvidia.com/gpu.shared", "value", "1"))

	// XID 13 (application, skipped) then XID 48 on GPU 2: both counted by
	// GPU and XID; only 48 takes GPU 2 out, with a Node event naming it.
	p.machine.InjectXID(2, 13)
	p.machine.InjectXID(2, 48)
	require.Eventually(t, func() bool { return !p.mgr.Health().Healthy(2) }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		ev := series(t, reg, "gpupack_device_plugin_gpu_health_events_total")
		return slices.ContainsFunc(ev, func(m map[string]string) bool {
			return mapsEqual(m, with(gpuLabels(2), "kind", "xid", "xid", "13", "value", "1"))
		}) && slices.ContainsFunc(ev, func(m map[string]string) bool {
			return mapsEqual(m, with(gpuLabels(2), "kind", "xid", "xid", "48", "value", "1"))
		})
	}, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, series(t, reg, "gpupack_device_plugin_gpu_healthy"), with(gpuLabels(2), "value", "0"))
	select {
	case ev := <-recorder.Events:
		require.Equal(t, "Warning "+deviceplugin.ReasonGPUUnhealthy+" GPU 2 ("+uuidOf(p, 2)+") is unhealthy: XID 48; its devices are reported unhealthy to the kubelet", ev)
	case <-time.After(10 * time.Second):
		t.Fatal("no Node event for XID 48")
	}

	// Recovery (3 passing checks, one per 10 s tick): a Normal event.
	require.Eventually(t, func() bool {
		p.clock.Step(10 * time.Second)
		return p.mgr.Health().Healthy(2)
	}, 10*time.Second, 20*time.Millisecond)
	select {
	case ev := <-recorder.Events:
		require.Equal(t, "Normal "+deviceplugin.ReasonGPURecovered+" GPU 2 ("+uuidOf(p, 2)+") passed its health checks again; its devices are reported healthy", ev)
	case <-time.After(10 * time.Second):
		t.Fatal("no Node event for the recovery")
	}
	select {
	case ev := <-recorder.Events:
		t.Fatalf("one event per change, got another: %s", ev)
	default:
	}
	require.Contains(t, series(t, reg, "gpupack_device_plugin_gpu_healthy"), with(gpuLabels(2), "value", "1"))
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
