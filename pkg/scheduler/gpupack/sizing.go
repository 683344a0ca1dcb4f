package gpupack

import (
	"slices"

	v1 "k8s.io/api/core/v1"
)

// A pod's GPU need follows the kubelet's device manager
// (pkg/kubelet/cm/devicemanager, ManagerImpl.Allocate), which allocates
// each resource for the init containers in order and then the app
// containers, each from a pool of reusable devices first:
//   - a regular init container's devices join the pool when it is done
//     (they are reused by the containers after it);
//   - a sidecar (an init container with restartPolicy Always) and an app
//     container keep theirs, and take what they reused out of the pool.
//
// So a pod holds, of each resource, the peak of (each regular init
// container plus the sidecars started before it) and (all sidecars plus
// all app containers): the same figure as k8s.io/component-helpers'
// resource.PodRequests, which the tests check it against.

// containerUse is one container's request of a resource in a pod-level
// request, in the kubelet's admission order.
type containerUse struct {
	container string
	count     int
	// keep: the container keeps its devices (a sidecar or an app
	// container); false: a regular init container, whose devices are
	// reused by the containers after it.
	keep bool
}

// containerReqs are one container's GPU requests.
type containerReqs struct {
	name string
	// keep: see containerUse.
	keep bool
	reqs []containerRequest
}

// isSidecar reports whether an init container is a sidecar (restartable).
func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// podRequests are the pod's requests given its containers' requests in the
// kubelet's order (init containers, then app containers). A resource no
// regular init container asks is one request per container, each with its
// own devices (none are reused). A resource a regular init container asks
// is one pod-level request (container "") of the kubelet's peak, its uses
// saying which container gets which devices (containerSets).
func podRequests(containers []containerReqs) ([]containerRequest, error) {
	reused := map[string]bool{} // resources asked by a regular init container
	for _, c := range containers {
		if !c.keep {
			for _, r := range c.reqs {
				reused[r.resource] = true
			}
		}
	}
	var out []containerRequest
	pooled := map[string]int{} // resource -> index in out of its pod-level request
	for _, c := range containers {
		for _, r := range c.reqs {
			if !reused[r.resource] {
				out = append(out, r)
				continue
			}
			i, ok := pooled[r.resource]
			if !ok {
				i = len(out)
				pooled[r.resource] = i
				out = append(out, containerRequest{resource: r.resource, req: r.req, podPolicy: r.podPolicy})
			}
			out[i].uses = append(out[i].uses, containerUse{container: c.name, count: r.req.Count, keep: c.keep})
		}
	}
	for _, i := range pooled {
		// The count is checked against the kind the node serves (resolve).
		out[i].req.Count = peak(out[i].uses)
	}
	return out, nil
}

// peak is how many devices the kubelet allocates to the uses in all: each
// takes what it can from the reusable pool and new devices for the rest.
func peak(uses []containerUse) int {
	total := 0
	for _, n := range freshCounts(uses) {
		total += n
	}
	return total
}

// freshCounts are the new devices each use gets (those with none left
// out), in the kubelet's order: what it cannot take from the reusable pool.
func freshCounts(uses []containerUse) []int {
	var out []int
	pool := 0
	for _, u := range uses {
		fresh := max(0, u.count-pool)
		if fresh > 0 {
			out = append(out, fresh)
		}
		if u.keep {
			pool = max(0, pool-u.count)
		} else {
			pool += fresh
		}
	}
	return out
}

// pickFunc chooses n devices out of avail that include must (the device
// plugin's GetPreferredAllocation answer, score.Preferred).
type pickFunc func(n int, avail, must []string) ([]string, error)

// containerSets splits the pod-level set ids of r among its uses as the
// kubelet's device manager will: each container first reuses devices of
// the pool (regular init containers' devices not kept since), then gets
// new ones out of ids, chosen by pick with the reused ones included (as
// the kubelet asks the device plugin). The kubelet takes reused devices in
// its set's iteration order when the pool holds more than a container
// needs; the sets then name the pool's first IDs in sorted order, and the
// pod's devices in all are the same whichever it takes. A request without
// uses is its container's alone.
func (r containerRequest) containerSets(ids []string, pick pickFunc) map[string][]string {
	if r.uses == nil {
		return map[string][]string{r.container: ids}
	}
	out := make(map[string][]string, len(r.uses))
	free := slices.Clone(ids)
	var pool []string
	for _, u := range r.uses {
		slices.Sort(pool)
		taken := slices.Clone(pool[:min(u.count, len(pool))])
		set := slices.Clone(taken)
		if need := u.count - len(taken); need > 0 {
			fresh := freshOf(pick, u.count, taken, free, need)
			free = slices.DeleteFunc(free, func(id string) bool { return slices.Contains(fresh, id) })
			set = append(set, fresh...)
			if !u.keep {
				pool = append(pool, fresh...)
			}
		}
		if u.keep {
			pool = slices.DeleteFunc(pool, func(id string) bool { return slices.Contains(taken, id) })
		}
		slices.Sort(set)
		out[u.container] = set
	}
	return out
}

// freshOf is the need new devices out of free for a container of count
// devices that reuses taken: pick's choice, or free's first ones when pick
// has none that fits.
func freshOf(pick pickFunc, count int, taken, free []string, need int) []string {
	if pick != nil {
		if got, err := pick(count, append(slices.Clone(taken), free...), taken); err == nil {
			fresh := slices.DeleteFunc(slices.Clone(got), func(id string) bool { return slices.Contains(taken, id) })
			if len(fresh) == need && !slices.ContainsFunc(fresh, func(id string) bool { return !slices.Contains(free, id) }) {
				return fresh
			}
		}
	}
	return slices.Clone(free[:min(need, len(free))])
}
