// Package score holds gpupack's one decision function: which devices a
// request gets on a node (Choose, Preferred), the fragmentation measure it
// minimizes (after FGD, Weng et al., USENIX ATC'23, extended with NVLink
// topology), the workload distribution that measure is taken over (a decayed
// histogram of task types with a prior), and baseline policies for the
// simulator.
//
// The scheduler plugin calls it in Filter/Score/Reserve, the device plugin in
// GetPreferredAllocation, and the simulator for every placement. It is pure Go
// over pkg/topology and imports nothing from Kubernetes.
package score
