package sim

// The baselines follow the definitions of the FGD paper's artifact
// (github.com/hkust-adsl/kubernetes-scheduler-simulator, pkg/simulator/
// plugin, ATC'23): each scores every feasible node with an integer in
// [0, 100], the highest wins with ties broken at random (kube-scheduler's
// selectHost), and GPU shares go on the best-fit GPU ("best" GPU selection)
// unless the policy says otherwise; whole GPUs are the lowest free ones.
// They are not the scheduler's policy and exist for comparison only.

// Normalization constants of the artifact (MaxSpecCpu, MaxSpecGpu).
const (
	maxSpecCPU = 128000 // milli-CPU
	maxSpecGPU = 8000   // milli-GPU
	maxScore   = 100
)

// scorer is a baseline's node score for class c on node i (feasible).
type scorer func(r *run, i int, c *Class) int64

// scoring places a task on the best-scored feasible node.
type scoring struct {
	score scorer
	// randomGPU selects a random GPU for shares instead of the best fit.
	randomGPU bool
}

func (s *scoring) place(r *run, ci int32) (int, placement) {
	c := &r.wl.Classes[ci]
	best := newArgmax()
	for i := range r.cl.Nodes {
		if r.fits(i, c) {
			best.offer(r, i, s.score(r, i, c))
		}
	}
	if best.node < 0 {
		return -1, placement{}
	}
	if s.randomGPU && c.Shared() {
		return best.node, placement{shareGPU: r.randomGPU(best.node, c.GPUMilli)}
	}
	return best.node, r.defaultPlacement(best.node, c)
}

// randomScore: one feasible node drawn uniformly (RandomScore), random GPU
// for shares (gpusel "random").
func randomScore(*run, int, *Class) int64 { return 0 }

// bestFitScore (BestFitScore): 100 x (1 - (0.5 (cpuFree - cpu)/128000 +
// 0.5 (gpuFree - gpu)/8000)), truncated: the node left with the least
// weighted free CPU and GPU wins.
func bestFitScore(r *run, i int, c *Class) int64 {
	left := 0.5*float64(r.cpu[i]-c.CPUMilli)/maxSpecCPU + 0.5*float64(r.free[i]-c.Demand())/maxSpecGPU
	return int64((1 - left) * maxScore)
}

// dotProductScore (DotProductScore, Tetris; dimext "merge", norm "max"):
// 100 x (1 - <free, request>/2) over (CPU/128000, GPU/8000): the node whose
// free vector aligns least with the request wins.
func dotProductScore(r *run, i int, c *Class) int64 {
	dot := float64(r.cpu[i])/maxSpecCPU*float64(c.CPUMilli)/maxSpecCPU +
		float64(r.free[i])/maxSpecGPU*float64(c.Demand())/maxSpecGPU
	return int64(maxScore * (1 - dot/2))
}

// gpuClusteringScore (GpuClusteringScore): nodes already running only tasks
// of the same GPU kind (share, 1-GPU, 2-GPU, ...) first (75..100), then
// nodes mixing it with others (50..75), then idle nodes (25..50), then
// nodes of other kinds (0..25); within a tier the fuller node wins.
// CPU-only tasks score 0 everywhere.
func gpuClusteringScore(r *run, i int, c *Class) int64 {
	if c.NumGPU == 0 {
		return 0
	}
	used := int64(maxScore/4) * (maxSpecGPU - r.free[i]) / maxSpecGPU
	switch {
	case r.aff[i]&c.affinity != 0 && r.aff[i] == c.affinity:
		return used + maxScore*3/4
	case r.aff[i]&c.affinity != 0:
		return used + maxScore*2/4
	case r.aff[i] == 0:
		return used + maxScore/4
	}
	return used
}

// gpuPackingScore (GpuPackingScore): prefer a share on partly used GPUs
// (50..100, fuller first), then free GPUs of a used node (33..50), then an
// idle node (0..33, fewer GPUs first). CPU-only tasks score 0.
func gpuPackingScore(r *run, i int, c *Class) int64 {
	if c.NumGPU == 0 {
		return 0
	}
	g := r.gpus(i)
	if r.full[i] == len(g) {
		return max(int64(maxScore/3-r.full[i]), int64(r.full[i]))
	}
	// GPUs in increasing free share; the first that hold the request.
	need := c.NumGPU
	var usedMask uint64
	fullToUse := 0
	var freeRatio int64
	for need > 0 {
		pick := -1
		for j, v := range g {
			if usedMask&(1<<uint(j)) == 0 && int64(v) >= c.GPUMilli && (pick < 0 || v < g[pick]) {
				pick = j
			}
		}
		if pick < 0 {
			return 0
		}
		usedMask |= 1 << uint(pick)
		need--
		if g[pick] == MilliPerGPU {
			fullToUse++
		}
		freeRatio += int64(g[pick]) * 100 / MilliPerGPU
	}
	if fullToUse > 0 {
		return max(int64(maxScore/2-fullToUse), maxScore/3)
	}
	return max(maxScore-freeRatio/10, maxScore/2)
}

// leastAllocatedScore is kube-scheduler's NodeResourcesFit LeastAllocated
// over CPU, memory and GPU (weight 1 each): the mean over resources of
// (capacity - requested) x 100 / capacity after placing the task.
func leastAllocatedScore(r *run, i int, c *Class) int64 {
	return allocatedScore(r, i, c, false)
}

// mostAllocatedScore is NodeResourcesFit MostAllocated over CPU, memory and
// GPU: the mean of requested x 100 / capacity after placing the task.
func mostAllocatedScore(r *run, i int, c *Class) int64 {
	return allocatedScore(r, i, c, true)
}

func allocatedScore(r *run, i int, c *Class, most bool) int64 {
	ns := &r.cl.Nodes[i]
	type res struct{ capacity, free, req int64 }
	rs := [3]res{
		{ns.CPUMilli, r.cpu[i], c.CPUMilli},
		{ns.MemoryMiB, r.mem[i], c.MemoryMiB},
		{int64(ns.GPUs) * MilliPerGPU, r.free[i], c.Demand()},
	}
	var sum, n int64
	for _, x := range rs {
		if x.capacity <= 0 {
			continue
		}
		requested := x.capacity - x.free + x.req
		if most {
			sum += requested * maxScore / x.capacity
		} else {
			sum += (x.capacity - requested) * maxScore / x.capacity
		}
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / n
}
