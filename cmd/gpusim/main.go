// Command gpusim replays the Alibaba openb GPU traces (Weng et al., "Beware
// of Fragmentation", USENIX ATC'23) with the FGD artifact's protocol under
// gpupack's decision function (pkg/score) and the paper's baselines, and
// reports GPU allocation, fragmentation and multi-GPU set quality.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gpupack/gpupack/pkg/sim"
	"github.com/gpupack/gpupack/pkg/version"
)

type options struct {
	nodes, pods string
	policies    string
	seeds       int
	firstSeed   uint64
	target      float64
	checkpoints string
	shapes      string
	workers     int
	csvPath     string
	svgPath     string
	svgFrom     float64
	quiet       bool
	resolution  float64
	maxTypes    int
	fragWeight  float64
	topoWeight  float64
	workload    string
	sweeps      []string
	variantSeed uint64
}

func main() {
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	o := options{}
	cmd := &cobra.Command{
		Use:   "gpusim --pods openb_pod_list_default.csv [flags]",
		Short: "Trace-driven GPU placement benchmark on the Alibaba openb traces",
		Long: `gpusim replays an openb pod list on an openb node list with the protocol of the
FGD paper's artifact (USENIX ATC'23): per seed the pod list is shuffled and
resampled with replacement; tasks arrive one by one and never leave until their
GPU demand reaches --target of the cluster's GPU capacity; a task that fits
nowhere (GPU, CPU, memory, GPU model) fails and is skipped. It reports the GPU
allocation ratio when the arrived demand crosses each checkpoint, unallocated
GPUs, the fragmentation ratio and, for multi-GPU tasks, the chosen set's
quality over the best set of that size on the node's shape. All policies and
seeds run in one process, in parallel, on the same task sequence per seed.

Policies: gpupack (pkg/score: fragmentation after FGD + NVLink topology, the
scheduler's decision function, nodes ranked by the scheduler plugin's own
Score/NormalizeScore functions, pkg/score's Rank, then at random), fgd (the
FGD artifact's score plugin reproduced: fragmentation over the pod list's
typical pods, node score trunc(100 sigmoid(decrease/1000)), a share on the GPU
of the best score, ties to the first node of a per-run random order), and the
baselines random, dot-product,
gpu-clustering, gpu-packing, best-fit (as defined in the FGD artifact),
least-allocated and most-allocated (kube-scheduler NodeResourcesFit over CPU,
memory and GPU), which run by default; and, when listed, first-fit (the first
node that fits in a per-run random node order) and gpupack-online (gpupack learning the
workload as the deployed plugin does; --workload online|both is the same).

Node shapes (--shapes MODEL=KIND,... overrides; kinds dgx1, nvswitch,
nvlink-pairs, pcie), defaults:
  V100M16, V100M32  dgx1: DGX-1 hybrid cube-mesh, NVLink 2 (1- and 2-lane pairs)
  T4, P100, A10     pcie: PIX pairs (0-1, 2-3, ...), NODE within a socket, SYS across
  G3                nvswitch: 12 NVLink 3 lanes between every pair. G3 hosts are
                    the largest 8-GPU hosts (128 cores, 768 GiB): a training box.
  G2                nvlink-pairs: PCIe cards bridged in pairs by 4 NVLink 3 lanes,
                    NODE/SYS otherwise. G2 hosts (96 cores, 384 GiB, 8 GPUs) are
                    the bulk of the fleet, serving mostly shared and 1-GPU tasks.
Node lists of other machines may name any model (H100=nvswitch adds one); a
model with no shape is laid out as pcie, with a warning.
gpupack compares link quality across shapes only among nodes of one GPU family,
as the plugin does by the compute capability labels: P100 6.0, V100M16 and
V100M32 7.0, T4 7.5, A10 8.6; G2, G3 and any other model are each their own.
Every GPU is time-shared in 1000 replicas, so a gpu_milli share is a replica
count and whole-GPU tasks take GPUs with every replica free.

The lists are read by column name (any order, other columns ignored; BOM,
CRLF, quotes and spaces accepted). A row with num_gpu 0 is CPU-only whatever
its gpu_milli (as in the FGD artifact; counted in a warning); a node with
gpu 0 is CPU-only. docs/gpusim.md lists every limit.`,
		Version:      version.Get().String(),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.Flags().Changed("policies"))
		},
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	f := cmd.Flags()
	f.StringVar(&o.nodes, "nodes", "testdata/openb/openb_node_list_gpu_node.csv", "openb node list (CSV)")
	f.StringVar(&o.pods, "pods", "testdata/openb/openb_pod_list_default.csv", "openb pod list (CSV)")
	f.StringVar(&o.policies, "policies", strings.Join(sim.Policies(), ","), "comma-separated policies")
	f.IntVar(&o.seeds, "seeds", 10, fmt.Sprintf("number of seeds (1..%d)", sim.MaxSeeds))
	f.Uint64Var(&o.firstSeed, "first-seed", 42, "first seed (the FGD artifact uses 42..51)")
	f.Float64Var(&o.target, "target", 1.3, fmt.Sprintf("arrived GPU demand to stop at, as a fraction of GPU capacity (0..%d)", sim.MaxTarget))
	f.StringVar(&o.checkpoints, "checkpoints", "0.9,1.0,1.1,1.2,1.3", "arrived-demand fractions to report, increasing, up to --target")
	f.StringVar(&o.shapes, "shapes", "", "node shape overrides MODEL=KIND,... (defaults: "+sim.DefaultShapes().String()+")")
	f.IntVar(&o.workers, "workers", 0, "runs in parallel (0: GOMAXPROCS)")
	f.StringVar(&o.csvPath, "csv", "", "write per-run results to this CSV file (not an input, not the --svg file)")
	f.StringVar(&o.svgPath, "svg", "", "write the allocation chart to this SVG file")
	f.Float64Var(&o.svgFrom, "svg-from", 0.5, "arrived demand where the chart's x axis starts")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar")
	f.Float64Var(&o.resolution, "gpupack-resolution", 0.05, "gpupack: score.Rank resolution, GPUs of fragmentation change per score point (0 or negative: the plugin's, 0.05)")
	f.IntVar(&o.maxTypes, "gpupack-max-types", 0, "gpupack: task types kept in the distribution (0: pkg/score default, 128)")
	f.Float64Var(&o.fragWeight, "blend-frag-weight", 1, "gpupack: score.Rank fragmentation weight, a whole number 0..100 (the plugin's fragmentationWeight; both weights 0: the defaults)")
	f.StringVar(&o.workload, "workload", "pinned", "gpupack's workload distribution: pinned (the pod list's, as the FGD artifact's typical pods), online (learned from the placed pods as the deployed plugin learns it, default args; reported as "+sim.PolicyGPUPackOnline+") or both")
	f.Float64Var(&o.topoWeight, "blend-topo-weight", 2, "gpupack: score.Rank topology weight, a whole number 0..100 (the plugin's topologyWeight)")
	f.StringArrayVar(&o.sweeps, "sweep", nil, "sweep a trace family's axis: AXIS or AXIS=L1,L2,... with levels in the family's "+
		"units, 0..100 (gpushare=20,40,...; gpuspec=5,10,...; cpu=0,50,...,300 as in cpuNNN, up to 999; multigpu=20,...,50); all for every axis "+
		"at its default levels; repeatable. Runs gpupack, fgd and best-fit unless --policies is given; --csv and --svg "+
		"then get the sweep's table and chart")
	f.Uint64Var(&o.variantSeed, "variant-seed", 1, "seed of the generated trace variants (--sweep)")
	return cmd
}

func run(ctx context.Context, o options, stdout, stderr io.Writer, policiesSet bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	start := time.Now()
	// Fail before a long run, not after it.
	if err := checkOutputs(o); err != nil {
		return err
	}
	if o.seeds < 1 || o.seeds > sim.MaxSeeds {
		return fmt.Errorf("--seeds %d: want 1..%d", o.seeds, sim.MaxSeeds)
	}
	if o.firstSeed > math.MaxUint64-uint64(o.seeds-1) {
		// The seeds would wrap around to 0, 1, ...: refuse rather than
		// run other seeds than the report names.
		return fmt.Errorf("--first-seed %d with --seeds %d: the last seed passes %d", o.firstSeed, o.seeds, uint64(math.MaxUint64))
	}
	// Against a valid target only: a bad --target is said by its own check.
	if o.svgPath != "" && o.target > 0 && (math.IsNaN(o.svgFrom) || o.svgFrom < 0 || o.svgFrom >= o.target) {
		return fmt.Errorf("--svg-from %v: want 0 or more and below --target %v", o.svgFrom, o.target)
	}
	sweeps, err := parseSweeps(o.sweeps)
	if err != nil {
		return fmt.Errorf("--sweep: %w", err)
	}
	shapes, err := sim.ParseShapes(o.shapes)
	if err != nil {
		return err
	}
	nodes, err := sim.ReadNodesFile(o.nodes)
	if err != nil {
		return err
	}
	tasks, err := sim.ReadTasksFile(o.pods)
	if err != nil {
		return err
	}
	if names, n := sim.DuplicateNodeNames(nodes, 3); n > 0 {
		more := ""
		if n > len(names) {
			more = fmt.Sprintf(" and %d more", n-len(names))
		}
		fmt.Fprintf(stderr, "gpusim: warning: %s: node name(s) %s%s on more than one row: each row is simulated as a node of its own\n",
			o.nodes, strings.Join(names, ", "), more)
	}
	warnUnusedShapes(stderr, o.shapes, o.nodes, nodes)
	defaultUnknownShapes(stderr, nodes, shapes)
	cl, err := sim.NewCluster(nodes, shapes)
	if err != nil {
		return fmt.Errorf("%s: %w", o.nodes, err)
	}
	wl, err := sim.NewWorkload(tasks, cl)
	if err != nil {
		return fmt.Errorf("%s: %w", o.pods, err)
	}
	if n := sim.IgnoredTasks(tasks); n > 0 {
		fmt.Fprintf(stderr, "gpusim: warning: %d tasks of %s have num_gpu 0 and a gpu_milli: they ask no GPU (CPU-only, as in the FGD artifact)\n",
			n, o.pods)
	}
	if n, models := sim.UnhostableTasks(tasks, cl); n > 0 {
		fmt.Fprintf(stderr, "gpusim: warning: %d tasks of %s ask only GPU models no node of %s has (%s): they will fail\n",
			n, o.pods, o.nodes, strings.Join(models, ", "))
	}
	if n := sim.OversizedTasks(tasks, cl); n > 0 {
		fmt.Fprintf(stderr, "gpusim: warning: %d tasks of %s ask more GPUs, CPU or memory than any node of %s of their GPU models has: they will fail\n",
			n, o.pods, o.nodes)
	}
	cps, err := parseFloats(o.checkpoints)
	if err != nil {
		return fmt.Errorf("--checkpoints: %w", err)
	}
	cfg := sim.Config{Cluster: cl, Workload: wl, Target: o.target, Checkpoints: cps, Workers: o.workers,
		GPUPack: sim.GPUPackOptions{Resolution: o.resolution, MaxTypes: o.maxTypes, FragWeight: o.fragWeight, TopoWeight: o.topoWeight}}
	list := o.policies
	if len(sweeps) > 0 && !policiesSet {
		list = strings.Join(sim.SweepPolicies(), ",")
	}
	if cfg.Policies, err = policies(list, o.workload); err != nil {
		return err
	}
	for i := range o.seeds {
		cfg.Seeds = append(cfg.Seeds, o.firstSeed+uint64(i))
	}
	bar := newProgress(stderr, o.quiet)
	cfg.Progress = bar.update
	if len(sweeps) > 0 {
		points, err := sim.Sweep(ctx, sim.SweepConfig{Base: cfg, Tasks: tasks, Nodes: nodes, Axes: sweeps, VariantSeed: o.variantSeed})
		bar.finish()
		if err != nil {
			return interrupted(ctx, err)
		}
		for _, p := range points {
			if p.Missed() {
				fmt.Fprintf(stderr, "gpusim: warning: %s: %s cannot reach the level: the variant has %s\n",
					p.Member(), o.pods, sim.FormatLevel(p.Axis, p.Measured))
			}
		}
		return reportSweep(o, points, cfg, stdout, start)
	}
	results, err := sim.Run(ctx, cfg)
	bar.finish()
	if errors.Is(err, sim.ErrTooManyArrivals) {
		return fmt.Errorf("%s on %s: %w", o.pods, o.nodes, err)
	}
	if err != nil {
		return interrupted(ctx, err)
	}
	sums := sim.Summarize(results)
	fmt.Fprintf(stdout, "%s on %s: %d nodes, %.0f GPUs, %d tasks in %d classes; %d seeds from %d; %s\n",
		o.pods, o.nodes, len(cl.Nodes), float64(cl.TotalMilli)/1000, len(wl.Tasks), len(wl.Classes),
		o.seeds, o.firstSeed, time.Since(start).Round(time.Millisecond))
	if err := sim.WriteTable(stdout, sums, cps, o.target); err != nil {
		return err
	}
	if o.csvPath != "" {
		if err := writeFile(o.csvPath, func(w io.Writer) error { return sim.WriteCSV(w, results, cps) }); err != nil {
			return err
		}
	}
	if o.svgPath != "" {
		title := fmt.Sprintf("GPU allocation vs arrived demand, %s, %d seeds", baseName(o.pods), o.seeds)
		if err := writeFile(o.svgPath, func(w io.Writer) error { return sim.WriteSVG(w, sums, title, o.svgFrom) }); err != nil {
			return err
		}
	}
	return nil
}

// interrupted says that the run was stopped when err is its context's
// cancellation (Ctrl-C): "context canceled" alone read as a failure of the
// simulation.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return errors.New("interrupted: the run was stopped (Ctrl-C) before it finished; nothing was printed or written")
	}
	return err
}

// policies lists the --policies, gpupack as --workload says (pinned,
// online or both).
func policies(list, workload string) ([]string, error) {
	var gp []string
	switch workload {
	case "pinned":
		gp = []string{sim.PolicyGPUPack}
	case "online":
		gp = []string{sim.PolicyGPUPackOnline}
	case "both":
		gp = []string{sim.PolicyGPUPack, sim.PolicyGPUPackOnline}
	default:
		return nil, fmt.Errorf("--workload %q: want pinned, online or both", workload)
	}
	// The workload is gpupack's: with no gpupack listed it would change
	// nothing (gpupack-online listed with --workload online is the same run).
	names := strings.Split(list, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	if workload != "pinned" && !slices.Contains(names, sim.PolicyGPUPack) &&
		(workload != "online" || !slices.Contains(names, sim.PolicyGPUPackOnline)) {
		return nil, fmt.Errorf("--workload %s: --policies %q lists no %s, whose workload it sets", workload, list, sim.PolicyGPUPack)
	}
	var out []string
	merged := false
	for _, p := range names {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			return nil, fmt.Errorf("--policies %q: an empty policy name (a stray comma?)", list)
		case p == sim.PolicyGPUPack:
			out = append(out, gp...)
		case p == sim.PolicyGPUPackOnline && !merged && slices.Contains(gp, p) && slices.Contains(names, sim.PolicyGPUPack):
			// --workload both or online adds it for gpupack: the same
			// run (once: listed again, it is listed twice).
			merged = true
		default:
			out = append(out, p)
		}
	}
	return out, nil
}

func baseName(p string) string {
	p = p[strings.LastIndex(p, "/")+1:]
	return strings.TrimSuffix(p, ".csv")
}

// minCheckpoint is the smallest checkpoint: 0.1% of the GPU capacity
// arrived. Below it a table label rounds away and, on a small cluster,
// the first task (of any demand) already crosses it.
const minCheckpoint = 0.001

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", part)
		}
		if v < minCheckpoint {
			return nil, fmt.Errorf("%v: below %v (0.1%% of the GPU capacity arrived), where the first task alone crosses it", v, minCheckpoint)
		}
		if len(out) > 0 && v <= out[len(out)-1] {
			return nil, fmt.Errorf("%v: checkpoints must increase", v)
		}
		out = append(out, v)
	}
	return out, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// warnUnusedShapes says on stderr which --shapes overrides name a model no
// node of the node list has: they change nothing.
func warnUnusedShapes(stderr io.Writer, spec, nodesPath string, nodes []sim.NodeSpec) {
	unused, near := sim.UnusedShapes(spec, nodes)
	for i, m := range unused {
		hint := ""
		if near[i] != "" {
			hint = fmt.Sprintf(" (model names are case-sensitive: did you mean %s?)", near[i])
		}
		fmt.Fprintf(stderr, "gpusim: warning: --shapes %s: no GPU node of %s has that model; the override changes nothing%s\n", m, nodesPath, hint)
	}
}

// defaultUnknownShapes lays out the GPU models of nodes that shapes has no
// layout for as PCIe boxes (no NVLink: the conservative guess, which gives
// multi-GPU sets no link bonus), and says so on stderr with the flag that
// sets them.
func defaultUnknownShapes(stderr io.Writer, nodes []sim.NodeSpec, shapes sim.Shapes) {
	missing := sim.MissingShapes(nodes, shapes)
	if len(missing) == 0 {
		return
	}
	for _, m := range missing {
		shapes[m] = sim.ShapePCIe
	}
	fmt.Fprintf(stderr, "gpusim: warning: no shape known for GPU model(s) %s: laid out as %s (no NVLink); set one with --shapes %s=KIND (KIND: %s)\n",
		strings.Join(missing, ", "), sim.ShapePCIe, missing[0], sim.ShapeKinds())
}

// progress is the run's progress bar (schollz/progressbar) on stderr, or
// nothing when stderr is not a terminal or --quiet is set. Runs report from
// several goroutines: it only moves forward.
type progress struct {
	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	done int64
}

func newProgress(stderr io.Writer, quiet bool) *progress {
	f, ok := stderr.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("replaying"),
		progressbar.OptionSetWidth(40),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progress) update(done, total int64) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done <= p.done {
		return
	}
	p.done = done
	if p.bar.GetMax64() != total {
		p.bar.ChangeMax64(total)
	}
	_ = p.bar.Set64(done) // drawing errors are not worth stopping a run for
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// checkOutputs checks that --csv and --svg can be written, and that neither
// is an input (--csv openb_pod_list_default.csv would overwrite the trace)
// or the other output.
func checkOutputs(o options) error {
	outs := []struct{ flag, path string }{{"--csv", o.csvPath}, {"--svg", o.svgPath}}
	ins := []struct{ flag, path string }{{"--nodes", o.nodes}, {"--pods", o.pods}, outs[0]}
	for _, out := range outs {
		if err := checkWritable(out.path); err != nil {
			return fmt.Errorf("%s: %w", out.flag, err)
		}
		for _, in := range ins {
			if in.flag != out.flag && samePath(out.path, in.path) {
				return fmt.Errorf("%s %s: the same file as %s", out.flag, out.path, in.flag)
			}
		}
	}
	return nil
}

// samePath reports whether a and b (non-empty) name one file: the same
// file a write lands in (writeTarget: links followed, a dangling one to
// the file it would create, relative paths made absolute), or one existing
// file (hard links).
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if writeTarget(a) == writeTarget(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// maxLinks bounds the symbolic links writeTarget follows (Linux's
// MAXSYMLINKS); past it a loop is left as it is (checkWritable refuses it).
const maxLinks = 40

// writeTarget is the absolute path of the file that writing path creates
// or replaces: its symbolic links followed, also a dangling one (os.Create
// creates the file it names), and the links of its directory resolved,
// whether or not the file exists yet. Where a step cannot be resolved (a
// missing directory) the path is kept as it stands, cleaned and absolute.
func writeTarget(path string) string {
	for range maxLinks {
		li, err := os.Lstat(path)
		if err != nil || li.Mode()&fs.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(path)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		path = filepath.Join(dir, filepath.Base(path))
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return filepath.Clean(path)
}

// checkWritable fails when the run could not write its output at path: a
// directory, a file it may not write, a FIFO nobody reads (writing it at
// the end would hang), or a new file in a missing or read-only directory.
// A path that exists is opened for writing as the run will open it (not
// truncated, without waiting on a FIFO), so /dev/stdout or a writable file
// in a read-only directory passes; for a new file a file is created and
// removed beside it. A symbolic link to a missing file is checked as the
// new file it names (os.Create follows the link and creates its target),
// not as a new file beside the link. It leaves nothing behind.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if li, lerr := os.Lstat(path); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			// A dangling link (a loop fails Stat with ELOOP, below).
			target, err := os.Readlink(path)
			if err != nil {
				return fmt.Errorf("cannot write %s: %w", path, err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(path), target)
			}
			if err := checkWritable(target); err != nil {
				return fmt.Errorf("%s is a symbolic link to a missing file: %w", path, err)
			}
			return nil
		}
	}
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory", path)
	case err == nil:
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				return fmt.Errorf("cannot write %s: a FIFO with no reader", path)
			}
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		return f.Close()
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	fi, err = os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, ".gpusim-check-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// parseSweeps reads the --sweep values.
func parseSweeps(specs []string) ([]sim.SweepAxis, error) {
	var out []sim.SweepAxis
	for _, spec := range specs {
		name, levels, hasLevels := strings.Cut(strings.TrimSpace(spec), "=")
		if name == "all" && hasLevels {
			return nil, fmt.Errorf("%s: all runs every axis at its default levels and takes none; give levels per axis, as gpushare=20,40", spec)
		}
		if name == "all" {
			for _, a := range sim.Axes() {
				out = append(out, sim.SweepAxis{Axis: a, Levels: sim.DefaultLevels(a)})
			}
			continue
		}
		a, err := sim.ParseAxis(name)
		if err != nil {
			return nil, err
		}
		ax := sim.SweepAxis{Axis: a, Levels: sim.DefaultLevels(a)}
		if hasLevels {
			ax.Levels = nil
			for _, l := range strings.Split(levels, ",") {
				v, err := strconv.ParseFloat(strings.TrimSpace(l), 64)
				if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, fmt.Errorf("%s: level %q is not a number", spec, l)
				}
				if v != math.Trunc(v) { // members are named by whole levels (gpushare40, cpu250)
					return nil, fmt.Errorf("%s: level %q: want a whole number in the family's units", spec, l)
				}
				if err := sim.CheckLevel(a, v/100); err != nil {
					return nil, fmt.Errorf("%s: %w", spec, err)
				}
				ax.Levels = append(ax.Levels, v/100)
			}
		}
		out = append(out, ax)
	}
	// A variant listed twice would run twice and count twice in the chart.
	seen := map[string]bool{}
	for _, ax := range out {
		for _, l := range ax.Levels {
			m := sim.MemberName(ax.Axis, l)
			if seen[m] {
				return nil, fmt.Errorf("%s listed twice", m)
			}
			seen[m] = true
		}
	}
	return out, nil
}

// reportSweep prints the sweep's table and writes its CSV and chart.
func reportSweep(o options, points []sim.SweepPoint, cfg sim.Config, stdout io.Writer, start time.Time) error {
	fmt.Fprintf(stdout, "variants of %s (variant seed %d), allocation at %.0f%% arrived, %d seeds from %d; %s\n",
		o.pods, o.variantSeed, 100*cfg.Checkpoints[len(cfg.Checkpoints)-1], o.seeds, o.firstSeed,
		time.Since(start).Round(time.Millisecond))
	if err := sim.WriteSweepTable(stdout, points); err != nil {
		return err
	}
	if o.csvPath != "" {
		if err := writeFile(o.csvPath, func(w io.Writer) error { return sim.WriteSweepCSV(w, points) }); err != nil {
			return err
		}
	}
	if o.svgPath != "" {
		title := fmt.Sprintf("Variants of %s, %d seeds", baseName(o.pods), o.seeds)
		if err := writeFile(o.svgPath, func(w io.Writer) error { return sim.WriteSweepSVG(w, points, title) }); err != nil {
			return err
		}
	}
	return nil
}
