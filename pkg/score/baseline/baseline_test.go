package baseline

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/topology"
)

// t4 is an idle 8-GPU node with 64 cores and 256 GiB.
func t4() Node { return NewNode(64000, 262144, 8) }

var (
	share = Task{CPUMilli: 8000, MemoryMiB: 16384, NumGPU: 1, GPUMilli: 500}
	one   = Task{CPUMilli: 16000, MemoryMiB: 65536, NumGPU: 1, GPUMilli: 1000}
	two   = Task{CPUMilli: 16000, MemoryMiB: 65536, NumGPU: 2, GPUMilli: 1000}
	cpu   = Task{CPUMilli: 32000, MemoryMiB: 1024}
)

// The scores of every policy on hand-built nodes, from the formulas of the
// artifact (and of kube-scheduler's NodeResourcesFit).
func TestScores(t *testing.T) {
	idle := t4()
	// usedShare: the share on GPU 0 (500 left).
	usedShare := t4()
	usedShare.Apply(&share, Placement{Share: 0})
	// mixed: then a whole GPU on GPU 1: GPUs 500, 0, 1000 x 6; CPU 40000.
	mixed := usedShare
	mixed.GPUs = append([]int32(nil), usedShare.GPUs...)
	mixed.Apply(&one, Placement{Share: -1, Whole: topology.SetOf(1)})
	// full8: every GPU partly used (300 left each), 1-GPU tasks only there.
	full8 := NewNode(96000, 393216, 8)
	for i := range full8.GPUs {
		full8.GPUs[i] = 300
	}
	full8.GPUFree, full8.IdleGPUs, full8.Kinds = 2400, 0, share.Kind()
	// small: a 2-GPU node with nothing running.
	small := NewNode(32000, 131072, 2)

	tests := []struct {
		name string
		pol  Policy
		node *Node
		task Task
		want int64
	}{
		{"random is flat", Random{}, &mixed, share, 0},
		{"first-fit is flat", FirstFit{}, &mixed, two, 0},

		// best-fit: 1 - (0.5 (cpuFree-cpu)/128000 + 0.5 (gpuFree-gpu)/8000).
		// idle, share: 1 - (0.5 x 56000/128000 + 0.5 x 7500/8000) = 1 - (0.21875 + 0.46875) = 0.3125 -> 31
		{"best-fit idle", BestFit{}, &idle, share, 31},
		// mixed, share: 1 - (0.5 x 32000/128000 + 0.5 x 6000/8000) = 1 - (0.125 + 0.375) = 0.5 -> 50
		{"best-fit mixed", BestFit{}, &mixed, share, 50},
		// full8, share: 1 - (0.5 x 88000/128000 + 0.5 x 1900/8000) = 1 - (0.34375 + 0.11875) = 0.5375 -> 53
		{"best-fit full8", BestFit{}, &full8, share, 53},

		// dot-product: 1 - (cpuFree/128000 x cpu/128000 + gpuFree/8000 x gpu/8000)/2.
		// idle, share: 1 - (0.5 x 0.0625 + 1 x 0.0625)/2 = 1 - 0.09375/2 = 0.953125 -> 95
		{"dot-product idle share", DotProduct{}, &idle, share, 95},
		// idle, two: 1 - (0.5 x 0.125 + 1 x 0.25)/2 = 1 - 0.3125/2 = 0.84375 -> 84
		{"dot-product idle two", DotProduct{}, &idle, two, 84},
		// idle, cpu: 1 - (0.5 x 0.25 + 0)/2 = 0.9375 -> 93
		{"dot-product idle cpu", DotProduct{}, &idle, cpu, 93},

		// gpu-packing, idle node: max(100/3 - 8, 8) = max(25, 8) = 25; 2 GPUs: max(33 - 2, 2) = 31.
		{"packing idle 8", GPUPacking{}, &idle, share, 25},
		{"packing idle 2", GPUPacking{}, &small, two, 31},
		// a share on GPU 0 (500 left, the least free that holds 500): 100 - (500x100/1000)/10 = 95.
		{"packing partly used GPU", GPUPacking{}, &usedShare, share, 95},
		// one whole GPU of a used node: max(100/2 - 1, 100/3) = 49; two: max(50 - 2, 33) = 48.
		{"packing idle GPU of used node", GPUPacking{}, &usedShare, one, 49},
		{"packing two idle GPUs of used node", GPUPacking{}, &mixed, two, 48},
		// full8, share: GPU with 300 left: 100 - 30/10 = 97.
		{"packing full8", GPUPacking{}, &full8, Task{NumGPU: 1, GPUMilli: 200}, 97},
		{"packing cpu-only", GPUPacking{}, &mixed, cpu, 0},

		// gpu-clustering: used = 25 x (8000 - gpuFree)/8000 (integer).
		// idle: 0 + 25.
		{"clustering idle", GPUClustering{}, &idle, share, 25},
		// usedShare holds shares only: 25 x 500/8000 = 1, + 75 = 76; a 1-GPU task: other kinds only: 1.
		{"clustering same kind", GPUClustering{}, &usedShare, share, 76},
		{"clustering other kind", GPUClustering{}, &usedShare, one, 1},
		// mixed holds shares and 1-GPU tasks: 25 x 1500/8000 = 4, + 50, for either.
		{"clustering mixed share", GPUClustering{}, &mixed, share, 54},
		{"clustering mixed one", GPUClustering{}, &mixed, one, 54},
		// full8, shares only: 25 x 5600/8000 = 17, + 75 = 92.
		{"clustering full8", GPUClustering{}, &full8, share, 92},
		{"clustering cpu-only", GPUClustering{}, &mixed, cpu, 0},

		// least-allocated, idle, one: cpu (64000-16000)x100/64000 = 75, memory
		// (262144-65536)x100/262144 = 75, GPU (8000-1000)x100/8000 = 87 -> (75+75+87)/3 = 79.
		{"least-allocated", LeastAllocated{}, &idle, one, 79},
		// most-allocated, idle, one: 25, 25, 12 -> 62/3 = 20.
		{"most-allocated", MostAllocated{}, &idle, one, 20},
		// A node without GPUs counts CPU and memory only: cpu 32000x100/64000 = 50,
		// memory 1024x100/262144 = 0 -> 25.
		{"most-allocated no GPU", MostAllocated{}, &Node{CPUCapacity: 64000, CPUFree: 64000, MemCapacity: 262144, MemFree: 262144}, cpu, 25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.pol.Score(tc.node, &tc.task))
		})
	}
}

func TestNodeApplyAndFits(t *testing.T) {
	n := t4()
	require.True(t, n.Fits(&two))
	n.Apply(&share, Placement{Share: 3})
	n.Apply(&two, Placement{Share: -1, Whole: topology.SetOf(0, 1)})
	// 8000 - 500 - 2000 = 5500 free; GPUs 0, 1 taken, GPU 3 half.
	require.Equal(t, []int32{0, 0, 1000, 500, 1000, 1000, 1000, 1000}, n.GPUs)
	require.Equal(t, int64(5500), n.GPUFree)
	require.Equal(t, 5, n.IdleGPUs)
	require.Equal(t, int64(64000-8000-16000), n.CPUFree)
	require.Equal(t, share.Kind()|two.Kind(), n.Kinds)
	require.Equal(t, Kinds(0b101), n.Kinds) // share = bit 0, 2 GPUs = bit 2

	require.False(t, n.Fits(&Task{CPUMilli: 40001}), "CPU")
	require.False(t, n.Fits(&Task{MemoryMiB: 262144}), "memory")
	require.False(t, n.Fits(&Task{NumGPU: 6, GPUMilli: 1000}), "5 idle GPUs")
	require.True(t, n.Fits(&Task{NumGPU: 5, GPUMilli: 1000}))
	n.Apply(&Task{NumGPU: 5, GPUMilli: 1000}, Placement{Share: -1, Whole: topology.SetOf(2, 4, 5, 6, 7)})
	require.True(t, n.Fits(&Task{NumGPU: 1, GPUMilli: 500}), "GPU 3 has 500")
	require.False(t, n.Fits(&Task{NumGPU: 1, GPUMilli: 501}))
	require.Equal(t, Kinds(0), cpu.Kind())
	require.Equal(t, Kinds(1<<30), (&Task{NumGPU: 64, GPUMilli: 1000}).Kind())
}

// seq is a Rand that answers from a list (modulo n).
type seq struct{ v []int }

func (s *seq) IntN(n int) int {
	x := s.v[0] % n
	s.v = s.v[1:]
	return x
}

func TestDevices(t *testing.T) {
	n := t4()
	n.GPUs = []int32{1000, 400, 700, 300, 1000, 0, 1000, 1000}
	n.GPUFree, n.IdleGPUs = 5400, 4

	// Best fit: the least free GPU that holds the share.
	p, ok := Devices(&n, &Task{NumGPU: 1, GPUMilli: 350}, SelectBestFit, nil)
	require.True(t, ok)
	require.Equal(t, 1, p.Share) // 400 (GPU 3's 300 is too small)
	p, ok = Devices(&n, &Task{NumGPU: 1, GPUMilli: 300}, SelectBestFit, nil)
	require.True(t, ok)
	require.Equal(t, 3, p.Share)
	// Random: the k-th GPU that holds it, by reservoir draws. Holders of
	// 500: GPUs 0, 2, 4, 6, 7; draws keep a GPU when IntN answers 0:
	// GPU 0 (k=1: 0, kept), 2 (k=2: 1), 4 (k=3: 0, kept), 6 (k=4: 3), 7 (k=5: 2).
	p, ok = Devices(&n, &Task{NumGPU: 1, GPUMilli: 500}, SelectRandom, &seq{[]int{0, 1, 0, 3, 2}})
	require.True(t, ok)
	require.Equal(t, 4, p.Share)
	// Whole GPUs: the lowest idle ones, whatever the selection.
	p, ok = Devices(&n, &two, SelectRandom, nil)
	require.True(t, ok)
	require.Equal(t, topology.SetOf(0, 4), p.Whole)
	require.Equal(t, -1, p.Share)
	_, ok = Devices(&n, &Task{NumGPU: 5, GPUMilli: 1000}, SelectBestFit, nil)
	require.False(t, ok, "4 idle GPUs")
	_, ok = Devices(&n, &Task{NumGPU: 1, GPUMilli: 800}, SelectBestFit, nil)
	require.True(t, ok) // an idle GPU holds it
	n.GPUs[0], n.GPUs[4], n.GPUs[6], n.GPUs[7] = 0, 0, 0, 0
	_, ok = Devices(&n, &Task{NumGPU: 1, GPUMilli: 800}, SelectRandom, &seq{[]int{0}})
	require.False(t, ok, "no GPU has 800")
	p, ok = Devices(&n, &cpu, SelectBestFit, nil)
	require.True(t, ok)
	require.Equal(t, Placement{Share: -1}, p)
}

func TestPickerTieFirst(t *testing.T) {
	// Ranks: node 2 first, then 0, 3, 1.
	p := NewOrderedPicker([]int32{1, 3, 0, 2})
	p.Offer(0, 50)
	p.Offer(1, 50)
	p.Offer(3, 50)
	node, score := p.Best()
	require.Equal(t, 0, node) // rank 1 beats ranks 3, 2
	require.Equal(t, int64(50), score)
	p.Offer(2, 49)
	node, _ = p.Best()
	require.Equal(t, 0, node, "a lower score never wins")
	p.Offer(1, 51)
	node, _ = p.Best()
	require.Equal(t, 1, node, "a higher score wins whatever its rank")

	p.Reset()
	node, _ = p.Best()
	require.Equal(t, -1, node)
	for i := 3; i >= 0; i-- {
		p.Offer(i, 0)
	}
	node, _ = p.Best()
	require.Equal(t, 2, node, "first-fit: the first node of the order")
}

func TestNewPickerOrderIsAPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := NewPicker(TieFirst, 100, rng)
	seen := make([]bool, 100)
	for _, r := range p.order {
		require.False(t, seen[r])
		seen[r] = true
	}
	// All tied: the winner is the node ranked 0, every decision.
	for range 3 {
		p.Reset()
		for i := range 100 {
			p.Offer(i, 7)
		}
		node, _ := p.Best()
		require.Equal(t, int32(0), p.order[node])
	}
}

func TestPickerTieRandom(t *testing.T) {
	// Three tied nodes and a worse one: reservoir sampling keeps the k-th
	// tie when IntN(k) is 0. Draws (k=2: 0), (k=3: 0) keep node 2; (1), (2) keep node 0.
	p := NewPicker(TieRandom, 4, &seq{[]int{0, 0, 1, 2}})
	for _, tc := range []int{2, 0} {
		p.Reset()
		p.Offer(0, 10)
		p.Offer(1, 10)
		p.Offer(3, 9)
		p.Offer(2, 10)
		node, _ := p.Best()
		require.Equal(t, tc, node)
	}
	// Uniform: each of 4 tied nodes wins about a quarter of 4000 draws.
	p = NewPicker(TieRandom, 4, rand.New(rand.NewPCG(3, 4)))
	wins := make([]int, 4)
	for range 4000 {
		p.Reset()
		for i := range 4 {
			p.Offer(i, 1)
		}
		node, _ := p.Best()
		wins[node]++
	}
	for _, w := range wins {
		require.InDelta(t, 1000, w, 150)
	}
}

func TestRegistry(t *testing.T) {
	require.Equal(t, []string{"random", "first-fit", "best-fit", "dot-product", "gpu-packing",
		"gpu-clustering", "least-allocated", "most-allocated"}, Names())
	for _, name := range Names() {
		p, err := New(name)
		require.NoError(t, err)
		require.Equal(t, name, p.Name())
	}
	_, err := New("fgd")
	require.ErrorContains(t, err, `unknown baseline policy "fgd"`)
	// Ties and GPU selection as the artifact and kube-scheduler have them.
	for _, p := range []Policy{FirstFit{}, BestFit{}, DotProduct{}, GPUPacking{}, GPUClustering{}} {
		require.Equal(t, TieFirst, p.TieBreak(), p.Name())
		require.Equal(t, SelectBestFit, p.GPUSelection(), p.Name())
	}
	for _, p := range []Policy{Random{}, LeastAllocated{}, MostAllocated{}} {
		require.Equal(t, TieRandom, p.TieBreak(), p.Name())
	}
	require.Equal(t, SelectRandom, Random{}.GPUSelection())
}
