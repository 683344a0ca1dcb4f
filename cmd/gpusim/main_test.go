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
