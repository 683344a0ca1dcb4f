package topology

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Render writes a node's GPU map for people: one line per GPU, the link matrix
// in the style of `nvidia-smi topo -m`, and the MIG layout when there is one.
func Render(w io.Writer, n *Node) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	renderGPUs(tw, n)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing GPU list: %w", err)
	}
	fmt.Fprintln(w)
	renderMatrix(tw, n)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing link matrix: %w", err)
	}
	renderLegend(w)
	if len(n.MIG) > 0 {
		fmt.Fprintln(w)
		renderMIG(tw, n)
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("writing MIG layout: %w", err)
		}
	}
	return nil
}

func renderGPUs(w io.Writer, n *Node) {
	fmt.Fprintln(w, "GPU\tMODEL\tMEMORY\tNUMA\tHEALTH\tMODE\tUUID")
	for _, g := range n.GPUs {
		fmt.Fprintf(w, "%d\t%s\t%d GiB\t%s\t%s\t%s\t%s\n",
			g.Index, g.Model, g.MemoryMiB/1024, numaLabel(g.NUMANode), healthLabel(g.Healthy), modeLabel(g), g.UUID)
	}
	if n.Clique != "" {
		fmt.Fprintf(w, "NVLink clique: %s\n", n.Clique)
	}
}

func renderMatrix(w io.Writer, n *Node) {
	header := make([]string, 0, len(n.GPUs)+2)
	header = append(header, "")
	for _, g := range n.GPUs {
		header = append(header, fmt.Sprintf("GPU%d", g.Index))
	}
	header = append(header, "NUMA")
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for i, g := range n.GPUs {
		row := make([]string, 0, len(n.GPUs)+2)
		row = append(row, fmt.Sprintf("GPU%d", g.Index))
		for j := range n.GPUs {
			row = append(row, n.LinkLabel(i, j))
		}
		row = append(row, numaLabel(g.NUMANode))
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
}

// LinkLabel is the `nvidia-smi topo -m` label of the link between GPUs i
// and j ("X" for i == j, "NV2", "NS12", "PIX", "SYS"), "?" when the link
// matrix lacks the pair.
func (n *Node) LinkLabel(i, j int) string {
	if i == j {
		return "X"
	}
	if i >= len(n.Links) || j >= len(n.Links[i]) {
		return "?"
	}
	return n.Links[i][j].String()
}

func renderLegend(w io.Writer) {
	fmt.Fprint(w, `
Legend:
  X    = self
  NS#  = NVLink through an NVSwitch fabric, # lanes per GPU
  NV#  = direct NVLink, # lanes
  BRD  = two GPUs on one board
  PIX  = at most one PCIe switch
  PXB  = several PCIe switches, no host bridge
  PHB  = a PCIe host bridge
  NODE = host bridges within one NUMA node
  SYS  = across the SMP interconnect between NUMA nodes
`)
}

func renderMIG(w io.Writer, n *Node) {
	fmt.Fprintln(w, "MIG DEVICE\tGPU\tPROFILE\tSLICES\tHEALTH")
	for _, m := range n.MIG {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", m.UUID, m.Parent, m.Profile, m.SliceLabel(), healthLabel(m.Healthy))
	}
}

// SliceLabel is the device's placement in its GPU's memory slices: "[4]"
// or "[4-7]".
func (m MIGDevice) SliceLabel() string {
	if m.Size <= 1 {
		return fmt.Sprintf("[%d]", m.Start)
	}
	return fmt.Sprintf("[%d-%d]", m.Start, m.Start+m.Size-1)
}

func numaLabel(numa int) string {
	if numa < 0 {
		return "N/A"
	}
	return fmt.Sprint(numa)
}

func healthLabel(healthy bool) string {
	if healthy {
		return "ok"
	}
	return "UNHEALTHY"
}

func modeLabel(g GPU) string {
	switch {
	case g.MIGEnabled:
		return "MIG"
	case g.Replicas > 1:
		return fmt.Sprintf("shared x%d", g.Replicas)
	default:
		return "whole"
	}
}
