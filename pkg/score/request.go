package score

import (
	"errors"
	"fmt"

	"github.com/gpupack/gpupack/pkg/topology"
)

// Kind is the kind of device a request asks for.
type Kind int

// Kinds of device.
const (
	// KindWhole asks for whole GPUs (device ID: GPU UUID).
	KindWhole Kind = iota
	// KindMIG asks for MIG devices of one profile (device ID: MIG UUID).
	KindMIG
	// KindShared asks for time-shared replicas (device ID: <GPU-UUID>::<n>).
	KindShared
)

// String returns the kind's name.
func (k Kind) String() string { return enumName(k, "Kind", "whole", "mig", "shared") }

// enumName is names[v] (names in the order of v's constants), or
// "typ(v)" for a value outside them.
func enumName[T ~int](v T, typ string, names ...string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, int(v))
}

// ReplicaPolicy says where the replicas of one shared request go.
type ReplicaPolicy int

// Replica policies.
const (
	// Packed puts all replicas of a request on one GPU (the default).
	Packed ReplicaPolicy = iota
	// Spread puts each replica of a request on a distinct GPU.
	Spread
)

// String returns the policy's name as written in configuration, in the
// node's resource table and in the pod annotation (topology.PolicyPacked,
// topology.PolicySpread; protocol.ParseReplicaPolicy reads it).
func (p ReplicaPolicy) String() string {
	return enumName(p, "ReplicaPolicy", topology.PolicyPacked, topology.PolicySpread)
}

// TopologyHint is a pod's wish about the link quality of its GPU set (pod
// annotation gpupack.io/topology, read by protocol.TopologyHintOf).
type TopologyHint int

// Topology hints.
const (
	// HintPreferred weighs quality against fragmentation (the default).
	HintPreferred TopologyHint = iota
	// HintRequired only accepts sets whose quality reaches the best the
	// node's shape can offer for that size.
	HintRequired
	// HintNone ignores link quality.
	HintNone
)

// String returns the hint as written in the annotation (the one spelling:
// protocol.ParseTopologyHint reads these names).
func (h TopologyHint) String() string {
	return enumName(h, "TopologyHint", "preferred", "required", "none")
}

// Request is what one container (or pod) asks of one node.
type Request struct {
	Kind Kind
	// Count is the number of GPUs (KindWhole), MIG devices (KindMIG) or
	// replicas (KindShared).
	Count int
	// MIGProfile is the MIG profile for KindMIG, e.g. "1g.5gb".
	MIGProfile string
	// Policy places the replicas of a KindShared request.
	Policy ReplicaPolicy
	// Topology is the link-quality hint for KindWhole requests of 2 or more.
	Topology TopologyHint
	// Model restricts the GPUs to one model name (or several separated by
	// "|"); "" accepts any model.
	Model string
	// NoShared (KindWhole) leaves out the time-shared GPUs (Replicas > 1):
	// a node that serves them as replicas under a resource of their own
	// (renameByDefault with some GPUs selected) does not serve them whole.
	// gpusim's whole tasks, which may take any free GPU, leave it false.
	NoShared bool
	// CPUMilli and MemoryMiB are the CPU (milli-cores) and memory (MiB) the
	// pod takes on the node besides the devices (0: none or not counted).
	// On a State that knows its free CPU and memory (SetFree) they enter
	// the choice's FragDelta: task types that no longer fit the node strand
	// its free GPUs. A pod's CPU and memory belong on one of its requests.
	CPUMilli, MemoryMiB int64
}

// ErrInvalidRequest is wrapped by every error about a malformed Request.
var ErrInvalidRequest = errors.New("invalid request")

// Validate reports what is wrong with r.
func (r Request) Validate() error {
	switch {
	case r.Kind < KindWhole || r.Kind > KindShared:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidRequest, int(r.Kind))
	case r.Count <= 0:
		return fmt.Errorf("%w: count %d must be positive", ErrInvalidRequest, r.Count)
	case r.Kind == KindWhole && r.Count > topology.MaxGPUs:
		return fmt.Errorf("%w: %d GPUs is more than a node holds", ErrInvalidRequest, r.Count)
	case r.Kind == KindMIG && r.MIGProfile == "":
		return fmt.Errorf("%w: MIG request without a profile", ErrInvalidRequest)
	case r.Policy != Packed && r.Policy != Spread:
		return fmt.Errorf("%w: unknown replica policy %d", ErrInvalidRequest, int(r.Policy))
	case r.Topology < HintPreferred || r.Topology > HintNone:
		return fmt.Errorf("%w: unknown topology hint %d", ErrInvalidRequest, int(r.Topology))
	case r.CPUMilli < 0 || r.MemoryMiB < 0:
		return fmt.Errorf("%w: cpu %dm and memory %dMi must be >= 0", ErrInvalidRequest, r.CPUMilli, r.MemoryMiB)
	}
	return nil
}

// Share is a number of replicas taken on one GPU.
type Share struct {
	GPU      int
	Replicas int
}

// Choice is the devices chosen for a request on a node, with what the choice
// costs and offers.
type Choice struct {
	// DeviceIDs are the chosen device IDs, sorted. Choose leaves them
	// empty for KindShared (it tracks replica counts, not numbers).
	DeviceIDs []string
	// GPUs are the physical GPUs the devices sit on.
	GPUs topology.GPUSet
	// Quality is the link quality of GPUs.
	Quality topology.Quality
	// Ideal is the best quality the node's shape offers for that many GPUs.
	Ideal topology.Quality
	// FragDelta is the node's fragmentation after the choice minus before,
	// in GPUs (negative: the choice used up fragments).
	FragDelta float64
	// Boundary is the bandwidth (GB/s) from the chosen GPUs to the GPUs left
	// free: smaller keeps well-linked groups together.
	Boundary float64
	// Shares are the replicas taken per GPU (KindShared).
	Shares []Share
	// MIG are indexes into Node.MIG (KindMIG).
	MIG []int
	// Kind is the kind of the request the choice answers.
	Kind Kind
}

// QualityRatio is Quality over Ideal in [0, 1]; 1 for sets of one GPU,
// shared replicas and MIG devices.
func (c Choice) QualityRatio() float64 {
	if c.Kind != KindWhole || c.GPUs.Len() <= 1 {
		return 1
	}
	return ratio(c.Quality.RingGBps, c.Ideal.RingGBps)
}

func ratio(q, ideal float64) float64 {
	switch {
	case ideal <= 0 || q >= ideal:
		return 1
	case q <= 0:
		return 0
	}
	return q / ideal
}
