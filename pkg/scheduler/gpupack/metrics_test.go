package gpupack

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/testutil"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/version"
	"github.com/gpupack/gpupack/test/dashboard"
)

func placementCount(t *testing.T, outcome, reason string) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(placements.WithLabelValues(outcome, reason))
	require.NoError(t, err)
	return v
}

// Each placement outcome is counted under its reason: reservations at the
// best link class or below it, nodes Filter rejects for no fit or no
// readable topology, and releases.
func TestPlacementOutcomesByReason(t *testing.T) {
	before := map[[2]string]float64{}
	keys := [][2]string{
		{outcomeReserved, reasonBestSet}, {outcomeReserved, reasonBelowBestSet},
		{outcomeNodeRejected, reasonNoFit}, {outcomeNodeRejected, reasonNoTopology},
		{outcomeUnreserved, reasonReleased},
	}
	count := func() map[[2]string]float64 {
		out := map[[2]string]float64{}
		for _, k := range keys {
			out[k] = placementCount(t, k[0], k[1]) - before[k]
		}
		return out
	}
	// Node "s": DGX-1 with 1,2,4,7 in use; free 0,3,5,6 form no ring better
	// than SYS (6 of the ideal 25 GB/s: below the best set). Node "bad" has
	// an unreadable topology.
	s := fixture.DGX1V100("s")
	bad := gpuNode(t, "bad", fixture.DGX1V100("b"))
	bad.Annotations["gpupack.io/topology"] = "{not json"
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "s", s, ids(s, 1, 2, 4, 7)...), bad})
	before = count()

	// A 4-GPU pod takes 0,3,5,6 below the best set; "bad" is rejected (1).
	node, _, st, state := h.schedule(gpuPod("quad", "nvidia.com/gpu", 4))
	require.Nil(t, st)
	require.Equal(t, "s", node)
	// A 1-GPU pod fits nowhere: "s" is full (no fit), "bad" again (2).
	_, _, st, _ = h.schedule(gpuPod("one", "nvidia.com/gpu", 1))
	require.NotNil(t, st)
	// Releasing the 4-GPU pod, then a 1-GPU pod: a single GPU is always the best set.
	h.fh.RunReservePluginsUnreserve(h.ctx, state, gpuPod("quad", "nvidia.com/gpu", 4), "s")
	_, _, st, _ = h.schedule(gpuPod("one-again", "nvidia.com/gpu", 1))
	require.Nil(t, st)

	require.Equal(t, map[[2]string]float64{
		{outcomeReserved, reasonBestSet}:        1,
		{outcomeReserved, reasonBelowBestSet}:   1,
		{outcomeNodeRejected, reasonNoFit}:      1,
		{outcomeNodeRejected, reasonNoTopology}: 3, // once per pod
		{outcomeUnreserved, reasonReleased}:     1,
	}, count())
}

// The chart's Grafana dashboard only queries scheduler metrics the plugin
// registers (gpupack_* apart from the device plugin's, which its own test
// checks, and the build info).
func TestDashboardUsesRegisteredSchedulerMetrics(t *testing.T) {
	names := map[string]bool{clusterFragName: true}
	histograms := map[string]bool{}
	for _, m := range registered {
		names[m.FQName()] = true
		switch m.(type) {
		case *metrics.Histogram, *metrics.HistogramVec:
			histograms[m.FQName()] = true
		}
	}
	queries, err := dashboard.Queries(dashboard.Path())
	require.NoError(t, err)
	checked := 0
	for _, n := range dashboard.MetricNames(queries, func(n string) bool { return histograms[n] }) {
		if strings.HasPrefix(n, "gpupack_device_plugin_") || n == version.BuildInfoName {
			continue
		}
		checked++
		require.True(t, names[n], "the dashboard queries %s, which the scheduler plugin does not register", n)
	}
	// Fragmentation (2), placement outcomes, set quality, decision latency.
	require.Equal(t, 5, checked)
}

func TestClusterFragmentation(t *testing.T) {
	// Workload: shared 500m only; the nodes' GPUs are not time-shared, so
	// all free capacity is stranded for it: node "a" (2 GPUs, 1 in use) 1,
	// node "b" (2 free) 2, "junk" (unreadable) nothing: 3 GPUs.
	a := fixture.NVSwitch("a", "A100", 2, 12)
	b := fixture.NVSwitch("b", "A100", 2, 12)
	junk := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "junk", Annotations: map[string]string{protocol.TopologyAnnotation: "{"}}}
	h := newHarness(t, pinnedArgs(t, config.TaskTypeWeight{Kind: "shared", Milli: 500, Weight: 1}),
		[]*v1.Node{gpuNode(t, "a", a, a.GPUs[0].UUID), gpuNode(t, "b", b), junk})
	require.Eventually(t, func() bool {
		return h.pl.cache.Fragmentation(h.pl.workload.Distribution()) == 3
	}, 5e9, 1e7)
}

// The placement counter's help text (what /metrics shows an operator) names
// every reason the plugin counts under, so a new reason cannot be left out
// of it (never_fits was).
func TestPlacementHelpNamesEveryReason(t *testing.T) {
	reasons := []string{
		reasonNoTopology, reasonNotServed, reasonNeverFits, reasonNoFit, reasonNoView,
		reasonBestSet, reasonBelowBestSet, reasonReleased,
	}
	outcomes := []string{outcomeNodeRejected, outcomeReserved, outcomeReserveFailed, outcomeUnreserved}
	for _, name := range append(reasons, outcomes...) {
		require.Contains(t, placements.Help, name, "placement_outcomes_total's help")
	}
}
