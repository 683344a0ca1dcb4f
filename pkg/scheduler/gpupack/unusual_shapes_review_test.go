package gpupack

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Machine shapes nobody ships a fixture for, driven through PreFilter,
// Filter, Score, NormalizeScore, Reserve and Bind: GPU counts that are not
// a power of two (3, 6, 10, 12), two GPU models in one node, NVLink bridges
// in pairs only (H100 NVL, A100 PCIe), an NVSwitch node with one GPU's
// NVLink down or one GPU unhealthy, a GB200-style 4-GPU node in an NVLink
// clique, HGX-2 (16 GPUs over two NVSwitch boards), MIG beside whole and
// time-shared GPUs, every GPU time-shared with its own replica count, a node
// publishing zero GPUs, and 64-GPU nodes. Checked: no panic, a node is
// admitted exactly when the request fits (topology: required exactly when
// a set of the shape's ideal ring is free), the devices are the node's,
// healthy, free and never given twice, every normalized score is within
// 0..100, and the Binding carries them.
//
// Not checked: that a preferred multi-GPU pod gets the best-linked free set
// on its node. Fragmentation comes first (pkg/score/choose.go), so a GPU
// whose NVLink is down, or a PCIe pair of another model, is given to a
// preferred pod while a better set is free: docs/architecture.md's known
// limit.

type rvShape struct {
	name string
	topo func() *topology.Node
}

func rvNVS(n, lanes int) func(i, j int) topology.Link {
	return func(int, int) topology.Link { return topology.Link{Class: topology.ClassNVSwitch, NVLinks: lanes} }
}

func rvShapes() []rvShape {
	return []rvShape{
		{"pcie3", func() *topology.Node {
			return fixture.Build("p3", "T4", 3, 0, func(i, j int) topology.Link { return fixture.PIX })
		}},
		{"nvs6", func() *topology.Node { return fixture.NVSwitch("n6", "H100", 6, 18) }},
		{"nvs10", func() *topology.Node { return fixture.NVSwitch("n10", "H100", 10, 18) }},
		{"nvs12", func() *topology.Node { return fixture.NVSwitch("n12", "H100", 12, 18) }},
		{"pcie6", func() *topology.Node { return fixture.PCIe("pc6", "L4", 6) }},
		{"twomodels", func() *topology.Node {
			n := fixture.Build("tm", "H100", 8, 4, func(i, j int) topology.Link {
				if i/4 == j/4 && i < 4 {
					return fixture.NV(18)
				}
				if i/4 == j/4 {
					return fixture.PIX
				}
				return fixture.SYS
			})
			for i := 4; i < 8; i++ {
				n.GPUs[i].Model = "L40S"
			}
			return n
		}},
		{"h100nvl4", func() *topology.Node {
			return fixture.Build("nvl", "H100 NVL", 4, 4, func(i, j int) topology.Link {
				if i/2 == j/2 {
					return fixture.NV(18)
				}
				return fixture.SYS
			})
		}},
		{"a100pcie", func() *topology.Node { return fixture.A100PCIeBridged("ap") }},
		{"nvs8-linkdown3", func() *topology.Node {
			return fixture.Build("ld", "A100", 8, 3, func(i, j int) topology.Link {
				if i == 3 || j == 3 {
					if i/4 == j/4 {
						return fixture.NODE
					}
					return fixture.SYS
				}
				return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 12}
			})
		}},
		{"nvs8-unhealthy5", func() *topology.Node { n := fixture.NVSwitch("uh", "A100", 8, 12); n.GPUs[5].Healthy = false; return n }},
		{"gb200", func() *topology.Node {
			n := fixture.Build("gb", "GB200", 4, 5, rvNVS(4, 18))
			n.Clique = "4f3c2a10-0000-4000-8000-000000000001.7"
			return n
		}},
		{"hgx2", func() *topology.Node {
			return fixture.Build("hg", "V100", 16, 2, func(i, j int) topology.Link {
				if i/8 == j/8 {
					return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 6}
				}
				return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 3}
			})
		}},
		{"mixedmig", func() *topology.Node {
			n := fixture.WithMIG(fixture.NVSwitch("mx", "A100", 8, 12), 0, 1, "1g.5gb", "1g.5gb", "1g.5gb")
			n = fixture.WithMIG(n, 1, 2, "2g.10gb", "2g.10gb")
			n.GPUs[2].Replicas, n.GPUs[3].Replicas = 4, 2
			return n
		}},
		{"allshared", func() *topology.Node {
			n := fixture.PCIe("as", "T4", 4)
			for i, r := range []int{2, 3, 4, 7} {
				n.GPUs[i].Replicas = r
			}
			return n
		}},
		{"zero", func() *topology.Node { return &topology.Node{Generation: 1, Links: [][]topology.Link{}} }},
		{"nvs64", func() *topology.Node { return fixture.NVSwitch("b64", "B200", 64, 18) }},
		{"boards64", func() *topology.Node {
			return fixture.Build("g64", "H100", 64, 4, func(i, j int) topology.Link {
				if i/8 == j/8 {
					return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 18}
				}
				if i/32 == j/32 {
					return fixture.NODE
				}
				return fixture.SYS
			})
		}},
	}
}

// rvSchedule is harness.schedule that also checks every feasible node's
// score is within 0..100 (the harness runs GPUPack alone, at weight 1).
func (h *harness) rvSchedule(pod *v1.Pod) (string, []string, *fwk.Status, fwk.CycleState) {
	h.t.Helper()
	return h.scheduleWith(pod, func(scores []fwk.NodePluginScores) {
		for _, s := range scores {
			require.GreaterOrEqual(h.t, s.TotalScore, int64(0), "%v", scores)
			require.LessOrEqual(h.t, s.TotalScore, int64(100), "%v", scores)
		}
	})
}

func TestShapesReviewIdle(t *testing.T) {
	for _, sh := range rvShapes() {
		t.Run(sh.name, func(t *testing.T) {
			topo := sh.topo()
			ref := fixture.DGX1V100("ref")
			// whole pods, one at a time on a fresh harness
			elig := topology.GPUSet(0)
			for i, g := range topo.GPUs {
				if g.Healthy && !g.MIGEnabled {
					elig |= topology.SetOf(i)
				}
			}
			for _, k := range []int{1, 2, 3, 4, 6, 8, 16} {
				for _, hint := range []string{"preferred", "required", "none"} {
					h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo), gpuNode(t, "ref", ref, ids(ref, 0, 1, 2)...)})
					pod := gpuPod(fmt.Sprintf("w%d%s", k, hint), "nvidia.com/gpu", int64(k), "gpupack.io/topology", hint)
					// only the shape node
					h.nodes = h.nodes[:1]
					_, got, st, _ := h.rvSchedule(pod)
					if elig.Len() < k {
						if st == nil {
							t.Errorf("k=%d %s: placed %v on infeasible", k, hint, got)
						}
						continue
					}
					if st != nil {
						t.Errorf("k=%d %s: rejected: %s", k, hint, st.Message())
						continue
					}
					idx := topo.DeviceIndex()
					var set topology.GPUSet
					for _, id := range got {
						i, ok := idx[id]
						require.True(t, ok, id)
						require.True(t, elig.Has(i), "k=%d got ineligible %d", k, i)
						set |= topology.SetOf(i)
					}
					require.Equal(t, k, set.Len())
					if k >= 2 && hint == "required" {
						shape := topo.Shape()
						require.InDelta(t, shape.Ideal(k).RingGBps, shape.Quality(set).RingGBps, 1e-9, "k=%d required: %v", k, set.Indexes())
					}
				}
			}
			// two nodes, score range
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo), gpuNode(t, "ref", ref, ids(ref, 0, 1, 2)...)})
			for _, k := range []int{1, 2, 4} {
				_, _, _, _ = h.rvSchedule(gpuPod(fmt.Sprintf("s%d", k), "nvidia.com/gpu", int64(k)))
			}
			// fill with 1-GPU pods
			h = newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo)})
			placed := 0
			sets := map[string][]string{}
			for i := 0; i < 70; i++ {
				p := gpuPod(fmt.Sprintf("f%d", i), "nvidia.com/gpu", 1)
				_, got, st, _ := h.rvSchedule(p)
				if st != nil {
					break
				}
				sets[p.Name] = got
				placed++
			}
			requireNoDeviceTwice(t, topo, sets)
			require.Equal(t, elig.Len(), placed, "1-GPU fill")
			// shared fill
			var shared int
			for _, g := range topo.GPUs {
				if g.Healthy && !g.MIGEnabled && g.Replicas > 1 {
					shared += g.Replicas
				}
			}
			h = newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo)})
			placed = 0
			sets = map[string][]string{}
			for i := 0; i < 100; i++ {
				p := gpuPod(fmt.Sprintf("r%d", i), "nvidia.com/gpu.shared", 1)
				_, got, st, _ := h.rvSchedule(p)
				if st != nil {
					break
				}
				sets[p.Name] = got
				placed++
			}
			requireNoDeviceTwice(t, topo, sets)
			require.Equal(t, shared, placed, "replica fill")
			// MIG
			h = newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo)})
			var migs int
			for _, m := range topo.MIG {
				if m.Profile == "1g.5gb" {
					migs++
				}
			}
			placed = 0
			for i := 0; i < 10; i++ {
				_, _, st, _ := h.rvSchedule(gpuPod(fmt.Sprintf("m%d", i), "nvidia.com/mig-1g.5gb", 1))
				if st != nil {
					break
				}
				placed++
			}
			require.Equal(t, migs, placed, "MIG fill")
		})
	}
}

func TestShapesReviewRequired(t *testing.T) {
	for _, sh := range rvShapes() {
		t.Run(sh.name, func(t *testing.T) {
			topo := sh.topo()
			n := len(topo.GPUs)
			if n == 0 {
				return
			}
			usable := topo.Usable()
			shape := topo.Shape()
			rng := uint64(12345)
			next := func() uint64 { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng }
			for trial := 0; trial < 25; trial++ {
				var used []int
				for i := range usable.All() {
					if next()%3 == 0 {
						used = append(used, i)
					}
				}
				var inUse []string
				for _, i := range used {
					inUse = append(inUse, topo.GPUs[i].UUID)
				}
				free := usable
				for _, i := range used {
					free = free.Remove(i)
				}
				node := gpuNode(t, "x", topo, inUse...)
				h := newHarness(t, nil, []*v1.Node{node})
				for _, k := range []int{2, 3, 4, 8} {
					for _, hint := range []string{"required", "preferred"} {
						pod := gpuPod(fmt.Sprintf("q%d-%d-%s", trial, k, hint), "nvidia.com/gpu", int64(k), "gpupack.io/topology", hint)
						_, st := h.filterOn(pod, "x")
						want := free.Len() >= k
						if want && hint == "required" {
							_, q, _ := shape.BestSet(free, k)
							want = q.RingGBps >= shape.Ideal(k).RingGBps-1e-9
						}
						if st.IsSuccess() != want {
							t.Errorf("used %v k=%d %s: filter %v (%s), want %v", used, k, hint, st.IsSuccess(), st.Message(), want)
						}
						if !st.IsSuccess() {
							continue
						}
						_, got, st2, _ := h.rvSchedule(pod)
						require.Nil(t, st2)
						var set topology.GPUSet
						for _, id := range got {
							i := topo.DeviceIndex()[id]
							require.True(t, free.Has(i), "used %v k=%d %s: got %d not free", used, k, hint, i)
							set = set.Add(i)
						}
						require.Equal(t, k, set.Len())
						if hint == "required" {
							require.InDelta(t, shape.Ideal(k).RingGBps, shape.Quality(set).RingGBps, 1e-9)
						}
						h.pl.cache.Forget(pod.UID) // undo
					}
				}
			}
		})
	}
}

func TestShapesReviewTables(t *testing.T) {
	type tc struct {
		name string
		topo func() *topology.Node
		// want: pods of each "resource xN" placed one after the other until
		// one does not fit (absent: 0, a resource the node does not serve).
		want map[string]int
	}
	// GPUs of 2, 3, 4 and 7 replicas: 16 replicas; packed pairs 1+1+2+3,
	// triples 0+1+1+2, quads 0+0+1+1; spread quads 2 (the GPU of 2).
	packed := func(res string) map[string]int {
		return map[string]int{res + " x1": 16, res + " x2": 7, res + " x3": 4, res + " x4": 2}
	}
	allshared := func(res string, policy string) func() *topology.Node {
		return func() *topology.Node {
			n := fixture.PCIe("as", "T4", 4)
			for i, r := range []int{2, 3, 4, 7} {
				n.GPUs[i].Replicas = r
			}
			n.Resources = []topology.Resource{{Name: res, Kind: topology.KindReplica, Replicas: 7, Policy: policy}}
			return n
		}
	}
	mixed := func() *topology.Node {
		n := fixture.WithMIG(fixture.NVSwitch("mx", "A100", 8, 12), 0, 1, "1g.5gb", "1g.5gb", "1g.5gb")
		n = fixture.WithMIG(n, 1, 2, "2g.10gb", "2g.10gb")
		n.GPUs[2].Replicas, n.GPUs[3].Replicas = 4, 2
		n.GPUs[6].Healthy = false
		n.Resources = []topology.Resource{
			{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
			{Name: "nvidia.com/gpu.shared", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicySpread},
			{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIG, Profile: "1g.5gb"},
			{Name: "nvidia.com/mig-2g.10gb", Kind: topology.KindMIG, Profile: "2g.10gb"},
		}
		return n
	}
	for _, c := range []tc{
		{"allshared-gpu-packed", allshared("nvidia.com/gpu", topology.PolicyPacked), packed("nvidia.com/gpu")},
		{"allshared-gpu-spread", allshared("nvidia.com/gpu", topology.PolicySpread),
			map[string]int{"nvidia.com/gpu x1": 16, "nvidia.com/gpu x2": -7, "nvidia.com/gpu x3": -3, "nvidia.com/gpu x4": 2}},
		{"allshared-shared-packed", allshared("nvidia.com/gpu.shared", topology.PolicyPacked), packed("nvidia.com/gpu.shared")},
		// whole: GPUs 4, 5, 7 (0-1 MIG, 2-3 shared, 6 unhealthy); replicas
		// spread over GPU 2 (4) and 3 (2); MIG 3 x 1g.5gb and 2 x 2g.10gb.
		{"mixed", mixed, map[string]int{
			"nvidia.com/gpu x1": 3, "nvidia.com/gpu x2": 1, "nvidia.com/gpu x3": 1,
			"nvidia.com/gpu.shared x1": 6, "nvidia.com/gpu.shared x2": 2,
			"nvidia.com/mig-1g.5gb x1": 3, "nvidia.com/mig-1g.5gb x2": 1, "nvidia.com/mig-1g.5gb x3": 1,
			"nvidia.com/mig-2g.10gb x1": 2, "nvidia.com/mig-2g.10gb x2": 1,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			topo := c.topo()
			for _, res := range []string{"nvidia.com/gpu", "nvidia.com/gpu.shared", "nvidia.com/mig-1g.5gb", "nvidia.com/mig-2g.10gb"} {
				for _, k := range []int64{1, 2, 3, 4} {
					h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo)})
					sets := map[string][]string{}
					placed := 0
					for i := 0; i < 40; i++ {
						p := gpuPod(fmt.Sprintf("p%d", i), res, k)
						_, got, st, _ := h.rvSchedule(p)
						if st != nil {
							break
						}
						require.Len(t, got, int(k))
						sets[p.Name] = got
						placed++
					}
					requireNoDeviceTwice(t, topo, sets)
					want, ok := c.want[fmt.Sprintf("%s x%d", res, k)]
					if !ok {
						want = 0 // not served
					}
					if want < 0 { // spread fills greedily: at least -want
						require.GreaterOrEqual(t, placed, -want, "%s x%d", res, k)
						continue
					}
					require.Equal(t, want, placed, "%s x%d", res, k)
				}
			}
		})
	}
}

func TestShapesReviewCluster(t *testing.T) {
	var nodes []*v1.Node
	topos := map[string]*topology.Node{}
	for i, sh := range rvShapes() {
		topo := sh.topo()
		name := fmt.Sprintf("n%02d-%s", i, sh.name)
		topos[name] = topo
		node := gpuNode(t, name, topo)
		nodes = append(nodes, node)
	}
	h := newHarness(t, nil, nodes)
	all := map[string]map[string][]string{}
	for round := 0; round < 30; round++ {
		for _, p := range []*v1.Pod{
			gpuPod(fmt.Sprintf("a%d", round), "nvidia.com/gpu", 1),
			gpuPod(fmt.Sprintf("b%d", round), "nvidia.com/gpu", 2),
			gpuPod(fmt.Sprintf("c%d", round), "nvidia.com/gpu", 4),
			gpuPod(fmt.Sprintf("d%d", round), "nvidia.com/gpu", 8),
			gpuPod(fmt.Sprintf("e%d", round), "nvidia.com/gpu", 3, "gpupack.io/topology", "required"),
			gpuPod(fmt.Sprintf("f%d", round), "nvidia.com/gpu.shared", 2),
			gpuPod(fmt.Sprintf("g%d", round), "nvidia.com/mig-1g.5gb", 1),
			gpuPod(fmt.Sprintf("h%d", round), "nvidia.com/gpu", 6),
		} {
			node, got, st, _ := h.rvSchedule(p)
			if st != nil {
				continue
			}
			if all[node] == nil {
				all[node] = map[string][]string{}
			}
			all[node][p.Name] = got
			requireNoDeviceTwice(t, topos[node], all[node])
		}
	}
	require.NotEmpty(t, all)
}

func TestShapesReviewBig(t *testing.T) {
	for _, sh := range rvShapes() {
		if sh.name != "nvs64" && sh.name != "boards64" && sh.name != "hgx2" {
			continue
		}
		t.Run(sh.name, func(t *testing.T) {
			topo := sh.topo()
			shape := topo.Shape()
			for _, used := range [][]int{nil, {0, 9, 18, 27, 36, 45, 54, 63}, {1, 2, 3}} {
				var inUse []string
				free := topo.Usable()
				for _, i := range used {
					if i < len(topo.GPUs) {
						inUse = append(inUse, topo.GPUs[i].UUID)
						free = free.Remove(i)
					}
				}
				h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo, inUse...)})
				for _, k := range []int{5, 7, 12, 16, 17, 24, 31, 32, 48, 56, 64} {
					for _, hint := range []string{"required", "preferred"} {
						pod := gpuPod(fmt.Sprintf("b%d-%s-%d", k, hint, len(used)), "nvidia.com/gpu", int64(k), "gpupack.io/topology", hint)
						_, st := h.filterOn(pod, "x")
						want := free.Len() >= k
						if want && hint == "required" {
							_, q, _ := shape.BestSet(free, k)
							want = q.RingGBps >= shape.Ideal(k).RingGBps-1e-9
						}
						if st.IsSuccess() != want {
							t.Errorf("used %v k=%d %s: filter %v (%s), want %v", used, k, hint, st.IsSuccess(), st.Message(), want)
						}
					}
				}
			}
		})
	}
}
func TestShapesReviewBind(t *testing.T) {
	big := fixture.NVSwitch("b64", "B200", 64, 18)
	mixed := fixture.WithMIG(fixture.NVSwitch("mx", "A100", 8, 12), 0, 1, "1g.5gb", "1g.5gb", "1g.5gb")
	mixed.GPUs[2].Replicas = 7
	for _, tc := range []struct {
		name string
		node *v1.Node
		pod  *v1.Pod
		res  string
		n    int
	}{
		{"64", gpuNode(t, "x", big), gpuPod("p64", "nvidia.com/gpu", 64), "nvidia.com/gpu", 64},
		{"63", gpuNode(t, "x", big, big.GPUs[5].UUID), gpuPod("p63", "nvidia.com/gpu", 63), "nvidia.com/gpu", 63},
		{"mig", gpuNode(t, "x", mixed), gpuPod("pm", "nvidia.com/mig-1g.5gb", 3), "nvidia.com/mig-1g.5gb", 3},
		{"shared", gpuNode(t, "x", mixed), gpuPod("ps", "nvidia.com/gpu.shared", 5), "nvidia.com/gpu.shared", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{tc.node}, tc.pod)
			var bindings []*v1.Binding
			h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "binding" {
					return false, nil, nil
				}
				bindings = append(bindings, a.(k8stesting.CreateAction).GetObject().(*v1.Binding))
				return true, nil, nil
			})
			node, got, st, state := h.schedule(tc.pod)
			require.Nil(t, st)
			require.Len(t, got, tc.n)
			require.True(t, h.fh.RunBindPlugins(h.ctx, state, tc.pod, node).IsSuccess())
			require.Len(t, bindings, 1)
			d, err := protocol.DecodeDevices(bindings[0].Annotations[protocol.DevicesAnnotation])
			require.NoError(t, err)
			require.Len(t, d.Resources[tc.res], tc.n)
		})
	}
}
