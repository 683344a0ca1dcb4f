package deviceplugin

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoggedIDsIsBounded: a refused request's log line carries at most
// maxLoggedIDs of its device IDs (TestAllocateHugeRequest sends 10,000; CI
// printed all of them and the failure above them was cut off).
func TestLoggedIDsIsBounded(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("GPU-%d", i)
		}
		return out
	}
	tests := []struct {
		name string
		n    int
		want int
	}{
		{name: "none", n: 0, want: 0},
		{name: "one", n: 1, want: 1},
		{name: "at the bound", n: maxLoggedIDs, want: maxLoggedIDs},
		{name: "one over", n: maxLoggedIDs + 1, want: maxLoggedIDs},
		{name: "huge", n: 10000, want: maxLoggedIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ids(tc.n)
			got := loggedIDs(in)
			require.Len(t, got, tc.want)
			require.Equal(t, in[:tc.want], got, "the first IDs, in order")
		})
	}
}
