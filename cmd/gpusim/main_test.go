package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/sim"
)

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, checkWritable(""))
	require.NoError(t, checkWritable(filepath.Join(dir, "out.csv")))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the check leaves nothing behind")
	require.ErrorContains(t, checkWritable(dir), "is a directory")
	require.ErrorContains(t, checkWritable(filepath.Join(dir, "missing", "out.csv")), "no such file")
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	require.ErrorContains(t, checkWritable(filepath.Join(file, "out.csv")), "not a directory")
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		require.NoError(t, os.Mkdir(ro, 0o500))
		require.Error(t, checkWritable(filepath.Join(ro, "out.csv")))
	}
}

// A run with an unwritable output fails at once, before reading the traces.
func TestRunChecksOutputsFirst(t *testing.T) {
	cmd := newCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--pods", "does-not-exist.csv", "--svg", filepath.Join(t.TempDir(), "no", "chart.svg")})
	err := cmd.Execute()
	require.ErrorContains(t, err, "--svg: cannot write")
}

func TestParseSweeps(t *testing.T) {
	got, err := parseSweeps([]string{"gpushare=20,40", "cpu"})
	require.NoError(t, err)
	require.Equal(t, []sim.SweepAxis{
		{Axis: sim.AxisShare, Levels: []float64{0.2, 0.4}},
		{Axis: sim.AxisCPU, Levels: sim.DefaultLevels(sim.AxisCPU)},
	}, got)
	got, err = parseSweeps([]string{"all"})
	require.NoError(t, err)
	require.Len(t, got, len(sim.Axes()))
	_, err = parseSweeps([]string{"gpufoo"})
	require.ErrorContains(t, err, "unknown axis")
	_, err = parseSweeps([]string{"cpu=x"})
	require.ErrorContains(t, err, "not a number")
}

// No progress bar when stderr is not a terminal.
func TestProgressOffWithoutTerminal(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, false)
	p.update(5, 10)
	p.finish()
	require.Empty(t, b.String())
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	require.NoError(t, err)
	defer f.Close()
	p = newProgress(f, false) // a file is not a terminal either
	require.Nil(t, p.bar)
	require.False(t, strings.Contains(b.String(), "%"))
}

// A node list of other machines runs: models without a shape are laid out
// as PCIe with a warning naming the flag, and tasks asking only models no
// node has are counted in a warning.
func TestRunOtherMachineModels(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.csv")
	pods := filepath.Join(dir, "pods.csv")
	require.NoError(t, os.WriteFile(nodes, []byte("sn,cpu_milli,memory_mib,gpu,model\n"+
		"h0,224000,2097152,8,H100\nt0,64000,262144,4,T4\n"), 0o600))
	require.NoError(t, os.WriteFile(pods, []byte("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"+
		"a,1000,1024,1,500,\nb,1000,1024,2,1000,H100\nc,1000,1024,1,1000,A100|B200\n"), 0o600))
	cmd := newCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--policies", "gpupack,best-fit"})
	require.NoError(t, cmd.Execute())
	require.Contains(t, errOut.String(), "no shape known for GPU model(s) H100: laid out as pcie")
	require.Contains(t, errOut.String(), "--shapes H100=KIND")
	require.Contains(t, errOut.String(), "1 tasks of "+pods+" ask only GPU models no node of "+nodes+" has (A100, B200)")
	require.Contains(t, out.String(), "gpupack")

	// Given a shape, no warning about it.
	cmd = newCommand()
	errOut.Reset()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--policies", "best-fit", "--shapes", "H100=nvswitch"})
	require.NoError(t, cmd.Execute())
	require.NotContains(t, errOut.String(), "no shape known")
}
