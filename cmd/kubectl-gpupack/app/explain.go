package app

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/gpupack/gpupack/pkg/gpuview"
)

// explainHeader is explain's table header. FRAG DELTA's sign is said
// there: a negative figure (the node's fragmentation drops) is better.
const explainHeader = "NODE\tFITS\tSCORE\tFRAG DELTA (<0 BETTER)\tSUPPLY COST\tSET QUALITY\tREASON"

// writeExplain writes explain's table: per node, fits or the reason it
// does not, and for fitting nodes GPUPack's score among them and what it
// ranks them by (fragmentation change and supply cost in GPUs, the set's
// link quality); then the
// workload the fragmentation change assumes.
func writeExplain(w io.Writer, v fitList) error {
	fits := 0
	for _, n := range v.Items {
		if n.Fits {
			fits++
		}
	}
	head := fmt.Sprintf("pod %s: fits %d of %d nodes (GPUPack's Filter only; other plugins not asked)", v.Pod, fits, len(v.Items))
	if v.BoundTo != "" {
		head += "; already bound to " + v.BoundTo
	}
	if _, err := fmt.Fprintln(w, head); err != nil {
		return err
	}
	if v.Note != "" {
		if _, err := fmt.Fprintf(w, "note: %s\n", v.Note); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, explainHeader)
	for _, n := range v.Items {
		if !n.Fits {
			fits := "no"
			if n.Unresolvable {
				fits = "never"
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s\n", n.Node, fits, n.Reason)
			continue
		}
		sc := "-"
		if n.Score != nil {
			sc = fmt.Sprint(*n.Score)
		}
		fmt.Fprintf(tw, "%s\tyes\t%s\t%+.2f\t%.2f\t%.2f\t-\n", n.Node, sc, n.FragDelta, n.SupplyCost, n.QualityRatio)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing explain: %w", err)
	}
	return gpuview.WriteWorkload(w, v.Workload, true)
}
