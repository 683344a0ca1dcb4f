package deviceplugin_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/kubelet/util/sliceutils"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// scheduled is a pod asking len(ids) devices of resource in container
// "main" (as kubelet.allocate admits it) that the "scheduler" annotated with
// its choice.
func scheduled(t testing.TB, name string, at time.Time, resource string, ids ...string) (*v1.Pod, map[string]string) {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{resource: ids}})
	require.NoError(t, err)
	ann := map[string]string{protocol.DevicesAnnotation: s, protocol.AssumedAtAnnotation: protocol.FormatAssumedAt(at)}
	return fixture.MakePod().Named(name).AnnotationMap(ann).GPUs(resource, int64(len(ids))).Obj(), ann
}

func sortedIDs(ids []string) []string { return slices.Sorted(slices.Values(ids)) }

func TestHandoffHonoursTheSchedulersChoice(t *testing.T) {
	pods := &fixture.PodLister{}
	reg := prometheus.NewRegistry()
	metrics := deviceplugin.NewMetrics(reg)
	k, p := setup(t, pluginOpts{machine: "dgx-1-v100", handoff: deviceplugin.NewHandoff(pods), metrics: metrics})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	node := p.mgr.Node()

	// Two sets pkg/score would not pick itself: GPUs 1+6 and 2+5 are SYS pairs.
	setA := sortedIDs([]string{uuidOf(p, 1), uuidOf(p, 6)})
	setB := sortedIDs([]string{uuidOf(p, 2), uuidOf(p, 5)})
	now := time.Now()
	podA, annA := scheduled(t, "a", now, "nvidia.com/gpu", setA...)
	podB, annB := scheduled(t, "b", now.Add(time.Second), "nvidia.com/gpu", setB...)
	pods.Add(podA)
	pods.Add(podB)
	// A malformed choice on another pod is skipped, never fatal.
	pods.Add(fixture.MakePod().Named("bad").
		Annotations(protocol.DevicesAnnotation, `{"version":"v1","resources":{"nvidia.com/gpu":[""]}}`).Obj())
	pods.Add(fixture.MakePod().Named("worse").Annotations(protocol.DevicesAnnotation, `{not json`).Obj())

	ids, _, err := k.allocate("a", "nvidia.com/gpu", 2, annA)
	require.NoError(t, err)
	require.Equal(t, setA, sortedIDs(ids), "pod a gets the scheduler's set for a")
	ids, _, err = k.allocate("b", "nvidia.com/gpu", 2, annB)
	require.NoError(t, err)
	require.Equal(t, setB, sortedIDs(ids), "pod b gets the scheduler's set for b")

	// No annotation: the plugin's own choice (pkg/score) is an NVLink pair.
	ids, _, err = k.allocate("own", "nvidia.com/gpu", 2, nil)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	i, j := gpuIndex(node, ids[0]), gpuIndex(node, ids[1])
	require.NotContains(t, []int{1, 2, 5, 6}, i, "GPUs of a and b are taken")
	require.NotContains(t, []int{1, 2, 5, 6}, j, "GPUs of a and b are taken")
	require.Equal(t, topology.ClassNVLink, node.Links[i][j].Class, "GPUs %d and %d should be an NVLink pair", i, j)

	// Metrics: 2 scheduler choices honoured, 1 own choice, 3 allocations.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gpupack_device_plugin_preferred_allocations_total GetPreferredAllocation answers, by resource and handoff outcome.
# TYPE gpupack_device_plugin_preferred_allocations_total counter
gpupack_device_plugin_preferred_allocations_total{outcome="own",resource="nvidia.com/gpu"} 1
gpupack_device_plugin_preferred_allocations_total{outcome="scheduler",resource="nvidia.com/gpu"} 2
# HELP gpupack_device_plugin_allocations_total Successful container allocations, by resource.
# TYPE gpupack_device_plugin_allocations_total counter
gpupack_device_plugin_allocations_total{resource="nvidia.com/gpu"} 3
`), "gpupack_device_plugin_preferred_allocations_total", "gpupack_device_plugin_allocations_total"))
}

func TestOwnChoiceIsNVLinkPairOnDGX1(t *testing.T) {
	k, p := setup(t, pluginOpts{machine: "dgx-1-v100", handoff: deviceplugin.NewHandoff(&fixture.PodLister{})})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	node := p.mgr.Node()
	ids, _, err := k.allocate("pair", "nvidia.com/gpu", 2, nil)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	i, j := gpuIndex(node, ids[0]), gpuIndex(node, ids[1])
	require.Equal(t, topology.ClassNVLink, node.Links[i][j].Class, "GPUs %d and %d should be an NVLink pair", i, j)
}

func gpuIndex(n *topology.Node, uuid string) int {
	for _, g := range n.GPUs {
		if g.UUID == uuid {
			return g.Index
		}
	}
	return -1
}

// bound is a pod on the node asking 2 GPUs in container "main", created at
// sec, with the scheduler's choice ids and an optional topology hint.
func bound(t *testing.T, name string, sec int64, hint string, ids ...string) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{"nvidia.com/gpu": ids},
		Containers: map[string]map[string][]string{"main": {"nvidia.com/gpu": ids}},
	})
	require.NoError(t, err)
	ann := map[string]string{protocol.DevicesAnnotation: s, protocol.AssumedAtAnnotation: protocol.FormatAssumedAt(time.Now())}
	if hint != "" {
		ann["gpupack.io/topology"] = hint
	}
	return fixture.MakePod().Named(name).AnnotationMap(ann).Created(time.Unix(sec, 0)).Node("node").
		GPUs("nvidia.com/gpu", 2).Obj()
}

// admitBatch admits pods as a restarted kubelet admits its first batch:
// sorted by creation time (kubelet.HandlePodAdditions), then all sources
// seen. It returns each pod's nvidia.com/gpu devices by pod name.
func admitBatch(t *testing.T, ctx context.Context, hk *harness.Kubelet, pods ...*v1.Pod) map[string][]string {
	t.Helper()
	batch := slices.Clone(pods)
	sort.Sort(sliceutils.PodsByCreationTime(batch))
	got := map[string][]string{}
	for _, pod := range batch {
		require.NoError(t, hk.Admit(ctx, pod))
		got[pod.Name] = hk.Devices(pod)["nvidia.com/gpu"]
	}
	hk.SourcesSeen()
	return got
}

// The input with the real kubelet device manager in-process:
// dgx-1-v100, "late" (created second, delivered first, required, {0,3})
// and "early" (created first, {1,6}) are bound while the kubelet is down;
// the restarted kubelet admits its first list sorted by creation time
// (kubelet.HandlePodAdditions). Each gets its own set; before, early got
// {0,3} and late the cross-socket {1,6}.
func TestHandoffKubeletRestartInProcess(t *testing.T) {
	dir := socketDir(t)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(1)))
	hk, err := harness.StartKubelet(klog.NewContext(context.Background(), logger), dir)
	require.NoError(t, err)
	k := &kubelet{t: t, Kubelet: hk}
	pods := &fixture.PodLister{}
	h := deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(deviceplugin.NewPodResources(servePodResources(t, k))))
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", handoff: h})
	t.Cleanup(hk.Stop) // before the plugin stops (cleanups run last first)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	late := bound(t, "late", 20, "required", uuidOf(p, 0), uuidOf(p, 3))
	early := bound(t, "early", 10, "", uuidOf(p, 1), uuidOf(p, 6))
	require.NoError(t, hk.Restart(func() error {
		for _, pod := range []*v1.Pod{late, early} { // the informer's (bind) order
			pods.Add(pod)
			h.Observe(pod)
		}
		return nil
	}))
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	got := admitBatch(t, klog.NewContext(context.Background(), logger), hk, late, early)
	require.Equal(t, map[string][]string{
		"early": sortedIDs([]string{uuidOf(p, 1), uuidOf(p, 6)}),
		"late":  sortedIDs([]string{uuidOf(p, 0), uuidOf(p, 3)}),
	}, got)
}

// A kubelet restart with a running pod and a pending pod created in the
// same second, the pending one sorted first (the kubelet's order within a
// second is not defined): the running pod keeps its checkpointed devices
// and the pending pod gets its own set, not the running pod's devices. The
// kubelet's device manager keeps checkpointed pods until its pod sources
// are all seen, which it marks after admitting the first batch
// (harness.Kubelet.SourcesSeen); before the harness modelled that, the
// pending pod's admission freed the running pod's devices and the running
// pod was allocated anew, taking the next pod's set.
func TestKubeletRestartKeepsRunningPodsDevicesThroughTheBatch(t *testing.T) {
	dir := socketDir(t)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(1)))
	ctx := klog.NewContext(context.Background(), logger)
	hk, err := harness.StartKubelet(ctx, dir)
	require.NoError(t, err)
	k := &kubelet{t: t, Kubelet: hk}
	pods := &fixture.PodLister{}
	h := deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(deviceplugin.NewPodResources(servePodResources(t, k))))
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", handoff: h})
	t.Cleanup(hk.Stop)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	running := bound(t, "running", 10, "", uuidOf(p, 4), uuidOf(p, 7))
	pods.Add(running)
	h.Observe(running)
	require.NoError(t, hk.Admit(ctx, running))
	want := sortedIDs([]string{uuidOf(p, 4), uuidOf(p, 7)})
	require.Equal(t, want, hk.Devices(running)["nvidia.com/gpu"])

	pending := bound(t, "pending", 10, "", uuidOf(p, 1), uuidOf(p, 6))
	require.NoError(t, hk.Restart(func() error {
		pods.Add(pending)
		h.Observe(pending)
		return nil
	}))
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	for _, pod := range []*v1.Pod{pending, running} { // same second: pending first
		require.NoError(t, hk.Admit(ctx, pod))
	}
	hk.SourcesSeen()
	require.Equal(t, want, hk.Devices(running)["nvidia.com/gpu"], "the running pod keeps its devices")
	require.Equal(t, sortedIDs([]string{uuidOf(p, 1), uuidOf(p, 6)}), hk.Devices(pending)["nvidia.com/gpu"])
}

// The real kubelet (v1.37 devicesToAllocate) gives an app container devices
// from the pool its pod's regular init container left, choosing them itself
// without GetPreferredAllocation when the pool holds enough. That Allocate
// is marked against the init pod (the devices' last holder), not against
// "first", the pod ahead in the handoff's queue, which then still gets its
// scheduler's set. (Before, 3 times in 4 the kubelet's pick missed the app
// container's set and "first"'s entry was marked in its place.)
func TestHandoffReusedInitDevicesWithTheKubelet(t *testing.T) {
	pods := &fixture.PodLister{}
	reg := prometheus.NewRegistry()
	k, p := setup(t, pluginOpts{machine: "dgx-1-v100", handoff: deviceplugin.NewHandoff(pods), metrics: deviceplugin.NewMetrics(reg)})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	const res = "nvidia.com/gpu"
	now := time.Now()
	first, annFirst := scheduled(t, "first", now, res, uuidOf(p, 7))
	pool := []string{uuidOf(p, 0), uuidOf(p, 1), uuidOf(p, 2), uuidOf(p, 3)}
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{res: pool},
		Containers: map[string]map[string][]string{"init": {res: pool}, "main": {res: pool[:1]}},
	})
	require.NoError(t, err)
	withInit := fixture.MakePod().Named("with-init").
		Annotations(protocol.DevicesAnnotation, s, protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(now.Add(time.Second))).
		InitContainer("init").Limit(res, 4).Container("main").Limit(res, 1).Obj()
	pods.Add(first)
	pods.Add(withInit)

	// The kubelet admits with-init before first.
	ctx := klog.NewContext(context.Background(), ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2))))
	require.NoError(t, k.Admit(ctx, withInit))
	require.Equal(t, sortedIDs(pool), k.Devices(withInit)[res], "main reuses one of init's 4")
	ids, _, err := k.allocate("first", res, 1, annFirst)
	require.NoError(t, err)
	require.Equal(t, []string{uuidOf(p, 7)}, ids, "first gets its scheduler's set")
	// GetPreferredAllocation for init and for first only: main was served
	// from the pool unasked.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gpupack_device_plugin_preferred_allocations_total GetPreferredAllocation answers, by resource and handoff outcome.
# TYPE gpupack_device_plugin_preferred_allocations_total counter
gpupack_device_plugin_preferred_allocations_total{outcome="scheduler",resource="nvidia.com/gpu"} 2
`), "gpupack_device_plugin_preferred_allocations_total"))
}
