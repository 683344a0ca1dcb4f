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
// only the writer's.
func WriteReport(w io.Writer, sides []Side, d *score.Distribution, classes []string) error {
	if d == nil {
		d = score.DefaultDistribution()
	}
	ew := &errWriter{w: w}
	rows := metricRows(classes)
	ms := make([]*SideMetrics, len(sides))
	for i := range sides {
		ms[i] = AnalyzeSide(&sides[i], d)
		writeSide(ew, &sides[i], ms[i], rows)
	}
	writeSummary(ew, ms, d, rows)
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

// metricRows are the rows of the allocation block and the summary; classes
// orders the placed pods' count (placedRow).
func metricRows(classes []string) []metricRow {
	return []metricRow{
		{"nodes", func(m *SideMetrics) string {
			if m.NodesNoTopology > 0 {
				return fmt.Sprintf("%d (%d without topology)", m.Nodes, m.NodesNoTopology)
			}
			return strconv.Itoa(m.Nodes)
		}},
		placedRow(classes),
		{"GPUs fully free", func(m *SideMetrics) string { return ofTotal(m.Free, m.GPUs) }},
		{"GPUs partly used", func(m *SideMetrics) string { return ofTotal(m.Partly, m.GPUs) }},
		{"GPUs fully used", func(m *SideMetrics) string { return ofTotal(m.Full, m.GPUs) }},
		{"GPUs unhealthy", func(m *SideMetrics) string { return ofTotal(m.Unhealthy, m.GPUs) }},
		{"MIG instances used", func(m *SideMetrics) string { return fmt.Sprintf("%d/%d", m.MIGUsed, m.MIGTotal) }},
		{"time-shared replicas used", func(m *SideMetrics) string {
			return fmt.Sprintf("%d/%d", m.ReplicasUsed, m.ReplicasTotal)
		}},
		{"GPU-equivalents allocated", func(m *SideMetrics) string {
			return fmt.Sprintf("%.2f of %d (%.1f%%)", m.GPUEquiv, m.GPUs, m.AllocPercent())
		}},
		{"fragmentation (FGD, GPUs)", func(m *SideMetrics) string { return fmt.Sprintf("%.2f", m.Fragmentation) }},
		{"whole nodes free", func(m *SideMetrics) string { return ofTotal(m.WholeNodesFree, m.Nodes-m.NodesNoTopology) }},
		{"free NVLink groups (2+ GPUs)", func(m *SideMetrics) string {
			if len(m.FreeNVLinkGroups) == 0 {
				return "0"
			}
			return fmt.Sprintf("%d (largest %d)", len(m.FreeNVLinkGroups), m.FreeNVLinkGroups[0])
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
		{"pending pods", func(m *SideMetrics) string { return strconv.Itoa(len(m.Pending)) }},
		{"unknown devices / conflicts", func(m *SideMetrics) string {
			return fmt.Sprintf("%d / %d", m.Unknown, len(m.Problems)-m.Unknown)
		}},
	}
}

// placedRow counts the pods holding devices: "3/5/4/6" per class of
// classes, with "+2 other" for pods of any other class; the total when
// classes is empty.
func placedRow(classes []string) metricRow {
	if len(classes) == 0 {
		return metricRow{"pods placed", func(m *SideMetrics) string {
			n := 0
			for _, k := range m.Placed {
				n += k
			}
			return strconv.Itoa(n)
		}}
	}
	return metricRow{"pods placed (" + strings.Join(classes, "/") + ")", func(m *SideMetrics) string {
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

// writeSummary writes the side-by-side table, the workload behind the
// fragmentation figure and the pending pods.
func writeSummary(w io.Writer, ms []*SideMetrics, d *score.Distribution, rows []metricRow) {
	fmt.Fprintln(w, "==== summary ====")
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
	writeList(w, "  fragmentation workload: ", workloadItems(d))
	for _, m := range ms {
		writeList(w, "  pending ("+m.Profile+"): ", m.Pending)
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
