package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"runtime"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Policy names.
const (
	PolicyGPUPack = "gpupack"
	// PolicyGPUPackOnline is gpupack with the workload distribution
	// learned online as the deployed plugin learns it (default args), not
	// pinned to the pod list's.
	PolicyGPUPackOnline  = "gpupack-online"
	PolicyRandom         = "random"
	PolicyDotProduct     = "dot-product"
	PolicyGPUClustering  = "gpu-clustering"
	PolicyGPUPacking     = "gpu-packing"
	PolicyBestFit        = "best-fit"
	PolicyLeastAllocated = "least-allocated"
	PolicyMostAllocated  = "most-allocated"
)

// Policies lists the default policies, gpupack first, then fgd (the FGD
// artifact's policy, reproduced) so one run shows both.
func Policies() []string {
	return []string{PolicyGPUPack, PolicyFGD, PolicyRandom, PolicyDotProduct, PolicyGPUClustering, PolicyGPUPacking,
		PolicyBestFit, PolicyLeastAllocated, PolicyMostAllocated}
}

// AllPolicies lists every policy gpusim knows.
func AllPolicies() []string { return append(Policies(), PolicyGPUPackOnline, PolicyFirstFit) }

// Config is one gpusim invocation.
type Config struct {
	Cluster  *Cluster
	Workload *Workload
	Policies []string
	Seeds    []uint64
	// Target is the arrived GPU demand to stop at, as a fraction of capacity.
	Target float64
	// Checkpoints are the arrived-demand fractions to report (<= Target).
	Checkpoints []float64
	// Workers bounds the runs in parallel (0: GOMAXPROCS).
	Workers int
	// GPUPack tunes the gpupack policies.
	GPUPack GPUPackOptions
	// Progress, if set, is called with the tasks done so far and the total
	// (from several goroutines).
	Progress func(done, total int64)
}

// CurveStep is the resolution of the allocation curve (fraction of capacity).
const CurveStep = 0.01

// RunResult is the outcome of one policy on one seed.
type RunResult struct {
	Policy string
	Seed   uint64
	Tasks  int
	// Failed counts the tasks that fit nowhere; FailedGPU their demand in GPUs.
	Failed    int
	FailedGPU float64
	// Alloc[k] is the GPU allocation ratio when the arrived demand crossed
	// Checkpoints[k] (the last checkpoint at Target: at the end).
	Alloc []float64
	// Curve[k] is the allocation ratio at arrived demand k x CurveStep.
	Curve []float64
	// Unallocated GPUs at the end.
	Unallocated float64
	// Frag[k] is the cluster's fragmentation (pkg/score's Fragmentation
	// over the pod list's workload, CPU- and memory-aware) over its free GPU
	// capacity at Checkpoints[k].
	Frag []float64
	// IdleNoCPU counts, at the end, the entirely free GPUs on nodes whose
	// free CPU or memory holds no GPU task class of the pod list: whole
	// GPUs stranded by CPU (or memory), whatever the GPU model.
	IdleNoCPU int
	// MultiQuality is the mean QualityRatio of the sets given to multi-GPU
	// tasks (MultiTasks of them).
	MultiQuality float64
	MultiTasks   int
}

// MaxTarget bounds Config.Target: past ten times the cluster's GPU
// capacity every arriving task has long failed. The target alone does not
// bound a run's length and memory (a pod list of tiny GPU tasks takes many
// arrivals to reach it): MaxArrivals does.
const MaxTarget = 10

// MaxSeeds bounds the seeds of one run: every (policy, seed) result is
// kept for the summary, with its task sequence per seed (the FGD artifact
// uses 10).
const MaxSeeds = 1000

// validate checks everything Run takes from the caller, before any replay.
func (cfg *Config) validate() error {
	if math.IsNaN(cfg.Target) || cfg.Target <= 0 || cfg.Target > MaxTarget {
		return fmt.Errorf("target %v: want a fraction of the GPU capacity in (0, %d]", cfg.Target, MaxTarget)
	}
	if len(cfg.Seeds) == 0 || len(cfg.Policies) == 0 {
		return fmt.Errorf("need at least one policy and one seed")
	}
	if len(cfg.Seeds) > MaxSeeds {
		return fmt.Errorf("%d seeds: at most %d", len(cfg.Seeds), MaxSeeds)
	}
	for i, p := range cfg.Policies {
		if !slices.Contains(AllPolicies(), p) {
			return fmt.Errorf("unknown policy %q (known: %v)", p, AllPolicies())
		}
		if slices.Contains(cfg.Policies[:i], p) {
			// Its runs would be summarized together: each seed twice.
			return fmt.Errorf("policy %q listed twice", p)
		}
	}
	if cfg.Workers < 0 {
		return fmt.Errorf("workers %d must be 0 (GOMAXPROCS) or positive", cfg.Workers)
	}
	if len(cfg.Checkpoints) == 0 {
		return fmt.Errorf("need at least one checkpoint")
	}
	for k, c := range cfg.Checkpoints {
		if math.IsNaN(c) || c <= 0 || c > cfg.Target+1e-9 || (k > 0 && c <= cfg.Checkpoints[k-1]) {
			return fmt.Errorf("checkpoints %v must increase within (0, target %v]", cfg.Checkpoints, cfg.Target)
		}
		if k > 0 && checkpointLabel(c) == checkpointLabel(cfg.Checkpoints[k-1]) {
			return fmt.Errorf("checkpoints %v and %v are both %s%% to 4 decimals (the reports' column names): give checkpoints at least 0.000001 apart",
				cfg.Checkpoints[k-1], c, checkpointLabel(c))
		}
	}
	if err := cfg.GPUPack.validate(); err != nil {
		return err
	}
	if cfg.Workload != nil && cfg.Cluster != nil {
		return cfg.Workload.CheckArrivals(cfg.Cluster.TotalMilli, cfg.Target)
	}
	return nil
}

// Run replays the workload under every policy and seed, in parallel.
func Run(ctx context.Context, cfg Config) ([]RunResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	frag, err := NewFragModel(cfg.Workload, cfg.GPUPack.MaxTypes)
	if err != nil {
		return nil, err
	}
	gp := newGPUPack(frag, cfg.GPUPack)
	var fgd *fgdPolicy
	if slices.Contains(cfg.Policies, PolicyFGD) {
		if fgd, err = newFGDPolicy(cfg.Workload, cfg.Cluster); err != nil {
			return nil, err
		}
	}
	seqs := make([][]int32, len(cfg.Seeds))
	var total int64
	for k, s := range cfg.Seeds {
		if seqs[k], err = cfg.Workload.Sequence(cfg.Cluster.TotalMilli, cfg.Target, s); err != nil {
			return nil, err
		}
		total += int64(len(seqs[k]) * len(cfg.Policies))
	}
	var done atomic.Int64
	results := make([]RunResult, len(cfg.Policies)*len(cfg.Seeds))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(cmpOr(cfg.Workers, runtime.GOMAXPROCS(0)))
	for pi, pol := range cfg.Policies {
		for k, seed := range cfg.Seeds {
			g.Go(func() error {
				if err := ctx.Err(); err != nil {
					return err
				}
				// Tie breaking draws from its own stream per (policy, seed),
				// whatever the order of the policies.
				h := fnv.New64a()
				h.Write([]byte(pol))
				r := newRun(cfg.Cluster, cfg.Workload, frag, seed^h.Sum64())
				var pl placer
				switch pol {
				case PolicyGPUPack:
					pl = gp.newRun()
				case PolicyGPUPackOnline:
					on, err := gp.newOnlineRun()
					if err != nil {
						return err
					}
					pl = on
				case PolicyFGD:
					pl = fgd.newRun()
				default:
					pl = baseline(pol)
				}
				res := replay(ctx, r, pl, seqs[k], cfg, func(n int64) {
					d := done.Add(n)
					if cfg.Progress != nil {
						cfg.Progress(d, total)
					}
				})
				res.Policy, res.Seed = pol, seed
				results[pi*len(cfg.Seeds)+k] = res
				return ctx.Err()
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// replay feeds the sequence to the placer and measures.
func replay(ctx context.Context, r *run, pl placer, seq []int32, cfg Config, progress func(int64)) RunResult {
	capacity := float64(r.cl.TotalMilli)
	res := RunResult{Tasks: len(seq), Alloc: make([]float64, len(cfg.Checkpoints)), Frag: make([]float64, len(cfg.Checkpoints))}
	steps := int(math.Round(cfg.Target / CurveStep))
	res.Curve = make([]float64, 0, steps+1)
	res.Curve = append(res.Curve, 0)
	next := 0 // next checkpoint
	var arrived int64
	var qsum float64
	const batch = 256
	for n, ci := range seq {
		if n%batch == batch-1 {
			progress(batch)
			if ctx.Err() != nil {
				return res
			}
		}
		c := &r.wl.Classes[ci]
		node, p := pl.place(r, ci)
		if node < 0 {
			res.Failed++
			res.FailedGPU += float64(c.Demand()) / topology.MilliPerGPU
		} else {
			if o, ok := pl.(placedObserver); ok {
				o.placed(r, ci, node, p)
			}
			r.apply(node, c, p)
			if c.NumGPU >= 2 {
				shape := r.cl.Topo[node].Shape()
				q := score.Choice{Kind: score.KindWhole, GPUs: p.whole, Quality: shape.Quality(p.whole), Ideal: shape.Ideal(c.NumGPU)}
				qsum += q.QualityRatio()
				res.MultiTasks++
			}
		}
		arrived += c.Demand()
		ratio := float64(r.allocated) / capacity
		for len(res.Curve) <= steps && float64(arrived) >= float64(len(res.Curve))*CurveStep*capacity-0.5 {
			res.Curve = append(res.Curve, ratio)
		}
		for next < len(cfg.Checkpoints) && float64(arrived) >= cfg.Checkpoints[next]*capacity-0.5 {
			res.Alloc[next] = ratio
			res.Frag[next] = fragRatio(r)
			next++
		}
	}
	progress(int64(len(seq) % batch))
	final := float64(r.allocated) / capacity
	for ; next < len(cfg.Checkpoints); next++ {
		res.Alloc[next] = final
		res.Frag[next] = fragRatio(r)
	}
	for len(res.Curve) <= steps {
		res.Curve = append(res.Curve, final)
	}
	res.Unallocated = (capacity - float64(r.allocated)) / topology.MilliPerGPU
	res.IdleNoCPU = idleNoCPU(r)
	if res.MultiTasks > 0 {
		res.MultiQuality = qsum / float64(res.MultiTasks)
	}
	return res
}

// fragRatio is sum over nodes of pkg/score's Fragmentation (CPU-aware
// distribution) over the free GPU capacity.
func fragRatio(r *run) float64 {
	var f, free float64
	for i := range r.cl.Nodes {
		if r.free[i] == 0 {
			continue
		}
		f += score.Fragmentation(r.state[i], r.frag.Base())
		free += float64(r.free[i]) / topology.MilliPerGPU
	}
	if free == 0 {
		return 0
	}
	return f / free
}

// idleNoCPU is RunResult.IdleNoCPU.
func idleNoCPU(r *run) int {
	n := 0
	for i := range r.cl.Nodes {
		if r.full[i] == 0 {
			continue
		}
		fits := false
		for k := range r.wl.Classes {
			c := &r.wl.Classes[k]
			if c.NumGPU > 0 && c.CPUMilli <= r.cpu[i] && c.MemoryMiB <= r.mem[i] {
				fits = true
				break
			}
		}
		if !fits {
			n += r.full[i]
		}
	}
	return n
}
