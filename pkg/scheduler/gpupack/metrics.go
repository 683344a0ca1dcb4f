package gpupack

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/gpupack/gpupack/pkg/score"
)

var (
	chosenQuality = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Subsystem:      "gpupack",
		Name:           "chosen_set_quality_ratio",
		Help:           "Link quality of the chosen multi-GPU sets over the best the node's shape offers (1 = best).",
		Buckets:        []float64{0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1},
		StabilityLevel: metrics.ALPHA,
	}, []string{"size"})
	fragDelta = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem:      "gpupack",
		Name:           "fragmentation_delta_gpus",
		Help:           "Change of the chosen node's fragmentation (GPUs of expected stranded capacity) per reserved request.",
		Buckets:        []float64{-4, -2, -1, -0.5, -0.1, 0, 0.1, 0.5, 1, 2, 4},
		StabilityLevel: metrics.ALPHA,
	})
	decision = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem:      "gpupack",
		Name:           "decision_duration_seconds",
		Help:           "Time from PreFilter to Reserve for GPU pods.",
		Buckets:        metrics.ExponentialBuckets(0.0001, 2, 16),
		StabilityLevel: metrics.ALPHA,
	})
	placements = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: "gpupack",
		Name:      "placement_outcomes_total",
		Help: "GPU placement outcomes by reason: node_rejected (Filter: no_topology, not_served, never_fits, no_fit), " +
			"reserved (best_set: the best link class the node's shape offers for the size; below_best_set), " +
			"reserve_failed (no_view, no_fit) and unreserved (released: a later plugin or the bind failed).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"outcome", "reason"})
	clusterFragDesc = metrics.NewDesc(clusterFragName,
		"Sum over the GPU nodes of their fragmentation (expected GPUs of free capacity the current workload cannot use), computed at scrape time.",
		nil, nil, metrics.ALPHA, "")
	// current is the plugin instance the cluster gauge reports on (the
	// latest built; a scheduler normally runs one GPUPack profile).
	current      atomic.Pointer[GPUPack]
	registerOnce sync.Once
)

// clusterFragName is the cluster fragmentation gauge's name.
const clusterFragName = "gpupack_cluster_fragmentation_gpus"

// registered are the plugin's metrics besides the cluster fragmentation
// gauge (a collector).
var registered = []metrics.Registerable{chosenQuality, fragDelta, decision, placements}

// registerMetrics registers the plugin's metrics with the scheduler's
// registry (served on its /metrics).
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(registered...)
		legacyregistry.CustomMustRegister(&fragCollector{})
	})
}

func observeChoice(r score.Request, c score.Choice) {
	fragDelta.Observe(c.FragDelta)
	if r.Kind == score.KindWhole && r.Count > 1 {
		chosenQuality.WithLabelValues(sizeLabel(r.Count)).Observe(c.QualityRatio())
	}
}

func sizeLabel(n int) string {
	switch {
	case n <= 2:
		return "2"
	case n <= 4:
		return "4"
	case n <= 8:
		return "8"
	}
	return "16"
}

func observeDecision(d time.Duration) { decision.Observe(d.Seconds()) }

// Placement outcomes and reasons, the labels of
// gpupack_placement_outcomes_total.
const (
	outcomeNodeRejected  = "node_rejected"
	outcomeReserved      = "reserved"
	outcomeReserveFailed = "reserve_failed"
	outcomeUnreserved    = "unreserved"

	reasonNoTopology   = "no_topology"
	reasonNotServed    = "not_served"
	reasonNoFit        = "no_fit"
	reasonNeverFits    = "never_fits"
	reasonNoView       = "no_view"
	reasonTooLarge     = "devices_too_large"
	reasonBestSet      = "best_set"
	reasonBelowBestSet = "below_best_set"
	reasonReleased     = "released"
)

func observePlacement(outcome, reason string) { placements.WithLabelValues(outcome, reason).Inc() }

// reservedReason says whether the reserved sets reach the best link class
// the node's shape offers (quality ratio 1).
func reservedReason(ratio float64) string {
	if ratio >= 1 {
		return reasonBestSet
	}
	return reasonBelowBestSet
}

// fragCollector reports the cluster's fragmentation at scrape time.
type fragCollector struct{ metrics.BaseStableCollector }

// DescribeWithStability implements metrics.StableCollector.
func (*fragCollector) DescribeWithStability(ch chan<- *metrics.Desc) { ch <- clusterFragDesc }

// CollectWithStability implements metrics.StableCollector.
func (*fragCollector) CollectWithStability(ch chan<- metrics.Metric) {
	if pl := current.Load(); pl != nil {
		ch <- metrics.NewLazyConstMetric(clusterFragDesc, metrics.GaugeValue, pl.cache.Fragmentation(pl.workload.Distribution()))
	}
}
