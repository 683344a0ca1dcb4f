package gpuview

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// WriteReport writes, for people at a terminal, each side's GPU map per
// node (who holds which GPU, MIG device and replica), its allocation and
// fragmentation figures and the link quality of its multi-GPU pods, then a
// side-by-side summary. Fragmentation is measured against d (nil:
// score.DefaultDistribution). classes orders the per-class count of placed
// pods (Placement.Class); with none the summary counts pods in all.
// Malformed input (a node without topology, a device ID the node lacks, a
// device held twice) is marked in the report, never fatal; the error is
// only the writer's. It is WriteReportWith without a workload source.
func WriteReport(w io.Writer, sides []Side, d *score.Distribution, classes []string) error {
	return WriteReportWith(w, sides, ReportOptions{Workload: d, Classes: classes})
}

// ReportOptions are what WriteReportWith measures against and how it says so.
type ReportOptions struct {
	// Workload is the task-type mix fragmentation is measured against
	// (nil: score.DefaultDistribution).
	Workload *score.Distribution
	// WorkloadSource says, for the reader, where Workload comes from (e.g.
	// "the demo's own workload mix, not the scheduler's learned or default
	// workload"), so that the report's fragmentation is not confused with
	// another tool's figure for the same nodes. Empty: "GPUPack's default
	// prior (args workload.prior)" when Workload is nil, else not said.
	WorkloadSource string
	// Classes orders the per-class count of placed pods
	// (Placement.Class); with none the summary counts pods in all.
	Classes []string
}

// WriteReportWith is WriteReport with the workload's source named in the
// summary.
func WriteReportWith(w io.Writer, sides []Side, o ReportOptions) error {
	d, source := o.Workload, o.WorkloadSource
	if d == nil {
		d = score.DefaultDistribution()
		if source == "" {
			source = "GPUPack's default prior (args workload.prior)"
		}
	}
	ew := &errWriter{w: w}
	rows := metricRows(o.Classes)
	ms := make([]*SideMetrics, len(sides))
	for i := range sides {
		ms[i] = AnalyzeSide(&sides[i], d)
		writeSide(ew, &sides[i], ms[i], rows)
	}
	writeSummary(ew, ms, d, source, rows)
	if ew.err != nil {
		return fmt.Errorf("writing demo report: %w", ew.err)
	}
	return nil
}

// errWriter keeps the first write error and drops later writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	e.err = err
	return n, err
}

func writeSide(w io.Writer, s *Side, m *SideMetrics, rows []metricRow) {
	fmt.Fprintf(w, "==== %s: %d nodes, %d GPUs ====\n\n", s.Profile, m.Nodes, m.GPUs)
	for k := range s.Nodes {
		writeNode(w, m.perNodeAnalysis[k], m.perNodeFrag[k])
		fmt.Fprintln(w)
	}
	writeMulti(w, m.Multi)
	fmt.Fprintf(w, "allocation (%s):\n", s.Profile)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\t%s\n", r.label, r.value(m))
	}
	_ = tw.Flush() // errors are kept by the errWriter underneath
	writeList(w, "  pending: ", m.Pending)
	for _, p := range m.Problems {
		fmt.Fprintf(w, "  ! %s\n", p)
	}
	fmt.Fprintln(w)
}

// writeNode writes one node's GPU map.
func writeNode(w io.Writer, nu *nodeUse, frag float64) {
	ns := nu.ns
	if ns.Topo == nil {
		if ns.Error != "" {
			fmt.Fprintf(w, "node %s: no usable GPU topology: %s\n", ns.Name, ns.Error)
		} else {
			fmt.Fprintf(w, "node %s: no GPU topology published (gpupack.io/topology missing)\n", ns.Name)
		}
		writeUnknown(w, nu)
		return
	}
	if ns.UsageUnknown {
		fmt.Fprintf(w, "node %s: %s, fragmentation unknown (in-use report unreadable)\n", ns.Name, modelSummary(ns.Topo))
	} else {
		fmt.Fprintf(w, "node %s: %s, fragmentation %.2f GPUs\n", ns.Name, modelSummary(ns.Topo), frag)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cols, uniform := linkHeader(ns.Topo)
	fmt.Fprintf(tw, "  GPU\tMODEL\t%s\tNUMA\tHELD BY\n", strings.Join(cols, "\t"))
	pad := strings.Repeat("\t", 3+len(cols)) // empty cells up to HELD BY
	budget := max(minHolderWidth, maxWidth-heldByColumn(ns.Topo, cols, uniform))
	for i, g := range ns.Topo.GPUs {
		links := uniform
		if uniform == "" {
			links = strings.Join(linkRow(ns.Topo, i), "\t")
		}
		held := nu.holderLines(i, budget)
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", g.Index, shortModel(g.Model), links, numa(g.NUMANode), held[0])
		for _, line := range held[1:] {
			fmt.Fprintf(tw, "%s%s\n", pad, line)
		}
	}
	_ = tw.Flush()
	if ns.Error != "" {
		fmt.Fprintf(w, "  ! %s\n", ns.Error)
	}
	if ns.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", ns.Note)
	}
	writeUnknown(w, nu)
}

// maxWidth is the terminal width the report keeps to; minHolderWidth the
// least room left for the HELD BY column (a long pod name may still pass).
const (
	maxWidth       = 120
	minHolderWidth = 40
)

// heldByColumn is where the HELD BY column starts in writeNode's table: 2
// for the indent, then each column's widest cell plus tabwriter's padding
// of 2.
func heldByColumn(n *topology.Node, cols []string, uniform string) int {
	const padding = 2
	gpu, model, numaW := len("GPU"), len("MODEL"), len("NUMA")
	links := make([]int, len(cols))
	for k, c := range cols {
		links[k] = len(c)
	}
	for i, g := range n.GPUs {
		gpu = max(gpu, len(strconv.Itoa(g.Index)))
		model = max(model, len(shortModel(g.Model)))
		numaW = max(numaW, len(numa(g.NUMANode)))
		if uniform != "" {
			links[0] = max(links[0], len(uniform))
			continue
		}
		for k, l := range linkRow(n, i) {
			links[k] = max(links[k], len(l))
		}
	}
	w := 2 + gpu + model + numaW + 3*padding
	for _, l := range links {
		w += l + padding
	}
	return w
}

func writeUnknown(w io.Writer, nu *nodeUse) {
	for _, u := range nu.unknown {
		fmt.Fprintf(w, "  ! unknown device %s%s held by %s: not on this node\n", u.ID, resourceNote(u.Resource), u.Pod)
	}
}

// resourceNote is " (nvidia.com/gpu)", or "" when the resource is not known.
func resourceNote(res string) string {
	if res == "" {
		return ""
	}
	return " (" + res + ")"
}

// modelSummary is "8 x V100-SXM2-16GB" (or "4 x T4 + 2 x A10" on a mixed node).
func modelSummary(n *topology.Node) string {
	var order []string
	count := map[string]int{}
	for _, g := range n.GPUs {
		m := shortModel(g.Model)
		if count[m] == 0 {
			order = append(order, m)
		}
		count[m]++
	}
	if len(order) == 0 {
		return "no GPUs"
	}
	parts := make([]string, len(order))
	for i, m := range order {
		parts[i] = fmt.Sprintf("%d x %s", count[m], m)
	}
	s := strings.Join(parts, " + ")
	if n.Clique != "" {
		s += ", NVLink clique " + n.Clique
	}
	return s
}

// shortModel drops the vendor words of a product name:
// "NVIDIA A100-SXM4-40GB" -> "A100-SXM4-40GB", "Tesla T4" -> "T4".
func shortModel(model string) string {
	for _, p := range []string{"NVIDIA ", "Tesla "} {
		model = strings.TrimPrefix(model, p)
	}
	if model == "" {
		return "?"
	}
	return model
}

func numa(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// linkHeader returns the link columns' headers: one per GPU (the compact
// matrix), or the single column LINKS with uniform set to e.g. "all NS12"
// when every pair has the same link (NVSwitch boxes).
func linkHeader(n *topology.Node) (cols []string, uniform string) {
	label := ""
	same := len(n.GPUs) > 2
	for i := range n.GPUs {
		for j := range n.GPUs {
			if i == j {
				continue
			}
			l := n.LinkLabel(i, j)
			if label == "" {
				label = l
			}
			same = same && l == label
		}
	}
	if same {
		return []string{"LINKS"}, "all " + label
	}
	cols = make([]string, len(n.GPUs))
	for i, g := range n.GPUs {
		cols[i] = strconv.Itoa(g.Index)
	}
	return cols, ""
}

// linkRow is GPU i's row of the compact link matrix ("X" for itself).
func linkRow(n *topology.Node, i int) []string {
	row := make([]string, len(n.GPUs))
	for j := range n.GPUs {
		row[j] = n.LinkLabel(i, j)
	}
	return row
}

// holderLines say who holds GPU i: a pod, "free", the time-shared holders
// with their replica counts (as many per line as width allows), or a MIG
// summary followed by one line per MIG device.
func (nu *nodeUse) holderLines(i, width int) []string {
	g := nu.ns.Topo.GPUs[i]
	u := &nu.gpus[i]
	var lines []string
	switch {
	case nu.ns.UsageUnknown:
		lines = []string{"unknown"}
	case len(u.whole) > 0:
		lines = []string{strings.Join(u.whole, ", ")}
	case g.MIGEnabled:
		used, total := nu.migCount(i)
		lines = append([]string{fmt.Sprintf("MIG, %d/%d instances used", used, total)}, nu.migLines(i)...)
	case g.Replicas > 1:
		lines = sharedLines(u, g.Replicas, width)
	default:
		lines = []string{"free"}
	}
	if !g.Healthy {
		lines[0] = "UNHEALTHY, " + lines[0]
	}
	return lines
}

// sharedLines are "ns/a x2, ns/b x1 (3/4)", wrapped to width (a single
// holder too long for it stands alone on its line), or "free (0/4 replicas)".
func sharedLines(u *gpuUse, replicas, width int) []string {
	if len(u.shares) == 0 {
		return []string{fmt.Sprintf("free (0/%d replicas)", replicas)}
	}
	items := make([]string, len(u.shares))
	for k, sh := range u.shares {
		items[k] = fmt.Sprintf("%s x%d", sh.pod, sh.replicas)
	}
	items[len(items)-1] += fmt.Sprintf(" (%d/%d)", u.replicasUsed(), replicas)
	return wrapList(items, width)
}

// wrapList joins items with ", " into lines of at most width characters
// (an item too long for it stands alone on its line); each line but the
// last ends with ",".
func wrapList(items []string, width int) []string {
	var lines []string
	line := ""
	for k, it := range items {
		if k < len(items)-1 {
			it += ","
		}
		switch {
		case line == "":
			line = it
		case len([]rune(line))+1+len([]rune(it)) <= width:
			line += " " + it
		default:
			lines = append(lines, line)
			line = it
		}
	}
	return append(lines, line)
}

// migLines are GPU i's MIG devices: "└ 3g.20gb [4-7]  ns/pod" or "free".
func (nu *nodeUse) migLines(i int) []string {
	var out []string
	for j, m := range nu.ns.Topo.MIG {
		if m.Parent != i {
			continue
		}
		who := "free"
		if len(nu.mig[j]) > 0 {
			who = strings.Join(nu.mig[j], ", ")
		}
		if !m.Healthy {
			who = "UNHEALTHY, " + who
		}
		out = append(out, fmt.Sprintf("└ %-10s %-6s %s", m.Profile, m.SliceLabel(), who))
	}
	if len(out) == 0 {
		out = append(out, "└ no MIG devices configured")
	}
	return out
}

// writeMulti lists the multi-GPU pods with their set's link quality.
func writeMulti(w io.Writer, qs []SetQuality) {
	if len(qs) == 0 {
		return
	}
	fmt.Fprintln(w, "multi-GPU pods (ring = slowest hop of the best all-reduce ring, vs the best set of that size on the node):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, q := range qs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tring %.0f GB/s of best %.0f\t%.2f\t%s\n",
			q.Pod, q.Node, q.GPUs, q.Ring, q.Ideal, q.Ratio, q.Path)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

// metricRow is one line of the allocation block and of the summary table.
type metricRow struct {
	label string
	value func(*SideMetrics) string
}

// metricRows are the rows of the allocation block and the summary, what
// was placed first; classes orders the placed pods' count per class
// (placedRow).
func metricRows(classes []string) []metricRow {
	rows := []metricRow{
		{"nodes", func(m *SideMetrics) string {
			if m.NodesNoTopology > 0 {
				return fmt.Sprintf("%d (%d without topology)", m.Nodes, m.NodesNoTopology)
			}
			return strconv.Itoa(m.Nodes)
		}},
		{"pods placed", func(m *SideMetrics) string { return ofTotal(m.PlacedPods(), m.PlacedPods()+len(m.Pending)) }},
	}
	if len(classes) > 0 {
		rows = append(rows, placedRow(classes))
	}
	return append(rows, []metricRow{
		{"pending pods", func(m *SideMetrics) string { return strconv.Itoa(len(m.Pending)) }},
		{"GPU-equivalents allocated", func(m *SideMetrics) string {
			return fmt.Sprintf("%.2f of %d (%.1f%%)", m.GPUEquiv, m.GPUs, m.AllocPercent())
		}},
		{"free NVLink groups (2+ GPUs)", func(m *SideMetrics) string {
			if len(m.FreeNVLinkGroups) == 0 {
				return "0"
			}
			return fmt.Sprintf("%d (largest %d)", len(m.FreeNVLinkGroups), m.FreeNVLinkGroups[0])
		}},
		{"whole nodes free", func(m *SideMetrics) string { return ofTotal(m.WholeNodesFree, m.Nodes-m.NodesNoTopology) }},
		{"fragmentation of free capacity (FGD, GPUs)", func(m *SideMetrics) string {
			return fmt.Sprintf("%.2f of %.2f", m.Fragmentation, m.FreeCapacity)
		}},
		{"multi-GPU pods", func(m *SideMetrics) string { return strconv.Itoa(len(m.Multi)) }},
		{"mean set quality (1.00 = best)", func(m *SideMetrics) string {
			if len(m.Multi) == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", m.MeanRatio)
		}},
		{"multi-GPU rings over SYS", func(m *SideMetrics) string { return strconv.Itoa(m.OverSYS) }},
		{"multi-GPU rings over PCIe", func(m *SideMetrics) string { return strconv.Itoa(m.OverPCIe) }},
		{"GPUs fully free", func(m *SideMetrics) string { return ofTotal(m.Free, m.GPUs) }},
		{"GPUs partly used", func(m *SideMetrics) string { return ofTotal(m.Partly, m.GPUs) }},
		{"GPUs fully used", func(m *SideMetrics) string { return ofTotal(m.Full, m.GPUs) }},
		{"GPUs unhealthy", func(m *SideMetrics) string { return ofTotal(m.Unhealthy, m.GPUs) }},
		{"MIG instances used", func(m *SideMetrics) string { return fmt.Sprintf("%d/%d", m.MIGUsed, m.MIGTotal) }},
		{"time-shared replicas used", func(m *SideMetrics) string {
			return fmt.Sprintf("%d/%d", m.ReplicasUsed, m.ReplicasTotal)
		}},
		{"unknown devices / conflicts", func(m *SideMetrics) string {
			return fmt.Sprintf("%d / %d", m.Unknown, len(m.Problems)-m.Unknown)
		}},
	}...)
}

// placedRow counts the pods holding devices per class of classes:
// "3/5/4/6", with "+2 other" for pods of any other class.
func placedRow(classes []string) metricRow {
	return metricRow{"placed by class (" + strings.Join(classes, "/") + ")", func(m *SideMetrics) string {
		parts := make([]string, len(classes))
		other := 0
		for c, n := range m.Placed {
			if !slices.Contains(classes, c) {
				other += n
			}
		}
		for i, c := range classes {
			parts[i] = strconv.Itoa(m.Placed[c])
		}
		s := strings.Join(parts, "/")
		if other > 0 {
			s += fmt.Sprintf(" +%d other", other)
		}
		return s
	}}
}

func ofTotal(n, total int) string {
	return fmt.Sprintf("%d of %d", n, total)
}

// writeSummary writes one headline line per side (pods placed, GPU
// capacity allocated), the side-by-side table, what the fragmentation
// figure means, the workload behind it and the pending pods.
func writeSummary(w io.Writer, ms []*SideMetrics, d *score.Distribution, source string, rows []metricRow) {
	fmt.Fprintln(w, "==== summary ====")
	for _, m := range ms {
		placed := m.PlacedPods()
		pending := ""
		if len(m.Pending) > 0 {
			pending = fmt.Sprintf(" (%d pending)", len(m.Pending))
		}
		fmt.Fprintf(w, "  %s: placed %d of %d pods%s, %.2f GPU-equivalents allocated of %d GPUs (%.1f%%)\n",
			m.Profile, placed, placed+len(m.Pending), pending, m.GPUEquiv, m.GPUs, m.AllocPercent())
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprint(tw, "  METRIC")
	for _, m := range ms {
		fmt.Fprintf(tw, "\t%s", m.Profile)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s", r.label)
		for _, m := range ms {
			fmt.Fprintf(tw, "\t%s", r.value(m))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	for _, m := range ms {
		writeList(w, "  pending ("+m.Profile+"): ", m.Pending)
	}
	fmt.Fprintln(w)
	writeNotes(w, fragmentationNote(d))
	writeNotes(w, workloadNote(source))
	writeList(w, "    ", workloadItems(d))
}

// fragmentationNote says what the fragmentation row measures: FGD (Weng et
// al., ATC'23) as pkg/score computes it.
func fragmentationNote(d *score.Distribution) string {
	s := "fragmentation (FGD): the expected free GPU capacity, in GPUs, that the task types of the workload below " +
		"cannot use, each weighted by its share"
	if kinds := cannotUseWhole(d); kinds != "" {
		s += "; a free whole GPU counts for the " + kinds + " types, which cannot use it"
	}
	return s + ". It is a part of the free capacity (GPUs not in MIG mode), so GPUs left idle because pods are " +
		"pending count too: read it after pods placed and GPU-equivalents allocated."
}

// cannotUseWhole names the kinds of d's task types that never use a whole
// GPU ("MIG and time-shared"), "" when d has none.
func cannotUseWhole(d *score.Distribution) string {
	var mig, shared bool
	for _, t := range d.Types {
		mig = mig || t.Kind == score.KindMIG
		shared = shared || t.Kind == score.KindShared
	}
	switch {
	case mig && shared:
		return "MIG and time-shared"
	case mig:
		return "MIG"
	case shared:
		return "time-shared"
	}
	return ""
}

// workloadNote introduces the workload line: its notation and, when
// known, where it comes from.
func workloadNote(source string) string {
	s := "fragmentation workload: "
	if source != "" {
		s += source + ". Task types"
	} else {
		s += "task types"
	}
	return s + " and their shares of the pods (whole:k = k whole GPUs, shared:250m = a quarter of a time-shared " +
		"GPU, mig:<profile> = one MIG device):"
}

// writeNotes writes text as a paragraph wrapped to maxWidth: the first line
// indented 2, the rest 4.
func writeNotes(w io.Writer, text string) {
	words := strings.Fields(text)
	line := "  "
	fresh := true
	for _, word := range words {
		if !fresh && len([]rune(line))+1+len([]rune(word)) > maxWidth {
			fmt.Fprintln(w, line)
			line, fresh = "    ", true
		}
		if fresh {
			line += word
			fresh = false
			continue
		}
		line += " " + word
	}
	if !fresh {
		fmt.Fprintln(w, line)
	}
}

// writeList writes label and items wrapped to maxWidth, continuation lines
// indented under the first item; nothing when there are no items.
func writeList(w io.Writer, label string, items []string) {
	if len(items) == 0 {
		return
	}
	indent := len([]rune(label))
	for k, line := range wrapList(items, max(minHolderWidth, maxWidth-indent)) {
		if k == 0 {
			fmt.Fprintf(w, "%s%s\n", label, line)
			continue
		}
		fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", indent), line)
	}
}

// workloadItems are "whole:4 25%", "shared:500m 50%", ...
func workloadItems(d *score.Distribution) []string {
	items := make([]string, len(d.Types))
	for i, t := range d.Types {
		items[i] = fmt.Sprintf("%s %.0f%%", t, 100*d.P[i])
	}
	return items
}
