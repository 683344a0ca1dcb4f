package baseline

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/topology"
)

// The artifact's GetTypicalPods: types by decreasing count, kept until they
// cover the threshold, then renormalized.
func TestTypicalPods(t *testing.T) {
	a := TypicalPod{CPUMilli: 4000, GPUMilli: 1000, NumGPU: 1}
	b := TypicalPod{CPUMilli: 8000, GPUMilli: 500, NumGPU: 1}
	c := TypicalPod{CPUMilli: 2000}                                              // CPU-only
	d := TypicalPod{CPUMilli: 16000, GPUMilli: 1000, NumGPU: 8, Spec: "G3"}      // constrained
	e := TypicalPod{CPUMilli: 32000, GPUMilli: 1000, NumGPU: 2, Spec: "V100M32"} // ties with d
	counts := []PodCount{{a, 5}, {b, 2}, {c, 1}, {d, 1}, {e, 1}, {b, 1}}         // b twice: merged, 3

	// 11 pods: a 5, b 3, c, d, e 1 each. Order: a, b, then the ties of
	// count 1 by decreasing CPU: e (32 cores), d (16), c (2).
	// 95% of 11 = 10.45: a (5), b (8), e (9), d (10), c (11): every type, no
	// renormalization: Freq = count/11.
	got, err := TypicalPods(counts, DefaultTypicalConfig)
	require.NoError(t, err)
	requireTypical(t, []TypicalPod{withFreq(a, 5.0/11), withFreq(b, 3.0/11), withFreq(e, 1.0/11),
		withFreq(d, 1.0/11), withFreq(c, 1.0/11)}, got)

	// 80% of 11 = 8.8: a (5), b (8), e (9): stop. Renormalized over 9/11:
	// a = 5/11 / (9/11) = 5/9, b = 3/9, e = 1/9.
	got, err = TypicalPods(counts, TypicalConfig{CPUPods: true, Popularity: 80, Step: 1})
	require.NoError(t, err)
	requireTypical(t, []TypicalPod{withFreq(a, 5.0/9), withFreq(b, 3.0/9), withFreq(e, 1.0/9)}, got)

	// Without CPU-only pods: 10 pods, 80% = 8: a (5), b (8): stop;
	// a = 5/10 / (8/10) = 0.625, b = 0.375.
	got, err = TypicalPods(counts, TypicalConfig{CPUPods: false, Popularity: 80, Step: 1})
	require.NoError(t, err)
	requireTypical(t, []TypicalPod{withFreq(a, 0.625), withFreq(b, 0.375)}, got)

	// Step 3 adds three types at a time: 40% = 4.4 is covered by a alone,
	// but a, b, e come together: cum 9, as at 80%.
	got, err = TypicalPods(counts, TypicalConfig{CPUPods: true, Popularity: 40, Step: 3})
	require.NoError(t, err)
	requireTypical(t, []TypicalPod{withFreq(a, 5.0/9), withFreq(b, 3.0/9), withFreq(e, 1.0/9)}, got)

	_, err = TypicalPods(nil, DefaultTypicalConfig)
	require.Error(t, err)
	_, err = TypicalPods(counts, TypicalConfig{Popularity: 0})
	require.Error(t, err)
	_, err = TypicalPods([]PodCount{{a, -1}}, DefaultTypicalConfig)
	require.Error(t, err)
}

func withFreq(p TypicalPod, f float64) TypicalPod { p.Freq = f; return p }

func requireTypical(t *testing.T, want, got []TypicalPod) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.InDelta(t, w.Freq, g.Freq, 1e-12, "pod %d", i)
		w.Freq, g.Freq = 0, 0
		require.Equal(t, w, g, "pod %d", i)
	}
}

func TestAccessible(t *testing.T) {
	require.True(t, Accessible("T4", ""))
	require.True(t, Accessible("T4", "P100|T4"))
	require.False(t, Accessible("T4", "P100|V100M32"))
	require.False(t, Accessible("", "T4"))
	require.True(t, Accessible("T4", "|"), "a spec naming no model allows any")
}

// fgdPods are the typical pods of the hand-computed cases below.
var fgdPods = []TypicalPod{
	{CPUMilli: 2000, GPUMilli: 300, NumGPU: 1, Freq: 0.5},
	{CPUMilli: 2000, GPUMilli: 600, NumGPU: 1, Freq: 0.2},
	{CPUMilli: 12000, GPUMilli: 1000, NumGPU: 2, Freq: 0.1},
	{CPUMilli: 1000, Freq: 0.1}, // CPU-only
	{CPUMilli: 1000, GPUMilli: 1000, NumGPU: 1, Spec: "V100M32", Freq: 0.1},
}

// fgdNode: a T4 node with 10 cores free and GPUs 1000, 1000, 500, 0 free
// (2500 milli-GPU).
func fgdNode() Node {
	n := NewNode(64000, 262144, 4)
	n.CPUFree, n.Model = 10000, "T4"
	n.GPUs = []int32{1000, 1000, 500, 0}
	n.GPUFree, n.IdleGPUs = 2500, 2
	return n
}

func TestFragAmount(t *testing.T) {
	f, err := NewFGD(fgdPods, []string{"T4"})
	require.NoError(t, err)
	n := fgdNode()
	// share 300 (0.5): fits; GPUs with < 300 free: the 0 one -> 0.5 x 0 = 0
	// share 600 (0.2): fits; GPUs with < 600 free: 500 + 0 -> 0.2 x 500 = 100
	// 2 GPUs, 12 cores (0.1): 2 idle GPUs but 10 cores: lacks CPU -> 0.1 x 2500 = 250
	// CPU-only (0.1): all free GPU share -> 0.1 x 2500 = 250
	// V100M32 only (0.1): no access on a T4 -> 0.1 x 2500 = 250
	// total 850
	require.InDelta(t, 850.0, f.Frag(&n), 1e-9)

	// Every GPU busy: nothing left to fragment.
	busy := fgdNode()
	busy.GPUs = []int32{0, 0, 0, 0}
	require.Zero(t, f.Frag(&busy))

	// An idle node with plenty of CPU, 1 GPU: share 300 and 600 fit fully (0),
	// 2 GPUs do not fit: 0.1 x 1000, CPU-only 0.1 x 1000, V100M32 0.1 x 1000 -> 300.
	one := NewNode(64000, 262144, 1)
	one.Model = "T4"
	require.InDelta(t, 300.0, f.Frag(&one), 1e-9)
	// The same node as a V100M32: the constrained pod fits there -> 200.
	one.Model = "V100M32"
	require.InDelta(t, 200.0, f.Frag(&one), 1e-9)
}

func TestFGDPlace(t *testing.T) {
	f, err := NewFGD(fgdPods, []string{"T4"})
	require.NoError(t, err)
	n := fgdNode()
	before := f.Frag(&n) // 850
	sig := func(x float64) int64 { return int64(100 / (1 + math.Exp(-x))) }

	// A share of 300 with 2 cores. GPU 1 has the same free share as GPU 0
	// (same after-state, GPU 0 wins the tie); GPU 3 cannot hold it.
	//  on GPU 0: GPUs 700,1000,500,0 (2200), 8 cores:
	//    300: fits, < 300: 0 -> 0; 600: fits, < 600: 500 -> 100;
	//    2 GPUs: 1 idle, 8 < 12 cores: 220; CPU-only 220; V100M32 220 -> 760
	//    score trunc(100 sigmoid((850 - 760)/1000)) = trunc(52.25) = 52
	//  on GPU 2: GPUs 1000,1000,200,0 (2200), 8 cores:
	//    300: < 300: 200 -> 100; 600: 200 -> 40; 2 GPUs: lacks CPU 220;
	//    220; 220 -> 800, score trunc(100 sigmoid(0.05)) = trunc(51.25) = 51
	shareTask := Task{CPUMilli: 2000, MemoryMiB: 1, NumGPU: 1, GPUMilli: 300}
	require.Equal(t, int64(52), sig(0.09))
	require.Equal(t, int64(51), sig(0.05))
	score, p, ok := f.Place(&n, &shareTask, before)
	require.True(t, ok)
	require.Equal(t, int64(52), score)
	require.Equal(t, 0, p.Share)
	require.Equal(t, []int32{1000, 1000, 500, 0}, n.GPUs, "Place leaves the node as it was")

	// A share of 500 fits GPUs 0 and 2:
	//  on GPU 0: 500,1000,500,0 (2000), 8 cores: 300: 0; 600: 0.2 x 1000 = 200;
	//    2 GPUs: 1 idle -> 200; 200; 200 -> 800; score trunc(100 sigmoid(0.05)) = 51
	//  on GPU 2: 1000,1000,0,0 (2000): 300: 0; 600: 0; 2 GPUs lack CPU: 200;
	//    200; 200 -> 600; score trunc(100 sigmoid(0.25)) = trunc(56.2) = 56
	// The GPU left with nothing wins over the lower index.
	half := Task{CPUMilli: 2000, NumGPU: 1, GPUMilli: 500}
	require.Equal(t, int64(56), sig(0.25))
	score, p, ok = f.Place(&n, &half, before)
	require.True(t, ok)
	require.Equal(t, int64(56), score)
	require.Equal(t, 2, p.Share)

	// One whole GPU with 1 core: the lowest idle GPU (0). After: 0,1000,500,0
	// (1500), 9 cores: 300: 0; 600: 0.2 x 500 = 100; 2 GPUs: 1 idle, 9 < 12:
	// 150; 150; 150 -> 550; score trunc(100 sigmoid(0.3)) = trunc(57.4) = 57.
	whole := Task{CPUMilli: 1000, NumGPU: 1, GPUMilli: 1000}
	require.Equal(t, int64(57), sig(0.3))
	score, p, ok = f.Place(&n, &whole, before)
	require.True(t, ok)
	require.Equal(t, int64(57), score)
	require.Equal(t, topology.SetOf(0), p.Whole)
	require.Equal(t, -1, p.Share)

	// A CPU-only task leaving 500m: every GPU pod lacks CPU, the CPU-only
	// typical pod too: all 2500 free x (0.5+0.2+0.1+0.1+0.1) = 2500;
	// score trunc(100 sigmoid(-1.65)) = trunc(16.1) = 16.
	cpuTask := Task{CPUMilli: 9500}
	require.Equal(t, int64(16), sig(-1.65))
	score, p, ok = f.Place(&n, &cpuTask, before)
	require.True(t, ok)
	require.Equal(t, int64(16), score)
	require.Equal(t, Placement{Share: -1}, p)
	// A CPU-only task that changes no fit scores sigmoid(0) = 50.
	score, _, _ = f.Place(&n, &Task{CPUMilli: 100}, before)
	require.Equal(t, int64(50), score)

	// Three whole GPUs do not fit (2 idle).
	_, _, ok = f.Place(&n, &Task{CPUMilli: 1, NumGPU: 3, GPUMilli: 1000}, before)
	require.False(t, ok)
	// No GPU holds a share of 900.
	_, _, ok = f.Place(&n, &Task{CPUMilli: 1, NumGPU: 1, GPUMilli: 1001 - 100}, before)
	require.True(t, ok, "the idle GPUs hold 900")
	full := fgdNode()
	full.GPUs = []int32{800, 0, 500, 0}
	_, _, ok = f.Place(&full, &Task{CPUMilli: 1, NumGPU: 1, GPUMilli: 900}, f.Frag(&full))
	require.False(t, ok)
}

func TestNewFGDRejectsBadPods(t *testing.T) {
	_, err := NewFGD(nil, nil)
	require.Error(t, err)
	_, err = NewFGD([]TypicalPod{{CPUMilli: 1, Freq: 1.5}}, nil)
	require.Error(t, err)
	_, err = NewFGD([]TypicalPod{{CPUMilli: 1, NumGPU: 1, Freq: 1}}, nil)
	require.Error(t, err, "a GPU pod without a share")
	_, err = NewFGD([]TypicalPod{{CPUMilli: 1, Freq: math.NaN()}}, nil)
	require.Error(t, err)
}
