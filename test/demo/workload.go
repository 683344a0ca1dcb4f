package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/test/harness"
)

const (
	namespace      = "default"
	poolLabel      = "gpupack.io/demo-pool"
	classLabel     = "gpupack.io/demo-class"
	sharedReplicas = 4
	wholeResource  = "nvidia.com/gpu"
	sharedResource = "nvidia.com/gpu.shared"
	migPrefix      = "nvidia.com/mig-"
)

// pool is one set of identical nodes and the profile that schedules its pods.
type pool struct{ name, profile string }

var pools = []pool{
	{name: "gpupack", profile: "gpupack-scheduler"},
	{name: "default", profile: corev1.DefaultSchedulerName},
}

// shape is one node of each pool.
type shape struct {
	suffix string
	config harness.NodeConfig
}

// The nodes of each pool: 8 + 8 + 8 whole GPUs on NVLink machines, a DGX
// A100 with two GPUs in MIG mode (6 whole GPUs, 4 + 7 MIG devices), and a
// dual-socket PCIe box whose 4 GPUs are time-shared 4 ways (16 replicas).
var shapes = []shape{
	{"dgx1-a", harness.NodeConfig{Machine: "dgx-1-v100"}},
	{"dgx1-b", harness.NodeConfig{Machine: "dgx-1-v100"}},
	{"h100", harness.NodeConfig{Machine: "dgx-h100"}},
	{"a100", harness.NodeConfig{Machine: "dgx-a100",
		FakeMIG: "0=3g.20gb+2g.10gb+1g.5gb+1g.5gb,1=1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb+1g.5gb"}},
	{"t4", harness.NodeConfig{Machine: "pcie-4gpu-2socket", PluginConfig: fmt.Sprintf(`version: v1
publish: {inUseInterval: 1s}
sharing:
  timeSlicing:
    renameByDefault: true
    resources:
    - name: nvidia.com/gpu
      replicas: %d
`, sharedReplicas)}},
}

// demoPod is one pod of the workload.
type demoPod struct {
	name, class string
	resource    string
	count       int64
	cpu         string
}

// workload is the mixed stream both pools get, in arrival order: small
// pods first (as a busy cluster sees them between training jobs), then
// training jobs of growing size, the last two whole-node jobs. Whole GPUs
// asked: 6 x 1 + 1 x 2 + 1 x 4 + 2 x 8 = 28 of the pool's 30, so both
// 8-GPU jobs fit only if the 12 GPUs before them were packed onto the A100's
// 6 whole GPUs and one 8-GPU node (6 + 8 = 14 >= 12), leaving two 8-GPU
// nodes whole; a scheduler that spreads them (the default profile's
// LeastAllocated) breaks every 8-GPU node first.
func workload() []demoPod {
	var w []demoPod
	add := func(n int, prefix, class, res string, count int64, cpu string) {
		for i := range n {
			w = append(w, demoPod{name: fmt.Sprintf("%s-%d", prefix, i), class: class, resource: res, count: count, cpu: cpu})
		}
	}
	add(3, "infer", "inference", wholeResource, 1, "4")
	add(3, "notebook", "shared", sharedResource, 1, "2")
	add(3, "infer-b", "inference", wholeResource, 1, "4")
	add(4, "mig-small", "mig", migPrefix+"1g.5gb", 1, "2")
	add(1, "train-2", "training", wholeResource, 2, "16")
	add(1, "mig-medium", "mig", migPrefix+"3g.20gb", 1, "4")
	add(3, "notebook-b", "shared", sharedResource, 1, "2")
	add(1, "train-4", "training", wholeResource, 4, "32")
	add(2, "train-8", "training", wholeResource, 8, "64")
	return w
}

// submit creates the pods one after another, each in both pools (in
// alternating order, so neither profile goes first), and waits until both
// copies are bound or reported unschedulable before the next arrives: a
// stream of arrivals, as a cluster sees them, so each pod is placed
// knowing exactly the pods before it and the report is the same from run
// to run (created at once, the queue's order and the binding cycles
// overlapped, and the comparison varied).
func submit(ctx context.Context, client kubernetes.Interface, w []demoPod, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i, dp := range w {
		order := pools
		if i%2 == 1 {
			order = []pool{pools[1], pools[0]}
		}
		for _, p := range order {
			if _, err := client.CoreV1().Pods(namespace).Create(ctx, dp.pod(p), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating pod %s-%s: %w", p.name, dp.name, err)
			}
		}
		for _, p := range order {
			if _, err := waitSettled(ctx, client, p.name+"-"+dp.name, time.Until(deadline)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (dp demoPod) pod(p pool) *corev1.Pod {
	res := corev1.ResourceList{
		corev1.ResourceCPU:               resource.MustParse(dp.cpu),
		corev1.ResourceMemory:            resource.MustParse("16Gi"),
		corev1.ResourceName(dp.resource): *resource.NewQuantity(dp.count, resource.DecimalSI),
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name + "-" + dp.name, Namespace: namespace,
			Labels: map[string]string{poolLabel: p.name, classLabel: dp.class}},
		Spec: corev1.PodSpec{
			SchedulerName: p.profile,
			NodeSelector:  map[string]string{poolLabel: p.name},
			Containers: []corev1.Container{{
				Name: "main", Image: "registry.example/" + dp.class + ":latest",
				Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
			}},
		},
	}
}

// requests are the workload as pkg/score requests, for the fragmentation
// measure of the report.
func requests(w []demoPod) []score.Request {
	out := make([]score.Request, 0, len(w))
	for _, dp := range w {
		r := score.Request{Kind: score.KindWhole, Count: int(dp.count)}
		switch {
		case dp.resource == sharedResource:
			r.Kind = score.KindShared
		case len(dp.resource) > len(migPrefix) && dp.resource[:len(migPrefix)] == migPrefix:
			r.Kind, r.MIGProfile = score.KindMIG, dp.resource[len(migPrefix):]
		}
		out = append(out, r)
	}
	return out
}

// workloadSource says which workload the report's fragmentation assumes:
// `kubectl gpupack` measures the same nodes against the plugin's default
// prior, and the scheduler against the workload it learns, so their
// figures differ from the report's.
const workloadSource = "the demo's own workload mix, not the scheduler's learned or default workload"

// header is the report's opening: what the two pools share (nodes and
// device plugin) and what they differ in (the scheduler profile), the
// workload's scenario, and what varies from run to run.
func header(w []demoPod) string {
	// The training jobs among the small pods, then the whole-node jobs
	// that end the stream.
	last := len(w)
	for last > 0 && w[last-1].class == "training" && w[last-1].count >= 8 {
		last--
	}
	var among []string
	for _, dp := range w[:last] {
		if dp.class == "training" {
			among = append(among, strconv.FormatInt(dp.count, 10))
		}
	}
	small := "small pods first (1-GPU inference, time-shared, MIG"
	if len(among) > 0 {
		small += "; training jobs of " + andList(among) + " GPUs among them"
	}
	small += ")"
	paragraphs := []string{
		"Both pools run gpupack's device plugin, so the default-scheduler pool's pods also get gpupack's " +
			"topology-aware GetPreferredAllocation (hence equal set quality): this compares the schedulers " +
			"(gpupack-scheduler and the stock default-scheduler), not device plugins.",
		fmt.Sprintf("Workload: the same %d pods arrive at each pool one at a time, %s, then %d whole-node 8-GPU jobs: "+
			"one scenario, chosen to show fragmentation.", len(w), small, len(w)-last),
		"Ties between equally scored nodes are broken at random, so placements (mostly the default pool's) " +
			"differ slightly from run to run; which pods each pool places and leaves pending does not.",
	}
	var b strings.Builder
	fmt.Fprintf(&b, "gpupack demo: two identical pools of %d fake GPU nodes, one per scheduler profile.\n", len(shapes))
	for _, p := range paragraphs {
		for _, line := range wrap(p, 110) {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String()
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len([]rune(line))+1+len([]rune(word)) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// andList is "2", "2 and 4", "2, 4 and 8".
func andList(items []string) string {
	if k := len(items); k > 1 {
		return strings.Join(items[:k-1], ", ") + " and " + items[k-1]
	}
	return strings.Join(items, "")
}

// demoClasses are the workload classes, in the order the report counts
// placed pods.
var demoClasses = []string{"training", "inference", "mig", "shared"}

// distribution builds the workload distribution of the demo's request mix
// for the fragmentation metric, one weight per request, so that both sides
// are measured against the same workload. replicas is the number of
// time-shared replicas per GPU in the demo's sharing config: a shared
// request of r replicas takes r/replicas of one GPU (packed) or
// 1/replicas of each of r GPUs (spread), as score.TaskOf counts it.
func distribution(reqs []score.Request, replicas int) (*score.Distribution, error) {
	ws := make([]score.Weighted, 0, len(reqs))
	for i, r := range reqs {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		t := score.TaskType{Kind: r.Kind, Count: r.Count, MIGProfile: r.MIGProfile, Model: r.Model}
		if r.Kind == score.KindShared {
			if replicas < 2 {
				return nil, fmt.Errorf("request %d: shared request needs replicas >= 2 per GPU, have %d", i, replicas)
			}
			per := 1
			if r.Policy == score.Packed {
				per = r.Count
			}
			t.Count = 0
			t.Milli = min(1000, max(1, int(math.Round(float64(per)*1000/float64(replicas)))))
		}
		ws = append(ws, score.Weighted{Type: t, Weight: 1})
	}
	d, err := score.NewDistribution(ws)
	if err != nil {
		return nil, fmt.Errorf("demo workload distribution: %w", err)
	}
	return d, nil
}
