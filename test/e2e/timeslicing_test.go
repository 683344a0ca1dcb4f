package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// Issue 12 item 1, on the real apiserver, kubelet device manager and
// device-plugin binary: pcie-4gpu-2socket with NVIDIA's default naming
// (renameByDefault: false) serves 4 x 4 = 16 replicas under nvidia.com/gpu.
// 16 pods asking nvidia.com/gpu: 1 are all placed, each with one replica ID
// the node serves, and the kubelet allocates exactly that ID (before: 4
// placed with bare GPU UUIDs the node does not serve, 12 Unschedulable).
// A 17th pod is Unschedulable.
func TestTimeSlicingUnderNVIDIADefaultName(t *testing.T) {
	e := newEnv(t)
	const conf = `version: v1
publish: {inUseInterval: 1s}
sharing:
  timeSlicing:
    renameByDefault: false
    resources:
      - name: nvidia.com/gpu
        replicas: 4
`
	c := e.startNodes(harness.NodeConfig{Name: "ts", Machine: "pcie-4gpu-2socket", PluginConfig: conf})
	topo := e.publishedTopology("ts", func(n *topology.Node) bool { _, ok := n.Resource(gpuResource); return ok })
	res, _ := topo.Resource(gpuResource)
	require.Equal(t, topology.Resource{Name: gpuResource, Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked}, res)
	e.waitAllocatable("ts", 16) // 4 GPUs x 4 replicas
	// GFD's labels for it, from the binary (the fake's DMI name and PCI
	// classes): 4 T4 shared 4 ways under their own name.
	node, err := e.client.CoreV1().Nodes().Get(context.Background(), "ts", metav1.GetOptions{})
	require.NoError(t, err)
	for k, v := range map[string]string{
		"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.replicas": "4",
		"nvidia.com/gpu.sharing-strategy": "time-slicing", "nvidia.com/gpu.family": "turing",
		"nvidia.com/gpu.machine": "PowerEdge-R740", "nvidia.com/gpu.mode": "compute",
		"nvidia.com/cuda.driver-version.full": "535.183.01", "nvidia.com/mps.capable": "false",
	} {
		require.Equal(t, v, node.Labels[k], k)
	}
	e.startScheduler()

	for i := range 16 {
		e.createPod(gpuPod(podName("share", i), 1, nil))
	}
	got := map[string][]string{}
	var all []string
	for i := range 16 {
		name := podName("share", i)
		ids := e.admittedExactly(c, name)
		require.Len(t, ids, 1, "pod %s: one replica", name)
		got[name] = ids
		all = append(all, ids...)
	}
	var want []string
	for _, g := range topo.GPUs {
		for k := range 4 {
			want = append(want, deviceid.ReplicaID(g.UUID, k))
		}
	}
	require.ElementsMatch(t, want, all, "each of the node's 16 replica IDs once")
	requireDisjoint(t, got)
	e.requireInUse("ts", got)
	e.createPod(gpuPod("extra", 1, nil))
	e.requireUnschedulable("extra")
}
