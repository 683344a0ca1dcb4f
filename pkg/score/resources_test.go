package score_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestBuckets(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 0},
		{100, 125},     // one eighth of a core
		{1000, 1000},   // 8 units
		{1100, 1250},   // 9 units: h 8 -> 10 units
		{12000, 12000}, // 96 units: h 64, 1.5 h = 96
		{12100, 14000}, // 97 units -> 1.75 h = 112 units
		{33000, 40000}, // 264 units: h 256 -> 1.25 h = 320 units
	} {
		require.Equal(t, tc.want, score.BucketCPU(tc.in), "cpu %d", tc.in)
	}
	for _, tc := range []struct{ in, want int64 }{
		{0, 0}, {7, 7}, {1000, 1024}, {1025, 1280}, {16384, 16384}, {16385, 20480}, {65000, 65536},
	} {
		require.Equal(t, tc.want, score.BucketMemory(tc.in), "mem %d", tc.in)
	}
}

// Requests as large as a Kubernetes quantity allows (an int64) never
// overflow into a small or negative bucket: the bucket is never below the
// request, and past 2^57 the request is kept as it is.
func TestBucketsHuge(t *testing.T) {
	const maxInt64 = int64(^uint64(0) >> 1)
	for _, in := range []int64{1 << 40, 1<<57 - 1, 1 << 57, 1<<57 + 1, 1 << 60, 1<<62 + 3, maxInt64 - 124, maxInt64} {
		cpu, mem := score.BucketCPU(in), score.BucketMemory(in)
		require.GreaterOrEqual(t, cpu, in, "cpu %d", in)
		require.GreaterOrEqual(t, mem, in, "mem %d", in)
		if in > 1<<57 {
			require.Equal(t, in, cpu, "cpu %d kept", in)
			require.Equal(t, in, mem, "mem %d kept", in)
		}
	}
	// 2^57 milli-cores is 2^57 / 125 units, rounded up: 1152921504606847 units
	// (125 x 1152921504606846 = 2^57 - 122); the ladder rounds that up to
	// 1.25 x 2^50 = 1407374883553280 units (2^50 < x <= 1.25 x 2^50), x 125.
	require.Equal(t, int64(1407374883553280*125), score.BucketCPU(1<<57))
	require.Equal(t, int64(0), score.BucketCPU(-5), "negative requests bucket to 0")
}

// A node whose free CPU (or memory) cannot hold a task type counts all its
// free GPUs as fragment for that type (FGD's "lack CPU" case).
func TestFragmentationCPUAware(t *testing.T) {
	node := fixture.PCIe("n", "T4", 2) // two free T4s
	big := score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 4000, MemoryMiB: 8192}
	small := score.TaskType{Kind: score.KindWhole, Count: 1}
	d, err := score.NewDistribution([]score.Weighted{{Type: big, Weight: 1}, {Type: small, Weight: 1}})
	require.NoError(t, err)
	s := score.NewState(node)
	// Free CPU and memory not known: every type fits, F = 0.
	require.InDelta(t, 0, score.Fragmentation(s, d), 1e-9)
	s.SetFree(8000, 16384)
	require.InDelta(t, 0, score.Fragmentation(s, d), 1e-9)
	// 2 cores free: big cannot run: 0.5 x 2 free GPUs = 1.
	s.SetFree(2000, 16384)
	require.InDelta(t, 1, score.Fragmentation(s, d), 1e-9)
	// Memory short instead: the same.
	s.SetFree(8000, 4096)
	require.InDelta(t, 1, score.Fragmentation(s, d), 1e-9)

	// A 1-GPU pod taking 6 of 8 free cores: before F = 0; after, 1 GPU
	// free and 2 cores: big cannot run: 0.5 x 1 = 0.5. FragDelta +0.5.
	s.SetFree(8000, 16384)
	req := score.Request{Kind: score.KindWhole, Count: 1, CPUMilli: 6000}
	c, ok := score.Choose(s, req, d)
	require.True(t, ok)
	require.InDelta(t, 0.5, c.FragDelta, 1e-9)
	// The same pod without CPU: F stays 0.
	c, ok = score.Choose(s, score.Request{Kind: score.KindWhole, Count: 1}, d)
	require.True(t, ok)
	require.InDelta(t, 0, c.FragDelta, 1e-9)
	// The memo keys on what fits: the same GPU usage with 2 cores free
	// (F 1 before, 0.5 x 1 after) answers -0.5, not the 0 above.
	s2 := score.NewState(node)
	s2.SetFree(2000, 16384)
	c, ok = score.Choose(s2, score.Request{Kind: score.KindWhole, Count: 1}, d)
	require.True(t, ok)
	require.InDelta(t, -0.5, c.FragDelta, 1e-9)

	// A CPU-only task of 6 cores on the 8-core node: F 0 -> 0.5 x 2 = 1.
	require.InDelta(t, 1, score.ResourceDelta(s, 6000, 0, d), 1e-9)
	require.InDelta(t, 0, score.ResourceDelta(score.NewState(node), 6000, 0, d), 1e-9, "unknown free CPU: no change")

	// Bad input.
	require.Error(t, score.Request{Kind: score.KindWhole, Count: 1, CPUMilli: -1}.Validate())
	require.Error(t, score.TaskType{Kind: score.KindWhole, Count: 1, MemoryMiB: -1}.Validate())
}

func TestObserveBucketsCPUMemory(t *testing.T) {
	w, err := score.NewWorkload(score.WorkloadOptions{Prior: []score.Weighted{{Type: score.TaskType{Kind: score.KindWhole, Count: 1}, Weight: 1}}, PriorWeight: 1})
	require.NoError(t, err)
	w.Observe(score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 12100, MemoryMiB: 1025})
	w.Observe(score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 13000, MemoryMiB: 1100})
	d := w.Distribution()
	// Both land in one type: 14 cores (12100 -> 14000, 13000 -> 14000) and
	// 1280 MiB; with the prior, 2 types.
	require.Len(t, d.Types, 2)
	require.Contains(t, d.Types, score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 14000, MemoryMiB: 1280})
}

// FGD's "lack CPU" case sees only the last task: a node with 8 free GPUs
// and 24 free cores looks unfragmented for a 12-core 1-GPU type, yet at
// most 2 such tasks ever run there. The GPUs the free CPU and memory feed,
// by the type's own tasks or at the mix's CPU per GPU (the larger),
// bound the GPUs the type can take (taskCap); the rest is stranded for it.
func TestFragmentationCPUBoundsTasks(t *testing.T) {
	node := fixture.PCIe("n", "G2", 8)
	one := score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 12000}
	d, err := score.NewDistribution([]score.Weighted{{Type: one, Weight: 1}})
	require.NoError(t, err)
	s := score.NewState(node)
	s.SetFree(96000, 1<<20)
	// 96 cores hold 8 tasks of 12 cores: all 8 GPUs usable, F = 0.
	require.InDelta(t, 0, score.Fragmentation(s, d), 1e-9)
	s.SetFree(24000, 1<<20)
	// 24 cores hold 2 tasks: 8 free - 2 = 6 GPUs stranded.
	require.InDelta(t, 6, score.Fragmentation(s, d), 1e-9)
	// A CPU-only task of 12 cores leaves room for 1 task: F 7, delta +1.
	require.InDelta(t, 1, score.ResourceDelta(s, 12000, 0, d), 1e-9)
	// A CPU-only task costs the tasks it takes away, whole: 1 core leaves
	// 23, which hold 1 task: 1 GPU of the type lost, delta 1 (the mix
	// would charge 1/12 GPU per core: F = 8 - 23/12, delta 1/12).
	require.InDelta(t, 1, score.ResourceDelta(s, 1000, 0, d), 1e-9)
	// With 30 cores (2 tasks) taking 6: 24 still hold 2, no task lost,
	// delta 0 (the mix: 30/12 = 2.5 -> 2 GPUs fed, delta 0.5).
	s.SetFree(30000, 1<<20)
	require.InDelta(t, 0, score.ResourceDelta(s, 6000, 0, d), 1e-9)
	s.SetFree(24000, 1<<20)
	// A 2-GPU pod with 12 cores: 6 GPUs and 12 cores left, 1 task: F = 5,
	// delta -1: GPU-dense work relieves a CPU-bound node.
	c, ok := score.Choose(s, score.Request{Kind: score.KindWhole, Count: 2, CPUMilli: 12000}, d)
	require.True(t, ok)
	require.InDelta(t, -1, c.FragDelta, 1e-9)
	// A 1-GPU pod with 12 cores: 7 GPUs, 1 task: F 6, delta 0.
	c, ok = score.Choose(s, score.Request{Kind: score.KindWhole, Count: 1, CPUMilli: 12000}, d)
	require.True(t, ok)
	require.InDelta(t, 0, c.FragDelta, 1e-9)

	// Shares: a 250m type of 6 cores on 8 free GPUs and 24 cores: 4
	// tasks take 4 x 0.25 = 1 GPU: F = 8 - 1 = 7.
	sh := score.TaskType{Kind: score.KindShared, Milli: 250, CPUMilli: 6000}
	d2, err := score.NewDistribution([]score.Weighted{{Type: sh, Weight: 1}})
	require.NoError(t, err)
	s2 := score.NewState(fixture.Shared(fixture.PCIe("n", "G2", 8), 4))
	s2.SetFree(24000, 1<<20)
	require.InDelta(t, 7, score.Fragmentation(s2, d2), 1e-9)
	// Memory bounds the same way: 2 tasks of 12 GiB in 24 GiB.
	mem := score.TaskType{Kind: score.KindWhole, Count: 1, MemoryMiB: 12 << 10}
	d3, err := score.NewDistribution([]score.Weighted{{Type: mem, Weight: 1}})
	require.NoError(t, err)
	s.SetFree(1<<30, 24<<10)
	require.InDelta(t, 6, score.Fragmentation(s, d3), 1e-9)
}

// GPUs that CPU-lighter types can still be fed on are not stranded for a
// CPU-heavy type: on an entirely free 96-core, 8-GPU host a 0.25-GPU,
// 12-core sharing type feeds only 8 x 0.25 = 2 GPUs by itself, but the
// mix feeds more. Counting 6 GPUs stranded for it made every whole-GPU
// task look like a gain on the freshest hosts (openb gpushare40: free
// 8-GPU groups broken early, 8-GPU tasks failing).
func TestFragmentationCPUBoundByMix(t *testing.T) {
	sh := score.TaskType{Kind: score.KindShared, Milli: 250, CPUMilli: 12000}
	one := score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 6000}
	d, err := score.NewDistribution([]score.Weighted{{Type: sh, Weight: 1}, {Type: one, Weight: 1}})
	require.NoError(t, err)
	s := score.NewState(fixture.Shared(fixture.PCIe("n", "G2", 8), 4))
	s.SetFree(96000, 1<<20)
	// Mix: CPU 0.5 x 12000 + 0.5 x 6000 = 9000 per 0.5 x 0.25 + 0.5 x 1 =
	// 0.625 GPU: 14400 per GPU; 96 cores feed 96000 / 14400 = 6.667 GPUs.
	// Sharing type: max(own 2, mix 6.667): 8 - 6.667 = 1.333 stranded;
	// 1-GPU type: own 16 GPUs, none. F = 0.5 x 1.333 = 0.667 (was 0.5 x 6).
	require.InDelta(t, 0.5*(8-96000.0/14400), score.Fragmentation(s, d), 1e-9)
	// Not one task of a type fits: all free capacity is stranded for it
	// (FGD's "lack CPU"), whatever the mix: 10 cores hold no 12-core
	// share; the 1-GPU type: max(own 1, mix 10000/14400 = 0.694) = 1.
	// F = 0.5 x 8 + 0.5 x (8 - 1) = 7.5.
	s.SetFree(10000, 1<<20)
	require.InDelta(t, 7.5, score.Fragmentation(s, d), 1e-9)
}

// A CPU-only task costs the GPU capacity of the tasks of each type that
// the node's free CPU and memory no longer hold while its free GPUs could
// take them (ResourceDelta counts each type's own tasks, not the mix).
func TestResourceDeltaCountsLostTasks(t *testing.T) {
	sh := score.TaskType{Kind: score.KindShared, Milli: 250, CPUMilli: 12000}
	one := score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 6000, MemoryMiB: 8 << 10}
	ws := []score.Weighted{{Type: sh, Weight: 1}, {Type: one, Weight: 1}}
	indexed, err := score.NewDistribution(ws)
	require.NoError(t, err)
	byHand := &score.Distribution{Types: []score.TaskType{sh, one}, P: []float64{0.5, 0.5}}
	cases := []struct {
		name             string
		usedGPUs         int
		cpuFree, memFree int64
		cpu, mem         int64
		want             float64
	}{
		// sh: 96 cores hold 8 tasks (2 GPUs), 84 hold 7 (1.75): 0.25
		// GPU lost x 0.5 = 0.125. one: 16 -> 14 tasks, more than the 8
		// free GPUs: none lost. (The mix, 14400 milli per GPU, would
		// charge 0.5 x (96000 - 84000) / 14400 = 0.417.)
		{name: "fresh host", cpuFree: 96000, memFree: 1 << 20, cpu: 12000, want: 0.125},
		// 1 free GPU, 40 cores: sh 3 tasks (0.75 GPU) -> 2 (0.5): 0.5 x
		// 0.25 = 0.125; one: 6 -> 4 tasks, 1 free GPU: none lost. (The
		// mix feeds 40000 / 14400 = 2.8 GPUs, more than 1: 0.)
		{name: "one free GPU", usedGPUs: 7, cpuFree: 40000, memFree: 1 << 20, cpu: 12000, want: 0.125},
		// 8 cores: sh holds none before or after (lack CPU both times);
		// one: 1 task before (8/6), 1 after (6/6): nothing lost.
		{name: "nothing left to lose", usedGPUs: 7, cpuFree: 8000, memFree: 1 << 20, cpu: 2000, want: 0},
		// 7 cores: one 1 -> 0 tasks: its 1 free GPU lost x 0.5; sh held
		// none: 0.5.
		{name: "last task lost", usedGPUs: 7, cpuFree: 7000, memFree: 1 << 20, cpu: 2000, want: 0.5},
		// Memory: 16 GiB hold 2 tasks of one, 8 GiB hold 1: 1 GPU x 0.5
		// (2 free GPUs); sh needs no memory: 0.5.
		{name: "memory", usedGPUs: 6, cpuFree: 96000, memFree: 16 << 10, mem: 8 << 10, want: 0.5},
		// Every GPU in use: no task of any type can run, nothing to lose.
		{name: "no free GPU", usedGPUs: 8, cpuFree: 96000, memFree: 1 << 20, cpu: 90000, want: 0},
		// Taking nothing costs nothing.
		{name: "no request", cpuFree: 96000, memFree: 1 << 20, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := score.NewState(fixture.Shared(fixture.PCIe("n", "G2", 8), 4))
			if tc.usedGPUs > 0 {
				s.Apply(score.Choice{Kind: score.KindWhole, GPUs: topology.FirstN(tc.usedGPUs)})
			}
			s.SetFree(tc.cpuFree, tc.memFree)
			require.InDelta(t, tc.want, score.ResourceDelta(s, tc.cpu, tc.mem, indexed), 1e-9)
			require.InDelta(t, tc.want, score.ResourceDelta(s, tc.cpu, tc.mem, byHand), 1e-9, "a Distribution built by hand")
		})
	}
	// The GPU placements keep the mix (taskCap): on the fresh host sh's
	// capacity is max(own 2, mix 96000 / 14400 = 6.667): F = 0.5 x (8 -
	// 6.667).
	s := score.NewState(fixture.Shared(fixture.PCIe("n", "G2", 8), 4))
	s.SetFree(96000, 1<<20)
	require.InDelta(t, 0.5*(8-96000.0/14400), score.Fragmentation(s, indexed), 1e-9)
}

// FedCapacity is the free GPU capacity the node's free CPU and memory
// still feed: sum_m p_m x min(free capacity, the GPUs of the tasks of m
// they hold).
func TestFedCapacity(t *testing.T) {
	sh := score.TaskType{Kind: score.KindShared, Milli: 250, CPUMilli: 12000}
	one := score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 6000}
	d, err := score.NewDistribution([]score.Weighted{{Type: sh, Weight: 1}, {Type: one, Weight: 1}})
	require.NoError(t, err)
	cases := []struct {
		name     string
		usedGPUs int
		cpuFree  int64
		known    bool
		want     float64
	}{
		// sh: 8 tasks x 0.25 = 2 GPUs; one: 16 tasks, min(8, 16) = 8:
		// 0.5 x 2 + 0.5 x 8 = 5.
		{name: "fresh host", cpuFree: 96000, known: true, want: 5},
		// 1 free GPU, 40 cores: sh 3 x 0.25 = 0.75; one min(1, 6) = 1:
		// 0.5 x 0.75 + 0.5 x 1 = 0.875.
		{name: "one free GPU", usedGPUs: 7, cpuFree: 40000, known: true, want: 0.875},
		// 4 cores hold no task of either type: nothing fed.
		{name: "CPU-starved", cpuFree: 4000, known: true, want: 0},
		// Every GPU in use: nothing to feed.
		{name: "all GPUs in use", usedGPUs: 8, cpuFree: 96000, known: true, want: 0},
		// Free CPU and memory not known: all 8 free GPUs.
		{name: "resources unknown", want: 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := score.NewState(fixture.Shared(fixture.PCIe("n", "G2", 8), 4))
			if tc.usedGPUs > 0 {
				s.Apply(score.Choice{Kind: score.KindWhole, GPUs: topology.FirstN(tc.usedGPUs)})
			}
			if tc.known {
				s.SetFree(tc.cpuFree, 1<<20)
			}
			require.InDelta(t, tc.want, score.FedCapacity(s, d), 1e-9)
		})
	}
	// The default prior (no CPU or memory): every free GPU is fed.
	require.InDelta(t, 8, score.FedCapacity(score.NewState(fixture.PCIe("n", "G2", 8)), nil), 1e-9)
}
