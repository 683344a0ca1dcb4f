package gpuview

import (
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// NodeView is one node's GPU map as data (kubectl gpupack nodes -o json).
type NodeView struct {
	Name string `json:"name"`
	// Error says why the node's annotations could not be read.
	Error   string `json:"error,omitempty"`
	Summary string `json:"summary,omitempty"`
	// Fragmentation is the node's FGD fragmentation (GPUs) under the
	// workload the view was made with; 0 when UsageUnknown.
	Fragmentation float64 `json:"fragmentation"`
	// UsageUnknown: the node's in-use report could not be read (Error
	// says why), so which devices are in use is unknown; its GPUs' State
	// is "unknown".
	UsageUnknown bool      `json:"usageUnknown,omitempty"`
	GPUs         []GPUView `json:"gpus,omitempty"`
	// Note says where the holders come from when the node publishes no
	// in-use report (the scheduler's choices).
	Note string `json:"note,omitempty"`
	// Problems are device IDs the node lacks and devices held twice.
	Problems []string `json:"problems,omitempty"`
}

// GPUView is one GPU: its links and who holds it.
type GPUView struct {
	Index   int    `json:"index"`
	UUID    string `json:"uuid"`
	Model   string `json:"model"`
	NUMA    int    `json:"numa"`
	Healthy bool   `json:"healthy"`
	// State is "free", "partly used", "fully used", "unhealthy" or
	// "unknown" (the node's in-use report could not be read).
	State string `json:"state"`
	// Links are the labels of its links to every GPU, by index ("X": itself).
	Links []string `json:"links"`
	// HeldBy are the pods holding it whole.
	HeldBy []string `json:"heldBy,omitempty"`
	// Replicas is its time-shared replica count (0 or 1: not shared);
	// Shares who holds them.
	Replicas int         `json:"replicas,omitempty"`
	Shares   []ShareView `json:"shares,omitempty"`
	MIG      []MIGView   `json:"mig,omitempty"`
}

// ShareView is a pod's replicas of one time-shared GPU.
type ShareView struct {
	Pod      string `json:"pod"`
	Replicas int    `json:"replicas"`
}

// MIGView is one MIG device and who holds it.
type MIGView struct {
	UUID    string `json:"uuid"`
	Profile string `json:"profile"`
	// Slices is the placement as the tables write it, "[4-7]"; -o
	// json|yaml carry Placement instead.
	Slices string `json:"-"`
	// Placement is where the device sits on its GPU: its first memory
	// slice and how many it spans.
	Placement MIGSlices `json:"slices"`
	Healthy   bool      `json:"healthy"`
	HeldBy    []string  `json:"heldBy,omitempty"`
}

// MIGSlices is a MIG device's placement on its GPU: memory slices Start to
// Start+Size-1.
type MIGSlices struct {
	Start int `json:"start"`
	Size  int `json:"size"`
}

var stateNames = map[gpuState]string{gpuFree: "free", gpuPartly: "partly used", gpuFull: "fully used", gpuUnhealthy: "unhealthy", gpuUnknown: "unknown"}

// NodeViews are the cluster's GPU nodes under the workload d (nil:
// score.DefaultDistribution).
func (c *Cluster) NodeViews(d *score.Distribution) []NodeView {
	if d == nil {
		d = score.DefaultDistribution()
	}
	out := make([]NodeView, 0, len(c.Side.Nodes))
	for k := range c.Side.Nodes {
		ns := &c.Side.Nodes[k]
		nu := analyzeNode(ns)
		v := NodeView{Name: ns.Name, Error: ns.Error, UsageUnknown: ns.UsageUnknown, Note: ns.Note, Problems: nu.problems}
		for _, u := range nu.unknown {
			v.Problems = append(v.Problems, fmt.Sprintf("%s holds unknown device %s%s", u.Pod, u.ID, resourceNote(u.Resource)))
		}
		if ns.Topo != nil {
			v.Summary = modelSummary(ns.Topo)
			if !ns.UsageUnknown {
				v.Fragmentation = nu.fragmentation(d)
			}
			for i := range ns.Topo.GPUs {
				v.GPUs = append(v.GPUs, nu.gpuView(i))
			}
		}
		out = append(out, v)
	}
	return out
}

func (nu *nodeUse) gpuView(i int) GPUView {
	g := nu.ns.Topo.GPUs[i]
	u := &nu.gpus[i]
	v := GPUView{
		Index: g.Index, UUID: g.UUID, Model: g.Model, NUMA: g.NUMANode, Healthy: g.Healthy,
		State: stateNames[nu.state(i)], Links: linkRow(nu.ns.Topo, i), HeldBy: u.whole,
	}
	if g.Replicas > 1 {
		v.Replicas = g.Replicas
		for _, sh := range u.shares {
			v.Shares = append(v.Shares, ShareView{Pod: sh.pod, Replicas: sh.replicas})
		}
	}
	for j, m := range nu.ns.Topo.MIG {
		if m.Parent == i {
			v.MIG = append(v.MIG, MIGView{UUID: m.UUID, Profile: m.Profile, Slices: m.SliceLabel(), Placement: MIGSlices{Start: m.Start, Size: m.Size},
				Healthy: m.Healthy, HeldBy: nu.mig[j]})
		}
	}
	return v
}

// WriteNodes writes every GPU node's map (the report's per-node block) under
// the workload d (nil: score.DefaultDistribution).
func (c *Cluster) WriteNodes(w io.Writer, d *score.Distribution) error {
	if d == nil {
		d = score.DefaultDistribution()
	}
	ew := &errWriter{w: w}
	for k := range c.Side.Nodes {
		ns := &c.Side.Nodes[k]
		nu := analyzeNode(ns)
		frag := 0.0
		if ns.Topo != nil {
			frag = nu.fragmentation(d)
		}
		writeNode(ew, nu, frag)
		for _, p := range nu.problems {
			fmt.Fprintf(ew, "  ! %s\n", p)
		}
		fmt.Fprintln(ew)
	}
	if len(c.Side.Nodes) == 0 {
		fmt.Fprintln(ew, "no GPU nodes (no node carries gpupack.io/topology)")
	}
	if ew.err != nil {
		return fmt.Errorf("writing nodes: %w", ew.err)
	}
	return nil
}

// WritePods writes the GPU pods as a table, device IDs shortened and the
// whole GPUs' indexes in a GPUS column (no node topology to name devices
// by: Cluster.WritePodTable does).
func WritePods(w io.Writer, pods []PodView) error {
	return writePods(w, pods, nil, PodTableOptions{})
}

// PodTableOptions are the pods table's choices.
type PodTableOptions struct {
	// Wide writes every device ID in full, GIVEN in full even when it is
	// the choice, and the GPUS column (-o wide).
	Wide bool
}

// WritePodTable writes the GPU pods as a table. Devices are named by the
// node's GPUs where its topology knows them: a whole GPU by its index (runs
// of three or more as 0-3), replica n of GPU i as i::n, a MIG device by its
// GPU and slices, 0[4-7]; other IDs with their NVML UUIDs shortened
// (idsLabel). GIVEN is "= chosen" when the kubelet gave what the scheduler
// chose. o.Wide keeps every ID whole instead, and adds the GPUS column (the
// whole GPUs' indexes).
func (c *Cluster) WritePodTable(w io.Writer, pods []PodView, o PodTableOptions) error {
	return writePods(w, pods, func(node string) *topology.Node {
		if ns := c.node(node); ns != nil {
			return ns.Topo
		}
		return nil
	}, o)
}

// sameAsChosen is GIVEN's cell when the kubelet gave what was chosen.
const sameAsChosen = "= chosen"

// writePods writes the pods table; topo is a node's topology (nil: none
// known, or no lookup).
func writePods(w io.Writer, pods []PodView, topo func(string) *topology.Node, o PodTableOptions) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// GPUS (the whole GPUs' indexes) when the IDs do not say them.
	gpus := o.Wide || topo == nil
	if gpus {
		fmt.Fprintln(tw, "POD\tNODE\tCHOSEN\tGIVEN\tHANDOFF\tGPUS\tSET QUALITY")
	} else {
		fmt.Fprintln(tw, "POD\tNODE\tCHOSEN\tGIVEN\tHANDOFF\tSET QUALITY")
	}
	for _, p := range pods {
		label := idsLabel
		switch {
		case o.Wide:
			label = fullIDsLabel
		case topo != nil:
			if n := topo(p.Node); n != nil {
				label = func(ids []string) string { return deviceLabel(n, ids) }
			}
		}
		given := label(p.Given)
		if p.Handoff == HandoffExact && !o.Wide {
			given = sameAsChosen
		}
		if gpus {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Pod, dash(p.Node), chosenLabel(p, label), given, p.Handoff, gpusLabel(p.GPUs), qualityLabel(p.Quality))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Pod, dash(p.Node), chosenLabel(p, label), given, p.Handoff, qualityLabel(p.Quality))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing pods: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// chosenLabel is "nvidia.com/gpu=<label of its IDs>" (resources in order),
// or the annotation's error.
func chosenLabel(p PodView, label func([]string) string) string {
	if p.ChosenError != "" {
		return "! " + p.ChosenError
	}
	if len(p.Chosen) == 0 {
		return "-"
	}
	s := ""
	for _, res := range sortedKeys(p.Chosen) {
		if s != "" {
			s += " "
		}
		s += res + "=" + label(p.Chosen[res])
	}
	return s
}

// idsLabel joins device IDs for a table cell, each NVML UUID cut to its
// first 8 hex digits as docker and git shorten IDs ("GPU-3bdeaa45::0" for
// "GPU-3bdeaa45-a496-541d-97b0-9442896f29d7::0"): an 8-GPU set stays one
// readable column. -o json|yaml keep the full IDs.
func idsLabel(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	s := shortUUIDs(ids[0])
	for _, id := range ids[1:] {
		s += "," + shortUUIDs(id)
	}
	return s
}

// fullIDsLabel joins device IDs as they are (-o wide).
func fullIDsLabel(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	return strings.Join(ids, ",")
}

// deviceLabel names device IDs by node n's GPUs: whole GPUs by index,
// ascending, runs of three or more as a range ("0-3,6"); then replica r of
// GPU i as "i::r" and MIG devices as "<GPU>[<slices>]" ("0[4-7]", a
// replica of one "0[4-7]::1"), by GPU and slice; then IDs the node lacks,
// shortened as idsLabel does, in their order.
func deviceLabel(n *topology.Node, ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	idx := n.DeviceIndex()
	type part struct {
		gpu, start, replica int
		label               string
	}
	var whole []int
	var parts []part
	var unknown []string
	for _, id := range ids {
		uuid, replica, err := deviceid.Split(id)
		k, ok := idx[uuid]
		if err != nil || !ok {
			unknown = append(unknown, id)
			continue
		}
		var p part
		if k >= 0 {
			p = part{gpu: n.GPUs[k].Index, start: -1, label: strconv.Itoa(n.GPUs[k].Index)}
		} else {
			m := n.MIG[-1-k]
			p = part{gpu: m.Parent, start: m.Start, label: strconv.Itoa(m.Parent) + m.SliceLabel()}
		}
		if replica < 0 && k >= 0 {
			whole = append(whole, p.gpu)
			continue
		}
		p.replica = replica
		if replica >= 0 {
			p.label += deviceid.Separator + strconv.Itoa(replica)
		}
		parts = append(parts, p)
	}
	slices.Sort(whole)
	slices.SortStableFunc(parts, func(a, b part) int {
		return cmp.Or(cmp.Compare(a.gpu, b.gpu), cmp.Compare(a.start, b.start), cmp.Compare(a.replica, b.replica))
	})
	labels := indexRuns(whole)
	for _, p := range parts {
		labels = append(labels, p.label)
	}
	if len(unknown) > 0 {
		labels = append(labels, idsLabel(unknown))
	}
	return strings.Join(labels, ",")
}

// indexRuns writes sorted indexes with runs of three or more consecutive
// ones as "a-b": [0 1 2 3 6] is "0-3", "6".
func indexRuns(idx []int) []string {
	var out []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j-i >= 2 {
			out = append(out, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		} else {
			for k := i; k <= j; k++ {
				out = append(out, strconv.Itoa(idx[k]))
			}
		}
		i = j + 1
	}
	return out
}

// nvmlUUID matches an NVML GPU or MIG UUID, capturing its prefix and first
// 8 hex digits.
var nvmlUUID = regexp.MustCompile(`\b(GPU|MIG)-([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`)

// shortUUIDs shortens every NVML UUID in s to its prefix and first 8 hex
// digits; anything else (replica suffixes, stand-in IDs) is kept.
func shortUUIDs(s string) string {
	return nvmlUUID.ReplaceAllString(s, "$1-$2")
}

func gpusLabel(idx []int) string {
	if len(idx) == 0 {
		return "-"
	}
	var set topology.GPUSet
	for _, i := range idx {
		set = set.Add(i)
	}
	return set.String()
}

func qualityLabel(q *SetQuality) string {
	if q == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f (ring %.0f of %.0f GB/s, %s)", q.Ratio, q.Ring, q.Ideal, q.Path)
}

// FragView is the cluster's fragmentation by node and by task type.
type FragView struct {
	// Total is the sum over nodes, in GPUs.
	Total float64    `json:"total"`
	Nodes []NodeFrag `json:"nodes"`
	Types []TypeFrag `json:"types"`
}

// NodeFrag is one node's fragmentation and its free capacity.
type NodeFrag struct {
	Node string `json:"node"`
	// Error: no readable topology or in-use report (the node is left out
	// of the figures; GPUs is known when only the in-use report is not).
	Error string `json:"error,omitempty"`
	GPUs  int    `json:"gpus"`
	// FreeCapacity is the GPU capacity not in use (GPUs; part-used shared
	// GPUs count their free share).
	FreeCapacity  float64 `json:"freeCapacity"`
	Fragmentation float64 `json:"fragmentation"`
}

// TypeFrag is one task type's part of the cluster's fragmentation: p times
// the free capacity that type cannot use, summed over nodes.
type TypeFrag struct {
	Type          string  `json:"type"`
	P             float64 `json:"p"`
	Fragmentation float64 `json:"fragmentation"`
	// Stranded is the free capacity (GPUs) this type alone cannot use.
	Stranded float64 `json:"stranded"`
}

// Frag measures the cluster's fragmentation under d (nil:
// score.DefaultDistribution). By FGD F_n = sum_m p_m F_n,m, so each type's
// part is p_m times score.Fragmentation under that type alone, and the
// parts add up to Total.
func (c *Cluster) Frag(d *score.Distribution) (FragView, error) {
	if d == nil {
		d = score.DefaultDistribution()
	}
	single := make([]*score.Distribution, len(d.Types))
	v := FragView{Types: make([]TypeFrag, len(d.Types))}
	for m, t := range d.Types {
		sd, err := score.NewDistribution([]score.Weighted{{Type: t, Weight: 1}})
		if err != nil {
			return FragView{}, fmt.Errorf("task type %s: %w", t, err)
		}
		single[m] = sd
		v.Types[m] = TypeFrag{Type: t.String(), P: d.P[m]}
	}
	for k := range c.Side.Nodes {
		ns := &c.Side.Nodes[k]
		nf := NodeFrag{Node: ns.Name, Error: ns.Error}
		if ns.Topo != nil {
			nf.GPUs = len(ns.Topo.GPUs)
		}
		if ns.Topo == nil || ns.UsageUnknown {
			// Unknown usage is not free capacity: left out of the figures.
			v.Nodes = append(v.Nodes, nf)
			continue
		}
		nu := analyzeNode(ns)
		s, _ := score.StateOf(ns.Topo, nu.used)
		nf.FreeCapacity = s.FreeCapacity()
		nf.Fragmentation = score.Fragmentation(s, d)
		v.Total += nf.Fragmentation
		for m := range single {
			f := score.Fragmentation(s, single[m])
			v.Types[m].Stranded += f
			v.Types[m].Fragmentation += d.P[m] * f
		}
		v.Nodes = append(v.Nodes, nf)
	}
	return v, nil
}

// WriteFrag writes the fragmentation tables.
func WriteFrag(w io.Writer, v FragView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGPUS\tFREE\tFRAGMENTATION")
	for _, n := range v.Nodes {
		if n.Error != "" {
			gpus := "-"
			if n.GPUs > 0 {
				gpus = fmt.Sprint(n.GPUs)
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t! %s\n", n.Node, gpus, n.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\n", n.Node, n.GPUs, n.FreeCapacity, n.Fragmentation)
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t%.2f\n", v.Total)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TASK TYPE\tSHARE\tSTRANDED\tFRAGMENTATION")
	for _, t := range v.Types {
		fmt.Fprintf(tw, "%s\t%.0f%%\t%.2f\t%.2f\n", t.Type, 100*t.P, t.Stranded, t.Fragmentation)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing fragmentation: %w", err)
	}
	return nil
}

// WorkloadView is the workload a fragmentation figure is measured against
// (FGD: the free GPU capacity its task types, by their shares, cannot
// use): where it comes from and its task types.
type WorkloadView struct {
	// Source says where the workload comes from, e.g. "GPUPack's default
	// prior (args workload.prior)".
	Source string         `json:"source"`
	Types  []WorkloadType `json:"types"`
}

// WorkloadType is one task type of a workload and its share (0..1).
type WorkloadType struct {
	// Type is "whole:4", "shared:500m", "mig:1g.10gb" (pkg/score's form).
	Type string  `json:"type"`
	P    float64 `json:"p"`
}

// NewWorkloadView describes d (nil: score.DefaultDistribution) as coming
// from source.
func NewWorkloadView(d *score.Distribution, source string) WorkloadView {
	if d == nil {
		d = score.DefaultDistribution()
	}
	v := WorkloadView{Source: source, Types: make([]WorkloadType, len(d.Types))}
	for i, t := range d.Types {
		v.Types[i] = WorkloadType{Type: t.String(), P: d.P[i]}
	}
	return v
}

// WriteWorkload writes the line that says which workload the
// fragmentation figures above assume, "fragmentation workload: <source>",
// and with types its task types and shares on the next, wrapped as the
// report's lists.
func WriteWorkload(w io.Writer, v WorkloadView, types bool) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "fragmentation workload: %s\n", v.Source)
	if types {
		items := make([]string, len(v.Types))
		for i, t := range v.Types {
			items[i] = fmt.Sprintf("%s %.0f%%", t.Type, 100*t.P)
		}
		writeList(ew, "  ", items)
	}
	if ew.err != nil {
		return fmt.Errorf("writing the workload: %w", ew.err)
	}
	return nil
}
