package deviceplugin

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// GPULabels name a physical GPU in the device plugin's per-GPU series, as
// NVIDIA's dcgm-exporter labels its series, so the two join in PromQL
// (e.g. `* on (UUID) group_left DCGM_FI_DEV_GPU_UTIL`).
var GPULabels = []string{"gpu", "UUID", "modelName", "Hostname"}

// podDeviceLabels name one device a pod's container holds.
var podDeviceLabels = append([]string{"namespace", "pod", "container", "resource", "device"}, GPULabels...)

// Per-GPU and per-pod series, computed at scrape time from the running
// Manager (inventory, health, served devices) and the kubelet's last
// PodResources answer.
var (
	gpuHealthyDesc = prometheus.NewDesc("gpupack_device_plugin_gpu_healthy",
		"1 when the GPU is healthy, 0 when an XID, ECC error or a lost GPU took it out (until it recovers).", GPULabels, nil)
	gpuDevicesDesc = prometheus.NewDesc("gpupack_device_plugin_gpu_devices",
		"Devices the plugin serves on the GPU (1 whole GPU, its time-shared replicas or its MIG devices), by resource.",
		append(slices.Clone(GPULabels), "resource"), nil)
	gpuAllocatedDesc = prometheus.NewDesc("gpupack_device_plugin_gpu_allocated_devices",
		"Devices of the GPU that the kubelet gave to containers (PodResources), by resource.",
		append(slices.Clone(GPULabels), "resource"), nil)
	podDeviceDesc = prometheus.NewDesc("gpupack_device_plugin_pod_device",
		"1 for each device a pod's container holds (PodResources), with the GPU it lives on.", podDeviceLabels, nil)
)

// PodDevice is one device a container holds, as the kubelet's PodResources
// reports it; the node publisher reads them (nodepublish.PodDevice).
type PodDevice = nodepublish.PodDevice

// gpuSource is what the per-GPU series read: the running Manager.
type gpuSource interface {
	Inventory() *nvml.Inventory
	Health() *Health
	Plugins() []*Plugin
}

// gpuMetrics holds what the per-GPU collector reads.
type gpuMetrics struct {
	hostname atomic.Pointer[string]
	source   atomic.Pointer[gpuSource]
	pods     atomic.Pointer[[]PodDevice]
	events   *prometheus.CounterVec
}

func newGPUMetrics() *gpuMetrics {
	g := &gpuMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_gpu_health_events_total",
			Help: "NVML health events by GPU, kind (xid, ecc-double-bit, ecc-single-bit, gpu-lost) and XID (empty for other kinds); skipped application XIDs included.",
		}, append(slices.Clone(GPULabels), "kind", "xid")),
	}
	empty := ""
	g.hostname.Store(&empty)
	return g
}

// SetHostname sets the Hostname label of the per-GPU series: the node's
// name, as dcgm-exporter's Hostname on Kubernetes.
func (m *Metrics) SetHostname(hostname string) {
	if m != nil {
		m.gpu.hostname.Store(&hostname)
	}
}

// attach makes the per-GPU series read s (the latest Manager).
func (m *Metrics) attach(s gpuSource) {
	if m != nil {
		m.gpu.source.Store(&s)
	}
}

// SetPodDevices records the kubelet's latest allocations (from the node
// publisher's PodResources read).
func (m *Metrics) SetPodDevices(pods []PodDevice) {
	if m != nil {
		m.gpu.pods.Store(&pods)
	}
}

// gpuLabelValues are the GPULabels of a GPU of the inventory.
func (g *gpuMetrics) gpuLabelValues(gpu nvml.GPU) []string {
	return []string{strconv.Itoa(gpu.Index), gpu.UUID, gpu.Name, *g.hostname.Load()}
}

// observeGPUEvent counts ev against its GPU (by UUID, else index); an event
// for a GPU the inventory lacks is counted with the index only.
func (g *gpuMetrics) observeGPUEvent(ev nvml.Event) {
	xid := ""
	if ev.Kind == nvml.EventXID {
		xid = strconv.FormatUint(ev.XID, 10)
	}
	labels := []string{strconv.Itoa(ev.GPUIndex), ev.UUID, "", *g.hostname.Load()}
	if s := g.source.Load(); s != nil {
		for _, gpu := range (*s).Inventory().GPUs {
			if (ev.UUID != "" && gpu.UUID == ev.UUID) || (ev.UUID == "" && gpu.Index == ev.GPUIndex) {
				labels = g.gpuLabelValues(gpu)
				break
			}
		}
	}
	g.events.WithLabelValues(append(labels, ev.Kind.String(), xid)...).Inc()
}

// gpuCollector emits the per-GPU and per-pod series at scrape time.
type gpuCollector struct{ g *gpuMetrics }

var _ prometheus.Collector = gpuCollector{}

// Describe implements prometheus.Collector.
func (gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gpuHealthyDesc, gpuDevicesDesc, gpuAllocatedDesc, podDeviceDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c gpuCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.g.source.Load()
	if s == nil {
		return
	}
	src := *s
	inv := src.Inventory()
	health := src.Health().Snapshot()
	byIndex := map[int]nvml.GPU{}
	for _, gpu := range inv.GPUs {
		byIndex[gpu.Index] = gpu
		ch <- prometheus.MustNewConstMetric(gpuHealthyDesc, prometheus.GaugeValue, boolValue(health.GPU(gpu.Index)), c.g.gpuLabelValues(gpu)...)
	}
	// Served devices per GPU and resource, and each device's GPU.
	type key struct {
		gpu      int
		resource string
	}
	served := map[key]int{}
	gpuOf := map[string]int{}
	for _, p := range src.Plugins() {
		for _, d := range p.resource.Devices {
			served[key{d.GPUIndex, p.Name()}]++
			gpuOf[d.ID] = d.GPUIndex
		}
	}
	allocated := map[key]int{}
	if pods := c.g.pods.Load(); pods != nil {
		for _, pd := range *pods {
			idx, ok := gpuOf[pd.Device]
			gpu, known := byIndex[idx]
			if !ok || !known {
				// A device this plugin does not serve (any more): still the
				// pod's, without a GPU to name.
				ch <- prometheus.MustNewConstMetric(podDeviceDesc, prometheus.GaugeValue, 1,
					pd.Namespace, pd.Pod, pd.Container, pd.Resource, pd.Device, "", parentUUID(pd.Device), "", *c.g.hostname.Load())
				continue
			}
			allocated[key{idx, pd.Resource}]++
			ch <- prometheus.MustNewConstMetric(podDeviceDesc, prometheus.GaugeValue, 1,
				append([]string{pd.Namespace, pd.Pod, pd.Container, pd.Resource, pd.Device}, c.g.gpuLabelValues(gpu)...)...)
		}
	}
	for k, n := range served {
		gpu, ok := byIndex[k.gpu]
		if !ok {
			continue
		}
		labels := append(c.g.gpuLabelValues(gpu), k.resource)
		ch <- prometheus.MustNewConstMetric(gpuDevicesDesc, prometheus.GaugeValue, float64(n), labels...)
		ch <- prometheus.MustNewConstMetric(gpuAllocatedDesc, prometheus.GaugeValue, float64(allocated[k]), labels...)
	}
}

// parentUUID is the GPU UUID of a replica ID (<UUID>::<n>), else the ID.
func parentUUID(id string) string {
	u, _, _ := strings.Cut(id, "::")
	return u
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
