package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder wraps a placer and records, per task, where it went.
type recorder struct {
	pl  placer
	log []diagEvent
}

type diagEvent struct {
	n, gpus  int
	model    string
	node     int
	fullFree bool // node had all its GPUs free before
	freeBef  int  // entirely free GPUs on the node before
	ngpu     int
	cpu      int64
}

func (d *recorder) place(r *run, ci int32) (int, placement) {
	node, p := d.pl.place(r, ci)
	c := &r.wl.Classes[ci]
	e := diagEvent{n: len(d.log), gpus: int(c.NumGPU), node: node, cpu: c.CPUMilli}
	if c.Shared() {
		e.gpus = 0 // shared
	}
	if c.NumGPU == 0 {
		e.gpus = -1
	}
	if node >= 0 {
		e.model = r.cl.Models[r.cl.ModelID[node]]
		e.fullFree = r.full[node] == r.ngpu[node]
		e.freeBef = r.full[node]
		e.ngpu = r.ngpu[node]
	}
	d.log = append(d.log, e)
	return node, p
}

func (d *recorder) placed(r *run, ci int32, node int, p placement) {
	if o, ok := d.pl.(placedObserver); ok {
		o.placed(r, ci, node, p)
	}
}

// TestDiagMultiGPU prints per-shape failures and placements of gpupack vs
// fgd: GPUSIM_DIAG=trace[,seed] (trace: an openb name or a .csv path) or AXIS=LEVEL[,seed] for the sweep's variant
// of the default trace (variant seed 1, as gpusim's default).
func TestDiagMultiGPU(t *testing.T) {
	spec := os.Getenv("GPUSIM_DIAG")
	if spec == "" {
		t.Skip("set GPUSIM_DIAG=trace[,seed]")
	}
	parts := strings.Split(spec, ",")
	seed := uint64(42)
	if len(parts) > 1 {
		s, err := strconv.Atoi(parts[1])
		require.NoError(t, err)
		seed = uint64(s)
	}
	nodes, err := ReadNodesFile(filepath.Join(openbDir, "openb_node_list_gpu_node.csv"))
	require.NoError(t, err)
	trace, level, variant := strings.Cut(parts[0], "=")
	if variant {
		trace = "default"
	}
	path := filepath.Join(openbDir, "openb_pod_list_"+trace+".csv")
	if strings.HasSuffix(trace, ".csv") { // a pod list of one's own
		path = trace
	}
	tasks, err := ReadTasksFile(path)
	require.NoError(t, err)
	if variant { // AXIS=LEVEL: the sweep's variant of the default trace
		a, err := ParseAxis(parts[0][:strings.Index(parts[0], "=")])
		require.NoError(t, err)
		lv, err := strconv.ParseFloat(level, 64)
		require.NoError(t, err)
		vseed := uint64(1)
		if v := os.Getenv("GPUSIM_DIAG_VARIANT"); v != "" {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			vseed = uint64(n)
		}
		tasks, err = GenerateVariant(tasks, nodes, a, lv/100, vseed)
		require.NoError(t, err)
	}
	cl, err := NewCluster(nodes, DefaultShapes())
	require.NoError(t, err)
	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	frag, err := NewFragModel(wl, 0)
	require.NoError(t, err)
	opt := GPUPackOptions{}
	if v := os.Getenv("GPUSIM_DIAG_TW"); v != "" {
		tw, _ := strconv.Atoi(v)
		opt.FragWeight, opt.TopoWeight = 1, float64(tw)
	}
	gp := newGPUPack(frag, opt)
	fg, err := newFGDPolicy(wl, cl)
	require.NoError(t, err)
	seq, err := wl.Sequence(cl.TotalMilli, 1.3, seed)
	require.NoError(t, err)
	cfg := Config{Target: 1.3, Checkpoints: []float64{1.3}}
	for _, pol := range []string{"gpupack", "fgd"} {
		var pl placer
		if pol == "gpupack" {
			pl = gp.newRun()
		} else {
			pl = fg.newRun()
		}
		rec := &recorder{pl: pl}
		r := newRun(cl, wl, frag, seed^uint64(len(pol)))
		res := replay(context.Background(), r, rec, seq, cfg, func(int64) {})
		fail := map[int]int{}
		failCls := map[string]int{}
		firstFail := map[int]int{}
		place := map[string]int{}
		brokeFull := map[string]int{}
		place8 := map[string]int{}
		for _, e := range rec.log {
			if e.node < 0 {
				fail[e.gpus]++
				if e.gpus >= 2 {
					failCls[fmt.Sprintf("%d-GPU %dc", e.gpus, e.cpu/1000)]++
				}
				if _, ok := firstFail[e.gpus]; !ok {
					firstFail[e.gpus] = e.n
				}
				continue
			}
			if e.gpus >= 2 {
				place[fmt.Sprintf("%d-GPU on %s", e.gpus, e.model)]++
			}
			if e.gpus == 8 {
				place8[fmt.Sprintf("%dc on %s", e.cpu/1000, e.model)]++
			}
			if e.fullFree && e.ngpu == 8 && e.gpus < 8 {
				brokeFull[fmt.Sprintf("%s by %d", e.model, e.gpus)]++
			}
		}
		nf := 0
		for _, v := range fail {
			nf += v
		}
		require.Equal(t, res.Failed, nf, "every failed task is recorded")
		t.Logf("%s seed %d: alloc %.2f failed %d", pol, seed, 100*res.Alloc[0], res.Failed)
		t.Logf("  failures by gpus (-1 cpu-only, 0 shared): %v first: %v", fail, firstFail)
		t.Logf("  failed multi-GPU classes: %s", sortedMap(failCls))
		t.Logf("  placements: %s", sortedMap(place))
		t.Logf("  8-GPU placements by CPU: %s", sortedMap(place8))
		t.Logf("  free 8-GPU nodes broken (model by task gpus): %s", sortedMap(brokeFull))
		// free 8-GPU nodes left at the end by model
		left := map[string]int{}
		for i := range cl.Nodes {
			if r.ngpu[i] == 8 && r.full[i] == 8 {
				left[cl.Models[cl.ModelID[i]]]++
			}
		}
		t.Logf("  entirely free 8-GPU nodes at the end: %s", sortedMap(left))
		// Where the free capacity is at the end: entirely free GPUs on
		// nodes whose free CPU holds at least minCPU (the least CPU any
		// GPU class asks), or not; and partly used GPUs' free share.
		minCPU := int64(1 << 62)
		for _, c := range wl.Classes {
			if c.NumGPU > 0 && c.CPUMilli < minCPU {
				minCPU = c.CPUMilli
			}
		}
		var fullFed, fullStarved, partial, starvedPartial float64
		bins := map[string]int{}
		for i := range cl.Nodes {
			for _, f := range r.gpus(i) {
				switch {
				case f == 1000 && r.cpu[i] >= minCPU:
					fullFed++
				case f == 1000:
					fullStarved++
				case f > 0:
					partial += float64(f) / 1000
					fitsShare, fitsRes := false, false
					for _, c := range wl.Classes {
						if c.Shared() && int32(c.GPUMilli) <= f {
							fitsShare = true
							if c.CPUMilli <= r.cpu[i] && c.MemoryMiB <= r.mem[i] {
								fitsRes = true
							}
						}
					}
					switch {
					case fitsRes:
						bins[fmt.Sprintf("%03d", f/100*100)]++
					case fitsShare:
						bins[fmt.Sprintf("%03d-starved", f/100*100)]++
						starvedPartial += float64(f) / 1000
					default:
						bins[fmt.Sprintf("%03d-nofit", f/100*100)]++
					}
				}
			}
		}
		t.Logf("  free at the end (GPUs): entirely free, CPU left %.0f, CPU-starved %.0f; partial %.1f (CPU-starved %.1f); partial GPUs by free milli: %s", fullFed, fullStarved, partial, starvedPartial, sortedMap(bins))
	}
}

func sortedMap(m map[string]int) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return b.String()
}
