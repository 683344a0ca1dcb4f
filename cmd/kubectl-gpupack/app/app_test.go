package app

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/version"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out})
	cmd.SetArgs([]string{"--version"})
	require.NoError(t, cmd.Execute())
	require.Equal(t, "kubectl gpupack version "+version.Get().String()+"\n", out.String())
}

func TestUnknownOutputFailsBeforeConnecting(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out})
	// No server at this address: the format is checked first.
	cmd.SetArgs([]string{"nodes", "-o", "wide", "--server=https://127.0.0.1:1"})
	require.ErrorContains(t, cmd.Execute(), `unknown output format "wide"`)
}

func TestPrintObject(t *testing.T) {
	v := explainView{Pod: "default/p", Nodes: []gpupack.NodeFit{{Node: "a", Fits: true, FragDelta: 0.5, QualityRatio: 1}}}
	var buf bytes.Buffer
	require.NoError(t, printObject(&buf, outputYAML, v))
	require.Equal(t, "nodes:\n- fits: true\n  fragDelta: 0.5\n  node: a\n  qualityRatio: 1\npod: default/p\n", buf.String())
	buf.Reset()
	require.NoError(t, printObject(&buf, outputJSON, v))
	require.JSONEq(t, `{"pod":"default/p","nodes":[{"node":"a","fits":true,"fragDelta":0.5,"qualityRatio":1}]}`, buf.String())
	require.Error(t, printObject(&buf, "xml", v))
}

func TestWriteExplain(t *testing.T) {
	v := explainView{Pod: "default/big", Node: "", Nodes: []gpupack.NodeFit{
		{Node: "cpu", Reason: "gpupack: node has no gpupack.io/topology annotation", Unresolvable: true},
		{Node: "dgx", Fits: true, FragDelta: -0.25, QualityRatio: 0.5, SupplyCost: 1.5},
		{Node: "pcie", Reason: "gpupack: no free healthy whole GPU for 9 x nvidia.com/gpu"},
	}}
	var buf bytes.Buffer
	require.NoError(t, writeExplain(&buf, v))
	require.Equal(t, `pod default/big: fits 1 of 3 nodes (GPUPack's Filter only; other plugins not asked)
NODE  FITS   FRAG DELTA  SUPPLY COST  SET QUALITY  REASON
cpu   never  -           -            -            gpupack: node has no gpupack.io/topology annotation
dgx   yes    -0.25       1.50         0.50         -
pcie  no     -           -            -            gpupack: no free healthy whole GPU for 9 x nvidia.com/gpu
`, buf.String())
}
