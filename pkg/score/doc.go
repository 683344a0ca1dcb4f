// Package score holds gpupack's one decision: which devices a request gets
// on a node. The decision and its three entries (Choose, Evaluate,
// Preferred) are described in choose.go, one file per kind of device
// (whole.go, shared.go, mig.go), and pinned on the catalog machines by
// decision_test.go. Beside it: the fragmentation measure it
// minimizes (after FGD, Weng et al., USENIX ATC'23, extended with NVLink
// topology and CPU/memory-aware), the workload distribution that measure is
// taken over (a decayed histogram of task types with a prior), the node
// ranking (Rank: Score and NormalizeScore of the scheduler plugin, and the
// simulator's gpupack policy), and baseline policies for the simulator.
//
// The scheduler plugin calls it in Filter/Score (Evaluate) and Reserve
// (Choose), the device plugin in GetPreferredAllocation (Preferred), and the
// simulator for every placement (Choose). It is pure Go over pkg/topology
// and pkg/deviceid and imports nothing from Kubernetes.
//
// Speed: Choose's answers are memoized per (node layout, usage,
// request, workload snapshot) in memo.go, so nodes of one layout with the
// same usage share one computation; a warm answer costs 0.1-0.3 us (none
// allocated with Evaluate) against 5-200 us computed. Snapshots change
// only when the distribution moves by WorkloadOptions.Tolerance.
package score
