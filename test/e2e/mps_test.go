package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/mps"
	"github.com/gpupack/gpupack/pkg/mps/mpstest"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// Issue 14 item 4, on the real apiserver, kubelet device manager, scheduler
// and device-plugin binary, with a fake nvidia-cuda-mps-control: NVIDIA's
// MPS config on a 4 x T4 node serves 4 x 4 = 16 replicas under
// nvidia.com/gpu, published as replicas of 4 with one replica per request,
// and runs one daemon per GPU with NVIDIA's settings. GPU 1's daemon dies
// and cannot start: its 4 replicas leave allocatable, the published
// topology marks GPU 1 unhealthy, and 12 pods are placed on the other GPUs
// while a 13th waits; when the daemon starts again GPU 1 is healthy and the
// 13th pod lands on it.
func TestMPSSharingOnTheBinary(t *testing.T) {
	e := newEnv(t)
	ctl := mpstest.New(t)
	root := mps.Root(t.TempDir())
	conf := fmt.Sprintf(`version: v1
publish: {inUseInterval: 1s}
flags: {mpsRoot: %q}
sharing:
  mps:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
`, root)
	c := e.startNodes(harness.NodeConfig{Name: "mps", Machine: "pcie-4gpu-2socket", PluginConfig: conf,
		PluginArgs: []string{"--mps-control-binary", ctl.Binary}})
	topo := e.publishedTopology("mps", func(n *topology.Node) bool { _, ok := n.Resource(gpuResource); return ok })
	res, _ := topo.Resource(gpuResource)
	require.Equal(t, topology.Resource{Name: gpuResource, Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked,
		FailRequestsGreaterThanOne: true}, res)
	e.waitAllocatable("mps", 16) // 4 GPUs x 4 replicas
	// GFD's labels say MPS: shared under nvidia.com/gpu, 4 replicas.
	node, err := e.client.CoreV1().Nodes().Get(context.Background(), "mps", metav1.GetOptions{})
	require.NoError(t, err)
	for k, v := range map[string]string{
		"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.replicas": "4",
		"nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/mps.capable": "true",
	} {
		require.Equal(t, v, node.Labels[k], k)
	}
	for _, g := range topo.GPUs {
		// 15360 MiB / 4 = 3840 MiB, 100 / 4 = 25 %.
		require.Equal(t, []string{
			"-d pipe=" + root.PipeDir(g.UUID) + " log=" + root.LogDir(g.UUID),
			"set_default_device_pinned_mem_limit " + g.UUID + " 3840M",
			"set_default_active_thread_percentage 25",
			"get_default_active_thread_percentage",
		}, ctl.RecordOf(t, g.UUID)[:4], "GPU %d", g.Index)
	}

	bad := topo.GPUs[1].UUID
	ctl.FailStarts(t, bad, true)
	ctl.Crash(t, root.PIDFile(bad))
	e.waitAllocatable("mps", 12) // 16 - 4
	e.publishedTopology("mps", func(n *topology.Node) bool { return !n.GPUs[1].Healthy && n.GPUs[0].Healthy })

	e.startScheduler()
	got := map[string][]string{}
	for i := range 12 {
		e.createPod(gpuPod(podName("mps", i), 1, nil))
	}
	for i := range 12 {
		name := podName("mps", i)
		ids := e.admittedExactly(c, name)
		require.Len(t, ids, 1)
		require.False(t, strings.HasPrefix(ids[0], bad+"::"), "pod %s got a replica of the GPU whose daemon is down", name)
		got[name] = ids
	}
	requireDisjoint(t, got)
	e.createPod(gpuPod("late", 1, nil))
	e.requireUnschedulable("late")

	ctl.FailStarts(t, bad, false)
	e.waitAllocatable("mps", 16)
	ids := e.admittedExactly(c, "late")
	require.Len(t, ids, 1)
	require.True(t, strings.HasPrefix(ids[0], bad+"::"), "the last free replicas are GPU 1's: %v", ids)
}
