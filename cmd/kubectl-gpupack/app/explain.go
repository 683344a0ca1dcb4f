package app

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// writeExplain writes explain's table: per node, fits or the reason it
// does not, and for fitting nodes what Score ranks them by (fragmentation
// change and supply cost in GPUs, the set's link quality).
func writeExplain(w io.Writer, v explainView) error {
	fits := 0
	for _, n := range v.Nodes {
		if n.Fits {
			fits++
		}
	}
	head := fmt.Sprintf("pod %s: fits %d of %d nodes (GPUPack's Filter only; other plugins not asked)", v.Pod, fits, len(v.Nodes))
	if v.Node != "" {
		head += "; already bound to " + v.Node
	}
	if _, err := fmt.Fprintln(w, head); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tFITS\tFRAG DELTA\tSUPPLY COST\tSET QUALITY\tREASON")
	for _, n := range v.Nodes {
		if !n.Fits {
			fits := "no"
			if n.Unresolvable {
				fits = "never"
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t%s\n", n.Node, fits, n.Reason)
			continue
		}
		fmt.Fprintf(tw, "%s\tyes\t%+.2f\t%.2f\t%.2f\t-\n", n.Node, n.FragDelta, n.SupplyCost, n.QualityRatio)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing explain: %w", err)
	}
	return nil
}
