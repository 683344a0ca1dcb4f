// Package baseline holds the placement policies gpupack is compared with:
// random, first-fit, best-fit, GPU packing, GPU clustering and dot-product as
// defined by the FGD paper's simulator (Weng et al., "Beware of
// Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient
// Descent", USENIX ATC'23, and its artifact, the kubernetes-scheduler-simulator
// of hkust-adsl), and kube-scheduler's NodeResourcesFit LeastAllocated and
// MostAllocated strategies. They exist for the benchmark (cmd/gpusim) only;
// the scheduler's policy is pkg/score.
//
// A Policy scores one feasible node for one task with an integer in
// [0, MaxScore]; a Picker keeps the best-scored node, breaking ties the way
// the policy's scheduler does (TieBreak); Devices then picks the GPUs inside
// the chosen node (GPUSelection). Feasibility (CPU, memory, GPU model and
// capacity) is the caller's business: policies only see feasible nodes.
//
// Two details of the artifact matter as much as the score formulas:
//
//   - Ties. The artifact runs a kube-scheduler fork whose selectHost keeps,
//     among the nodes with the top score, the one with the smallest name, and
//     it names nodes with a random per-seed prefix: ties go to the first node
//     of a fixed random order drawn once per run (TieFirst), not to a node
//     drawn anew at each decision (TieRandom, upstream kube-scheduler).
//     Policies with coarse scores depend on it: GPU packing and clustering
//     score every node 0 for a CPU-only task, so with TieFirst those tasks
//     fill the nodes one after the other instead of taking CPU from every
//     GPU node.
//   - Devices. A share goes on the GPU with the least free share that still
//     holds it (the open-gpu-share "best" selection) except for random, which
//     draws the GPU; whole GPUs are the lowest-indexed entirely free ones.
//
// The package is pure Go over pkg/topology and imports nothing from
// Kubernetes.
package baseline

import "math/rand/v2"

// MaxScore is the highest node score (kube-scheduler's MaxNodeScore).
const MaxScore = 100

// Normalization constants of the artifact (MaxSpecCpu, MaxSpecGpu): the
// largest node of the openb traces.
const (
	MaxSpecCPU = 128000 // milli-CPU
	MaxSpecGPU = 8000   // milli-GPU
)

// TieBreak says how a Picker chooses among nodes with the top score.
type TieBreak int

const (
	// TieRandom draws one of them uniformly at each decision (upstream
	// kube-scheduler's selectHost).
	TieRandom TieBreak = iota
	// TieFirst takes the first of them in a random node order drawn once
	// per run (the artifact's scheduler: smallest node name, names prefixed
	// by a per-seed random permutation).
	TieFirst
)

// GPUSelection says which GPUs of the chosen node a task gets.
type GPUSelection int

const (
	// SelectBestFit puts a share on the GPU with the least free share that
	// holds it (lowest index on ties) and whole GPUs on the lowest-indexed
	// idle GPUs.
	SelectBestFit GPUSelection = iota
	// SelectRandom puts a share on a GPU drawn uniformly among those that
	// hold it; whole GPUs as SelectBestFit.
	SelectRandom
)

// Policy is one baseline placement policy.
type Policy interface {
	// Name is the policy's name as gpusim lists it.
	Name() string
	// Score rates placing t on the feasible node n, in [0, MaxScore];
	// higher is better.
	Score(n *Node, t *Task) int64
	// TieBreak is how the policy's scheduler breaks ties between nodes.
	TieBreak() TieBreak
	// GPUSelection is how the policy picks the GPUs inside the node.
	GPUSelection() GPUSelection
}

// Rand is the randomness the package draws from (satisfied by
// *math/rand/v2.Rand).
type Rand interface {
	IntN(n int) int
}

var _ Rand = (*rand.Rand)(nil)
