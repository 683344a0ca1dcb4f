package gpupack

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/score"
)

const stateKey fwk.StateKey = Name

// containerRequest is one container's GPU request.
type containerRequest struct {
	container string
	resource  string
	req       score.Request
}

// cycleState is the pod's parsed request and the plans made per node in
// Filter, reused by Score and NormalizeScore.
type cycleState struct {
	requests []containerRequest
	hint     score.TopologyHint
	started  time.Time
	mu       sync.Mutex
	plans    map[string]*plan
}

// Clone shares the state: plans are immutable once stored.
func (s *cycleState) Clone() fwk.StateData { return s }

func (s *cycleState) plan(node string) *plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plans[node]
}

func (s *cycleState) setPlan(node string, p *plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans[node] = p
}

// PreFilter parses the pod's GPU requests and hint once. Pods without GPU
// requests skip the plugin.
func (pl *GPUPack) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	reqs, hint, err := pl.parse(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if len(reqs) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cs.Write(stateKey, &cycleState{requests: reqs, hint: hint, started: pl.now(), plans: map[string]*plan{}})
	return nil, nil
}

// PreFilterExtensions returns nil: the plugin does not account nominated
// pods' GPUs.
func (pl *GPUPack) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

func (pl *GPUPack) parse(pod *v1.Pod) ([]containerRequest, score.TopologyHint, error) {
	hint := pl.hint
	if v, ok := pod.Annotations[score.HintAnnotation]; ok {
		h, err := score.ParseHint(v)
		if err != nil {
			return nil, hint, fmt.Errorf("annotation %s: %w", score.HintAnnotation, err)
		}
		hint = h
	}
	var out []containerRequest
	for _, c := range pod.Spec.Containers {
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
		for _, name := range names {
			req, ok := pl.resources.kindOf(name)
			if !ok {
				continue
			}
			q, ok := c.Resources.Limits[v1.ResourceName(name)]
			if !ok {
				q = c.Resources.Requests[v1.ResourceName(name)]
			}
			n, ok := q.AsInt64()
			if !ok || n < 0 || n > 1<<20 {
				return nil, hint, fmt.Errorf("container %q: %s quantity %s is not a whole number of devices", c.Name, name, q.String())
			}
			if n == 0 {
				continue
			}
			req.Count = int(n)
			req.Policy = pl.policy
			req.Topology = hint
			if err := req.Validate(); err != nil {
				return nil, hint, fmt.Errorf("container %q: %s: %w", c.Name, name, err)
			}
			out = append(out, containerRequest{container: c.Name, resource: name, req: req})
		}
	}
	return out, hint, nil
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
