// Package sim is gpusim's engine: it replays the Alibaba openb GPU traces with
// the protocol of the FGD paper's artifact (Weng et al., USENIX ATC'23) under
// the placement policies of pkg/score, so placement quality is measured with
// the very code the scheduler runs.
package sim

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gpupack/gpupack/pkg/topology"
)

// checkModelName reports whether m can name a GPU model: not empty, at most
// 64 bytes, valid UTF-8 without control characters, and none of the separators of the files and flags that list
// models (',' '|' '=') or white space. Any such name is accepted (a node
// list of other machines names other models); DefaultShapes knows the
// openb ones, and NewCluster needs a shape for every model a node has.
func checkModelName(m string) error {
	switch {
	case m == "":
		return fmt.Errorf("empty GPU model")
	case len(m) > 64:
		return fmt.Errorf("GPU model %.20q...: longer than 64 bytes", m)
	case strings.ContainsAny(m, ",|= \t\r\n"):
		return fmt.Errorf("GPU model %q: contains one of ',' '|' '=' or white space", m)
	case !utf8.ValidString(m) || strings.ContainsFunc(m, unicode.IsControl):
		return fmt.Errorf("GPU model %q: not valid UTF-8 text (a control character or a broken byte sequence)", m)
	}
	return nil
}

// MaxCPUMilli and MaxMemoryMiB bound the cpu_milli and memory_mib columns:
// 2^40 milli-cores (a billion cores) and 2^40 MiB (an exbibyte) are far
// beyond any machine, and sums and products of such figures (pkg/score
// buckets CPU and memory on a ladder, the baselines add up a cluster's
// CPU) stay inside int64 and float64's exact integers.
const (
	MaxCPUMilli  = 1 << 40
	MaxMemoryMiB = 1 << 40
)

// NodeSpec is one row of an openb node list.
type NodeSpec struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	GPUs      int
	Model     string
}

// TaskSpec is one row of an openb pod list.
type TaskSpec struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	NumGPU    int
	// GPUMilli is the per-GPU share: 1000 for whole GPUs, less for a share of one GPU.
	GPUMilli int64
	// Models restricts the GPU model (empty: any).
	Models []string
	// IgnoredGPUMilli is the gpu_milli of a row with num_gpu 0, which asks
	// for no GPU: the FGD artifact (pod_csv_to_yaml.py) sets a pod's GPU
	// annotations only when num_gpu is not 0, so the task is CPU-only
	// and GPUMilli 0. IgnoredTasks counts them for a warning.
	IgnoredGPUMilli int64
}

// IgnoredTasks counts the tasks whose gpu_milli was ignored because they
// ask num_gpu 0 (TaskSpec.IgnoredGPUMilli).
func IgnoredTasks(tasks []TaskSpec) int {
	n := 0
	for _, t := range tasks {
		if t.IgnoredGPUMilli > 0 {
			n++
		}
	}
	return n
}

// GPUDemand is the task's GPU demand in milli-GPU.
func (t TaskSpec) GPUDemand() int64 { return int64(t.NumGPU) * t.GPUMilli }

// LineError locates a problem in a trace file.
type LineError struct {
	File   string
	Line   int
	Column string
	Err    error
}

// Error renders "file:line: column "c": problem".
func (e *LineError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: column %q: %v", e.File, e.Line, e.Column, e.Err)
}

// Unwrap returns the underlying problem.
func (e *LineError) Unwrap() error { return e.Err }

// table is a CSV file read by column name.
type table struct {
	file   string
	header map[string]int
	r      *csv.Reader
	line   int
	row    []string
	// width is the header's field count.
	width int
}

// utf8BOM is the byte order mark some tools write first (Python's
// utf-8-sig, Excel).
const utf8BOM = "\ufeff"

// MaxLineBytes bounds a line of a pod or node list (the openb lists' are
// under 200 bytes): a file without line ends (/dev/zero, a binary file)
// is refused at the bound, not read whole into memory.
const MaxLineBytes = 1 << 20

// ErrLineTooLong is the error of a line longer than MaxLineBytes.
var ErrLineTooLong = fmt.Errorf("a line is longer than %d bytes: not a CSV pod or node list", MaxLineBytes)

// lineLimit passes r through, failing with ErrLineTooLong once a line
// passes MaxLineBytes.
type lineLimit struct {
	r   io.Reader
	run int // bytes since the last '\n'
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			l.run = 0
			continue
		}
		if l.run++; l.run > MaxLineBytes {
			return 0, ErrLineTooLong
		}
	}
	return n, err
}

// sniff refuses what is not a UTF-8 CSV with LF or CRLF line ends, from
// the file's first bytes: UTF-16 (a byte order mark or NUL bytes, which
// the CSV reader would read as a header of unknown columns) and CR-only
// line ends (classic Mac: the CSV reader sees one line).
func sniff(file string, br *bufio.Reader) error {
	head, _ := br.Peek(64 << 10) // what is there, up to 64 KiB
	switch {
	case bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0xfe, 0xff}):
		return fmt.Errorf("%s is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8", file)
	case bytes.IndexByte(head, 0) >= 0:
		return fmt.Errorf("%s has NUL bytes in its first %d bytes: UTF-16 or not text; save it as UTF-8 CSV", file, len(head))
	case bytes.IndexByte(head, '\n') < 0 && bytes.IndexByte(head, '\r') >= 0:
		return fmt.Errorf("%s ends its lines with CR only (classic Mac line ends): save it with LF or CRLF line ends", file)
	}
	return nil
}

func newTable(file string, r io.Reader, required, optional []string) (*table, error) {
	// The BOM goes before the CSV reader sees it: before a quoted header
	// field it would make the field's quote a bare " in an unquoted field.
	br := bufio.NewReaderSize(&lineLimit{r: r}, 64<<10)
	if err := sniff(file, br); err != nil {
		return nil, err
	}
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == utf8BOM {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s is empty: want a CSV header line naming the columns (%s), then a row per line",
			file, strings.Join(required, ", "))
	}
	if err != nil {
		return nil, &LineError{File: file, Line: 1, Err: fmt.Errorf("reading header: %w", err)}
	}
	t := &table{file: file, header: map[string]int{}, r: cr, line: 1, width: len(head)}
	for i, h := range head {
		h = strings.TrimSpace(h)
		if _, dup := t.header[h]; dup && (slices.Contains(required, h) || slices.Contains(optional, h)) {
			return nil, &LineError{File: file, Line: 1, Err: fmt.Errorf("column %q appears twice", h)}
		}
		t.header[h] = i
	}
	var missing []string
	for _, c := range required {
		if _, ok := t.header[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, &LineError{File: file, Line: 1, Err: fmt.Errorf("missing column(s) %s", strings.Join(missing, ", "))}
	}
	return t, nil
}

// next reads the next row; io.EOF at the end.
func (t *table) next() error {
	row, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	t.line++
	if err != nil {
		return &LineError{File: t.file, Line: t.line, Err: err}
	}
	if len(row) != t.width { // a short or long row: shifted or misquoted fields
		return &LineError{File: t.file, Line: t.line, Err: fmt.Errorf("%d fields, header has %d", len(row), t.width)}
	}
	t.row = row
	return nil
}

func (t *table) str(col string) string { return strings.TrimSpace(t.row[t.header[col]]) }

func (t *table) errorf(col string, format string, args ...any) error {
	return &LineError{File: t.file, Line: t.line, Column: col, Err: fmt.Errorf(format, args...)}
}

// nonNegative parses a column as an integer >= 0 (at most max when max > 0).
func (t *table) nonNegative(col string, max int64) (int64, error) {
	s := t.str(col)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, t.errorf(col, "%q is not an integer", s)
	}
	if v < 0 {
		return 0, t.errorf(col, "negative value %d", v)
	}
	if max > 0 && v > max {
		return 0, t.errorf(col, "value %d is above the limit %d", v, max)
	}
	return v, nil
}

// ReadNodesFile reads an openb node list.
func ReadNodesFile(path string) ([]NodeSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening node list: %w", err)
	}
	defer f.Close()
	return ReadNodes(path, f)
}

// ReadNodes parses an openb node list (columns sn, cpu_milli, memory_mib, gpu, model).
func ReadNodes(file string, r io.Reader) ([]NodeSpec, error) {
	t, err := newTable(file, r, []string{"sn", "cpu_milli", "memory_mib", "gpu", "model"}, nil)
	if err != nil {
		return nil, err
	}
	var nodes []NodeSpec
	for {
		if err := t.next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		n, err := parseNode(t)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: no nodes", file)
	}
	return nodes, nil
}

// DuplicateNodeNames returns the names (sn) that more than one row of
// nodes carries, sorted, at most limit of them (limit <= 0: all), and how
// many such names there are. Each row is simulated as a node of its own;
// two lists concatenated by mistake double the cluster.
func DuplicateNodeNames(nodes []NodeSpec, limit int) (names []string, n int) {
	seen := make(map[string]int, len(nodes))
	for _, nd := range nodes {
		seen[nd.Name]++
	}
	for name, c := range seen {
		if c > 1 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	n = len(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	return names, n
}

func parseNode(t *table) (NodeSpec, error) {
	n := NodeSpec{Name: t.str("sn"), Model: t.str("model")}
	var err error
	if n.CPUMilli, err = t.nonNegative("cpu_milli", MaxCPUMilli); err != nil {
		return n, err
	}
	if n.MemoryMiB, err = t.nonNegative("memory_mib", MaxMemoryMiB); err != nil {
		return n, err
	}
	gpus, err := t.nonNegative("gpu", topology.MaxGPUs)
	if err != nil {
		return n, err
	}
	n.GPUs = int(gpus)
	if n.GPUs == 0 {
		// A CPU-only node has no GPU model, whatever the column says (a
		// model there would make tasks asking it look hostable).
		n.Model = ""
		return n, nil
	}
	if err := checkModelName(n.Model); err != nil {
		return n, t.errorf("model", "%w", err)
	}
	return n, nil
}

// ReadTasksFile reads an openb pod list.
func ReadTasksFile(path string) ([]TaskSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening pod list: %w", err)
	}
	defer f.Close()
	return ReadTasks(path, f)
}

// ReadTasks parses an openb pod list (columns name, cpu_milli, memory_mib,
// num_gpu, gpu_milli and the optional gpu_spec, which multigpu20 lacks; the
// others are ignored).
func ReadTasks(file string, r io.Reader) ([]TaskSpec, error) {
	t, err := newTable(file, r, []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"}, []string{"gpu_spec"})
	if err != nil {
		return nil, err
	}
	var tasks []TaskSpec
	for {
		if err := t.next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		task, err := parseTask(t)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, task)
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("%s: no tasks", file)
	}
	return tasks, nil
}

func parseTask(t *table) (TaskSpec, error) {
	task := TaskSpec{Name: t.str("name")}
	var err error
	if task.CPUMilli, err = t.nonNegative("cpu_milli", MaxCPUMilli); err != nil {
		return task, err
	}
	if task.MemoryMiB, err = t.nonNegative("memory_mib", MaxMemoryMiB); err != nil {
		return task, err
	}
	num, err := t.nonNegative("num_gpu", topology.MaxGPUs)
	if err != nil {
		return task, err
	}
	task.NumGPU = int(num)
	if task.GPUMilli, err = t.nonNegative("gpu_milli", topology.MilliPerGPU); err != nil {
		return task, err
	}
	if task.NumGPU == 0 && task.GPUMilli > 0 {
		// No GPU asked: a CPU-only task, as in the FGD artifact.
		task.IgnoredGPUMilli, task.GPUMilli = task.GPUMilli, 0
	}
	if err := checkShare(t, task); err != nil {
		return task, err
	}
	models, err := parseSpec(t)
	if err != nil {
		return task, err
	}
	if task.NumGPU > 0 {
		// A CPU-only task's gpu_spec constrains nothing: the artifact
		// sets no model annotation on a pod without GPUs.
		task.Models = models
	}
	return task, nil
}

func checkShare(t *table, task TaskSpec) error {
	switch {
	case task.NumGPU > 0 && task.GPUMilli == 0:
		return t.errorf("gpu_milli", "num_gpu %d with a zero share", task.NumGPU)
	case task.NumGPU > 1 && task.GPUMilli != topology.MilliPerGPU:
		return t.errorf("gpu_milli", "a share (%d) of a GPU is only valid with num_gpu 1, got %d", task.GPUMilli, task.NumGPU)
	}
	return nil
}

func parseSpec(t *table) ([]string, error) {
	if _, ok := t.header["gpu_spec"]; !ok {
		return nil, nil
	}
	spec := t.str("gpu_spec")
	if spec == "" {
		return nil, nil
	}
	var models []string
	for _, m := range strings.Split(spec, "|") {
		m = strings.TrimSpace(m)
		if err := checkModelName(m); err != nil {
			return nil, t.errorf("gpu_spec", "%w", err)
		}
		if !slices.Contains(models, m) {
			models = append(models, m)
		}
	}
	slices.Sort(models)
	return models, nil
}
