package deviceplugin

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// The node publisher's in-use report feeds these metrics.
var _ nodepublish.Recorder = (*Metrics)(nil)

// Handoff outcomes, the "outcome" label of gpupack_device_plugin_preferred_allocations_total.
const (
	OutcomeScheduler = "scheduler" // the scheduler's choice was honoured
	OutcomeOwn       = "own"       // no scheduler choice fitted: pkg/score chose
	OutcomeNone      = "none"      // nothing chosen: the kubelet picks
)

// Metrics are the device plugin's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	devices     *prometheus.GaugeVec
	events      *prometheus.CounterVec
	allocations *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	preferred   *prometheus.CounterVec
	missed      *prometheus.CounterVec
	malformed   *prometheus.CounterVec
	recoveries  prometheus.Counter
	withheld    *prometheus.GaugeVec
	podresFails prometheus.Counter
	// gpu holds the per-GPU and per-pod series (gpumetrics.go).
	gpu *gpuMetrics

	// mu guards the per-resource gauges' label sets: serving are the
	// resources of the running Manager (nil before one runs), series those
	// with series in devices and withheld.
	mu      sync.Mutex
	serving map[string]bool
	series  map[string]bool
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gpupack_device_plugin_devices", Help: "Devices advertised, by resource and health.",
		}, []string{"resource", "health"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_health_events_total", Help: "NVML health events, by kind and XID.",
		}, []string{"kind", "xid"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_allocations_total", Help: "Successful container allocations, by resource.",
		}, []string{"resource"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_rejected_requests_total", Help: "Rejected Allocate/GetPreferredAllocation requests, by resource and reason.",
		}, []string{"resource", "reason"}),
		preferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_preferred_allocations_total", Help: "GetPreferredAllocation answers, by resource and handoff outcome.",
		}, []string{"resource", "outcome"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_handoff_not_honoured_total",
			Help: "Pods that got devices outside the set the scheduler chose for them, by resource (counted once per pod).",
		}, []string{"resource"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_in_use_malformed_devices_total",
			Help: "Malformed device IDs of the kubelet's PodResources answer left out of the node's in-use report, by resource (counted once while the kubelet lists them).",
		}, []string{"resource"}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_gpu_recoveries_total", Help: "GPUs that became healthy again.",
		}),
		withheld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gpupack_device_plugin_devices_withheld",
			Help: "Devices advertised unhealthy because a running container holds their GPU under another resource name or device ID (a config reload), by resource.",
		}, []string{"resource"}),
		podresFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpupack_device_plugin_podresources_errors_total",
			Help: "Failed reads of the kubelet's PodResources API for the devices withheld after a config reload.",
		}),
		gpu: newGPUMetrics(),
	}
	reg.MustRegister(m.collectors()...)
	return m
}

// collectors are every metric of the device plugin.
func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.devices, m.events, m.allocations, m.rejected, m.preferred, m.missed, m.malformed, m.recoveries, m.withheld, m.podresFails,
		m.gpu.events, gpuCollector{m.gpu}}
}

func (m *Metrics) observeEvent(ev nvml.Event) {
	if m == nil {
		return
	}
	xid := ""
	if ev.Kind == nvml.EventXID {
		xid = strconv.FormatUint(ev.XID, 10)
	}
	m.events.WithLabelValues(ev.Kind.String(), xid).Inc()
	m.gpu.observeGPUEvent(ev)
}

// setDevices records a resource's advertised devices by health, and how
// many of them are withheld; a resource the running Manager does not serve
// (a late update of the Manager it replaced) is not recorded.
func (m *Metrics) setDevices(resource string, healthy, unhealthy, withheld int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.serving != nil && !m.serving[resource] {
		return
	}
	if m.series == nil {
		m.series = map[string]bool{}
	}
	m.series[resource] = true
	m.devices.WithLabelValues(resource, "healthy").Set(float64(healthy))
	m.devices.WithLabelValues(resource, "unhealthy").Set(float64(unhealthy))
	m.withheld.WithLabelValues(resource).Set(float64(withheld))
}

// serve says which resources the Manager that runs now serves: the
// per-resource gauges of any other (a resource a config reload removed or
// renamed) are deleted, not left at their last value.
func (m *Metrics) serve(resources []string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serving = make(map[string]bool, len(resources))
	for _, r := range resources {
		m.serving[r] = true
	}
	for r := range m.series {
		if m.serving[r] {
			continue
		}
		m.devices.DeleteLabelValues(r, "healthy")
		m.devices.DeleteLabelValues(r, "unhealthy")
		m.withheld.DeleteLabelValues(r)
		delete(m.series, r)
	}
}

func (m *Metrics) podResourcesFailed() {
	if m != nil {
		m.podresFails.Inc()
	}
}

func (m *Metrics) allocated(resource string) {
	if m != nil {
		m.allocations.WithLabelValues(resource).Inc()
	}
}

func (m *Metrics) reject(resource, reason string) {
	if m != nil {
		m.rejected.WithLabelValues(resource, reason).Inc()
	}
}

func (m *Metrics) handoff(resource, outcome string) {
	if m != nil {
		m.preferred.WithLabelValues(resource, outcome).Inc()
	}
}

func (m *Metrics) recovered() {
	if m != nil {
		m.recoveries.Inc()
	}
}

// HandoffNotHonoured counts a pod the kubelet gave devices of resource
// outside the set the scheduler chose (the publisher counts each pod once).
func (m *Metrics) HandoffNotHonoured(resource string) {
	if m != nil {
		m.missed.WithLabelValues(resource).Inc()
	}
}

// MalformedDevice counts a malformed device ID held under resource that the
// in-use report leaves out (the publisher counts each once while the
// kubelet lists it).
func (m *Metrics) MalformedDevice(resource string) {
	if m != nil {
		m.malformed.WithLabelValues(resource).Inc()
	}
}
