package gpupack

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
)

const stateKey fwk.StateKey = Name

// containerRequest is one container's GPU request, or (container "", with
// uses) the pod's request of a resource its regular init containers ask
// too (sizing.go). Its kind, MIG profile and replica policy are the node's
// (resolve): req holds the args' reading until a node resolves it.
type containerRequest struct {
	container string
	resource  string
	req       score.Request
	// podPolicy: req.Policy is the pod's gpupack.io/replica-policy.
	podPolicy bool
	uses      []containerUse
}

// cycleState is the pod's parsed request and the plans NormalizeScore
// needs (and Filter's plans on adjusted nodes, for Score). The other plans
// live in the cache's nodes (planFor): a cycle keeps no map of every node.
type cycleState struct {
	requests []containerRequest
	hint     score.TopologyHint
	started  time.Time
	// quality: a request's set quality counts in NormalizeScore (a
	// multi-GPU whole request whose hint is not none), so Score keeps the
	// plans.
	quality bool
	// requestID numbers a one-request pod's request for the nodes' last
	// plans (0: several requests, no last plans).
	requestID uint64
	// pricing are the cluster's supply prices (PreScore), which Score adds
	// to the plans' fragmentation changes.
	pricing *score.Pricing
	*plans
	// adjust holds, per node, the pods the framework adds (nominated pods)
	// or removes (preemption victims) for this evaluation (see AddPod).
	// Clones copy the map; entries are never changed in place.
	adjust map[string]*adjustment
}

// plans are the device plans made per node, shared by clones: they are
// immutable once stored.
type plans struct {
	mu     sync.Mutex
	byNode map[string]plan
}

// Clone shares the plans and copies the adjustments.
func (s *cycleState) Clone() fwk.StateData {
	c := *s
	if s.adjust != nil {
		c.adjust = maps.Clone(s.adjust)
	}
	return &c
}

func (s *plans) plan(node string) (plan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byNode[node]
	return p, ok
}

func (s *plans) setPlan(node string, p plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byNode[node] = p
}

// PreFilter parses the pod's GPU requests and hint once. Pods without GPU
// requests skip Filter, unless they list a GPU resource at 0 (zero.go), and
// are scored by what their CPU and memory strand (cpuonly.go).
func (pl *GPUPack) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	// The first cycles after a start wait for the cache's handlers to
	// have read the pods already bound (sharedcache.go, syncGate).
	if err := pl.synced.wait(ctx); err != nil {
		return nil, fwk.AsStatus(err)
	}
	reqs, hint, err := pl.parse(pod)
	if err == nil && pl.hasUnknownExtended(pod) && pl.learn(nodes) {
		// A name only nodes not yet seen publish: also beside a known
		// GPU request, which alone would be placed without it.
		reqs, hint, err = pl.parse(pod)
	}
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	zeros := pl.zeroAsked(pod, reqs) // zero.go
	if len(zeros) > 0 {
		cs.Write(zeroKey, &zeroAsks{names: zeros})
	}
	if len(reqs) == 0 {
		return nil, preFilterCPUOnly(cs, pod, len(zeros) > 0) // cpuonly.go
	}
	if pl.handle != nil {
		// A binding extender interested in the pod would bind it in
		// GPUPack's place, without its devices (extender.go).
		if names := extenderBinds(pl.handle.Extenders(), pod); names != "" {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, errExtenderBinds(names).Error())
		}
	}
	// The pod's CPU and memory go with its first request: fragmentation
	// counts the free GPUs of a node short of a task type's CPU or memory.
	reqs[0].req.CPUMilli, reqs[0].req.MemoryMiB = podCPUMemory(pod)
	quality := false
	for _, r := range reqs {
		// The kind is the node's: a multi-device request may be whole GPUs
		// on some node.
		quality = quality || (r.req.Count > 1 && r.req.Topology != score.HintNone)
	}
	var id uint64
	if len(reqs) == 1 {
		id = pl.requestIDs.id(reqs[0])
	}
	cs.Write(stateKey, &cycleState{requests: reqs, hint: hint, started: pl.now(), quality: quality, requestID: id,
		plans: &plans{byNode: map[string]plan{}}})
	return nil, nil
}

// PreFilterExtensions returns the plugin: it accounts the GPUs of
// nominated pods and preemption victims (nominated.go).
func (pl *GPUPack) PreFilterExtensions() fwk.PreFilterExtensions { return pl }

// parse reads the pod's GPU requests and its topology hint. A request is
// one per (container, resource), or one per resource for the resources
// regular init containers ask, sized as the kubelet's device manager
// allocates them (podRequests).
func (pl *GPUPack) parse(pod *v1.Pod) ([]containerRequest, score.TopologyHint, error) {
	hint, err := protocol.TopologyHintOf(pod, pl.hint)
	if err != nil {
		return nil, hint, err
	}
	policy, podPolicy, err := protocol.ReplicaPolicyOf(pod)
	if err != nil {
		return nil, hint, err
	}
	if !podPolicy {
		policy = pl.policy
	}
	containers := make([]containerReqs, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		reqs, err := pl.containerRequests(*c, hint, policy, podPolicy)
		if err != nil {
			return nil, hint, fmt.Errorf("init %w", err)
		}
		containers = append(containers, containerReqs{name: c.Name, keep: isSidecar(c), reqs: reqs})
	}
	for _, c := range pod.Spec.Containers {
		reqs, err := pl.containerRequests(c, hint, policy, podPolicy)
		if err != nil {
			return nil, hint, err
		}
		containers = append(containers, containerReqs{name: c.Name, keep: true, reqs: reqs})
	}
	out, err := podRequests(containers)
	if err != nil {
		return nil, hint, err
	}
	return out, hint, nil
}

// containerRequests reads one container's GPU requests, sorted by resource.
func (pl *GPUPack) containerRequests(c v1.Container, hint score.TopologyHint, policy score.ReplicaPolicy, podPolicy bool) ([]containerRequest, error) {
	names := make([]string, 0, len(c.Resources.Limits))
	for n := range c.Resources.Limits {
		names = append(names, string(n))
	}
	for n := range c.Resources.Requests {
		if _, ok := c.Resources.Limits[n]; !ok {
			names = append(names, string(n))
		}
	}
	slices.Sort(names)
	var out []containerRequest
	for _, name := range names {
		if !pl.isGPUResource(name) {
			continue
		}
		req, _ := pl.resources.kindOf(name) // the node's kind comes in resolve
		n, err := protocol.DeviceCount(&c, name)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		req.Count = n
		req.Policy = policy
		req.Topology = hint
		// The rest of score.Request.Validate depends on the kind, the
		// node's: resolve checks it.
		out = append(out, containerRequest{container: c.Name, resource: name, req: req, podPolicy: podPolicy})
	}
	return out, nil
}

// podCPUMemory is the pod's effective CPU (milli) and memory (MiB, rounded
// up) request as kube-scheduler sizes it (init containers, sidecars and
// overhead included).
func podCPUMemory(pod *v1.Pod) (cpuMilli, memMiB int64) {
	r := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	cpuMilli = r.Cpu().MilliValue()
	memMiB = (r.Memory().Value() + 1<<20 - 1) >> 20
	return max(0, cpuMilli), max(0, memMiB)
}

func readState(cs fwk.CycleState) (*cycleState, error) {
	d, err := cs.Read(stateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", stateKey, err)
	}
	s, ok := d.(*cycleState)
	if !ok {
		return nil, fmt.Errorf("%q in cycle state has type %T", stateKey, d)
	}
	return s, nil
}
