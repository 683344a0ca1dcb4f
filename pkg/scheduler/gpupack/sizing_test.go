package gpupack

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// ctr is a container of a test pod: kind "init", "sidecar" or "app", and
// its GPUs.
type ctr struct {
	kind string
	name string
	gpus int64
}

// podOf builds a pod of these containers asking nvidia.com/gpu (requests
// and limits, as the apiserver stores them).
func podOf(name string, cs ...ctr) *v1.Pod {
	p := fixture.MakePod().Named(name).Annotations()
	for _, c := range cs {
		switch c.kind {
		case "app":
			p.Container(c.name)
		case "sidecar":
			p.Sidecar(c.name)
		default:
			p.InitContainer(c.name)
		}
		p.Request("nvidia.com/gpu", c.gpus).Limit("nvidia.com/gpu", c.gpus)
	}
	return p.Obj()
}

// kubeletPeak is what k8s.io/component-helpers' PodRequests (the
// scheduler's and the kubelet's sizing) says the pod needs of nvidia.com/gpu.
func kubeletPeak(p *v1.Pod) int64 {
	r := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	q := r["nvidia.com/gpu"]
	return q.Value()
}

func totalAsked(reqs []containerRequest) int {
	n := 0
	for _, r := range reqs {
		n += r.req.Count
	}
	return n
}

// Issue 12, item 5, and the kubelet's rule for every mix: a pod holds the
// peak of each regular init container plus the sidecars started before it,
// and all sidecars plus all app containers.
func TestPodSizeFollowsTheKubelet(t *testing.T) {
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", fixture.NVSwitch("z", "H100", 8, 18))})
	tests := []struct {
		name string
		cs   []ctr
		want int
	}{
		// The pod: max(ic1 1 + 0, ic2 2 + sidecar 1, sidecar 1 + app 1) = 3 (was 2).
		{"init, sidecar, init, app", []ctr{{"init", "ic1", 1}, {"sidecar", "sc", 1}, {"init", "ic2", 2}, {"app", "app", 1}}, 3},
		// max(init 4, app 1) = 4.
		{"init bigger than app", []ctr{{"init", "i", 4}, {"app", "a", 1}}, 4},
		// max(init 1, app 4) = 4.
		{"app bigger than init", []ctr{{"init", "i", 1}, {"app", "a", 4}}, 4},
		// Sidecars add to the apps: 2 + 1 + 1 = 4.
		{"sidecar and apps", []ctr{{"sidecar", "s", 2}, {"app", "a", 1}, {"app", "b", 1}}, 4},
		// A sidecar before an init adds to it: max(2+3, 2+1) = 5.
		{"sidecar before init", []ctr{{"sidecar", "s", 2}, {"init", "i", 3}, {"app", "a", 1}}, 5},
		// A sidecar after an init does not: max(3, 2+1) = 3.
		{"sidecar after init", []ctr{{"init", "i", 3}, {"sidecar", "s", 2}, {"app", "a", 1}}, 3},
		// Init containers run one at a time: max(3, 1, 2) = 3.
		{"two inits", []ctr{{"init", "i", 3}, {"init", "j", 1}, {"app", "a", 2}}, 3},
		// Apps only: 1 + 2 = 3.
		{"apps only", []ctr{{"app", "a", 1}, {"app", "b", 2}}, 3},
		// Sidecars only besides an app without GPUs: 1 + 1 = 2.
		{"sidecars only", []ctr{{"sidecar", "s", 1}, {"sidecar", "t", 1}, {"app", "a", 0}}, 2},
		// An init container without GPUs changes nothing: 2.
		{"init without GPUs", []ctr{{"init", "i", 0}, {"app", "a", 2}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := podOf("p", tt.cs...)
			require.Equal(t, int64(tt.want), kubeletPeak(p), "the table's arithmetic is the kubelet's")
			reqs, _, err := h.pl.parse(p)
			require.NoError(t, err)
			require.Equal(t, tt.want, totalAsked(reqs))
		})
	}
}

// Property: for random mixes of init containers, sidecars and app
// containers, the devices the plugin reserves (its requests' total) are
// what k8s.io/component-helpers' PodRequests computes, and the
// per-container sets follow the kubelet's device manager.
func TestPodSizeMatchesPodRequestsForRandomMixes(t *testing.T) {
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", fixture.NVSwitch("z", "H100", 16, 18))})
	rng := rand.New(rand.NewPCG(5, 12))
	kinds := []string{"init", "sidecar", "app"}
	for round := range 500 {
		var cs []ctr
		for i := range 1 + rng.IntN(6) {
			cs = append(cs, ctr{kinds[rng.IntN(3)], fmt.Sprintf("c%d", i), int64(rng.IntN(4))})
		}
		cs = append(cs, ctr{"app", "main", int64(rng.IntN(3))})
		p := podOf("p", cs...)
		reqs, _, err := h.pl.parse(p)
		require.NoError(t, err)
		want := kubeletPeak(p)
		require.Equal(t, int(want), totalAsked(reqs), "round %d: %+v", round, cs)
		if want == 0 {
			continue
		}
		// Name the devices and check the sets against a simulation of the
		// kubelet's allocation with these sets.
		var ids []string
		for i := range int(want) {
			ids = append(ids, fmt.Sprintf("GPU-%02d", i))
		}
		sets := map[string][]string{}
		for _, r := range reqs {
			for c, s := range r.containerSets(ids[:r.req.Count], nil) {
				sets[c] = s
			}
			ids = ids[r.req.Count:]
		}
		requireKubeletSets(t, p, sets)
	}
}

// requireKubeletSets checks that the kubelet's device manager, allocating
// the pod's containers in order, gives each container exactly its set:
// each takes from the reusable pool first (when the pool holds more than
// it needs, the sets must have named the pool's first IDs) and the rest
// are new devices, never another container's; a regular init container's
// devices join the pool, a sidecar's and an app's leave it.
func requireKubeletSets(t *testing.T, p *v1.Pod, sets map[string][]string) {
	t.Helper()
	var pool, held []string
	all := append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...)
	for i, c := range all {
		n := int(c.Resources.Limits.Name("nvidia.com/gpu", resource.DecimalSI).Value())
		set := sets[c.Name]
		require.Len(t, set, n, "container %s", c.Name)
		slices.Sort(pool)
		reused := pool[:min(n, len(pool))]
		for _, id := range reused {
			require.Contains(t, set, id, "container %s reuses the pool %v", c.Name, pool)
		}
		for _, id := range set {
			if !slices.Contains(reused, id) {
				require.NotContains(t, held, id, "container %s: %s is another container's", c.Name, id)
				require.NotContains(t, pool, id)
				held = append(held, id)
			}
		}
		keep := i >= len(p.Spec.InitContainers) || isSidecar(&all[i])
		if keep {
			pool = slices.DeleteFunc(pool, func(id string) bool { return slices.Contains(set, id) })
		} else {
			for _, id := range set {
				if !slices.Contains(pool, id) {
					pool = append(pool, id)
				}
			}
		}
	}
}

// The pod through the framework: a 4-GPU node with 2 free rejects
// it (it needs 3; it used to be accepted with 2); with 3 free it gets 3,
// and the annotation's per-container sets are the kubelet's: the sidecar
// reuses ic1's GPU and keeps it, ic2 gets two new ones, the app reuses the
// first of ic2's (sorted), and the pod-level set is the union.
func TestSidecarPodOnAFourGPUNode(t *testing.T) {
	n := fixture.NVSwitch("f", "H100", 4, 18)
	pod := podOf("side", ctr{"init", "ic1", 1}, ctr{"sidecar", "sc", 1}, ctr{"init", "ic2", 2}, ctr{"app", "app", 1})

	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "two-free", n, ids(n, 0, 1)...)})
	_, _, st, _ := h.schedule(pod)
	require.NotNil(t, st, "3 needed, 2 free")

	h = newHarness(t, nil, []*v1.Node{gpuNode(t, "three-free", n, ids(n, 0)...)})
	_, got, st, state := h.schedule(pod)
	require.Nil(t, st)
	require.Equal(t, ids(n, 1, 2, 3), got)
	r, err := state.Read(devicesKey)
	require.NoError(t, err)
	d := r.(*reserved).devices
	c := func(name string) []string { return d.Containers[name]["nvidia.com/gpu"] }
	require.Len(t, c("ic1"), 1)
	require.Equal(t, c("ic1"), c("sc"), "the sidecar reuses ic1's GPU")
	require.Len(t, c("ic2"), 2)
	require.NotContains(t, c("ic2"), c("sc")[0], "the sidecar keeps its GPU")
	require.Equal(t, []string{slices.Min(c("ic2"))}, c("app"), "the app reuses ic2's first GPU")
	union := slices.Sorted(slices.Values(append(slices.Clone(c("sc")), c("ic2")...)))
	require.Equal(t, got, union)
	require.ElementsMatch(t, got, d.Resources["nvidia.com/gpu"])
	requireKubeletSets(t, pod, map[string][]string{"ic1": c("ic1"), "sc": c("sc"), "ic2": c("ic2"), "app": c("app")})
}

// An init container with fewer GPUs than the app: the app reuses it and
// its set is the pod's whole set, chosen as one (an NVLink quad on a
// DGX-1), the init container's GPU one of them.
func TestInitContainerInsideTheAppsSet(t *testing.T) {
	n := fixture.DGX1V100("w")
	pod := podOf("w", ctr{"init", "setup", 1}, ctr{"app", "train", 4})
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "w", n, ids(n, 0, 1, 2)...)})
	_, got, st, state := h.schedule(pod)
	require.Nil(t, st)
	require.Equal(t, ids(n, 4, 5, 6, 7), got, "the free NVLink quad")
	r, err := state.Read(devicesKey)
	require.NoError(t, err)
	d := r.(*reserved).devices
	require.Equal(t, got, d.Containers["train"]["nvidia.com/gpu"])
	require.Len(t, d.Containers["setup"]["nvidia.com/gpu"], 1)
	require.Contains(t, got, d.Containers["setup"]["nvidia.com/gpu"][0])
}
