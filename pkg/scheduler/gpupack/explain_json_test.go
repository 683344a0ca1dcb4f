package gpupack

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"
)

// TestNodeFitJSONKeepsZeroFigures: a fitting node's fragDelta, supplyCost
// and qualityRatio were omitted when 0 (omitempty), so `kubectl gpupack
// explain -o json | jq 'select(.fragDelta < 0)'` matched the nodes whose
// change is 0 (a missing key is null, below every number). They are now
// written for every fitting node, and a node that does not fit has none;
// the JSON reads back into the same NodeFit.
func TestNodeFitJSONKeepsZeroFigures(t *testing.T) {
	tests := []struct {
		name string
		fit  NodeFit
		want string
	}{
		{
			name: "fits, figures 0",
			fit:  NodeFit{Node: "a", Fits: true, Score: ptr.To[int64](100)},
			want: `{"node":"a","fits":true,"score":100,"fragDelta":0,"qualityRatio":0,"supplyCost":0}`,
		},
		{
			name: "fits, figures set",
			fit:  NodeFit{Node: "b", Fits: true, FragDelta: -0.25, QualityRatio: 0.5, SupplyCost: 1.5, Score: ptr.To[int64](97)},
			want: `{"node":"b","fits":true,"score":97,"fragDelta":-0.25,"qualityRatio":0.5,"supplyCost":1.5}`,
		},
		{
			name: "does not fit",
			fit:  NodeFit{Node: "c", Reason: "gpupack: no topology", Unresolvable: true},
			want: `{"node":"c","fits":false,"reason":"gpupack: no topology","unresolvable":true}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.fit)
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got))
			var back NodeFit
			require.NoError(t, json.Unmarshal(got, &back))
			require.Equal(t, tc.fit, back)
		})
	}
}
