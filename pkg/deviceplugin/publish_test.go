package deviceplugin_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/kubernetes/pkg/kubelet/apis/podresources"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// kubeletProviders adapt the real device manager to the kubelet's own
// PodResources server, as the kubelet's container manager does.
type kubeletProviders struct{ k *kubelet }

func (p kubeletProviders) GetActivePods() []*v1.Pod { return p.k.activePods() }
func (p kubeletProviders) GetPods() []*v1.Pod       { return p.k.activePods() }
func (p kubeletProviders) GetPodByName(ns, name string) (*v1.Pod, bool) {
	for _, pod := range p.k.activePods() {
		if pod.Namespace == ns && pod.Name == name {
			return pod, true
		}
	}
	return nil, false
}
func (p kubeletProviders) UpdateAllocatedDevices(logger klog.Logger) {
	p.k.m.UpdateAllocatedDevices(logger)
}
func (p kubeletProviders) GetDevices(podUID, container string) []*podresourcesv1.ContainerDevices {
	var out []*podresourcesv1.ContainerDevices
	for res, devs := range p.k.m.GetDevices(podUID, container) {
		cd := &podresourcesv1.ContainerDevices{ResourceName: res}
		for id := range devs {
			cd.DeviceIds = append(cd.DeviceIds, id)
		}
		out = append(out, cd)
	}
	return out
}
func (p kubeletProviders) GetAllocatableDevices(klog.Logger) []*podresourcesv1.ContainerDevices {
	return nil
}
func (kubeletProviders) GetCPUs(*v1.Pod, *v1.Container) []int64 { return nil }
func (kubeletProviders) GetPodCPUs(string) []int64              { return nil }
func (kubeletProviders) GetAllocatableCPUs() []int64            { return nil }
func (kubeletProviders) GetMemory(klog.Logger, *v1.Pod, *v1.Container) []*podresourcesv1.ContainerMemory {
	return nil
}
func (kubeletProviders) GetPodMemory(klog.Logger, string) []*podresourcesv1.ContainerMemory {
	return nil
}
func (kubeletProviders) GetAllocatableMemory(klog.Logger) []*podresourcesv1.ContainerMemory {
	return nil
}
func (kubeletProviders) GetDynamicResources(klog.Logger, *v1.Pod, *v1.Container) []*podresourcesv1.DynamicResource {
	return nil
}

// servePodResources serves the kubelet's PodResources API for k on a socket
// outside the device-plugin directory.
func servePodResources(t *testing.T, k *kubelet) string {
	t.Helper()
	dir := socketDir(t)
	socket := filepath.Join(dir, "pod-resources.sock")
	lis, err := net.Listen("unix", socket)
	require.NoError(t, err)
	srv := grpc.NewServer()
	prov := kubeletProviders{k}
	podresourcesv1.RegisterPodResourcesListerServer(srv, podresources.NewV1PodResourcesServer(context.Background(),
		podresources.PodResourcesProviders{Pods: prov, Devices: prov, Cpus: prov, Memory: prov, DynamicResources: prov}))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return socket
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
	pods.add(k.activePods()[0])
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
