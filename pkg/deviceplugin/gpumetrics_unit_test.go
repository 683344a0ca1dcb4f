package deviceplugin

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// fixedSource is a node of two GPUs, GPU 1 time-shared in 2 replicas.
type fixedSource struct{ health *Health }

func (fixedSource) Inventory() *nvml.Inventory {
	return &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0", Name: "A100"}, {Index: 1, UUID: "GPU-1", Name: "A100"}}}
}
func (s fixedSource) Health() *Health { return s.health }
func (fixedSource) Plugins() []*Plugin {
	return []*Plugin{
		{resource: sharing.Resource{Name: "nvidia.com/gpu", Devices: []sharing.Device{{ID: "GPU-0", GPUIndex: 0}}}},
		{resource: sharing.Resource{Name: "nvidia.com/gpu.shared", Devices: []sharing.Device{
			{ID: "GPU-1::0", GPUIndex: 1, Replicas: 2}, {ID: "GPU-1::1", GPUIndex: 1, Replicas: 2, Replica: 1},
		}}},
	}
}

// Input the plugin does not know (a device the kubelet still lists after a
// config change, an event for a GPU not in the inventory) still makes
// series, without a GPU to name, and never a panic; before a Manager is
// attached nothing per GPU is served.
func TestGPUMetricsUnknownInput(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.SetHostname("n1")
	n, err := testutil.GatherAndCount(reg, "gpupack_device_plugin_gpu_healthy")
	require.NoError(t, err)
	require.Zero(t, n, "no Manager yet")

	src := fixedSource{}
	src.health = NewHealth(nil, src.Inventory(), HealthOptions{})
	m.attach(src)
	m.SetPodDevices([]PodDevice{
		{Namespace: "ns", Pod: "p", Container: "c", Resource: "nvidia.com/gpu.shared", Device: "GPU-1::1"},
		{Namespace: "ns", Pod: "old", Container: "c", Resource: "nvidia.com/gpu.shared", Device: "GPU-1::7"}, // replicas lowered
	})
	m.observeEvent(nvml.Event{GPUIndex: 9, UUID: "GPU-9", Kind: nvml.EventXID, XID: 79})
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gpupack_device_plugin_pod_device 1 for each device a pod's container holds (PodResources), with the GPU it lives on.
# TYPE gpupack_device_plugin_pod_device gauge
gpupack_device_plugin_pod_device{Hostname="n1",UUID="GPU-1",container="c",device="GPU-1::1",gpu="1",modelName="A100",namespace="ns",pod="p",resource="nvidia.com/gpu.shared"} 1
gpupack_device_plugin_pod_device{Hostname="n1",UUID="GPU-1",container="c",device="GPU-1::7",gpu="",modelName="",namespace="ns",pod="old",resource="nvidia.com/gpu.shared"} 1
# HELP gpupack_device_plugin_gpu_allocated_devices Devices of the GPU that the kubelet gave to containers (PodResources), by resource.
# TYPE gpupack_device_plugin_gpu_allocated_devices gauge
gpupack_device_plugin_gpu_allocated_devices{Hostname="n1",UUID="GPU-0",gpu="0",modelName="A100",resource="nvidia.com/gpu"} 0
gpupack_device_plugin_gpu_allocated_devices{Hostname="n1",UUID="GPU-1",gpu="1",modelName="A100",resource="nvidia.com/gpu.shared"} 1
# HELP gpupack_device_plugin_gpu_devices Devices the plugin serves on the GPU (1 whole GPU, its time-shared replicas or its MIG devices), by resource.
# TYPE gpupack_device_plugin_gpu_devices gauge
gpupack_device_plugin_gpu_devices{Hostname="n1",UUID="GPU-0",gpu="0",modelName="A100",resource="nvidia.com/gpu"} 1
gpupack_device_plugin_gpu_devices{Hostname="n1",UUID="GPU-1",gpu="1",modelName="A100",resource="nvidia.com/gpu.shared"} 2
# HELP gpupack_device_plugin_gpu_health_events_total NVML health events by GPU, kind (xid, ecc-double-bit, ecc-single-bit, gpu-lost) and XID (empty for other kinds); skipped application XIDs included.
# TYPE gpupack_device_plugin_gpu_health_events_total counter
gpupack_device_plugin_gpu_health_events_total{Hostname="n1",UUID="GPU-9",gpu="9",kind="xid",modelName="",xid="79"} 1
`), "gpupack_device_plugin_pod_device", "gpupack_device_plugin_gpu_allocated_devices", "gpupack_device_plugin_gpu_devices", "gpupack_device_plugin_gpu_health_events_total"))
}
