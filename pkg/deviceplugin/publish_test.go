package deviceplugin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// servePodResources is the PodResources socket of k's kubelet.
func servePodResources(t *testing.T, k *kubelet) string {
	t.Helper()
	return filepath.Join(k.Dir(), harness.PodResourcesSocket)
}

func TestPublish(t *testing.T) {
	const nodeName = "gpu-node-1"
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	dir := socketDir(t)
	k := startKubelet(t, dir)
	prSocket := servePodResources(t, k)
	pods := &podList{}
	pub := deviceplugin.NewPublisher(deviceplugin.PublisherOptions{
		Client: client, NodeName: nodeName, PodResourcesSocket: prSocket, Pods: pods,
		Topology: true, Labels: true, InUse: true, InUseInterval: time.Hour,
	})
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", publisher: pub, kubelet: k})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	ctx := context.Background()
	node := func() *v1.Node {
		n, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		require.NoError(t, err)
		return n
	}

	// At start: the topology annotation and the labels.
	require.Eventually(t, func() bool { return node().Annotations[topology.AnnotationKey] != "" }, 10*time.Second, 10*time.Millisecond)
	n := node()
	topo, err := topology.Decode(n.Annotations[topology.AnnotationKey])
	require.NoError(t, err)
	require.Len(t, topo.GPUs, 8)
	require.Equal(t, map[string]string{
		deviceplugin.LabelCount:      "8",
		deviceplugin.LabelProduct:    "Tesla-V100-SXM2-16GB",
		deviceplugin.LabelMemory:     "16384",
		deviceplugin.LabelMIGCapable: "false",
		deviceplugin.LabelNVLink:     "mesh", // hybrid cube-mesh: each GPU has 4 NVLink peers
	}, n.Labels)

	// An allocation shows in the in-use report, read from the kubelet's
	// own PodResources server, with the pod's UID from the informer.
	ids, _, err := k.allocate("train", "nvidia.com/gpu", 2, nil)
	require.NoError(t, err)
	pods.add(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "default", UID: "uid-train"}})
	require.Eventually(t, func() bool {
		// Allocate kicked a refresh; it may have run before the pod was listed.
		pub.Kick()
		u, err := protocol.DecodeInUse(node().Annotations[protocol.InUseAnnotation])
		return err == nil && len(u.Pods) == 1 && u.Pods[0].UID == "uid-train"
	}, 10*time.Second, 20*time.Millisecond)
	u, err := protocol.DecodeInUse(node().Annotations[protocol.InUseAnnotation])
	require.NoError(t, err)
	require.Equal(t, protocol.PodRef{Namespace: "default", Name: "train", UID: "uid-train"}, u.Pods[0].PodRef)
	require.ElementsMatch(t, ids, u.Pods[0].Devices)

	// A health change republishes the topology with the GPU unhealthy.
	p.machine.InjectXID(4, 48)
	require.Eventually(t, func() bool {
		topo, err := topology.Decode(node().Annotations[topology.AnnotationKey])
		return err == nil && !topo.GPUs[4].Healthy && topo.GPUs[3].Healthy
	}, 10*time.Second, 10*time.Millisecond)
}
