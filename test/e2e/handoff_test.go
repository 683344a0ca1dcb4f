package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// The handoff across restarts (issue 11, item 3), on the real apiserver with
// the real kubelet device manager and our device-plugin binary. The pods are
// bound here through the Binding subresource with the devices annotation,
// exactly as the scheduler plugin's Bind writes them, so that the sets are
// the test's and the bind order is the test's.

// handoffPod is a pod of no running scheduler asking 2 GPUs.
func handoffPod(name string, hint string) *corev1.Pod {
	p := gpuPod(name, 2, nil)
	p.Spec.SchedulerName = "nobody"
	if hint != "" {
		p.Annotations = map[string]string{"gpupack.io/topology": hint}
	}
	return p
}

// bindWith binds the pod to node with the scheduler's choice ids.
func (e *env) bindWith(name, node string, ids []string) {
	t := e.t
	devs, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{gpuResource: ids},
		Containers: map[string]map[string][]string{"main": {gpuResource: ids}},
	})
	require.NoError(t, err)
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{
			protocol.DevicesAnnotation:   devs,
			protocol.AssumedAtAnnotation: protocol.FormatAssumedAt(time.Now()),
		}},
		Target: corev1.ObjectReference{Kind: "Node", Name: node},
	}
	require.NoError(t, e.client.CoreV1().Pods("default").Bind(context.Background(), b, metav1.CreateOptions{}))
}

// createSpaced creates the pods in order, more than a second apart: the
// apiserver's creation timestamps have whole seconds, and the kubelet's
// order within one second is not defined.
func (e *env) createSpaced(pods ...*corev1.Pod) {
	for i, p := range pods {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond)
		}
		e.createPod(p)
	}
}

func uuids(topo *topology.Node, idx ...int) []string {
	out := make([]string, len(idx))
	for i, g := range idx {
		out[i] = topo.GPUs[g].UUID
	}
	return slices.Sorted(slices.Values(out))
}

// admittedWith waits for the pod's admission and requires these devices.
func (e *env) admittedWith(c *harness.Cluster, name string, want []string) {
	t := e.t
	a, err := c.WaitAdmitted(context.Background(), "default", name, 60*time.Second)
	require.NoError(t, err)
	require.NoError(t, a.Err, "pod %s rejected at admission", name)
	require.Equal(t, want, a.Devices[gpuResource], "pod %s must get its scheduled set", name)
}

// requireNoUnhonoured waits until the in-use report lists n pods, none
// marked as not given its scheduled set.
func (e *env) requireNoUnhonoured(node string, n int) {
	var u *protocol.InUse
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		u, err = harness.InUse(ctx, e.client, node)
		return err == nil && len(u.Pods) == n, nil
	})
	require.NoError(e.t, err, "in-use report of %s: %+v", node, u)
	for _, p := range u.Pods {
		require.Empty(e.t, p.Scheduled, "pod %s marked as not given its scheduled set", p.Name)
	}
}

// Kubelet restart with several pending pods of the same size: the issue's
// "late" (created second, bound first, topology required, {0,3}) and "early"
// (created first, {1,6}) plus two more, bound in the reverse of their
// creation order while the kubelet is down. The restarted kubelet admits
// them by creation time; each must get its own set (before: early got
// late's {0,3}, late the cross-socket {1,6}, and so on down the line). A
// pod bound after the restart is admitted in watch order as usual.
func TestHandoffKubeletRestartAdmitsByCreationTime(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "dgx1", Machine: "dgx-1-v100"})
	topo := e.publishedTopology("dgx1", anyTopology)
	node := c.Node("dgx1")

	// One pod running before the restart keeps its devices.
	e.createPod(handoffPod("running", ""))
	e.bindWith("running", "dgx1", uuids(topo, 4, 7))
	e.admittedWith(c, "running", uuids(topo, 4, 7))

	sets := map[string][]string{
		"early": uuids(topo, 1, 6), // created 1st
		"late":  uuids(topo, 0, 3), // created 2nd, required
		"third": uuids(topo, 2, 5), // created 3rd
	}
	ctx := context.Background()
	require.NoError(t, node.RestartKubelet(ctx, func() error {
		e.createSpaced(handoffPod("early", ""), handoffPod("late", "required"), handoffPod("third", ""))
		// Bound (and delivered to the plugin) in the reverse order.
		for _, name := range []string{"third", "late", "early"} {
			e.bindWith(name, "dgx1", sets[name])
		}
		// The plugin's informer has them before the kubelet is back.
		time.Sleep(time.Second)
		return nil
	}))
	for name, want := range sets {
		e.admittedWith(c, name, want)
	}
	e.admittedWith(c, "running", uuids(topo, 4, 7))
	e.requireNoUnhonoured("dgx1", 4)
}

// Device-plugin restart with pods running and pods pending: the restarted
// plugin's record of allocations starts empty, so the running pods looked
// pending, the next pod got the plugin's own choice and the running pod's
// entry was consumed in its place. The record now comes from the kubelet's
// PodResources API: each new pod gets its own set.
func TestHandoffDevicePluginRestart(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "dgx1", Machine: "dgx-1-v100"})
	topo := e.publishedTopology("dgx1", anyTopology)
	node := c.Node("dgx1")

	running := map[string][]string{"run-a": uuids(topo, 0, 3), "run-b": uuids(topo, 1, 6)}
	e.createSpaced(handoffPod("run-a", ""), handoffPod("run-b", ""))
	for _, name := range []string{"run-a", "run-b"} {
		e.bindWith(name, "dgx1", running[name])
		e.admittedWith(c, name, running[name])
	}

	require.NoError(t, node.StopPlugin())
	// Created (not yet bound) while the plugin is down: pending pods.
	e.createSpaced(handoffPod("new-a", "required"), handoffPod("new-b", ""))
	require.NoError(t, node.StartPlugin(context.Background()))
	require.NoError(t, wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		log := node.PluginLog(1 << 20)
		return strings.Contains(log, "Registered with the kubelet") && strings.Contains(log, "Pod informer synced"), nil
	}), "the restarted plugin never registered and synced:\n%s", node.PluginLog(4096))

	pending := map[string][]string{
		"new-a": uuids(topo, 4, 7), // NVLink pair
		"new-b": uuids(topo, 2, 5), // SYS pair: not what pkg/score would pick
	}
	e.bindWith("new-a", "dgx1", pending["new-a"])
	e.admittedWith(c, "new-a", pending["new-a"])
	e.bindWith("new-b", "dgx1", pending["new-b"])
	e.admittedWith(c, "new-b", pending["new-b"])
	e.requireNoUnhonoured("dgx1", 4)
}
