package gpupack

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// resourceNames maps resource names to kinds of device for nodes that
// publish no resource table (gpupack.io/topology format v1, written by
// device plugins before the table existed): the args' names, as before.
// A node that publishes its table is read from it alone.
type resourceNames struct{ whole, shared, migPrefix string }

// cacheNames are the names as the cache takes them (gpucache.Names), to
// read foreign pods' requests on nodes without a resource table.
func (r resourceNames) cacheNames() gpucache.Names {
	return gpucache.Names{Whole: r.whole, Shared: r.shared, MIGPrefix: r.migPrefix}
}

// kindOf returns the request for a resource name, or false for resources
// that are not ours.
func (r resourceNames) kindOf(name string) (score.Request, bool) {
	switch {
	case name == r.whole:
		return score.Request{Kind: score.KindWhole}, true
	case name == r.shared:
		return score.Request{Kind: score.KindShared}, true
	case strings.HasPrefix(name, r.migPrefix) && len(name) > len(r.migPrefix):
		return score.Request{Kind: score.KindMIG, MIGProfile: strings.TrimPrefix(name, r.migPrefix)}, true
	}
	return score.Request{}, false
}

// isGPUResource reports whether a pod's resource is one the plugin places:
// a name some node publishes in its resource table, or one of the args'
// names (for nodes without a table).
func (pl *GPUPack) isGPUResource(name string) bool {
	if _, ok := pl.resources.kindOf(name); ok {
		return true
	}
	return pl.cache.Published(name)
}

// learn reads the resource tables of the nodes the cache has not seen yet
// (PreFilter's nodes), for a pod whose extended resources no known table
// names: the node informer may not have delivered every node yet. It
// reports whether a new name was learnt.
func (pl *GPUPack) learn(nodes []fwk.NodeInfo) bool {
	before := pl.cache.PublishedCount()
	for _, ni := range nodes {
		if n := ni.Node(); n != nil {
			if _, ok := n.Annotations[protocol.TopologyAnnotation]; ok {
				_, _ = pl.cache.ViewNode(n) // decodes once per annotation value
			}
		}
	}
	return pl.cache.PublishedCount() > before
}

// largestAsk is the most devices one container of r asks (r's count for
// a request of one container).
func largestAsk(r containerRequest) int {
	if len(r.uses) == 0 {
		return r.req.Count
	}
	n := 0
	for _, u := range r.uses {
		n = max(n, u.count)
	}
	return n
}

// resolve returns the request as node serves it. A node that publishes a
// resource table gives the kind (whole GPU, replica, MIG), the MIG profile
// and the replica policy (the pod's gpupack.io/replica-policy annotation
// wins over the node's); a node without one is read with the args' names
// and replica policy. It fails when the node does not serve the resource
// or serves it in a way gpupack does not place.
func (pl *GPUPack) resolve(node *topology.Node, r containerRequest) (containerRequest, error) {
	if len(node.Resources) == 0 {
		k, ok := pl.resources.kindOf(r.resource)
		if !ok {
			return r, errNotServed{fmt.Errorf("node does not serve %s", r.resource)}
		}
		r.req.Kind, r.req.MIGProfile = k.Kind, k.MIGProfile
		if !r.podPolicy {
			r.req.Policy = pl.policy
		}
		return r, validRequest(r)
	}
	res, ok := node.Resource(r.resource)
	if !ok {
		return r, errNotServed{fmt.Errorf("node does not serve %s (it publishes %s)", r.resource, names(node.Resources))}
	}
	r.req.MIGProfile, r.req.NoShared = "", false
	switch res.Kind {
	case topology.KindGPU:
		// A GPU the node time-shares is served as replicas only, under
		// a resource of their own (renameByDefault), never whole.
		r.req.Kind, r.req.NoShared = score.KindWhole, true
	case topology.KindMIG:
		r.req.Kind, r.req.MIGProfile = score.KindMIG, res.Profile
	case topology.KindReplica:
		r.req.Kind = score.KindShared
		// The kubelet allocates per container: the refusal is of a
		// container asking more than one, not of the pod's total.
		if n := largestAsk(r); res.FailRequestsGreaterThanOne && n > 1 {
			return r, errNotServed{fmt.Errorf("node refuses requests of more than one %s replica (failRequestsGreaterThanOne), a container asks %d", r.resource, n)}
		}
		if !r.podPolicy {
			r.req.Policy = score.Packed
			if res.Policy == topology.PolicySpread {
				r.req.Policy = score.Spread
			}
		}
	default:
		return r, errNotServed{fmt.Errorf("node serves %s as %s devices, which gpupack does not place", r.resource, res.Kind)}
	}
	return r, validRequest(r)
}

// validRequest checks the request once its kind is known: a request no
// node of this kind can hold (e.g. 65 whole GPUs) is not served.
func validRequest(r containerRequest) error {
	if err := r.req.Validate(); err != nil {
		return errNotServed{fmt.Errorf("%s: %w", r.resource, err)}
	}
	return nil
}

// hasUnknownExtended reports whether the pod asks an extended resource
// (a name with a domain, not kubernetes.io's) that is not known as a GPU
// resource: the args' names or a name some node's table publishes.
func (pl *GPUPack) hasUnknownExtended(pod *v1.Pod) bool {
	unknown := func(l v1.ResourceList) bool {
		for n := range l {
			if s := string(n); strings.Contains(s, "/") && !strings.Contains(s, "kubernetes.io/") && !pl.isGPUResource(s) {
				return true
			}
		}
		return false
	}
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if unknown(c.Resources.Limits) || unknown(c.Resources.Requests) {
				return true
			}
		}
	}
	return false
}

// resolveAll is resolve for every request; it returns reqs itself when
// nothing changes.
func (pl *GPUPack) resolveAll(node *topology.Node, reqs []containerRequest) ([]containerRequest, error) {
	var out []containerRequest
	for i, r := range reqs {
		rr, err := pl.resolve(node, r)
		if err != nil {
			return nil, err
		}
		if out == nil && rr.req != r.req { // resolve changes only req
			out = append(make([]containerRequest, 0, len(reqs)), reqs[:i]...)
		}
		if out != nil {
			out = append(out, rr)
		}
	}
	if out == nil {
		return reqs, nil
	}
	return out, nil
}

// errNotServed marks resolve's errors that no preemption can cure: the
// node does not serve the resource, or not in a way the request can use.
type errNotServed struct{ error }

func (e errNotServed) Unwrap() error { return e.error }

func names(rs []topology.Resource) string {
	n := make([]string, len(rs))
	for i, r := range rs {
		n[i] = r.Name
	}
	return strings.Join(n, ", ")
}
