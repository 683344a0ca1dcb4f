package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// An output path that exists is checked by opening it for writing, as the
// run will, not by creating a file beside it: a path the run can write in
// a directory nobody may create files in (/dev/stdout, /proc/self/fd/N) is
// accepted, and a file the run cannot write, or a FIFO nobody reads (the
// run would hang at the end), is refused before the run. The check leaves
// an existing file's content as it was.
func TestCheckWritableExistingPaths(t *testing.T) {
	dir := t.TempDir()
	held, err := os.Create(filepath.Join(dir, "held"))
	require.NoError(t, err)
	defer held.Close()
	kept := filepath.Join(dir, "kept.csv")
	require.NoError(t, os.WriteFile(kept, []byte("old results\n"), 0o600))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	tests := []struct {
		name string
		path string
		want string // "" for no error
	}{
		// /proc/self/fd is no directory to create files in, even for root,
		// but the descriptor's file is writable (as /dev/stdout is).
		{"open descriptor", fmt.Sprintf("/proc/self/fd/%d", held.Fd()), ""},
		{"existing file", kept, ""},
		{"FIFO without a reader", fifo, "cannot write " + fifo},
	}
	if os.Geteuid() != 0 { // root writes any file
		ro := filepath.Join(dir, "ro.csv")
		require.NoError(t, os.WriteFile(ro, nil, 0o400))
		tests = append(tests, struct{ name, path, want string }{"read-only file", ro, "cannot write " + ro})
		roDir := filepath.Join(dir, "rodir")
		require.NoError(t, os.Mkdir(roDir, 0o700))
		inRO := filepath.Join(roDir, "out.csv")
		require.NoError(t, os.WriteFile(inRO, nil, 0o600))
		require.NoError(t, os.Chmod(roDir, 0o500))
		t.Cleanup(func() { _ = os.Chmod(roDir, 0o700) }) // TempDir's removal needs it
		tests = append(tests, struct{ name, path, want string }{"writable file in a read-only directory", inRO, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { requireWritable(t, tt.path, tt.want) })
	}
	got, err := os.ReadFile(kept)
	require.NoError(t, err)
	require.Equal(t, "old results\n", string(got), "the check truncates nothing")
}

// requireWritable checks checkWritable(path): no error when want is "",
// else an error containing want.
func requireWritable(t *testing.T, path, want string) {
	t.Helper()
	err := checkWritable(path)
	if want == "" {
		require.NoError(t, err)
		return
	}
	require.ErrorContains(t, err, want)
}

// A symbolic link is checked as the file it names: os.Create follows it.
// A link to a missing file in a missing directory was taken for a new file
// beside the link, so the run went all the way and failed when it wrote
// its results.
func TestCheckWritableSymlinks(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept.csv")
	require.NoError(t, os.WriteFile(kept, nil, 0o600))
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.Symlink(target, p))
		return p
	}
	missingDir := filepath.Join(dir, "nonexistent", "x.csv")
	tests := []struct {
		name string
		path string
		want string // "" for no error
	}{
		{"to an existing file", link("existing.csv", kept), ""},
		{"to a new file in an existing directory", link("new.csv", "fresh.csv"), ""},
		{"to a file in a missing directory", link("dangle.csv", missingDir),
			"dangle.csv is a symbolic link to a missing file: cannot write " + missingDir},
		{"to a link to a file in a missing directory", link("chain.csv", filepath.Join(dir, "dangle.csv")),
			"chain.csv is a symbolic link to a missing file: " + filepath.Join(dir, "dangle.csv") + " is a symbolic link to a missing file"},
		{"in a loop", link("loop.csv", "loop.csv"), "too many levels of symbolic links"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { requireWritable(t, tt.path, tt.want) })
	}
	_, err := os.Stat(filepath.Join(dir, "fresh.csv"))
	require.ErrorIs(t, err, os.ErrNotExist, "the check creates no link target")
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

// A run stopped by Ctrl-C (its context canceled) says it was interrupted,
// not only "context canceled", and writes nothing.
func TestRunInterrupted(t *testing.T) {
	dir, nodes, pods := tinyTraces(t)
	tests := []struct {
		name string
		args []string
	}{
		{"run", nil},
		{"sweep", []string{"--sweep", "gpushare=40"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			csvPath := filepath.Join(dir, tt.name+".csv")
			cmd := newCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"-q", "--nodes", nodes, "--pods", pods, "--seeds", "2", "--csv", csvPath}, tt.args...))
			err := cmd.ExecuteContext(ctx)
			require.EqualError(t, err, "interrupted: the run was stopped (Ctrl-C) before it finished; nothing was printed or written")
			_, statErr := os.Stat(csvPath)
			require.ErrorIs(t, statErr, os.ErrNotExist)
		})
	}
}

// execute runs gpusim with args and returns stdout, stderr and the error.
func execute(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

// tinyTraces writes a 3-node list (G2, T4, a CPU-only node) and a pod list
// of a share, a whole GPU, a 2-GPU task and a CPU-only task.
func tinyTraces(t *testing.T) (dir, nodes, pods string) {
	dir = t.TempDir()
	nodes = filepath.Join(dir, "nodes.csv")
	pods = filepath.Join(dir, "pods.csv")
	require.NoError(t, os.WriteFile(nodes, []byte("sn,cpu_milli,memory_mib,gpu,model\n"+
		"g0,96000,393216,8,G2\nt0,64000,262144,2,T4\nc0,32000,65536,0,\n"), 0o600))
	require.NoError(t, os.WriteFile(pods, []byte("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"+
		"a,4000,8192,1,500,\nb,8000,16384,1,1000,\nc,8000,16384,2,1000,\nd,2000,4096,0,0,\n"), 0o600))
	return dir, nodes, pods
}

// Flags gpusim cannot honour are refused with the flag's name, before a
// run; none panics or falls back to a default unnoticed.
func TestRunRefusesBadFlags(t *testing.T) {
	dir, nodes, pods := tinyTraces(t)
	podsCopy := filepath.Join(dir, "sub", "..", "pods.csv")
	link := filepath.Join(dir, "link.csv")
	require.NoError(t, os.Symlink(nodes, link))
	dangling := filepath.Join(dir, "dangle.csv")
	require.NoError(t, os.Symlink(filepath.Join(dir, "nonexistent", "x.csv"), dangling))
	toSame := filepath.Join(dir, "to-same.out") // a dangling link to same.out
	require.NoError(t, os.Symlink("same.out", toSame))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	dirLink := filepath.Join(dir, "dlink")
	require.NoError(t, os.Symlink(filepath.Join(dir, "d"), dirLink))
	wd, err := os.Getwd()
	require.NoError(t, err)
	relNew, err := filepath.Rel(wd, filepath.Join(dir, "new.out"))
	require.NoError(t, err)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"target NaN", []string{"--target", "NaN"}, "target NaN: want"},
		{"target +Inf", []string{"--target", "Inf"}, "target +Inf: want"},
		{"target 0", []string{"--target", "0"}, "target 0: want"},
		{"negative target", []string{"--target", "-1"}, "target -1: want"},
		{"target huge", []string{"--target", "1e12", "--checkpoints", "1"}, "in (0, 10]"},
		{"checkpoint past the target", []string{"--target", "0.5"}, "must increase within (0, target 0.5]"},
		{"checkpoints unsorted", []string{"--checkpoints", "1.3,0.9"}, "--checkpoints: 0.9: checkpoints must increase"},
		{"checkpoints duplicated", []string{"--checkpoints", "0.9,0.9"}, "checkpoints must increase"},
		{"checkpoints empty", []string{"--checkpoints", ""}, `--checkpoints: "" is not a positive number`},
		{"checkpoint empty between two", []string{"--checkpoints", "0.9,,1.3"}, `--checkpoints: "" is not a positive number`},
		{"checkpoint NaN", []string{"--checkpoints", "NaN"}, `--checkpoints: "NaN" is not a positive number`},
		{"checkpoint Inf", []string{"--checkpoints", "0.9,Inf"}, `--checkpoints: "Inf" is not a positive number`},
		// A label rounds 1e-300 to "alloc@0%", and the first task crosses it.
		{"checkpoint too small", []string{"--checkpoints", "1e-300,1.3"}, "--checkpoints: 1e-300: below 0.001"},
		{"seeds 0", []string{"--seeds", "0"}, "--seeds 0: want 1..1000"},
		{"seeds huge", []string{"--seeds", "100000000"}, "--seeds 100000000: want 1..1000"},
		// Seeds 2^64-1 and 2^64, which wraps to 0: refused.
		{"seeds wrap", []string{"--first-seed", "18446744073709551615", "--seeds", "2"}, "--first-seed 18446744073709551615 with --seeds 2: the last seed passes 18446744073709551615"},
		{"negative workers", []string{"--workers", "-3"}, "workers -3"},
		{"policy twice", []string{"--policies", "gpupack,best-fit,gpupack"}, `policy "gpupack" listed twice`},
		{"policy twice beside --workload both", []string{"--workload", "both", "--policies", "gpupack,gpupack-online,gpupack-online"}, `policy "gpupack-online" listed twice`},
		{"no policy", []string{"--policies", ","}, "an empty policy name (a stray comma?)"},
		{"trailing comma", []string{"--policies", "gpupack,"}, `--policies "gpupack,": an empty policy name`},
		{"weight NaN", []string{"--blend-topo-weight", "NaN"}, "gpupack topology weight NaN"},
		{"negative weight", []string{"--blend-frag-weight", "-1"}, "gpupack fragmentation weight -1: want 0..100"},
		{"fractional weight", []string{"--blend-frag-weight", "1.5"}, "gpupack fragmentation weight 1.5: want a whole number 0..100 (the plugin's args are integers)"},
		{"fractional topology weight", []string{"--blend-topo-weight", "2.4"}, "gpupack topology weight 2.4: want a whole number"},
		{"resolution NaN", []string{"--gpupack-resolution", "NaN"}, "gpupack resolution NaN"},
		{"svg-from NaN", []string{"--svg", filepath.Join(dir, "c.svg"), "--svg-from", "NaN"}, "--svg-from NaN: want"},
		{"svg-from past the target", []string{"--svg", filepath.Join(dir, "c.svg"), "--svg-from", "5"}, "below --target 1.3"},
		{"svg-from negative", []string{"--svg", filepath.Join(dir, "c.svg"), "--svg-from", "-1"}, "--svg-from -1"},
		// A bad target is said as such, not as --svg-from's bound.
		{"target 0 with a chart", []string{"--svg", filepath.Join(dir, "c.svg"), "--target", "0"}, "target 0: want a fraction"},
		{"csv over the pod list", []string{"--csv", pods}, "--csv " + pods + ": the same file as --pods"},
		{"svg over the node list through a link", []string{"--svg", link}, "the same file as --nodes"},
		{"csv over the pod list by another path", []string{"--csv", podsCopy}, "the same file as --pods"},
		{"csv through a link to a missing directory", []string{"--csv", dangling}, "--csv: " + dangling + " is a symbolic link to a missing file"},
		{"csv and svg one file", []string{"--csv", filepath.Join(dir, "o"), "--svg", filepath.Join(dir, "o")}, "--svg " + filepath.Join(dir, "o") + ": the same file as --csv"},
		// Neither output exists yet: the same new file by a relative and
		// an absolute path, through a dangling link, and through a linked
		// directory.
		{"csv and svg one new file, relative and absolute", []string{"--csv", relNew, "--svg", filepath.Join(dir, "new.out")}, "the same file as --csv"},
		{"svg through a dangling link to the new csv", []string{"--csv", filepath.Join(dir, "same.out"), "--svg", toSame}, "--svg " + toSame + ": the same file as --csv"},
		{"svg through a linked directory", []string{"--csv", filepath.Join(dir, "d", "c.out"), "--svg", filepath.Join(dirLink, "c.out")}, "the same file as --csv"},
		{"sweep level NaN", []string{"--sweep", "gpushare=NaN"}, `--sweep: gpushare=NaN: level "NaN" is not a number`},
		{"sweep level not whole", []string{"--sweep", "gpushare=0.5"}, `--sweep: gpushare=0.5: level "0.5": want a whole number`},
		{"sweep level twice", []string{"--sweep", "gpushare=20,40,20"}, "--sweep: gpushare20 listed twice"},
		{"sweep level twice through all", []string{"--sweep", "all", "--sweep", "cpu=200"}, "--sweep: cpu200 listed twice"},
		{"sweep level above 100", []string{"--sweep", "gpushare=101"}, "--sweep: gpushare=101: gpushare level 101: want 0..100"},
		{"sweep level negative", []string{"--sweep", "multigpu=-10"}, "multigpu level -10: want 0..100"},
		{"sweep cpu level in cpuNNN units", []string{"--sweep", "cpu=1000"}, "cpu level 1000: want 0..999"},
		{"sweep all with levels", []string{"--sweep", "all=40"}, "--sweep: all=40: all runs every axis at its default levels and takes none; give levels per axis, as gpushare=20,40"},
		{"workload online without gpupack", []string{"--workload", "online", "--policies", "fgd,best-fit"}, `--workload online: --policies "fgd,best-fit" lists no gpupack, whose workload it sets`},
		{"workload both without gpupack", []string{"--workload", "both", "--policies", "gpupack-online"}, `--workload both: --policies "gpupack-online" lists no gpupack`},
		{"workload online without gpupack in a sweep", []string{"--workload", "online", "--policies", "fgd", "--sweep", "gpushare=40"}, "--workload online: --policies \"fgd\" lists no gpupack"},
		{"sweep multigpu 100 with other GPU tasks", []string{"--sweep", "multigpu=100"}, "multigpu100: multigpu: 100% of the GPU demand in multi-GPU tasks cannot be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := os.ReadFile(pods)
			require.NoError(t, err)
			_, _, err = execute(t, append([]string{"-q", "--nodes", nodes, "--pods", pods, "--seeds", "1"}, tt.args...)...)
			require.ErrorContains(t, err, tt.want)
			after, err := os.ReadFile(pods)
			require.NoError(t, err)
			require.Equal(t, string(before), string(after), "the pod list is untouched")
		})
	}
}

// A pod list whose GPU demand is tiny beside the cluster is refused before
// the run with what to change: one 1-milli GPU task among 1,000 CPU-only
// tasks on the openb nodes asked for 32 GB of sequences and died with
// "fatal error: out of memory".
func TestRunRefusesTooManyArrivals(t *testing.T) {
	nodes := filepath.Join("..", "..", "testdata", "openb", "openb_node_list_gpu_node.csv")
	pods := filepath.Join(t.TempDir(), "pods.csv")
	var b strings.Builder
	b.WriteString("name,cpu_milli,memory_mib,num_gpu,gpu_milli\ng,1000,1024,1,1\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "c%d,1000,1024,0,0\n", i)
	}
	require.NoError(t, os.WriteFile(pods, []byte(b.String()), 0o600))
	_, _, err := execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "10")
	require.ErrorContains(t, err, pods+" on "+nodes+": the pod list's GPU demand is too small for the cluster: "+
		"reaching 130% of its 6212 GPUs takes about 8083675600 arrivals (1 of the pod list's 1001 tasks ask GPUs, 0.000999 milli-GPU per task on average)")
	require.ErrorContains(t, err, "more than the bound of 1048576")
}

// With --target past the last checkpoint, the columns measured at the end
// of the run are labelled with the target.
func TestRunLabelsEndOfRunColumns(t *testing.T) {
	_, nodes, pods := tinyTraces(t)
	out, _, err := execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--policies", "best-fit",
		"--target", "2", "--checkpoints", "0.9,1.3")
	require.NoError(t, err)
	for _, h := range []string{"alloc@130%", "unalloc GPUs@200%", "failed@200%", "idle GPUs w/o CPU@200%", "multi-GPU quality@200%"} {
		require.Contains(t, out, h)
	}
}

// Odd-but-valid inputs and flags at their bounds run and give sane figures.
func TestRunOddButValid(t *testing.T) {
	dir, nodes, pods := tinyTraces(t)
	crlf := filepath.Join(dir, "crlf.csv")
	raw, err := os.ReadFile(pods)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(crlf, append([]byte("\ufeff"), bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))...), 0o600))
	plain, _, err := execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "2", "--policies", "gpupack,fgd")
	require.NoError(t, err)
	bom, _, err := execute(t, "-q", "--nodes", nodes, "--pods", crlf, "--seeds", "2", "--policies", "gpupack,fgd")
	require.NoError(t, err)
	// The same table but for the header line (file name, time).
	require.Equal(t, plain[strings.Index(plain, "\n"):], bom[strings.Index(bom, "\n"):])

	// num_gpu 0 with a gpu_milli: CPU-only, with a warning.
	shares := filepath.Join(dir, "shares.csv")
	require.NoError(t, os.WriteFile(shares, append(raw, []byte("e,1000,1024,0,300,\n")...), 0o600))
	_, stderr, err := execute(t, "-q", "--nodes", nodes, "--pods", shares, "--seeds", "1", "--policies", "best-fit")
	require.NoError(t, err)
	require.Contains(t, stderr, "1 tasks of "+shares+" have num_gpu 0 and a gpu_milli: they ask no GPU")

	// gpupack-online listed with --workload online is the same run.
	out, _, err := execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--policies", "gpupack-online,fgd", "--workload", "online")
	require.NoError(t, err)
	require.Contains(t, out, "gpupack-online")

	// --target 10 (the bound) and a sweep at the ends of each axis.
	out, _, err = execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--policies", "gpupack,fgd",
		"--target", "10", "--checkpoints", "1,10")
	require.NoError(t, err)
	require.Contains(t, out, "alloc@1000%")
	out, stderr, err = execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "1",
		"--sweep", "gpushare=0,100", "--sweep", "cpu=0,999", "--sweep", "gpuspec=0,100", "--sweep", "multigpu=0")
	require.NoError(t, err)
	for _, m := range []string{"gpushare0 ", "gpushare100 ", "cpu000 ", "cpu999 ", "gpuspec0 ", "gpuspec100 ", "multigpu0 "} {
		require.Contains(t, out, m)
	}
	// cpu999 needs 999 CPU-only tasks per GPU task: 3 GPU tasks get 2997.
	require.Contains(t, out, "   3000 ")
	require.NotContains(t, stderr, "cannot reach")

	// A level the list cannot reach is run and flagged: 2 of 4.5 GPUs of
	// demand are multi-GPU (44%); dropping the one 2-GPU task gives 0%.
	_, stderr, err = execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--sweep", "multigpu=20")
	require.NoError(t, err)
	require.Contains(t, stderr, "multigpu20: "+pods+" cannot reach the level: the variant has 0.0%")
}

// A node list without GPUs, or with a DGX-1 of 16 GPUs, is refused with
// what to change, naming the node list.
func TestRunRefusesBadNodeLists(t *testing.T) {
	dir, _, pods := tinyTraces(t)
	cpuOnly := filepath.Join(dir, "cpu.csv")
	require.NoError(t, os.WriteFile(cpuOnly, []byte("sn,cpu_milli,memory_mib,gpu,model\nc0,32000,65536,0,\nc1,32000,65536,0,T4\n"), 0o600))
	_, _, err := execute(t, "-q", "--nodes", cpuOnly, "--pods", pods, "--seeds", "1")
	require.ErrorContains(t, err, cpuOnly+": the cluster has no GPUs: every node has gpu 0")
	big := filepath.Join(dir, "big.csv")
	require.NoError(t, os.WriteFile(big, []byte("sn,cpu_milli,memory_mib,gpu,model\nv0,96000,393216,16,V100M32\n"), 0o600))
	_, _, err = execute(t, "-q", "--nodes", big, "--pods", pods, "--seeds", "1")
	require.ErrorContains(t, err, big+": node 0 (v0): GPU model V100M32 laid out as dgx1: shape dgx1 has 8 GPUs, node has 16 (set another layout with --shapes V100M32=KIND)")
	_, _, err = execute(t, "-q", "--nodes", big, "--pods", pods, "--seeds", "1", "--shapes", "V100M32=nvswitch", "--policies", "best-fit")
	require.NoError(t, err)
}

// Tasks no node could host even empty are counted in a warning (they all
// fail; the figures alone do not say why), as tasks asking absent models
// are; a pod list that fits gets neither warning.
func TestRunWarnsOversizedTasks(t *testing.T) {
	dir, nodes, pods := tinyTraces(t)
	_, stderr, err := execute(t, "-q", "--nodes", nodes, "--pods", pods, "--seeds", "1", "--policies", "best-fit")
	require.NoError(t, err)
	require.NotContains(t, stderr, "warning")
	// g0 G2 8 GPUs 96 cores, t0 T4 2 GPUs 64 cores: e asks 9 GPUs, f 97
	// cores, g 3 T4 GPUs (t0 has 2), h a T4 with 65 cores; i fits g0.
	big := filepath.Join(dir, "big.csv")
	raw, err := os.ReadFile(pods)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(big, append(raw, []byte("e,1000,1024,9,1000,\nf,97000,1024,1,1000,\n"+
		"g,1000,1024,3,1000,T4\nh,65000,1024,1,500,T4\ni,65000,1024,3,1000,T4|G2\n")...), 0o600))
	out, stderr, err := execute(t, "-q", "--nodes", nodes, "--pods", big, "--seeds", "1", "--policies", "best-fit")
	require.NoError(t, err)
	require.Contains(t, stderr, "gpusim: warning: 4 tasks of "+big+" ask more GPUs, CPU or memory than any node of "+nodes+
		" of their GPU models has: they will fail")
	require.Contains(t, out, "best-fit")
}

// A node list with a name on several rows (two lists concatenated) runs,
// every row a node, with a warning naming them.
func TestRunWarnsDuplicateNodeNames(t *testing.T) {
	dir, nodes, pods := tinyTraces(t)
	raw, err := os.ReadFile(nodes)
	require.NoError(t, err)
	lines := strings.SplitAfterN(string(raw), "\n", 2) // header, rows
	twice := filepath.Join(dir, "twice.csv")
	require.NoError(t, os.WriteFile(twice, []byte(lines[0]+lines[1]+lines[1]), 0o600))
	out, stderr, err := execute(t, "-q", "--nodes", twice, "--pods", pods, "--seeds", "1", "--policies", "best-fit")
	require.NoError(t, err)
	require.Contains(t, stderr, "gpusim: warning: "+twice+": node name(s) c0, g0, t0 on more than one row: each row is simulated as a node of its own")
	require.Contains(t, out, "best-fit")
}

// gpupack-online listed beside gpupack with --workload both (or online)
// is the run --workload adds for gpupack: listed once, run once, not
// refused as listed twice.
func TestPoliciesOnlineListedBesideGPUPack(t *testing.T) {
	for _, tc := range []struct {
		list, workload string
		want           []string
	}{
		{"gpupack,gpupack-online", "both", []string{"gpupack", "gpupack-online"}},
		{"gpupack-online,gpupack,fgd", "both", []string{"gpupack", "gpupack-online", "fgd"}},
		{"gpupack,gpupack-online", "online", []string{"gpupack-online"}},
		{"gpupack-online", "online", []string{"gpupack-online"}},
		{"gpupack,gpupack-online", "pinned", []string{"gpupack", "gpupack-online"}},
	} {
		got, err := policies(tc.list, tc.workload)
		require.NoError(t, err, "%s --workload %s", tc.list, tc.workload)
		require.Equal(t, tc.want, got, "%s --workload %s", tc.list, tc.workload)
	}
}
