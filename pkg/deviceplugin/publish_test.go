package deviceplugin_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
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
	pods := &fixture.PodLister{}
	pub := nodepublish.New(nodepublish.Options{
		Client: client, NodeName: nodeName, PodResources: deviceplugin.NewPodResources(prSocket), Pods: pods,
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
	require.Eventually(t, func() bool { return node().Annotations[protocol.TopologyAnnotation] != "" }, 10*time.Second, 10*time.Millisecond)
	n := node()
	topo, err := protocol.DecodeTopology(n.Annotations[protocol.TopologyAnnotation])
	require.NoError(t, err)
	require.Len(t, topo.GPUs, 8)
	// GFD's labels of a DGX-1V (8 V100-SXM2-16GB, driver 535.183.01,
	// CUDA 12.2), dated now, and gpupack's NVLink kind.
	ts, err := strconv.ParseInt(n.Labels["nvidia.com/gfd.timestamp"], 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Unix(), ts, 60)
	delete(n.Labels, "nvidia.com/gfd.timestamp")
	require.Equal(t, map[string]string{
		"nvidia.com/cuda.driver.major": "535", "nvidia.com/cuda.driver.minor": "183", "nvidia.com/cuda.driver.rev": "01",
		"nvidia.com/cuda.driver-version.major": "535", "nvidia.com/cuda.driver-version.minor": "183",
		"nvidia.com/cuda.driver-version.revision": "01", "nvidia.com/cuda.driver-version.full": "535.183.01",
		"nvidia.com/cuda.runtime.major": "12", "nvidia.com/cuda.runtime.minor": "2",
		"nvidia.com/cuda.runtime-version.major": "12", "nvidia.com/cuda.runtime-version.minor": "2", "nvidia.com/cuda.runtime-version.full": "12.2",
		"nvidia.com/gpu.machine": "DGX-1-with-V100-16",
		protocol.LabelCount:      "8",
		protocol.LabelProduct:    "Tesla-V100-SXM2-16GB",
		protocol.LabelMemory:     "16384",
		"nvidia.com/gpu.family":  "volta", "nvidia.com/gpu.compute.major": "7", "nvidia.com/gpu.compute.minor": "0",
		"nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none", "nvidia.com/gpu.mode": "compute",
		protocol.LabelMIGCapable: "false",
		"nvidia.com/mps.capable": "false",
		protocol.LabelNVLink:     "mesh", // hybrid cube-mesh: each GPU has 4 NVLink peers
	}, n.Labels)

	// An allocation shows in the in-use report, read from the kubelet's
	// own PodResources server, with the pod's UID from the informer.
	ids, _, err := k.allocate("train", "nvidia.com/gpu", 2, nil)
	require.NoError(t, err)
	pods.Add(fixture.MakePod().Named("train").Obj())
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
		topo, err := protocol.DecodeTopology(node().Annotations[protocol.TopologyAnnotation])
		return err == nil && !topo.GPUs[4].Healthy && topo.GPUs[3].Healthy
	}, 10*time.Second, 10*time.Millisecond)
}

// With publish.inUse false nothing else wakes the publisher: a node patch
// that failed at start (apiserver unreachable) must be retried with backoff
// until it lands. Before, the node stayed unpublished for the life of the
// process.
func TestPublishRetriesAFailedNodePatch(t *testing.T) {
	const nodeName = "gpu-node-1"
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	var failures atomic.Int32
	client.PrependReactor("patch", "nodes", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failures.Add(1) <= 3 {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	dir := socketDir(t)
	k := startKubelet(t, dir)
	pub := nodepublish.New(nodepublish.Options{
		Client: client, NodeName: nodeName, Topology: true, Labels: true, InUse: false,
		Retry: wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 100, Cap: 200 * time.Millisecond},
	})
	startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", publisher: pub, kubelet: k})
	require.Eventually(t, func() bool {
		n, err := client.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
		return err == nil && n.Annotations[protocol.TopologyAnnotation] != "" && n.Labels[protocol.LabelCount] == "8"
	}, 20*time.Second, 10*time.Millisecond)
	// 3 refused patches, then the one that landed (one patch carries both
	// the annotation and the labels).
	require.Equal(t, int32(4), failures.Load())
}

// A pod the kubelet gave devices outside the set the scheduler chose for it
// is said so three ways, once: an event on the pod, "scheduled" in the
// in-use report, and the not-honoured counter. A pod that got its set, or a
// pod with no choice, is not.
func TestPublishReportsAnUnhonouredSet(t *testing.T) {
	const nodeName = "gpu-node-1"
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	dir := socketDir(t)
	k := startKubelet(t, dir)
	pods := &fixture.PodLister{}
	recorder := record.NewFakeRecorder(10)
	reg := prometheus.NewRegistry()
	metrics := deviceplugin.NewMetrics(reg)
	pub := nodepublish.New(nodepublish.Options{
		Client: client, NodeName: nodeName, PodResources: deviceplugin.NewPodResources(servePodResources(t, k)), Pods: pods,
		InUse: true, InUseInterval: time.Hour, Recorder: recorder, Metrics: metrics,
	})
	// No handoff: every pod gets the plugin's own choice.
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", publisher: pub, kubelet: k, metrics: metrics})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	// "missed": the scheduler chose the SYS pair {1,6}; pkg/score's own
	// choice is an NVLink pair, so it cannot be {1,6}.
	missedSet := sortedIDs([]string{uuidOf(p, 1), uuidOf(p, 6)})
	missed, annMissed := scheduled(t, "missed", time.Now(), "nvidia.com/gpu", missedSet...)
	got, err := func() ([]string, error) {
		ids, _, err := k.allocate("missed", "nvidia.com/gpu", 2, annMissed)
		return ids, err
	}()
	require.NoError(t, err)
	require.NotEqual(t, missedSet, sortedIDs(got))
	pods.Add(missed)
	// "other": no choice (another scheduler's pod).
	_, _, err = k.allocate("other", "nvidia.com/gpu", 1, nil)
	require.NoError(t, err)
	pods.Add(fixture.MakePod().Named("other").Obj())

	node := func() *v1.Node {
		n, err := client.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
		require.NoError(t, err)
		return n
	}
	var u *protocol.InUse
	require.Eventually(t, func() bool {
		pub.Kick()
		u, err = protocol.DecodeInUse(node().Annotations[protocol.InUseAnnotation])
		return err == nil && len(u.Pods) == 2 && u.Pods[0].UID != "" && u.Pods[1].UID != ""
	}, 10*time.Second, 20*time.Millisecond)
	byName := map[string]protocol.PodDevices{}
	for _, pd := range u.Pods {
		byName[pd.Name] = pd
	}
	require.Equal(t, sortedIDs(got), byName["missed"].Devices)
	require.Equal(t, missedSet, byName["missed"].Scheduled, "the in-use report says what the scheduler chose")
	require.Empty(t, byName["other"].Scheduled, "no choice, nothing to honour")

	select {
	case ev := <-recorder.Events:
		require.Contains(t, ev, "Warning "+nodepublish.ReasonScheduledSetNotHonoured)
		require.Contains(t, ev, uuidOf(p, 1))
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the pod")
	}
	// More refreshes: still one event and one count for the pod.
	for range 3 {
		_, err := pub.InUse(context.Background(), []string{"nvidia.com/gpu"}, nil)
		require.NoError(t, err)
	}
	select {
	case ev := <-recorder.Events:
		t.Fatalf("a second event: %s", ev)
	default:
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gpupack_device_plugin_handoff_not_honoured_total Pods that got devices outside the set the scheduler chose for them, by resource (counted once per pod).
# TYPE gpupack_device_plugin_handoff_not_honoured_total counter
gpupack_device_plugin_handoff_not_honoured_total{resource="nvidia.com/gpu"} 1
`), "gpupack_device_plugin_handoff_not_honoured_total"))
}
