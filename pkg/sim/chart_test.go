package sim

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every policy gpusim knows gets its own colour and its own mark, so none
// hides another.
func TestChartStylesDistinct(t *testing.T) {
	n := len(AllPolicies())
	colors, marks := map[string]int{}, map[string]int{}
	for k := range n {
		st := styleOf(k)
		c := fmt.Sprint(st.color)
		m := fmt.Sprintf("%T %v", st.glyph, st.dashes)
		require.NotContains(t, colors, c, "policy %d shares policy %d's colour", k, colors[c])
		require.NotContains(t, marks, m, "policy %d shares policy %d's mark and dashes", k, marks[m])
		colors[c], marks[m] = k, k
	}
}

// The y axis is labelled at its start, and no other label crowds it.
func TestStartTicks(t *testing.T) {
	ticks := percentTicks{start: true}.Ticks(0.46, 0.96)
	require.Equal(t, 0.46, ticks[0].Value)
	require.Equal(t, "46%", ticks[0].Label)
	for _, tk := range ticks[1:] {
		if tk.Label != "" {
			require.Greater(t, tk.Value-0.46, (0.96-0.46)/15, tk.Label)
		}
	}
}
