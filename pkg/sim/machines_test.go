package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// machinesPods asks a share, 1, 2, 4, 8 and 16 GPUs and a CPU-only task.
const machinesPods = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" +
	"s,2000,4096,1,500,\nw1,4000,8192,1,1000,\nw2,8000,16384,2,1000,\nw4,16000,32768,4,1000,\n" +
	"w8,32000,65536,8,1000,\nw16,64000,131072,16,1000,\nc,4000,8192,0,0,\n"

// Nodes of every shape kind with 1, 3, 4, 8, 16 and 64 GPUs (dgx1 up to
// 8), and mixed lists, run under gpupack, fgd and the baselines: the
// allocation stays in [0, 1] and never falls as demand arrives, the
// multi-GPU set quality is in (0, 1], a task bigger than every node
// always fails, and a seed gives the same figures twice.
func TestOtherMachineShapes(t *testing.T) {
	type machine struct {
		kind ShapeKind
		gpus int
	}
	var cases [][]machine
	for _, k := range shapeKinds {
		for _, n := range []int{1, 3, 4, 8, 16, 64} {
			if k == ShapeDGX1 && n > 8 {
				continue
			}
			cases = append(cases, []machine{{k, n}, {k, n}})
		}
	}
	cases = append(cases,
		[]machine{{ShapeDGX1, 8}, {ShapeNVSwitch, 16}, {ShapePCIe, 4}, {ShapeNVLinkPairs, 2}},
		[]machine{{ShapeNVSwitch, 64}, {ShapePCIe, 1}})
	policies := append(Policies(), PolicyGPUPackOnline)
	for _, ms := range cases {
		var b strings.Builder
		b.WriteString("sn,cpu_milli,memory_mib,gpu,model\n")
		shapes := DefaultShapes()
		var names []string
		largest := 0
		for i, m := range ms {
			model := fmt.Sprintf("X%s%d", strings.ReplaceAll(string(m.kind), "-", ""), m.gpus)
			shapes[model] = m.kind
			// 16 cores and 64 GiB per GPU: every task's CPU fits.
			fmt.Fprintf(&b, "n%d,%d,%d,%d,%s\n", i, 16000*m.gpus, 65536*m.gpus, m.gpus, model)
			names = append(names, fmt.Sprintf("%s/%d", m.kind, m.gpus))
			largest = max(largest, m.gpus)
		}
		b.WriteString("cpu0,64000,262144,0,\n")
		t.Run(strings.Join(names, "+"), func(t *testing.T) {
			nodes, err := ReadNodes("nodes.csv", strings.NewReader(b.String()))
			require.NoError(t, err)
			tasks, err := ReadTasks("pods.csv", strings.NewReader(machinesPods))
			require.NoError(t, err)
			cl, err := NewCluster(nodes, shapes)
			require.NoError(t, err)
			wl, err := NewWorkload(tasks, cl)
			require.NoError(t, err)
			cfg := Config{Cluster: cl, Workload: wl, Policies: policies, Seeds: []uint64{1, 2},
				Target: 1.3, Checkpoints: []float64{0.5, 1, 1.3}}
			res, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			again, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			require.Equal(t, res, again, "deterministic per seed")
			for _, r := range res {
				for k, a := range r.Alloc {
					require.GreaterOrEqual(t, a, 0.0, r.Policy)
					require.LessOrEqual(t, a, 1.0+1e-9, r.Policy)
					if k > 0 {
						require.GreaterOrEqual(t, a, r.Alloc[k-1], "%s: tasks never leave", r.Policy)
					}
				}
				require.InDelta(t, float64(cl.TotalMilli)/1000*(1-r.Alloc[2]), r.Unallocated, 1e-6, r.Policy)
				if r.MultiTasks > 0 {
					require.Greater(t, r.MultiQuality, 0.0, r.Policy)
					require.LessOrEqual(t, r.MultiQuality, 1.0+1e-9, r.Policy)
				}
				require.GreaterOrEqual(t, r.Failed, 0)
				require.LessOrEqual(t, r.Failed, r.Tasks)
			}
			if largest < 16 {
				// The 16-GPU task fits no node: every one that arrived failed.
				for _, r := range res {
					n16 := 0
					seq, err := wl.Sequence(cl.TotalMilli, cfg.Target, r.Seed)
					require.NoError(t, err)
					for _, c := range seq {
						if wl.Classes[c].NumGPU == 16 {
							n16++
						}
					}
					require.GreaterOrEqual(t, r.Failed, n16, r.Policy)
					require.GreaterOrEqual(t, r.FailedGPU, 16*float64(n16), r.Policy)
				}
			}
		})
	}
}

// A CPU-only node's model does not make tasks asking it hostable.
func TestUnhostableTasksIgnoreCPUOnlyNodes(t *testing.T) {
	nodes, err := ReadNodes("nodes.csv", strings.NewReader("sn,cpu_milli,memory_mib,gpu,model\n"+
		"g0,96000,393216,8,G2\nc0,32000,65536,0,T4\n"))
	require.NoError(t, err)
	tasks, err := ReadTasks("pods.csv", strings.NewReader("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"+
		"a,1000,1024,1,1000,T4\nb,1000,1024,1,1000,G2|T4\nc,1000,1024,0,0,T4\n"))
	require.NoError(t, err)
	cl, err := NewCluster(nodes, DefaultShapes())
	require.NoError(t, err)
	n, models := UnhostableTasks(tasks, cl)
	// a asks only T4, which no GPU node has; b may take G2; c is CPU-only
	// (its gpu_spec asks nothing).
	require.Equal(t, 1, n)
	require.Equal(t, []string{"T4"}, models)
}

// Tasks no node could host even empty (more GPUs, CPU or memory than every
// node of a model they may take has) fail wherever they arrive, like tasks
// asking only absent models: OversizedTasks counts them for a warning. A
// task counted by UnhostableTasks (no node of its models at all) is not
// counted again.
//
// Cluster: g0 G2 8 GPUs 96 cores 384 GiB; t0 T4 2 GPUs 64 cores 256 GiB;
// c0 CPU-only 32 cores 64 GiB.
func TestOversizedTasks(t *testing.T) {
	nodes, err := ReadNodes("nodes.csv", strings.NewReader("sn,cpu_milli,memory_mib,gpu,model\n"+
		"g0,96000,393216,8,G2\nt0,64000,262144,2,T4\nc0,32000,65536,0,\n"))
	require.NoError(t, err)
	cl, err := NewCluster(nodes, DefaultShapes())
	require.NoError(t, err)
	const head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
	tests := []struct {
		name string
		rows string
		want int
	}{
		{"fits g0", "a,96000,393216,8,1000,\n", 0},
		{"a share fits t0", "a,64000,262144,1,500,T4\n", 0},
		{"CPU-only task fits g0", "a,96000,1024,0,0,\n", 0},
		{"more GPUs than any node", "a,1000,1024,16,1000,\n", 1},
		{"more CPU than any node", "a,96001,1024,1,1000,\n", 1},
		{"more memory than any node", "a,1000,393217,1,500,\n", 1},
		{"CPU-only, more CPU than any node", "a,96001,1024,0,0,\n", 1},
		// 3 T4 GPUs: t0 has 2; g0 has 8 but is a G2.
		{"more GPUs than the allowed model's nodes", "a,1000,1024,3,1000,T4\n", 1},
		// t0 has 64 cores; g0 has the cores but is a G2.
		{"more CPU than the allowed model's nodes", "a,65000,1024,1,1000,T4\n", 1},
		{"either model: g0 fits", "a,65000,1024,3,1000,G2|T4\n", 0},
		// no A100 node: UnhostableTasks counts it.
		{"absent model only", "a,1000000,1024,1,1000,A100\n", 0},
		{"each task counted", "a,1000,1024,16,1000,\nb,1000,1024,9,1000,\nc,1000,1024,1,1000,\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks, err := ReadTasks("pods.csv", strings.NewReader(head+tt.rows))
			require.NoError(t, err)
			require.Equal(t, tt.want, OversizedTasks(tasks, cl))
		})
	}
}

// A task's allowed models are a 64-bit set, so a node list may name 64 GPU
// models; CPU-only nodes (model "") do not count against them wherever
// they stand in the list, and a task asking for the last model still
// lands on it. 65 GPU models are refused, naming 65.
func TestGPUModelLimitIgnoresCPUOnlyNodes(t *testing.T) {
	list := func(models int, cpuOnlyFirst bool) string {
		var b strings.Builder
		b.WriteString("sn,cpu_milli,memory_mib,gpu,model\n")
		if cpuOnlyFirst {
			b.WriteString("cpu0,32000,65536,0,\n")
		}
		for i := range models {
			fmt.Fprintf(&b, "n%d,32000,65536,2,M%d\n", i, i)
		}
		if !cpuOnlyFirst {
			b.WriteString("cpu1,32000,65536,0,\n")
		}
		return b.String()
	}
	shapes := DefaultShapes()
	for i := range 65 {
		shapes[fmt.Sprintf("M%d", i)] = ShapePCIe
	}
	for _, first := range []bool{true, false} {
		t.Run(fmt.Sprintf("cpu-only first=%v", first), func(t *testing.T) {
			nodes, err := ReadNodes("nodes.csv", strings.NewReader(list(64, first)))
			require.NoError(t, err)
			cl, err := NewCluster(nodes, shapes)
			require.NoError(t, err)
			require.Len(t, cl.Models, 65, "64 GPU models, then the CPU-only nodes' \"\"")
			require.Equal(t, "", cl.Models[64])
			tasks, err := ReadTasks("pods.csv", strings.NewReader(
				"name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\nlast,1000,1024,2,1000,M63\nc,1000,1024,0,0,\n"))
			require.NoError(t, err)
			w, err := NewWorkload(tasks, cl)
			require.NoError(t, err)
			r := newRun(cl, w, nil, 1)
			for i := range cl.Nodes {
				want := cl.Nodes[i].Model == "M63"
				require.Equal(t, want, r.fits(i, &w.Classes[0]), "node %s", cl.Nodes[i].Name)
				require.True(t, r.fits(i, &w.Classes[1]), "a CPU-only task fits node %s", cl.Nodes[i].Name)
			}
			nodes, err = ReadNodes("nodes.csv", strings.NewReader(list(65, first)))
			require.NoError(t, err)
			_, err = NewCluster(nodes, shapes)
			require.ErrorContains(t, err, "65 GPU models: at most 64 are supported")
		})
	}
}
