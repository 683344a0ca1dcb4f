package manifests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/cluster"
)

// a100 is a one-GPU A100 node for GFD's labels, MIG per strategy.
func a100(strategy string) *gfd.Node {
	g := gfd.GPU{Name: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, ComputeCapability: "8.0", MIGCapable: true, MIGEnabled: strategy != "none", PCIClass: 0x030200}
	n := &gfd.Node{DriverVersion: "550.54.15", CUDADriverVersion: "12.4", GPUs: []gfd.GPU{g}, MachineType: "DGXA100 920-23687-2530-000",
		MIGStrategy: strategy, Sharing: gfd.Sharing{Strategy: gfd.SharingNone}}
	if strategy != "none" {
		n.MIG = []gfd.MIGDevice{{Parent: 0, Profile: "1g.10gb+me", MemoryMiB: 9856, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, JPEGs: 1, OFAs: 1, GISlices: 1, CISlices: 1}}
	}
	return n
}

// checkPublisher runs the device plugin's publisher as its own identity
// (plugin, bound to node-a) against the apiserver with the node policy
// loaded: GFD's labels, the mixed strategy's per-profile keys included,
// pass the policy; a label the plugin no longer publishes is removed by
// its server-side apply while labels of others stay; the apply cannot
// create a Node that is gone nor touch another node.
func checkPublisher(t *testing.T, cp *cluster.ControlPlane, plugin, admin kubernetes.Interface, namespace string) {
	t.Helper()
	ctx := context.Background()
	// Others' keys on the node: mig-manager's desired config.
	_, err := admin.CoreV1().Nodes().Patch(ctx, "node-a", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"nvidia.com/mig.config":"all-1g.10gb"}}}`), metav1.PatchOptions{FieldManager: "mig-manager"})
	require.NoError(t, err)
	// An earlier gpupack's merge patch (same field manager, an Update).
	_, err = plugin.CoreV1().Nodes().Patch(ctx, "node-a", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"nvidia.com/gpu.clique":"c.1","nvidia.com/gpu.count":"1"},"annotations":{"gpupack.io/topology":"old"}}}`),
		metav1.PatchOptions{FieldManager: nodepublish.FieldManager})
	require.NoError(t, err)
	topo := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}}, Links: [][]topology.Link{{{}}}}
	pub := nodepublish.New(nodepublish.Options{Client: plugin, NodeName: "node-a", Topology: true, Labels: true,
		Clock: testingclock.NewFakeClock(time.Unix(1764500000, 0))})
	node := func() *corev1.Node {
		n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		require.NoError(t, err)
		return n
	}

	require.NoError(t, pub.PublishNode(ctx, topo, a100("mixed")))
	n := node()
	require.NotContains(t, n.Labels, "nvidia.com/gpu.clique", "the earlier gpupack's label, not written now")
	require.Equal(t, "gpu", n.Labels["type"])
	require.Equal(t, "1", n.Labels["nvidia.com/mig-1g.10gb.me.count"])
	require.Equal(t, "1", n.Labels["nvidia.com/mig-1g.10gb.me.engines.ofa"])
	require.Equal(t, "mixed", n.Labels["nvidia.com/mig.strategy"])
	require.Equal(t, "DGXA100-920-23687-2530-000", n.Labels["nvidia.com/gpu.machine"])
	require.Contains(t, n.Annotations, protocol.TopologyAnnotation)
	gfdKeys := 0
	for k := range n.Labels {
		if gfd.IsLabel(k) {
			gfdKeys++
		}
	}
	require.Greater(t, gfdKeys, 30)

	// MIG off: the per-profile labels and mig.strategy go; others' stay.
	require.NoError(t, pub.PublishNode(ctx, topo, a100("none")))
	n = node()
	for k := range n.Labels {
		require.False(t, strings.HasPrefix(k, "nvidia.com/mig-") || k == "nvidia.com/mig.strategy", "stale %s", k)
	}
	require.Equal(t, "all-1g.10gb", n.Labels["nvidia.com/mig.config"])
	require.Equal(t, "gpu", n.Labels["type"])

	// Labels off: every label of gpupack's is gone, gpupack.io/nvlink too:
	// checkNodePolicy's merge patch set it to "mesh", and the forced apply
	// of "none" took it from that manager.
	pub.Reconfigure(nodepublish.Settings{Topology: true})
	require.NoError(t, pub.PublishNode(ctx, topo, a100("none")))
	n = node()
	require.Equal(t, map[string]string{"type": "gpu", "nvidia.com/mig.config": "all-1g.10gb"}, n.Labels)
	require.Contains(t, n.Annotations, protocol.TopologyAnnotation)

	// The policy still holds for applies: not others' keys, not another node.
	_, err = plugin.CoreV1().Nodes().Apply(ctx, corev1ac.Node("node-a").WithLabels(map[string]string{"nvidia.com/mig.config": "all-disabled"}),
		metav1.ApplyOptions{FieldManager: nodepublish.FieldManager, Force: true})
	require.True(t, denied(err), "mig-manager's key: %v", err)
	other := nodepublish.New(nodepublish.Options{Client: plugin, NodeName: "node-b", Labels: true})
	require.True(t, denied(other.PublishNode(ctx, topo, a100("none"))), "node-b is not the plugin's node")
	// A Node that is gone is not made again: the plugin may not create.
	gone := devicePluginClient(t, cp, namespace, "node-z")
	err = nodepublish.New(nodepublish.Options{Client: gone, NodeName: "node-z", Labels: true}).PublishNode(ctx, topo, a100("none"))
	require.True(t, apierrors.IsForbidden(err), "%v", err)
	_, err = admin.CoreV1().Nodes().Get(ctx, "node-z", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "%v", err)
}

// The node policy's keys are gpupack's and GFD's, as pkg/gfd lists them.
func TestNodePolicyAllowsGFDKeys(t *testing.T) {
	for name, objs := range map[string][]*unstructured.Unstructured{"manifests": renderManifests(t), "chart": renderChart(t, "")} {
		vap := find(objs, "ValidatingAdmissionPolicy", "gpupack-device-plugin-own-node")
		require.NotNil(t, vap, name)
		vars := map[string]string{}
		list, _, err := unstructured.NestedSlice(vap.Object, "spec", "variables")
		require.NoError(t, err)
		for _, v := range list {
			m := v.(map[string]any)
			vars[m["name"].(string)] = m["expression"].(string)
		}
		var ours []string
		require.NoError(t, yaml.Unmarshal([]byte(vars["ours"]), &ours), name)
		want := append([]string{protocol.TopologyAnnotation, protocol.InUseAnnotation, protocol.LabelNVLink}, gfd.FixedKeys()...)
		require.ElementsMatch(t, want, ours, name)
		// A CEL string literal: '\\' is one '\'.
		cel := strings.TrimSpace(vars["migKey"])
		require.True(t, strings.HasPrefix(cel, "'") && strings.HasSuffix(cel, "'"), cel)
		require.Equal(t, gfd.MIGKeyPattern.String(), strings.ReplaceAll(cel[1:len(cel)-1], `\\`, `\`), name)
	}
}
