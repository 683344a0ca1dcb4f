package gpupack

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// replicaNode is a 4-GPU PCIe node whose GPUs are time-shared replicas
// GPUs ways, served under name with policy (as the device plugin publishes
// NVIDIA's renameByDefault: false).
func replicaNode(prefix, name string, replicas int, policy string, mods ...func(*topology.Resource)) *topology.Node {
	n := fixture.Shared(fixture.PCIe(prefix, "Tesla-T4", 4), replicas)
	r := topology.Resource{Name: name, Kind: topology.KindReplica, Replicas: replicas, Policy: policy}
	for _, m := range mods {
		m(&r)
	}
	n.Resources = []topology.Resource{r}
	return n
}

// gpusOf returns the GPU indexes of replica IDs on n, sorted, and fails
// on an ID that is not one of n's replica IDs.
func gpusOf(t *testing.T, n *topology.Node, ids []string) []int {
	t.Helper()
	var out []int
	for _, id := range ids {
		uuid, k, err := deviceid.Split(id)
		require.NoError(t, err, "%q is not a replica ID", id)
		require.GreaterOrEqual(t, k, 0, "%q is not a replica ID", id)
		set, unknown := n.SetOfUUIDs([]string{uuid})
		require.Empty(t, unknown, id)
		i := set.Indexes()[0]
		require.Less(t, k, n.GPUs[i].Replicas, id)
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// Issue 12 item 1: pcie-4gpu-2socket with sharing.timeSlicing
// {renameByDefault: false, resources: [{name: nvidia.com/gpu, replicas: 4}]}
// serves 4 x 4 = 16 replicas under nvidia.com/gpu. 16 pods asking
// nvidia.com/gpu: 1 all fit, each with one replica ID the node serves, no
// ID twice (before: 4 placed with bare GPU UUIDs, 12 Unschedulable). The
// 17th does not fit.
func TestNVIDIADefaultNamingPlacesReplicas(t *testing.T) {
	n := replicaNode("ts", "nvidia.com/gpu", 4, topology.PolicyPacked)
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "ts", n)})
	var all []string
	perGPU := map[int]int{}
	for i := range 16 {
		node, got, st, _ := h.schedule(gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", 1))
		require.Nil(t, st, "pod %d", i)
		require.Equal(t, "ts", node)
		require.Len(t, got, 1, "pod %d: one replica", i)
		for _, g := range gpusOf(t, n, got) {
			perGPU[g]++
		}
		all = append(all, got...)
	}
	var want []string
	for _, g := range n.GPUs {
		for k := range 4 {
			want = append(want, deviceid.ReplicaID(g.UUID, k))
		}
	}
	require.ElementsMatch(t, want, all, "every one of the 16 replica IDs once")
	require.Equal(t, map[int]int{0: 4, 1: 4, 2: 4, 3: 4}, perGPU)
	_, _, st, _ := h.schedule(gpuPod("p16", "nvidia.com/gpu", 1))
	require.NotNil(t, st)
	require.Equal(t, fwk.Unschedulable, st.Code())
}

// The replica policy is the node's (issue 12 item 1, same kind): a node
// configured spread puts a 2-replica request on 2 GPUs although the
// scheduler's args say packed; a pod's gpupack.io/replica-policy wins over
// the node's.
func TestReplicaPolicyIsTheNodes(t *testing.T) {
	tests := []struct {
		name       string
		nodePolicy string
		args       string // the args' replicaPolicy
		pod        string // the pod's annotation ("" none)
		wantGPUs   int    // distinct GPUs of the 2 replicas
	}{
		{"node spread beats args packed", topology.PolicySpread, "packed", "", 2},
		{"node packed beats args spread", topology.PolicyPacked, "spread", "", 1},
		{"pod packed on a spread node", topology.PolicySpread, "packed", "packed", 1},
		{"pod spread on a packed node", topology.PolicyPacked, "packed", "spread", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := replicaNode("rp", "nvidia.com/gpu", 4, tt.nodePolicy)
			args := defaultArgs()
			args.ReplicaPolicy = config.ReplicaPolicy(tt.args)
			h := newHarness(t, args, []*v1.Node{gpuNode(t, "rp", n)})
			var ann []string
			if tt.pod != "" {
				ann = []string{protocol.ReplicaPolicyAnnotation, tt.pod}
			}
			_, got, st, _ := h.schedule(gpuPod("two", "nvidia.com/gpu", 2, ann...))
			require.Nil(t, st)
			require.Len(t, got, 2)
			require.Len(t, slices.Compact(gpusOf(t, n, got)), tt.wantGPUs)
		})
	}
}

// A resource's kind is the node's, whatever the args' names say: the same
// name is whole GPUs on one node and replicas on another; a renamed
// resource no arg names is placed; a name the node does not serve, a
// request its plugin refuses, and replicas of MIG devices are rejected
// with the reason (no ID the node does not serve is ever chosen).
func TestResourceKindIsTheNodes(t *testing.T) {
	whole := fixture.PCIe("w", "Tesla-T4", 4)
	whole.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindGPU}}
	t.Run("whole here, replicas there", func(t *testing.T) {
		shared := replicaNode("s", "nvidia.com/gpu", 4, topology.PolicyPacked)
		h := newHarness(t, nil, []*v1.Node{gpuNode(t, "whole", whole), gpuNode(t, "shared", shared)})
		for i := range 8 {
			node, got, st, _ := h.schedule(gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", 1))
			require.Nil(t, st)
			require.Len(t, got, 1)
			if node == "whole" {
				_, unknown := whole.SetOfUUIDs(got)
				require.Empty(t, unknown, "a bare GPU UUID of the whole node")
			} else {
				gpusOf(t, shared, got)
			}
		}
	})
	t.Run("renamed resource unknown to the args", func(t *testing.T) {
		n := replicaNode("r", "example.com/t4-shared", 2, topology.PolicyPacked)
		h := newHarness(t, nil, []*v1.Node{gpuNode(t, "r", n)})
		_, got, st, _ := h.schedule(gpuPod("p", "example.com/t4-shared", 1))
		require.Nil(t, st)
		require.Len(t, gpusOf(t, n, got), 1)
	})
	t.Run("MIG single strategy under nvidia.com/gpu", func(t *testing.T) {
		n := fixture.WithMIG(fixture.PCIe("m", "A100", 1), 0, 1, "1g.5gb", "1g.5gb")
		n.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindMIG, Profile: "1g.5gb"}}
		h := newHarness(t, nil, []*v1.Node{gpuNode(t, "m", n)})
		_, got, st, _ := h.schedule(gpuPod("p", "nvidia.com/gpu", 1))
		require.Nil(t, st)
		require.Len(t, got, 1)
		require.Contains(t, []string{n.MIG[0].UUID, n.MIG[1].UUID}, got[0])
	})
	t.Run("MIG profile with media extensions under NVIDIA's name", func(t *testing.T) {
		// The resource name writes '+' as '.', the table's profile is
		// NVML's: the request gets the 1g.5gb+me device, not the 1g.5gb.
		n := fixture.WithMIG(fixture.PCIe("me", "A100", 1), 0, 1, "1g.5gb", "1g.5gb+me")
		n.Resources = []topology.Resource{
			{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIG, Profile: "1g.5gb"},
			{Name: "nvidia.com/mig-1g.5gb.me", Kind: topology.KindMIG, Profile: "1g.5gb+me"},
		}
		h := newHarness(t, nil, []*v1.Node{gpuNode(t, "me", n)})
		_, got, st, _ := h.schedule(gpuPod("p", "nvidia.com/mig-1g.5gb.me", 1))
		require.Nil(t, st)
		require.Equal(t, []string{n.MIG[1].UUID}, got)
		_, _, st, _ = h.schedule(gpuPod("q", "nvidia.com/mig-1g.5gb.me", 1))
		require.NotNil(t, st, "one 1g.5gb+me device, taken")
	})
	for _, tt := range []struct {
		name string
		node *topology.Node
		pod  *v1.Pod
		want string
	}{
		{"renamed by default: nvidia.com/gpu not served", replicaNode("x", "nvidia.com/gpu.shared", 4, topology.PolicyPacked),
			gpuPod("p", "nvidia.com/gpu", 1), "node does not serve nvidia.com/gpu (it publishes nvidia.com/gpu.shared)"},
		{"whole node asked for replicas", whole, gpuPod("p", "nvidia.com/gpu.shared", 1), "node does not serve nvidia.com/gpu.shared"},
		{"failRequestsGreaterThanOne", replicaNode("f", "nvidia.com/gpu", 4, topology.PolicyPacked, func(r *topology.Resource) { r.FailRequestsGreaterThanOne = true }),
			gpuPod("p", "nvidia.com/gpu", 2), "refuses requests of more than one nvidia.com/gpu replica"},
		{"replicas of MIG devices", func() *topology.Node {
			n := fixture.WithMIG(fixture.PCIe("mr", "A100", 1), 0, 1, "1g.5gb")
			n.Resources = []topology.Resource{{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIGReplica, Replicas: 2, Policy: topology.PolicyPacked, Profile: "1g.5gb"}}
			return n
		}(), gpuPod("p", "nvidia.com/mig-1g.5gb", 1), "as mig-replica devices, which gpupack does not place"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", tt.node)})
			_, _, st, _ := h.schedule(tt.pod)
			require.NotNil(t, st)
			require.Contains(t, st.Message(), tt.want)
			// Preemption cannot make a node serve a resource.
			ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("n")
			require.NoError(t, err)
			state := newCycleState(t, h, tt.pod)
			require.Equal(t, fwk.UnschedulableAndUnresolvable, h.fh.RunFilterPlugins(h.ctx, state, tt.pod, ni).Code())
		})
	}
	t.Run("16 replicas on a 2-replica request limit are 8 pods of 2", func(t *testing.T) {
		// 4 GPUs x 4 replicas = 16 = 8 pods x 2 replicas; packed: both
		// replicas of a pod on one GPU.
		n := replicaNode("e", "nvidia.com/gpu", 4, topology.PolicyPacked)
		h := newHarness(t, nil, []*v1.Node{gpuNode(t, "e", n)})
		for i := range 8 {
			_, got, st, _ := h.schedule(gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", 2))
			require.Nil(t, st, "pod %d", i)
			require.Len(t, slices.Compact(gpusOf(t, n, got)), 1)
		}
		_, _, st, _ := h.schedule(gpuPod("p8", "nvidia.com/gpu", 1))
		require.NotNil(t, st)
	})
}

// A malformed gpupack.io/replica-policy is rejected with the annotation's
// name, before any node is tried.
func TestReplicaPolicyAnnotationMalformed(t *testing.T) {
	n := replicaNode("b", "nvidia.com/gpu", 4, topology.PolicyPacked)
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "b", n)})
	_, _, st, _ := h.schedule(gpuPod("p", "nvidia.com/gpu", 1, protocol.ReplicaPolicyAnnotation, "scatter"))
	require.NotNil(t, st)
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	require.Contains(t, st.Message(), protocol.ReplicaPolicyAnnotation)
}

// defaultArgs are the internal args with every default.
func defaultArgs() *config.GPUPackArgs {
	a, err := toArgs(nil)
	if err != nil {
		panic(err)
	}
	return a
}

// newCycleState is a cycle state after PreFilter for pod.
func newCycleState(t *testing.T, h *harness, pod *v1.Pod) fwk.CycleState {
	t.Helper()
	state := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	require.True(t, st.IsSuccess(), st.Message())
	return state
}

// partlyShared is a 4-GPU PCIe node whose GPUs in shared are time-shared 4
// ways and served only as replicas under nvidia.com/gpu.shared, the
// others whole under nvidia.com/gpu: the device plugin under
// timeSlicing {renameByDefault: true, resources: [{name: nvidia.com/gpu,
// replicas: 4, gpupackDevices: shared}]}.
func partlyShared(prefix string, shared ...int) *topology.Node {
	n := fixture.PCIe(prefix, "Tesla-T4", 4)
	for _, g := range shared {
		n.GPUs[g].Replicas = 4
	}
	n.Resources = []topology.Resource{
		{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
		{Name: "nvidia.com/gpu.shared", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked},
	}
	return n
}

// A GPU the node time-shares under a renamed resource is not served whole:
// a whole-GPU request never gets it (before: 4 x nvidia.com/gpu on a node
// serving GPUs 1-3 whole and GPU 0 as 4 replicas reserved GPU 0 too, an
// ID the kubelet's nvidia.com/gpu does not have, and the GPU's replicas
// stayed free for replica pods: one GPU given twice).
func TestWholeRequestSkipsGPUsServedAsReplicas(t *testing.T) {
	tests := []struct {
		name      string
		shared    []int  // GPUs served as replicas
		pods      []int  // whole GPUs asked, one pod each, in order
		wantFit   []bool // per pod
		wantNever bool   // the last pod never fits the node
	}{
		// 3 GPUs served whole: 4 never fit.
		{name: "4 of 3 whole", shared: []int{0}, pods: []int{4}, wantFit: []bool{false}, wantNever: true},
		{name: "3 of 3 whole", shared: []int{0}, pods: []int{3}, wantFit: []bool{true}},
		// 1 + 1 + 1 take GPUs 1-3; the 4th finds only GPU 0, served as
		// replicas: not a free whole GPU, though it would be with none in use.
		{name: "one by one", shared: []int{0}, pods: []int{1, 1, 1, 1}, wantFit: []bool{true, true, true, false}},
		{name: "two shared, 2 whole asked", shared: []int{1, 2}, pods: []int{2}, wantFit: []bool{true}},
		{name: "two shared, 3 whole asked", shared: []int{1, 2}, pods: []int{3}, wantFit: []bool{false}, wantNever: true},
		{name: "all shared", shared: []int{0, 1, 2, 3}, pods: []int{1}, wantFit: []bool{false}, wantNever: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := partlyShared("ps", tt.shared...)
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "ps", n)})
			for i, k := range tt.pods {
				pod := gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", int64(k))
				_, got, st, _ := h.schedule(pod)
				if !tt.wantFit[i] {
					require.NotNil(t, st, "pod %d got %v", i, got)
					require.Regexp(t, `no (\d+ )?free healthy whole GPUs? for \d+ x nvidia.com/gpu \(\d+ free\)`, st.Message())
					if i == len(tt.pods)-1 {
						require.Equal(t, tt.wantNever, strings.Contains(st.Message(), "even with none in use"), st.Message())
					}
					continue
				}
				require.Nil(t, st, "pod %d", i)
				require.Len(t, got, k)
				set, unknown := n.SetOfUUIDs(got)
				require.Empty(t, unknown, "bare GPU UUIDs")
				for _, g := range tt.shared {
					require.False(t, set.Has(g), "pod %d got GPU %d, served only as replicas", i, g)
				}
			}
		})
	}
	t.Run("replicas and whole GPUs of one pod", func(t *testing.T) {
		// GPU 0 replicas, GPUs 1-3 whole: a pod of 3 whole GPUs and 4
		// replicas fits, each kind on its own GPUs.
		n := partlyShared("pw", 0)
		h := newHarness(t, nil, []*v1.Node{gpuNode(t, "pw", n)})
		pod := fixture.MakePod().Named("both").Container("c").Limit("nvidia.com/gpu", 3).Limit("nvidia.com/gpu.shared", 4).Obj()
		_, got, st, _ := h.schedule(pod)
		require.Nil(t, st)
		require.Len(t, got, 7)
		var whole, reps []string
		for _, id := range got {
			if _, k, err := deviceid.Split(id); err == nil && k >= 0 {
				reps = append(reps, id)
			} else {
				whole = append(whole, id)
			}
		}
		require.Equal(t, []int{0, 0, 0, 0}, gpusOf(t, n, reps))
		set, unknown := n.SetOfUUIDs(whole)
		require.Empty(t, unknown)
		require.Equal(t, []int{1, 2, 3}, set.Indexes())
	})
}
