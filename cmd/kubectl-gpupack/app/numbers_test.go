package app

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTidyNumbers(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "sum of fractions", in: `{"fragmentation":0.30000000000000004}`, want: `{"fragmentation":0.3}`},
		{name: "negative", in: `[-0.7000000000000001,-2]`, want: `[-0.7,-2]`},
		{name: "exponent", in: `{"p":1.0000000000000002e-07}`, want: `{"p":1e-07}`},
		{name: "integers kept", in: `{"bytes":85899345920,"big":12345678901234567890,"n":0}`, want: `{"bytes":85899345920,"big":12345678901234567890,"n":0}`},
		{name: "exact fraction kept", in: `{"ratio":0.5,"ring":46.875}`, want: `{"ratio":0.5,"ring":46.875}`},
		{name: "numbers in strings kept", in: `{"node":"gpu-0.30000000000000004","k\"0.10000000000000001":"\\"}`, want: `{"node":"gpu-0.30000000000000004","k\"0.10000000000000001":"\\"}`},
		{name: "key order kept", in: `{"z":0.1,"a":0.20000000000000001}`, want: `{"z":0.1,"a":0.2}`},
		{name: "literals", in: `[true,false,null,1.5]`, want: `[true,false,null,1.5]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tidyNumbers([]byte(tc.in))
			require.Equal(t, tc.want, string(got))
			require.True(t, json.Valid(got))
		})
	}
}

// -o json and -o yaml print 0.1 + 0.2 GPUs as 0.3, in the struct's field
// order for JSON.
func TestPrintObjectTidiesFloatNoise(t *testing.T) {
	a, b := 0.1, 0.2
	v := struct {
		Node          string  `json:"node"`
		Fragmentation float64 `json:"fragmentation"`
		GPUs          int     `json:"gpus"`
	}{Node: "n1", Fragmentation: a + b, GPUs: 8}
	var out bytes.Buffer
	require.NoError(t, printObject(&out, outputJSON, v))
	require.Equal(t, "{\n  \"node\": \"n1\",\n  \"fragmentation\": 0.3,\n  \"gpus\": 8\n}\n", out.String())
	out.Reset()
	require.NoError(t, printObject(&out, outputYAML, v))
	require.Equal(t, "fragmentation: 0.3\ngpus: 8\nnode: n1\n", out.String())
	require.Error(t, printObject(&out, "xml", v))
}
