package e2e

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// Issue 11 item 1: dgx-1-v100 whose GPU 3 has fallen off the bus before the
// plugin starts (every NVML call on it, DeviceGetHandleByIndex first,
// answers ERROR_GPU_IS_LOST). The plugin used to exit and the node lost all
// 8 GPUs; now it serves the other 7 (capacity 8, allocatable 7, GPU 3
// unhealthy in the topology, no pod placed on it), and when GPU 3 answers
// again the recovery probe has the plugin discover the node anew: 8
// allocatable, and the pod that did not fit gets the recovered GPU.
func TestOneBadGPUAtStartDegradesOnlyThatGPU(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100",
		PluginConfig: "version: v1\npublish: {inUseInterval: 1s}\nhealth: {recovery: {checks: 1, interval: 1s}}\n",
		PluginArgs:   []string{"--fake-lost=3"}})
	topo := e.publishedTopology("v100", func(n *topology.Node) bool { return len(n.GPUs) == 8 && !n.GPUs[3].Healthy })
	require.Equal(t, nvml.PlaceholderUUID(3), topo.GPUs[3].UUID)
	e.waitAllocatable("v100", 7)
	node, err := e.client.CoreV1().Nodes().Get(context.Background(), "v100", metav1.GetOptions{})
	require.NoError(t, err)
	capacity := node.Status.Capacity[gpuResource]
	require.Equal(t, int64(8), capacity.Value())
	e.startScheduler()

	got := map[string][]string{}
	for i := range 7 {
		e.createPod(gpuPod(podName("one", i), 1, nil))
	}
	for i := range 7 {
		name := podName("one", i)
		got[name] = e.admittedExactly(c, name)
		require.NotContains(t, got[name], topo.GPUs[3].UUID)
	}
	requireDisjoint(t, got)
	e.createPod(gpuPod("eighth", 1, nil))
	e.requireUnschedulable("eighth")

	// GPU 3 answers again: the probe reads it, the plugin discovers anew.
	_, ctx := ktesting.NewTestContext(t)
	require.NoError(t, c.Node("v100").Inject(ctx, "restore", url.Values{"gpu": {"3"}}))
	topo = e.publishedTopology("v100", func(n *topology.Node) bool { return n.GPUs[3].Healthy })
	require.False(t, nvml.IsPlaceholderUUID(topo.GPUs[3].UUID))
	e.waitAllocatable("v100", 8)
	got["eighth"] = e.admittedExactly(c, "eighth")
	require.Equal(t, []string{topo.GPUs[3].UUID}, got["eighth"])
	requireDisjoint(t, got)
}
