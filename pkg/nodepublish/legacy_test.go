package nodepublish

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// splitPublished moves the label keys and the topology annotation, never
// a map itself ("."), and says when there is nothing to move; a field set
// that is not JSON is an error, not a panic.
func TestSplitPublished(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		rest, moved string // "" : nil
		err         bool
	}{
		{"labels and both annotations",
			`{"f:metadata":{"f:labels":{".":{},"f:a":{}},"f:annotations":{".":{},"f:gpupack.io/topology":{},"f:gpupack.io/in-use":{}}}}`,
			`{"f:metadata":{"f:labels":{".":{}},"f:annotations":{".":{},"f:gpupack.io/in-use":{}}}}`,
			`{"f:metadata":{"f:labels":{"f:a":{}},"f:annotations":{"f:gpupack.io/topology":{}}}}`, false},
		{"everything moves", `{"f:metadata":{"f:labels":{"f:a":{}},"f:annotations":{"f:gpupack.io/topology":{}}}}`,
			"", `{"f:metadata":{"f:labels":{"f:a":{}},"f:annotations":{"f:gpupack.io/topology":{}}}}`, false},
		{"in-use only", `{"f:metadata":{"f:annotations":{"f:gpupack.io/in-use":{}}}}`, "", "", false},
		{"only the labels map", `{"f:metadata":{"f:labels":{".":{}}}}`, "", "", false},
		{"no metadata", `{"f:spec":{"f:unschedulable":{}}}`, "", "", false},
		{"not JSON", `{"f:metadata":`, "", "", true},
		{"metadata not an object", `{"f:metadata":7}`, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, moved, err := splitPublished([]byte(tc.in))
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			for _, c := range []struct {
				got  []byte
				want string
			}{{rest, tc.rest}, {moved, tc.moved}} {
				if c.want == "" {
					require.Nil(t, c.got)
				} else {
					require.JSONEq(t, c.want, string(c.got))
				}
			}
		})
	}
}

func TestMergeFields(t *testing.T) {
	var dst map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"f:metadata":{"f:annotations":{"f:x":{}}}}`), &dst))
	mergeFields(dst, []byte(`{"f:metadata":{"f:labels":{"f:a":{}},"f:annotations":{"f:y":{}}}}`))
	got, err := json.Marshal(dst)
	require.NoError(t, err)
	require.JSONEq(t, `{"f:metadata":{"f:labels":{"f:a":{}},"f:annotations":{"f:x":{},"f:y":{}}}}`, string(got))
	mergeFields(dst, []byte(`not json`)) // ignored
	got2, _ := json.Marshal(dst)
	require.JSONEq(t, string(got), string(got2))
}
