package score

import (
	"errors"
	"strings"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
)

// ErrUnknownDevice is wrapped by errors about device IDs the node does not have.
var ErrUnknownDevice = errors.New("unknown device")

// State is a node's usage in numbers: which GPUs are busy, how many
// replicas of each time-shared GPU and which MIG devices are taken. It is
// what Choose works on; the simulator keeps one per node and calls Apply.
// A State is not safe for concurrent mutation.
type State struct {
	node  *topology.Node
	shape *topology.Shape
	// usable: healthy GPUs not in MIG mode.
	usable topology.GPUSet
	// busy: GPUs with anything in use (whole, a replica or a MIG device).
	busy topology.GPUSet
	// reps[i] = max(1, Replicas) and repUsed[i] replicas in use.
	reps, repUsed []int
	// migUsed[j] for node.MIG[j].
	migUsed []bool
	// healthyMIG[j]: the MIG device and its parent are healthy.
	healthyMIG []bool
	// layout is the interned layout for the choice memo (0: none).
	layout uint64
	// res: cpuFree (milli) and memFree (MiB) are known (SetFree).
	res              bool
	cpuFree, memFree int64
	// alloc: cpuAlloc (milli) and memAlloc (MiB), the node's allocatable
	// CPU and memory, are known (SetAllocatable).
	alloc              bool
	cpuAlloc, memAlloc int64
}

// NewState returns the empty usage of node.
func NewState(node *topology.Node) *State {
	n := len(node.GPUs)
	s := &State{
		node:       node,
		shape:      node.Shape(),
		usable:     node.Usable(),
		reps:       make([]int, n),
		repUsed:    make([]int, n),
		migUsed:    make([]bool, len(node.MIG)),
		healthyMIG: make([]bool, len(node.MIG)),
	}
	for i, g := range node.GPUs {
		s.reps[i] = max(1, g.Replicas)
	}
	for j, m := range node.MIG {
		s.healthyMIG[j] = m.Healthy && m.Parent >= 0 && m.Parent < n && node.GPUs[m.Parent].Healthy
	}
	s.layout = layoutOf(s)
	return s
}

// StateOf returns node's usage given the device IDs in use. IDs the node
// does not have are ignored (they belong to another node or an older
// layout) and returned in unknown.
//
// Usage is read conservatively, since an ID in use is a running pod: a
// replica ID "<GPU-UUID>::<n>" marks a replica of that GPU taken whatever n
// is (replicas may have been lowered under running pods), and an ID whose
// part before "::" is a GPU's UUID marks that GPU busy whatever follows (a
// malformed suffix, or a GPU no longer time-shared, takes it whole). An ID
// "<MIG-UUID>::<n>" takes that MIG device.
func StateOf(node *topology.Node, used map[string]bool) (s *State, unknown []string) {
	s = NewState(node)
	if len(used) == 0 {
		return s, nil
	}
	idx := node.DeviceIndex()
	for id, inUse := range used {
		if inUse && !s.markUsed(id, idx) {
			unknown = append(unknown, id)
		}
	}
	return s, unknown
}

// markUsed records one device ID in use; false when the node lacks it.
func (s *State) markUsed(id string, idx map[string]int) bool {
	if i, ok := idx[id]; ok {
		s.markDevice(i, true)
		return true
	}
	uuid, replica := deviceid.UUIDOf(id)
	if !replica {
		return false
	}
	i, ok := idx[uuid]
	if !ok {
		return false
	}
	_, err := deviceid.ParseReplica(id)
	s.markDevice(i, err != nil || i < 0 || s.reps[i] <= 1)
	return true
}

// markDevice records device i of Node.DeviceIndex in use: GPU i when i >= 0 (whole:
// every replica and MIG device on it; else one replica), MIG device -1-i
// otherwise.
func (s *State) markDevice(i int, whole bool) {
	if i < 0 {
		j := -1 - i
		s.migUsed[j] = true
		s.busy |= topology.SetOf(s.node.MIG[j].Parent)
		return
	}
	s.busy |= topology.SetOf(i)
	if !whole {
		s.repUsed[i] = min(s.reps[i], s.repUsed[i]+1)
		return
	}
	s.repUsed[i] = s.reps[i]
	for j, m := range s.node.MIG {
		if m.Parent == i {
			s.migUsed[j] = true
		}
	}
}

// Node returns the node the state belongs to.
func (s *State) Node() *topology.Node { return s.node }

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := *s
	c.repUsed = append([]int(nil), s.repUsed...)
	c.migUsed = append([]bool(nil), s.migUsed...)
	return &c
}

// FreeGPUs are the usable GPUs with nothing in use.
func (s *State) FreeGPUs() topology.GPUSet { return s.usable &^ s.busy }

// FreeCapacity is the free capacity of the node's usable GPUs, in GPUs (a
// time-shared GPU with 1 of 4 replicas taken counts 0.75).
func (s *State) FreeCapacity() float64 {
	var f float64
	for i := range s.usable.All() {
		f += s.freeShare(i)
	}
	return f
}

// UsableCapacity is the number of usable GPUs.
func (s *State) UsableCapacity() int { return s.usable.Len() }

func (s *State) freeShare(i int) float64 {
	if !s.usable.Has(i) {
		return 0
	}
	return float64(s.reps[i]-s.repUsed[i]) / float64(s.reps[i])
}

// freeReplicas is the number of replicas a shared request can still take on
// GPU i (0 for GPUs that are not time-shared or not usable).
func (s *State) freeReplicas(i int) int {
	if !s.usable.Has(i) || s.reps[i] <= 1 {
		return 0
	}
	return s.reps[i] - s.repUsed[i]
}

// modelMask returns the usable GPUs of the model(s) ("" = any; "a|b" = a or b).
func (s *State) modelMask(model string) topology.GPUSet {
	if model == "" {
		return s.usable
	}
	var m topology.GPUSet
	for i := range s.usable.All() {
		if modelIn(s.node.GPUs[i].Model, model) {
			m |= topology.SetOf(i)
		}
	}
	return m
}

// Apply records a choice as in use.
func (s *State) Apply(c Choice) {
	s.apply(c, 1)
}

// Release undoes Apply.
func (s *State) Release(c Choice) {
	s.apply(c, -1)
}

func (s *State) apply(c Choice, sign int) {
	switch c.Kind {
	case KindWhole:
		for i := range c.GPUs.All() {
			if sign > 0 {
				s.repUsed[i] = s.reps[i]
			} else {
				s.repUsed[i] = 0
			}
		}
	case KindShared:
		for _, sh := range c.Shares {
			s.repUsed[sh.GPU] = min(s.reps[sh.GPU], max(0, s.repUsed[sh.GPU]+sign*sh.Replicas))
		}
	case KindMIG:
		for _, j := range c.MIG {
			s.migUsed[j] = sign > 0
		}
	}
	s.recomputeBusy(c.GPUs)
}

func (s *State) recomputeBusy(gpus topology.GPUSet) {
	for i := range gpus.All() {
		b := s.repUsed[i] > 0
		for j, m := range s.node.MIG {
			if m.Parent == i && s.migUsed[j] {
				b = true
			}
		}
		if b {
			s.busy |= topology.SetOf(i)
		} else {
			s.busy &^= topology.SetOf(i)
		}
	}
}

// modelIn reports whether model is one of the "|"-separated names of list
// (without allocating).
func modelIn(model, list string) bool {
	for {
		want, rest, found := strings.Cut(list, "|")
		if want == model {
			return true
		}
		if !found {
			return false
		}
		list = rest
	}
}
