package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/test/harness"
)

// freeAddr is a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// sample is one line of a Prometheus text scrape.
type sample struct {
	name   string
	labels map[string]string
	value  string
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape GETs /metrics as Prometheus (or curl) would and returns the
// samples of the metrics named name.
func scrape(t *testing.T, addr, name string) []sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out []sample
	for _, line := range strings.Split(string(body), "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}, value: m[3]}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// samplesWith returns the samples whose labels include want.
func samplesWith(samples []sample, want map[string]string) []sample {
	var out []sample
	for _, s := range samples {
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// The device plugin's metrics, scraped over HTTP from a harness node: one
// series per GPU labelled as dcgm-exporter labels (gpu, UUID, modelName,
// Hostname), one per device a pod holds (namespace, pod, container,
// resource, device, and its GPU). An XID injected on the fake control
// socket shows in the XID counter of that GPU and as a Warning Node event
// (events.k8s.io) that names the GPU and the XID.
func TestMetricsScrapeAndNodeEventForAnXID(t *testing.T) {
	e := newEnv(t)
	addr := freeAddr(t)
	c := e.startNodes(harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100", PluginArgs: []string{"--metrics-bind-address=" + addr}})
	topo := e.publishedTopology("v100", anyTopology)
	ctx := context.Background()

	// A pod bound to the node directly (another scheduler's): the kubelet
	// gives it 2 GPUs; the in-use refresh (1 s here) reads them back.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "v100", Containers: []corev1.Container{{
			Name: "main", Image: "registry.example/train:latest",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{gpuResource: resource.MustParse("2")}},
		}}},
	}
	_, err := e.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	a, err := c.WaitAdmitted(ctx, "default", "train", 60*time.Second)
	require.NoError(t, err)
	require.NoError(t, a.Err)
	held := a.Devices[gpuResource]
	require.Len(t, held, 2)

	gpuIndex := map[string]int{}
	for _, g := range topo.GPUs {
		gpuIndex[g.UUID] = g.Index
	}
	// 8 GPUs, each with its dcgm-exporter labels.
	healthy := scrape(t, addr, "gpupack_device_plugin_gpu_healthy")
	require.Len(t, healthy, 8)
	for _, g := range topo.GPUs {
		s := samplesWith(healthy, map[string]string{"gpu": fmt.Sprint(g.Index), "UUID": g.UUID, "Hostname": "v100"})
		require.Len(t, s, 1, "GPU %d", g.Index)
		require.Contains(t, s[0].labels["modelName"], "V100")
		require.Equal(t, "1", s[0].value)
	}
	var pods []sample
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pods = samplesWith(scrape(t, addr, "gpupack_device_plugin_pod_device"), map[string]string{"namespace": "default", "pod": "train"})
		return len(pods) == 2, nil
	}), "the pod's 2 devices in metrics")
	for _, id := range held {
		s := samplesWith(pods, map[string]string{"container": "main", "resource": gpuResource, "device": id,
			"gpu": fmt.Sprint(gpuIndex[id]), "UUID": id, "Hostname": "v100"})
		require.Len(t, s, 1, "device %s", id)
	}

	// XID 48 (double-bit ECC) on GPU 5.
	_, lctx := ktesting.NewTestContext(t)
	require.NoError(t, c.Node("v100").InjectXID(lctx, 5, 48))
	bad := topo.GPUs[5].UUID
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		s := samplesWith(scrape(t, addr, "gpupack_device_plugin_gpu_health_events_total"),
			map[string]string{"gpu": "5", "UUID": bad, "Hostname": "v100", "kind": "xid", "xid": "48"})
		return len(s) == 1 && s[0].value == "1", nil
	}), "XID 48 counted on GPU 5")
	s := samplesWith(scrape(t, addr, "gpupack_device_plugin_gpu_healthy"), map[string]string{"gpu": "5"})
	require.Len(t, s, 1)
	require.Equal(t, "0", s[0].value)

	var ev *eventsv1.Event
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.client.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i, item := range list.Items {
			if item.Regarding.Kind == "Node" && item.Regarding.Name == "v100" && item.Reason == deviceplugin.ReasonGPUUnhealthy {
				ev = &list.Items[i]
				return true, nil
			}
		}
		return false, nil
	}), "a GPUUnhealthy event on Node v100")
	require.Equal(t, corev1.EventTypeWarning, ev.Type)
	require.Equal(t, "gpupack-device-plugin", ev.ReportingController)
	require.Contains(t, ev.Note, "GPU 5 ("+bad+")")
	require.Contains(t, ev.Note, "XID 48")
	t.Logf("Node event: %s %s %s/%s: %s", ev.Type, ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note)
}
