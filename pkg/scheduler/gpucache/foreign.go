package gpucache

import (
	"maps"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Pods bound without (a usable) gpupack.io/devices.
//
// A pod bound to a GPU node by another scheduler, by spec.nodeName or by
// the default scheduler carries no gpupack.io/devices: which devices it
// holds is known only once the node's device plugin names them in its
// in-use report (after the kubelet's Allocate, seconds later). How many it
// holds is known at once, from its containers' requests. Until the report
// names them, the cache counts that many of the node's free devices as
// taken: stand-ins, the devices pkg/score would choose for the pod on the
// node as the cache sees it (score.Choose with the pod's topology hint and
// the default workload, as the device plugin's own choice, score.Preferred,
// answers for a pod without a scheduler's choice). Filter's free counts are
// then right; Reserve chooses among the other devices, and when the kubelet
// gave the foreign pod other devices than the stand-ins, the device
// plugin's handoff gives the next gpupack pod its own choice among the
// devices still available (pkg/deviceplugin handoff.go: a scheduled set
// that names a device the kubelet cannot give is not honoured), and the
// node's count was right all along.
//
// Stand-ins are worked out with the node's usage State (stateLocked) and
// live as long as it: a pod's count per request is what it asks minus the
// distinct devices it is known to hold (its gpupack.io/devices and what
// the in-use report names for it), those of the request's kind first, then
// reported ones of any kind (missingLocked: a device plugin reconfigured
// under the same name serves another kind than the kubelet gave), so a
// report that names the devices (in part: the kubelet mid-admission)
// replaces the stand-ins one for one, and a device the report gives one
// foreign pod is never another's stand-in. A pod whose gpupack.io/devices
// covers its requests (every pod gpupack bound) has no stand-ins.

// Names are one profile's GPUPackArgs resource names, which say what a
// resource is on nodes that publish no resource table (gpupack.io/topology
// without resources): Whole is whole GPUs, Shared time-shared replicas,
// MIGPrefix followed by a profile MIG devices of that profile.
type Names struct{ Whole, Shared, MIGPrefix string }

// AddArgsNames records a profile's resource names (every profile's GPUPack
// instance adds its own; they share the cache): a foreign pod's request of
// one of them holds devices on a node without a resource table.
func (c *Cache) AddArgsNames(n Names) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.argsNames, n) {
		c.argsNames = append(c.argsNames, n)
		for name, e := range c.nodes {
			if e.topo == nil || len(e.topo.Resources) == 0 {
				c.staleLocked(name, e)
			}
		}
	}
}

// need is a bound pod's request of one extended resource, as the kubelet's
// device manager allocates it: the new devices each container takes, in
// admission order (init containers' devices reused, sidecars' kept).
type need struct {
	resource string
	chunks   []int
}

// needsOf are pod's requests of extended resources, sorted by resource;
// nil when it asks none.
func needsOf(pod *v1.Pod) []need {
	var names map[string]bool // made for the first extended resource: most pods ask none
	for _, cs := range [2][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, l := range [2]v1.ResourceList{cs[i].Resources.Limits, cs[i].Resources.Requests} {
				for n := range l {
					if isExtended(string(n)) {
						if names == nil {
							names = map[string]bool{}
						}
						names[string(n)] = true
					}
				}
			}
		}
	}
	if names == nil {
		return nil
	}
	var out []need
	for _, name := range slices.Sorted(maps.Keys(names)) {
		chunks := freshChunks(pod, name)
		if sum(chunks) > 0 {
			out = append(out, need{resource: name, chunks: chunks})
		}
	}
	return out
}

// isExtended reports whether a container's resource name is an extended
// resource (a domain-qualified name outside kubernetes.io, not quota's).
func isExtended(name string) bool {
	return strings.Contains(name, "/") && !strings.Contains(name, "kubernetes.io/") && !strings.HasPrefix(name, "requests.")
}

// freshChunks are the new devices of resource each container of pod takes,
// in the kubelet's admission order (pkg/kubelet/cm/devicemanager): a
// regular init container's devices join a reusable pool when it is done;
// a sidecar or an app container takes from the pool first and keeps what
// it has. Their sum is the pod's peak (resourcehelper.PodRequests). A
// malformed count is taken as none (the kubelet admits no such container).
func freshChunks(pod *v1.Pod, resource string) []int {
	var out []int
	pool := 0
	take := func(c *v1.Container, keep bool) {
		n, err := protocol.DeviceCount(c, resource)
		if err != nil {
			n = 0
		}
		fresh := max(0, n-pool)
		if fresh > 0 {
			out = append(out, fresh)
		}
		if keep {
			pool = max(0, pool-n)
		} else {
			pool += fresh
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		take(c, c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways)
	}
	for i := range pod.Spec.Containers {
		take(&pod.Spec.Containers[i], true)
	}
	return out
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// trimFront is chunks with n devices in all, dropping the first ones (the
// kubelet allocates in order: the report names the first containers'
// devices first).
func trimFront(chunks []int, n int) []int {
	drop := sum(chunks) - n
	out := slices.Clone(chunks)
	for drop > 0 && len(out) > 0 {
		d := min(drop, out[0])
		out[0] -= d
		drop -= d
		if out[0] == 0 {
			out = out[1:]
		}
	}
	return out
}

// standInsLocked takes, on st, the stand-ins of e's pods that hold more
// than they are known to (needs), in UID order, and returns them per pod;
// used (the node's IDs in use) gets them too. c.mu must be held. It runs
// on every rebuild of the node's usage State: a pod whose known devices
// cover its needs (every foreign pod once reported) costs its count only,
// with no map and no sort.
func (c *Cache) standInsLocked(e *nodeEntry, st *score.State, used map[string]bool) map[types.UID][]string {
	type short struct {
		uid     types.UID
		reqs    []*score.Request
		missing []int
	}
	var shorts []short
	var idx map[string]int
	for uid, p := range e.pods {
		if len(p.needs) == 0 || p.coveredOn == e.topo {
			continue
		}
		if idx == nil {
			idx = e.topo.DeviceIndex()
		}
		reported := e.inUseByPod[uid]
		reqs, missing := c.missingLocked(e.topo, idx, p, reported)
		switch {
		case sum(missing) > 0:
			shorts = append(shorts, short{uid: uid, reqs: reqs, missing: missing})
		case !slices.Contains(reqs, nil) && !slices.ContainsFunc(reported, func(id string) bool { return !slices.Contains(p.ids, id) }):
			// Its own devices cover its needs, every one served, on this
			// topology, whatever the in-use report says later: no need to
			// look again until the node's topology changes (every pod
			// gpupack bound). A need not served may be served by a
			// profile's names added later (AddArgsNames): not skipped.
			p.coveredOn = e.topo
		}
	}
	if len(shorts) == 0 {
		return nil
	}
	slices.SortFunc(shorts, func(a, b short) int { return strings.Compare(string(a.uid), string(b.uid)) })
	out := make(map[types.UID][]string, len(shorts))
	for _, sh := range shorts {
		p := e.pods[sh.uid]
		for i, n := range p.needs {
			if sh.reqs[i] == nil {
				continue
			}
			for _, size := range trimFront(n.chunks, sh.missing[i]) {
				out[sh.uid] = append(out[sh.uid], takeStandIns(st, *sh.reqs[i], size, used)...)
			}
		}
	}
	return out
}

// kindCount is how many distinct devices of one kind (kindKeyOf) a pod is
// known to hold (have), and of them how many only the in-use report names
// (spare).
type kindCount struct {
	key         string
	have, spare int
}

// missingLocked is, per need of pod p on node (idx: Node.DeviceIndex), the
// request as the node serves it (nil: not served, no stand-ins) and how
// many of its devices no known device stands for. The devices p is known
// to hold (its ids and reported, the in-use report's for it) go first to
// the needs of their own kind; the reported ones left over go to the
// served needs still short, whatever their kind: the kubelet gave each of
// them for one of the pod's requests, and a device of another kind than
// the node now serves under the request's name is one it gave before the
// device plugin was reconfigured (time-slicing switched on or off under
// the same name). Its ids left over (an annotation's devices of resources
// it covers) stand for nothing else.
func (c *Cache) missingLocked(node *topology.Node, idx map[string]int, p *podEntry, reported []string) ([]*score.Request, []int) {
	var kinds []kindCount // a pod holds devices of one kind or two: a slice, not a map
	count := func(ids []string, prior [][]string, spare bool) {
		for i, id := range ids {
			if slices.Contains(ids[:i], id) || slices.ContainsFunc(prior, func(l []string) bool { return slices.Contains(l, id) }) {
				continue
			}
			key, ok := kindKeyOf(node, idx, id)
			if !ok {
				continue
			}
			k := slices.IndexFunc(kinds, func(kc kindCount) bool { return kc.key == key })
			if k < 0 {
				kinds = append(kinds, kindCount{key: key})
				k = len(kinds) - 1
			}
			kinds[k].have++
			if spare {
				kinds[k].spare++
			}
		}
	}
	// Every known device counts as spare once its own kind's needs are met:
	// the kubelet gave each for one of the pod's requests (a device of
	// another kind than the node now serves under the request's name was
	// given before the device plugin was reconfigured), whether the
	// annotation or the report names it.
	count(p.ids, nil, true)
	count(reported, [][]string{p.ids}, true)
	reqs := make([]*score.Request, len(p.needs))
	missing := make([]int, len(p.needs))
	for i, n := range p.needs {
		req, key, ok := c.requestOnLocked(node, n.resource, p)
		total, known := sum(n.chunks), 0
		if k := slices.IndexFunc(kinds, func(kc kindCount) bool { return kc.key == key }); k >= 0 {
			known = min(kinds[k].have, total) // a kind gpupack does not place (key, !ok) takes its own too
			kinds[k].have -= known
		}
		if ok {
			reqs[i], missing[i] = &req, total-known
		}
	}
	left, wholeLeft := 0, false
	for _, kc := range kinds {
		left += min(kc.spare, kc.have) // a kind's ids are matched before its reported devices
		wholeLeft = wholeLeft || (kc.key == keyGPU && min(kc.spare, kc.have) > 0)
	}
	for i := range missing {
		k := min(left, missing[i])
		missing[i] -= k
		left -= k
	}
	// A whole GPU left over is held whole (the device plugin names the GPU
	// of MIG devices destroyed under the pod beside them, and withholds it
	// whole): it stands for every MIG device still short, however many of
	// its instances the pod held.
	if wholeLeft {
		for i, n := range p.needs {
			if _, key, ok := c.requestOnLocked(node, n.resource, p); ok && strings.HasPrefix(key, keyMIG) {
				missing[i] = 0
			}
		}
	}
	return reqs, missing
}

// takeStandIns takes n devices for req on st (score.Choose, as the device
// plugin would choose them), naming them in used; when no n are left
// together, in halves (then their halves, down to one at a time) while any
// is left. Halving keeps it to O(log n) failed choices plus one choice per
// piece taken: one device at a time, a foreign pod of 18,000 replicas over
// GPUs of 12,000 made as many choices, each scanning a GPU's replicas
// (seconds under the cache's lock).
func takeStandIns(st *score.State, req score.Request, n int, used map[string]bool) []string {
	var out []string
	size := n
	for n > 0 {
		r := req
		r.Count = min(size, n)
		c, ok := score.Choose(st, r, nil)
		if !ok && r.Topology == score.HintRequired {
			r.Topology = score.HintPreferred // the device plugin's fallback
			c, ok = score.Choose(st, r, nil)
		}
		if !ok {
			if r.Count == 1 {
				return out
			}
			size = r.Count / 2
			continue
		}
		ids := c.DeviceIDs
		if c.Kind == score.KindShared {
			ids = score.ReplicaIDs(st.Node(), c.Shares, used)
		}
		for _, id := range ids {
			used[id] = true
		}
		st.Apply(c)
		out = append(out, ids...)
		n -= r.Count
	}
	return out
}

// requestOnLocked is how node serves a foreign pod's resource name: the
// request kind (with the pod's topology hint and replica policy) and the
// kind key its device IDs have (kindKeyOf); false when the node does not
// serve it as devices gpupack places (the key then names the kind it does
// serve, if any). A node's resource table decides;
// without one, the profiles' names (AddArgsNames).
func (c *Cache) requestOnLocked(node *topology.Node, name string, p *podEntry) (score.Request, string, bool) {
	req := score.Request{Topology: p.hint, Policy: p.policy}
	if len(node.Resources) > 0 {
		res, ok := node.Resource(name)
		if !ok {
			return req, "", false
		}
		switch res.Kind {
		case topology.KindGPU:
			req.Kind, req.NoShared = score.KindWhole, true
			return req, keyGPU, true
		case topology.KindReplica:
			req.Kind = score.KindShared
			if !p.policySet {
				req.Policy = score.Packed
				if res.Policy == topology.PolicySpread {
					req.Policy = score.Spread
				}
			}
			return req, keyReplica, true
		case topology.KindMIG:
			req.Kind, req.MIGProfile = score.KindMIG, res.Profile
			return req, keyMIG + res.Profile, true
		case topology.KindMIGReplica:
			// Not placed (no stand-ins), but the pod's reported devices
			// of this kind are its own.
			return req, keyMIGReplica + res.Profile, false
		}
		return req, "", false
	}
	for _, n := range c.argsNames {
		switch {
		case name == n.Whole:
			req.Kind = score.KindWhole
			return req, keyGPU, true
		case name == n.Shared:
			req.Kind = score.KindShared
			return req, keyReplica, true
		case n.MIGPrefix != "" && strings.HasPrefix(name, n.MIGPrefix) && len(name) > len(n.MIGPrefix):
			req.Kind, req.MIGProfile = score.KindMIG, strings.TrimPrefix(name, n.MIGPrefix)
			return req, keyMIG + req.MIGProfile, true
		}
	}
	return req, "", false
}

// Kind keys of device IDs (kindKeyOf) and requests (requestOnLocked).
const (
	keyGPU        = "gpu"
	keyReplica    = "replica"
	keyMIG        = "mig/"
	keyMIGReplica = "mig-replica/"
)

// kindKeyOf is the kind of device an ID names on node; false for an ID the
// node does not have.
func kindKeyOf(node *topology.Node, idx map[string]int, id string) (string, bool) {
	uuid, replica := deviceid.UUIDOf(id)
	i, ok := idx[uuid]
	switch {
	case !ok:
		return "", false
	case i >= 0 && replica:
		return keyReplica, true
	case i >= 0:
		return keyGPU, true
	case replica:
		return keyMIGReplica + node.MIG[-1-i].Profile, true
	}
	return keyMIG + node.MIG[-1-i].Profile, true
}
