// Package gpuview is the cluster's GPU view for people: per node, the GPU
// map with its links and who holds each GPU, MIG device and time-shared
// replica; per pod, the scheduler's choice, what the kubelet gave and the
// set's link quality; fragmentation by node and by task type. It reads
// what the programs publish (gpupack.io/topology, gpupack.io/in-use,
// gpupack.io/devices) and takes every number from pkg/score and
// pkg/topology. `kubectl gpupack` and `make demo` print through it.
package gpuview

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Placement is what one pod holds on a node, as the kubelet's device manager gave it.
type Placement struct {
	Pod   string // namespace/name
	Class string // workload class (e.g. the demo's "training"), "" when none
	// Devices maps a resource name to device IDs: GPU UUID (nvidia.com/gpu),
	// MIG device UUID (nvidia.com/mig-<profile>), "<GPU UUID>::<n>"
	// time-shared replica (nvidia.com/gpu.shared). The in-use report does
	// not name resources: its IDs are under "".
	Devices map[string][]string
}

// NodeState is one node: its topology as the device plugin published it
// (gpupack.io/topology) and the pods holding devices on it.
type NodeState struct {
	Name string
	Topo *topology.Node
	Pods []Placement
	// Error says why the node's annotations could not be read (Topo is
	// nil for a malformed topology, Pods empty for a malformed in-use
	// report).
	Error string
	// UsageUnknown is set when the in-use report could not be read: which
	// devices are in use is unknown, not none (Topo may still be set).
	UsageUnknown bool
	// Note says where Pods came from when not from the node's report.
	Note string
}

// Side is one pool of nodes (a whole cluster, or the nodes one scheduler
// profile placed pods on).
type Side struct {
	Profile string // e.g. "gpupack-scheduler", "default-scheduler", or the cluster's name
	Nodes   []NodeState
	Pending []string // pods never scheduled (namespace/name)
}

// gpuState is the usage class of one GPU.
type gpuState int

const (
	gpuFree gpuState = iota
	gpuPartly
	gpuFull
	gpuUnhealthy
	// gpuUnknown: the node's in-use report could not be read.
	gpuUnknown
)

// gpuUse is who holds one GPU.
type gpuUse struct {
	// whole are the pods holding the GPU as a whole GPU (more than one is
	// a conflict, reported as a problem).
	whole []string
	// shares are the time-shared replicas held, per pod, in order of first
	// appearance.
	shares []share
}

type share struct {
	pod      string
	replicas int
}

// replicasUsed is the number of replicas held on the GPU.
func (g *gpuUse) replicasUsed() int {
	n := 0
	for _, s := range g.shares {
		n += s.replicas
	}
	return n
}

// unknownDevice is a device ID a pod holds that the node's topology lacks.
type unknownDevice struct {
	Pod, Resource, ID string
}

// SetQuality is the link quality of a multi-GPU pod's set of whole GPUs.
type SetQuality struct {
	Pod  string          `json:"-"`
	Node string          `json:"-"`
	GPUs topology.GPUSet `json:"-"`
	// Ring is the set's ring bottleneck (GB/s); Ideal the best ring a set of
	// that size has on the node's shape; Ratio = Ring/Ideal in [0, 1].
	Ring  float64 `json:"ringGBps"`
	Ideal float64 `json:"bestGBps"`
	Ratio float64 `json:"ratio"`
	// Path is the slowest kind of link the best ring over the set must use.
	Path RingPath `json:"path"`
}

// RingPath is the slowest kind of link on a set's best ring.
type RingPath int

const (
	PathNVLink RingPath = iota // every hop is NVLink (direct or NVSwitch)
	PathPCIe                   // some hop leaves NVLink but stays within a socket
	PathSYS                    // some hop crosses sockets (or is unknown)
)

// MarshalText writes the path as its String.
func (p RingPath) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (p *RingPath) UnmarshalText(b []byte) error {
	for _, q := range []RingPath{PathNVLink, PathPCIe, PathSYS} {
		if q.String() == string(b) {
			*p = q
			return nil
		}
	}
	return fmt.Errorf("unknown ring path %q", b)
}

func (p RingPath) String() string {
	switch p {
	case PathNVLink:
		return "NVLink ring"
	case PathPCIe:
		return "ring over PCIe"
	default:
		return "ring over SYS"
	}
}

// pathOf classifies a ring bottleneck. pkg/topology/link.go guarantees that
// every PCIe class lies below one lane of the slowest NVLink
// (LaneGBps(1) = 20 GB/s) and that SYS (6) and unknown (4) are the slowest.
func pathOf(ring float64) RingPath {
	switch {
	case ring >= topology.LaneGBps(1):
		return PathNVLink
	case ring > topology.SYSGBps:
		return PathPCIe
	default:
		return PathSYS
	}
}

// nodeUse is one node's usage worked out from its placements.
type nodeUse struct {
	ns   *NodeState
	gpus []gpuUse
	// mig[j] are the pods holding Topo.MIG[j].
	mig [][]string
	// used are the known device IDs in use (score.StateOf's input).
	used     map[string]bool
	unknown  []unknownDevice
	problems []string
	multi    []SetQuality
}

// analyzeNode assigns every device ID of the node's placements to a GPU, MIG
// device or replica of the node's topology. IDs the topology lacks (or every
// ID, when the topology is nil) are kept in unknown; a device held twice is
// a problem. It never panics on malformed input.
func analyzeNode(ns *NodeState) *nodeUse {
	nu := &nodeUse{ns: ns, used: map[string]bool{}}
	var gpuIdx map[string]int
	migIdx := map[string]int{}
	if ns.Topo != nil {
		nu.gpus = make([]gpuUse, len(ns.Topo.GPUs))
		nu.mig = make([][]string, len(ns.Topo.MIG))
		gpuIdx = make(map[string]int, len(ns.Topo.GPUs))
		for i, g := range ns.Topo.GPUs {
			gpuIdx[g.UUID] = i
		}
		for j, m := range ns.Topo.MIG {
			migIdx[m.UUID] = j
		}
	}
	holder := map[string]string{} // device ID -> first pod holding it
	for _, p := range ns.Pods {
		whole := topology.GPUSet(0)
		for _, res := range sortedKeys(p.Devices) {
			for _, id := range p.Devices[res] {
				if prev, ok := holder[id]; ok {
					nu.problems = append(nu.problems, fmt.Sprintf("node %s: device %s is held by both %s and %s", ns.Name, id, prev, p.Pod))
					continue
				}
				holder[id] = p.Pod
				if !nu.assign(p.Pod, id, gpuIdx, migIdx, &whole) {
					nu.unknown = append(nu.unknown, unknownDevice{Pod: p.Pod, Resource: res, ID: id})
					continue
				}
				nu.used[id] = true
			}
		}
		if whole.Len() >= 2 {
			nu.multi = append(nu.multi, setQuality(ns, p.Pod, whole))
		}
	}
	for i := range nu.gpus {
		// The same ID twice is caught above; a whole GPU can still be
		// held while its replicas or MIG devices are.
		if u := &nu.gpus[i]; len(u.whole) > 0 && (len(u.shares) > 0 || nu.migHeld(i)) {
			nu.problems = append(nu.problems, fmt.Sprintf("node %s: GPU %d is held whole by %s and also in part by other pods",
				ns.Name, i, strings.Join(u.whole, ", ")))
		}
	}
	return nu
}

// assign records one device ID held by pod; false when the topology lacks it.
func (nu *nodeUse) assign(pod, id string, gpuIdx, migIdx map[string]int, whole *topology.GPUSet) bool {
	if nu.ns.Topo == nil {
		return false
	}
	if i, ok := gpuIdx[id]; ok {
		nu.gpus[i].whole = append(nu.gpus[i].whole, pod)
		*whole = whole.Add(i)
		return true
	}
	if j, ok := migIdx[id]; ok {
		nu.mig[j] = append(nu.mig[j], pod)
		return true
	}
	r, err := deviceid.ParseReplica(id)
	if err != nil {
		return false
	}
	uuid, n := r.UUID, r.N
	i, ok := gpuIdx[uuid]
	if !ok || n >= nu.ns.Topo.GPUs[i].Replicas {
		// Not a replica the device plugin advertised (the GPU is not
		// time-shared, or has fewer replicas): score.StateOf rejects it too.
		return false
	}
	g := &nu.gpus[i]
	for k := range g.shares {
		if g.shares[k].pod == pod {
			g.shares[k].replicas++
			return true
		}
	}
	g.shares = append(g.shares, share{pod: pod, replicas: 1})
	return true
}

// migHeld reports whether any MIG device of GPU i is held.
func (nu *nodeUse) migHeld(i int) bool {
	for j, m := range nu.ns.Topo.MIG {
		if m.Parent == i && len(nu.mig[j]) > 0 {
			return true
		}
	}
	return false
}

// setQuality is the quality of pod's whole-GPU set relative to the best set
// of that size on the node's shape.
func setQuality(ns *NodeState, pod string, set topology.GPUSet) SetQuality {
	shape := ns.Topo.Shape()
	c := score.Choice{Kind: score.KindWhole, GPUs: set, Quality: shape.Quality(set), Ideal: shape.Ideal(set.Len())}
	return SetQuality{
		Pod: pod, Node: ns.Name, GPUs: set,
		Ring: c.Quality.RingGBps, Ideal: c.Ideal.RingGBps,
		Ratio: c.QualityRatio(),
		Path:  pathOf(c.Quality.RingGBps),
	}
}

// state is the usage class of GPU i.
func (nu *nodeUse) state(i int) gpuState {
	g := nu.ns.Topo.GPUs[i]
	u := &nu.gpus[i]
	switch {
	case !g.Healthy:
		return gpuUnhealthy
	case nu.ns.UsageUnknown:
		return gpuUnknown
	case len(u.whole) > 0:
		return gpuFull
	case g.MIGEnabled:
		used, total := nu.migCount(i)
		return fillState(used, total)
	case g.Replicas > 1:
		return fillState(u.replicasUsed(), g.Replicas)
	}
	return gpuFree
}

func fillState(used, total int) gpuState {
	switch {
	case used == 0:
		return gpuFree
	case used >= total:
		return gpuFull
	}
	return gpuPartly
}

// migCount is the number of MIG devices of GPU i held, and in all.
func (nu *nodeUse) migCount(i int) (used, total int) {
	for j, m := range nu.ns.Topo.MIG {
		if m.Parent != i {
			continue
		}
		total++
		if len(nu.mig[j]) > 0 {
			used++
		}
	}
	return used, total
}

// equivalents is the GPU capacity allocated on GPU i: 1 when held whole,
// replicas held / replicas advertised, plus migFraction of each MIG device
// held; at most 1.
func (nu *nodeUse) equivalents(i int) float64 {
	u := &nu.gpus[i]
	if len(u.whole) > 0 {
		return 1
	}
	var e float64
	if r := nu.ns.Topo.GPUs[i].Replicas; r > 1 {
		e += float64(u.replicasUsed()) / float64(r)
	}
	for j, m := range nu.ns.Topo.MIG {
		if m.Parent == i && len(nu.mig[j]) > 0 {
			e += migFraction(m)
		}
	}
	return min(1, e)
}

// migFraction is the share of its GPU a MIG device takes: the GPU
// instance's compute slices over 7 (the "<g>g" of "1g.5gb", "1c.2g.10gb",
// "3g.20gb+me"); when the profile does not name them, its memory slices over
// the 8 of an A100/H100 (Size/8).
func migFraction(m topology.MIGDevice) float64 {
	for _, f := range strings.Split(strings.SplitN(m.Profile, "+", 2)[0], ".") {
		if g, ok := strings.CutSuffix(f, "g"); ok {
			if n, err := strconv.Atoi(g); err == nil && n >= 1 && n <= 7 {
				return float64(n) / 7
			}
		}
	}
	return math.Min(1, math.Max(0, float64(m.Size)/8))
}

// freeNVLinkGroups returns the sizes (largest first) of the groups of
// entirely free whole GPUs (healthy, not MIG, not time-shared) that NVLink
// connects, counting groups of 2 or more.
func (nu *nodeUse) freeNVLinkGroups() []int {
	n := nu.ns.Topo
	var free topology.GPUSet
	for i, g := range n.GPUs {
		if i < topology.MaxGPUs && g.Healthy && !g.MIGEnabled && g.Replicas <= 1 && nu.state(i) == gpuFree {
			free = free.Add(i)
		}
	}
	var sizes []int
	for free != 0 {
		group := topology.SetOf(free.Lowest())
		for frontier := group; frontier != 0; {
			var next topology.GPUSet
			for _, i := range frontier.Indexes() {
				for _, j := range free.Minus(group).Indexes() {
					if i < len(n.Links) && j < len(n.Links[i]) && n.Links[i][j].Class.IsNVLink() {
						next = next.Add(j)
					}
				}
			}
			group |= next
			frontier = next
		}
		free = free.Minus(group)
		if group.Len() >= 2 {
			sizes = append(sizes, group.Len())
		}
	}
	slices.SortFunc(sizes, func(a, b int) int { return b - a })
	return sizes
}

// fragmentation is the node's FGD fragmentation (GPUs) under d, from the
// known device IDs in use.
func (nu *nodeUse) fragmentation(d *score.Distribution) float64 {
	_, f := nu.freeAndFragmentation(d)
	return f
}

// freeAndFragmentation are the node's free capacity (GPUs not in MIG mode,
// as FGD counts it: score.State.FreeCapacity) and its FGD fragmentation
// under d, which is a part of it.
func (nu *nodeUse) freeAndFragmentation(d *score.Distribution) (free, frag float64) {
	s, _ := score.StateOf(nu.ns.Topo, nu.used)
	return s.FreeCapacity(), score.Fragmentation(s, d)
}

// SideMetrics are the cluster-level numbers of one side.
type SideMetrics struct {
	Profile string
	Nodes   int
	// NodesNoTopology are nodes with no published topology (not counted
	// in the GPU figures).
	NodesNoTopology int
	GPUs            int
	Free, Partly    int
	Full, Unhealthy int
	MIGUsed         int
	MIGTotal        int
	ReplicasUsed    int
	ReplicasTotal   int
	// GPUEquiv is the GPU capacity allocated (whole = 1, MIG = migFraction,
	// replica = 1/replicas of its GPU).
	GPUEquiv float64
	// Fragmentation is the FGD fragmentation summed over nodes, in GPUs:
	// the expected free capacity the workload's task types cannot use.
	Fragmentation float64
	// FreeCapacity is the free capacity fragmentation is a part of, summed
	// over nodes, in GPUs: free whole GPUs and the free share of
	// time-shared ones (GPUs in MIG mode are not counted, as FGD does not).
	FreeCapacity   float64
	WholeNodesFree int
	// FreeNVLinkGroups are the sizes of the free NVLink-connected groups
	// of 2 or more whole GPUs over all nodes, largest first.
	FreeNVLinkGroups []int
	// Multi are the multi-GPU pods (2 or more whole GPUs on one node).
	Multi     []SetQuality
	MeanRatio float64 // mean of Multi's Ratio (0 when none)
	OverSYS   int     // multi-GPU pods whose ring crosses sockets
	OverPCIe  int     // multi-GPU pods whose ring leaves NVLink within a socket
	// Placed counts the pods holding devices, per workload class.
	Placed          map[string]int
	Pending         []string
	Unknown         int      // device IDs the node topologies lack
	Problems        []string // one line per unknown device or conflict
	perNodeFrag     []float64
	perNodeAnalysis []*nodeUse
}

// PlacedPods is the number of pods holding devices, all classes together.
func (m *SideMetrics) PlacedPods() int {
	n := 0
	for _, k := range m.Placed {
		n += k
	}
	return n
}

// AllocPercent is GPUEquiv over the GPU count, in percent.
func (m *SideMetrics) AllocPercent() float64 {
	if m.GPUs == 0 {
		return 0
	}
	return 100 * m.GPUEquiv / float64(m.GPUs)
}

// AnalyzeSide computes a side's metrics under the workload d (nil:
// score.DefaultDistribution).
func AnalyzeSide(s *Side, d *score.Distribution) *SideMetrics {
	if d == nil {
		d = score.DefaultDistribution()
	}
	m := &SideMetrics{Profile: s.Profile, Nodes: len(s.Nodes), Pending: slices.Clone(s.Pending), Placed: map[string]int{}}
	seen := map[string]bool{}
	for k := range s.Nodes {
		ns := &s.Nodes[k]
		for _, p := range ns.Pods {
			if !seen[p.Pod] && holdsAny(p) {
				seen[p.Pod] = true
				m.Placed[p.Class]++
			}
		}
		nu := analyzeNode(ns)
		m.perNodeAnalysis = append(m.perNodeAnalysis, nu)
		m.Problems = append(m.Problems, nu.problems...)
		for _, u := range nu.unknown {
			m.Unknown++
			m.Problems = append(m.Problems, fmt.Sprintf("node %s: %s holds unknown device %s%s", ns.Name, u.Pod, u.ID, resourceNote(u.Resource)))
		}
		if ns.Topo == nil {
			m.NodesNoTopology++
			m.perNodeFrag = append(m.perNodeFrag, 0)
			continue
		}
		m.addNode(nu)
		free, f := nu.freeAndFragmentation(d)
		m.perNodeFrag = append(m.perNodeFrag, f)
		m.Fragmentation += f
		m.FreeCapacity += free
	}
	slices.SortFunc(m.FreeNVLinkGroups, func(a, b int) int { return b - a })
	for _, q := range m.Multi {
		m.MeanRatio += q.Ratio / float64(len(m.Multi))
		switch q.Path {
		case PathSYS:
			m.OverSYS++
		case PathPCIe:
			m.OverPCIe++
		}
	}
	return m
}

// addNode adds one node's GPU, MIG and replica figures.
func (m *SideMetrics) addNode(nu *nodeUse) {
	n := nu.ns.Topo
	allFree := len(n.GPUs) > 0
	for i, g := range n.GPUs {
		m.GPUs++
		switch nu.state(i) {
		case gpuFree:
			m.Free++
		case gpuPartly:
			m.Partly++
			allFree = false
		case gpuFull:
			m.Full++
			allFree = false
		case gpuUnhealthy:
			m.Unhealthy++
			allFree = false
		}
		if g.Replicas > 1 {
			m.ReplicasTotal += g.Replicas
			m.ReplicasUsed += min(g.Replicas, nu.gpus[i].replicasUsed())
		}
		m.GPUEquiv += nu.equivalents(i)
	}
	for j := range n.MIG {
		m.MIGTotal++
		if len(nu.mig[j]) > 0 {
			m.MIGUsed++
		}
	}
	if allFree {
		m.WholeNodesFree++
	}
	m.FreeNVLinkGroups = append(m.FreeNVLinkGroups, nu.freeNVLinkGroups()...)
	m.Multi = append(m.Multi, nu.multi...)
}

// holdsAny reports whether p holds at least one device.
func holdsAny(p Placement) bool {
	for _, ids := range p.Devices {
		if len(ids) > 0 {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
