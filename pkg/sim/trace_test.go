package sim

import (
	"errors"
	"io"
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

// TestReadOddButValidTraces: forms a user's CSV takes that must read as the
// plain file does (the same tasks and nodes), or as the FGD artifact reads
// them.
func TestReadOddButValidTraces(t *testing.T) {
	const podHead = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
	plain := podHead + "p0,4000,8192,1,1000,G2|T4\np1,2000,1024,1,460,\np2,1000,512,0,0,\n"
	want := []TaskSpec{
		{Name: "p0", CPUMilli: 4000, MemoryMiB: 8192, NumGPU: 1, GPUMilli: 1000, Models: []string{"G2", "T4"}},
		{Name: "p1", CPUMilli: 2000, MemoryMiB: 1024, NumGPU: 1, GPUMilli: 460},
		{Name: "p2", CPUMilli: 1000, MemoryMiB: 512},
	}
	tests := []struct {
		name string
		in   string
		want []TaskSpec
	}{
		{"plain", plain, want},
		{"CRLF line endings", strings.ReplaceAll(plain, "\n", "\r\n"), want},
		{"UTF-8 BOM and CRLF", "\ufeff" + strings.ReplaceAll(plain, "\n", "\r\n"), want},
		{"trailing empty lines", plain + "\n\n", want},
		// Python's csv.QUOTE_ALL written as utf-8-sig: the BOM before the
		// header's first quote made it a bare " in an unquoted field.
		{"UTF-8 BOM and every field quoted", "\ufeff" + `"name","cpu_milli","memory_mib","num_gpu","gpu_milli","gpu_spec"` + "\r\n" +
			`"p0","4000","8192","1","1000","G2|T4"` + "\r\n" + `"p1","2000","1024","1","460",""` + "\r\n" +
			`"p2","1000","512","0","0",""` + "\r\n", want},
		{"columns reordered, extra ones, quoted and padded fields",
			`qos, gpu_milli ,"num_gpu",name,memory_mib,cpu_milli,gpu_spec,extra` + "\n" +
				`LS, 1000 ,"1","p0", 8192 ,4000," T4 | G2 | T4 ",x` + "\n" +
				`BE,460,1,p1,1024,2000,"",y` + "\n" +
				`BE,0,0,p2,512,1000,,z` + "\n", want},
		{"duplicate models in gpu_spec", podHead + "p0,4000,8192,1,1000,T4|G2|G2|T4\np1,2000,1024,1,460,\np2,1000,512,0,0,\n", want},
		// The FGD artifact sets GPU annotations only when num_gpu is not
		// 0: gpu_milli (and gpu_spec) of such a row ask nothing.
		{"num_gpu 0 with a share and a model", podHead + "p0,4000,8192,1,1000,G2|T4\np1,2000,1024,1,460,\np2,1000,512,0,500,T4\n",
			append(want[:2:2], TaskSpec{Name: "p2", CPUMilli: 1000, MemoryMiB: 512, IgnoredGPUMilli: 500})},
		{"zero CPU and memory", podHead + "p0,0,0,1,1000,\n", []TaskSpec{{Name: "p0", NumGPU: 1, GPUMilli: 1000}}},
		{"CPU and memory at the limit", podHead + "p0,1099511627776,1099511627776,0,0,\n",
			[]TaskSpec{{Name: "p0", CPUMilli: MaxCPUMilli, MemoryMiB: MaxMemoryMiB}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks, err := ReadTasks("pods.csv", strings.NewReader(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, tasks)
		})
	}
}

func TestIgnoredTasks(t *testing.T) {
	tasks, err := ReadTasks("pods.csv", strings.NewReader("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"+
		"p0,1,1,0,500\np1,1,1,0,0\np2,1,1,1,500\np3,1,1,0,1000\n"))
	require.NoError(t, err)
	// p0 and p3 ask a share with num_gpu 0; p1 asks none, p2 has a GPU.
	require.Equal(t, 2, IgnoredTasks(tasks))
	// No GPU demand from them: 0 + 0 + 500 + 0.
	var demand int64
	for _, task := range tasks {
		demand += task.GPUDemand()
	}
	require.Equal(t, int64(500), demand)
}

func TestReadOddButValidNodes(t *testing.T) {
	want := []NodeSpec{
		{Name: "n0", CPUMilli: 96000, MemoryMiB: 393216, GPUs: 8, Model: "H100"},
		{Name: "n1", CPUMilli: 32000, MemoryMiB: 65536},
		{Name: "n2"},
	}
	tests := []struct {
		name string
		in   string
	}{
		{"plain", "sn,cpu_milli,memory_mib,gpu,model\nn0,96000,393216,8,H100\nn1,32000,65536,0,\nn2,0,0,0,\n"},
		{"BOM and every field quoted", "\ufeff\"sn\",\"cpu_milli\",\"memory_mib\",\"gpu\",\"model\"\n" +
			"\"n0\",\"96000\",\"393216\",\"8\",\"H100\"\n\"n1\",\"32000\",\"65536\",\"0\",\"\"\n\"n2\",\"0\",\"0\",\"0\",\"\"\n"},
		{"BOM, CRLF, reordered and quoted", "\ufeffmodel,gpu,\"sn\",memory_mib,cpu_milli,rack\r\n" +
			"H100 , 8 ,n0,393216,96000,r1\r\n,0,n1,65536,32000,r1\r\n\"\",0,n2,0,0,r2\r\n\r\n"},
		// A CPU-only node's model is not looked at.
		{"CPU-only nodes with a model", "sn,cpu_milli,memory_mib,gpu,model\nn0,96000,393216,8,H100\nn1,32000,65536,0,T4\nn2,0,0,0,a b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, err := ReadNodes("nodes.csv", strings.NewReader(tt.in))
			require.NoError(t, err)
			require.Equal(t, want, nodes)
		})
	}
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
		{"model not UTF-8 in gpu_spec", false, podHead + "p0,1,1,1,1000,T\xff4\n",
			`pods.csv:2: column "gpu_spec": GPU model "T\xff4": not valid UTF-8 text`},
		{"node model with a control character", true, nodeHead + "n0,1,1,8,A\x07100\n",
			`nodes.csv:2: column "model": GPU model "A\a100": not valid UTF-8 text`},
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
		{"long row", false, podHead + "p0,1,1,1,1000,,extra\n",
			`pods.csv:2: 7 fields, header has 6`},
		{"node row shifted by an unquoted comma", true, nodeHead + "n0,1,000,1,8,G2\n",
			`nodes.csv:2: 6 fields, header has 5`},
		{"empty", false, podHead, `pods.csv: no tasks`},
		{"empty node list", true, nodeHead + "\n", `nodes.csv: no nodes`},
		// An empty file said only "pods.csv:1: reading header: EOF".
		{"empty pod list file", false, "", `pods.csv is empty: want a CSV header line naming the columns (name, cpu_milli, memory_mib, num_gpu, gpu_milli)`},
		{"empty node list file", true, "", `nodes.csv is empty: want a CSV header line naming the columns (sn, cpu_milli, memory_mib, gpu, model)`},
		{"only empty lines", false, "\n\r\n\n", `pods.csv is empty`},
		{"only a BOM", true, "\ufeff", `nodes.csv is empty`},
		{"cpu above the limit", false, podHead + "p0,1099511627777,1,1,1000,\n",
			`pods.csv:2: column "cpu_milli": value 1099511627777 is above the limit 1099511627776`},
		{"node memory above the limit", true, nodeHead + "n0,1,9223372036854775807,8,G2\n",
			`nodes.csv:2: column "memory_mib": value 9223372036854775807 is above the limit 1099511627776`},
		{"int64 overflow", true, nodeHead + "n0,9223372036854775808,1,8,G2\n",
			`nodes.csv:2: column "cpu_milli": "9223372036854775808" is not an integer`},
		{"share above a GPU without GPUs", false, podHead + "p0,1,1,0,1200,\n",
			`pods.csv:2: column "gpu_milli": value 1200 is above the limit 1000`},
		{"duplicate column", false, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,cpu_milli\np0,1,1,1,1000,2\n",
			`pods.csv:1: column "cpu_milli" appears twice`},
		{"duplicate gpu_spec column", false, podHead[:len(podHead)-1] + ",gpu_spec\np0,1,1,1,1000,,T4\n",
			`pods.csv:1: column "gpu_spec" appears twice`},
		{"more GPUs than a node can have", true, nodeHead + "n0,1,1,65,G2\n",
			`nodes.csv:2: column "gpu": value 65 is above the limit 64`},
		{"bare quote", false, podHead + "p0, \"1\",1,1,1000,\n", `pods.csv:2: parse error`},
		// Encodings and line ends the CSV reader would misread as a
		// header of unknown columns, or as one line.
		{"UTF-16 LE with its BOM", false, "\xff\xfen\x00a\x00m\x00e\x00", `pods.csv is UTF-16`},
		{"UTF-16 BE with its BOM", true, "\xfe\xff\x00s\x00n", `nodes.csv is UTF-16`},
		{"UTF-16 without a BOM", false, "n\x00a\x00m\x00e\x00", `pods.csv has NUL bytes`},
		{"CR-only line ends", false, strings.ReplaceAll(podHead+"p0,1,1,1,1000,\n", "\n", "\r"), `pods.csv ends its lines with CR only`},
		{"CR-only node list", true, strings.ReplaceAll(nodeHead+"n0,1,1,8,T4\n", "\n", "\r"), `nodes.csv ends its lines with CR only`},
		// No line end at all (/dev/zero, a binary file): refused at
		// MaxLineBytes, not read whole.
		{"a line past MaxLineBytes", false, strings.Repeat("x", MaxLineBytes+1), `a line is longer than 1048576 bytes`},
		{"a row past MaxLineBytes", true, nodeHead + "n0,1,1,8," + strings.Repeat("T", MaxLineBytes), `a line is longer than`},
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

func TestDuplicateNodeNames(t *testing.T) {
	nodes := func(names ...string) []NodeSpec {
		out := make([]NodeSpec, len(names))
		for i, n := range names {
			out[i] = NodeSpec{Name: n, GPUs: 1, Model: "T4"}
		}
		return out
	}
	tests := []struct {
		name  string
		nodes []NodeSpec
		limit int
		want  []string
		n     int
	}{
		{name: "unique", nodes: nodes("a", "b", "c"), want: nil, n: 0},
		// a x3 and c x2: two names, sorted.
		{name: "twice and thrice", nodes: nodes("c", "a", "b", "a", "c", "a"), want: []string{"a", "c"}, n: 2},
		// Four duplicated names, 2 shown, 4 counted.
		{name: "limited", nodes: nodes("d", "c", "b", "a", "a", "b", "c", "d"), limit: 2, want: []string{"a", "b"}, n: 4},
		// A list concatenated to itself: every name twice.
		{name: "concatenated", nodes: append(nodes("x", "y"), nodes("x", "y")...), want: []string{"x", "y"}, n: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := DuplicateNodeNames(tt.nodes, tt.limit)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.n, n)
		})
	}
}

// lineLimit lets lines of up to MaxLineBytes through, LF or CRLF ended,
// however many, and stops an endless line (as of /dev/zero) at the bound.
func TestLineLimit(t *testing.T) {
	ok := strings.Repeat(strings.Repeat("a", MaxLineBytes-1)+"\r\n", 3) // each MaxLineBytes with its CR
	got, err := io.ReadAll(&lineLimit{r: strings.NewReader(ok)})
	require.NoError(t, err)
	require.Equal(t, len(ok), len(got))
	_, err = io.ReadAll(&lineLimit{r: zeros{}})
	require.ErrorIs(t, err, ErrLineTooLong)
}

// zeros is an endless reader of NUL bytes, as /dev/zero.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
