package sim

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadTasks(t *testing.T) {
	in := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\n" +
		"p0,4000,8192,1,1000,,LS\n" +
		"p1,2000,1024,1,460,T4|P100,BE\n" +
		"p2,1000,512,0,0,,BE\n" +
		"p3,8000,4096,8,1000,G2,LS\n"
	tasks, err := ReadTasks("pods.csv", strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, []TaskSpec{
		{Name: "p0", CPUMilli: 4000, MemoryMiB: 8192, NumGPU: 1, GPUMilli: 1000},
		{Name: "p1", CPUMilli: 2000, MemoryMiB: 1024, NumGPU: 1, GPUMilli: 460, Models: []string{"P100", "T4"}},
		{Name: "p2", CPUMilli: 1000, MemoryMiB: 512},
		{Name: "p3", CPUMilli: 8000, MemoryMiB: 4096, NumGPU: 8, GPUMilli: 1000, Models: []string{"G2"}},
	}, tasks)
	// 8 GPUs x 1000 milli.
	require.Equal(t, int64(8000), tasks[3].GPUDemand())
}

func TestReadTasksWithoutSpecColumn(t *testing.T) {
	// openb_pod_list_multigpu20.csv has no gpu_spec column.
	tasks, err := ReadTasks("pods.csv", strings.NewReader("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1,1,2,1000\n"))
	require.NoError(t, err)
	require.Equal(t, []TaskSpec{{Name: "p0", CPUMilli: 1, MemoryMiB: 1, NumGPU: 2, GPUMilli: 1000}}, tasks)
}

func TestBadTraces(t *testing.T) {
	const podHead = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
	const nodeHead = "sn,cpu_milli,memory_mib,gpu,model\n"
	tests := []struct {
		name  string
		nodes bool
		in    string
		want  string // the error must contain this
	}{
		{"missing pod column", false, "name,cpu_milli,num_gpu,gpu_milli\np,1,1,1000\n",
			`pods.csv:1: missing column(s) memory_mib`},
		{"missing node column", true, "sn,cpu_milli,gpu,model\nn,1,1,T4\n",
			`nodes.csv:1: missing column(s) memory_mib`},
		{"negative cpu on line 3", false, podHead + "p0,1000,10,1,1000,\np1,-5,10,1,1000,\n",
			`pods.csv:3: column "cpu_milli": negative value -5`},
		{"negative memory", false, podHead + "p0,1000,-1,1,1000,\n",
			`pods.csv:2: column "memory_mib": negative value -1`},
		{"negative gpu count", true, nodeHead + "n0,1000,10,-2,T4\n",
			`nodes.csv:2: column "gpu": negative value -2`},
		{"empty model in gpu_spec", false, podHead + "p0,1,1,1,1000,T4\np1,1,1,1,1000,T4||H100\n",
			`pods.csv:3: column "gpu_spec": empty GPU model`},
		{"model with a separator in gpu_spec", false, podHead + "p0,1,1,1,1000,T4=x\n",
			`pods.csv:2: column "gpu_spec": GPU model "T4=x": contains one of`},
		{"node model with white space", true, nodeHead + "n0,1,1,8,B 200\n",
			`nodes.csv:2: column "model": GPU model "B 200": contains one of`},
		{"GPU node without a model", true, nodeHead + "n0,1,1,8,\n",
			`nodes.csv:2: column "model": empty GPU model`},
		{"not an integer", false, podHead + "p0,1.5,1,1,1000,\n",
			`pods.csv:2: column "cpu_milli": "1.5" is not an integer`},
		{"share above a GPU", false, podHead + "p0,1,1,1,1200,\n",
			`pods.csv:2: column "gpu_milli": value 1200 is above the limit 1000`},
		{"share of several GPUs", false, podHead + "p0,1,1,2,500,\n",
			`pods.csv:2: column "gpu_milli": a share (500) of a GPU is only valid with num_gpu 1, got 2`},
		{"short row", false, podHead + "p0,1,1\n",
			`pods.csv:2: 3 fields, header has 6`},
		{"empty", false, podHead, `pods.csv: no tasks`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.nodes {
				_, err = ReadNodes("nodes.csv", strings.NewReader(tt.in))
			} else {
				_, err = ReadTasks("pods.csv", strings.NewReader(tt.in))
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			var le *LineError
			if regexp.MustCompile(`\.csv:\d`).MatchString(tt.want) {
				require.True(t, errors.As(err, &le), "want a *LineError, got %T", err)
			}
		})
	}
}
