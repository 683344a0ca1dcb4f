// Command throughput measures scheduling throughput against a real etcd and
// kube-apiserver on loopback: N fake 8-GPU nodes, a stream of GPU pods, and
// pods/s plus p99 scheduling latency for the gpupack profile and for the
// default kube-scheduler profile, both served by one scheduler process in the
// same run. Run it with `make bench-throughput`.
//
// It also reports the scheduler process's CPU time per pod in each phase
// (from /proc), the figure least disturbed by whatever else shares the
// machine's cores. With GPUPACK_PPROF=<port> the scheduler serves pprof
// and /metrics on that loopback port; with --profile-dir as well, each
// phase leaves a CPU profile (--profile-seconds long) and the metrics
// after it there, named by node count, round and profile.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/test/cluster"
)

const gpuResource = "nvidia.com/gpu"

type options struct {
	binDir    string
	nodes     []int
	pods      int
	machine   string
	config    string
	workers   int
	timeout   time.Duration
	keepFiles bool
	rounds    int
	// profileDir and profileSeconds: with GPUPACK_PPROF, a CPU profile
	// of the scheduler of that length per phase, and its metrics after it.
	profileDir     string
	profileSeconds int
	// schedulerBin is a built scheduler-plugin binary; empty builds one
	// (needs Go: a machine without it is given the binary).
	schedulerBin string
}

func main() {
	var o options
	var nodes string
	flag.StringVar(&o.binDir, "bin-dir", ".cache/bin", "directory with etcd and kube-apiserver (hack/cluster/build.sh)")
	flag.StringVar(&nodes, "nodes", "1000,5000", "comma-separated node counts, one cluster each")
	flag.IntVar(&o.pods, "pods", 2000, "GPU pods per profile and node count")
	flag.StringVar(&o.machine, "machine", "dgx-a100", "fake catalog machine every node copies")
	flag.StringVar(&o.config, "config", "manifests/scheduler/config.yaml", "the gpupack KubeSchedulerConfiguration")
	flag.IntVar(&o.workers, "workers", 32, "concurrent API writers")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "limit for one node count")
	flag.BoolVar(&o.keepFiles, "keep", false, "keep the work directory (logs)")
	flag.StringVar(&o.schedulerBin, "scheduler-bin", "", "a built scheduler-plugin binary (default: go build ./cmd/scheduler-plugin)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds per node count; the profiles' order alternates")
	flag.StringVar(&o.profileDir, "profile-dir", "", "with GPUPACK_PPROF: save a CPU profile and the metrics of the scheduler per phase here")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 5, "length of each phase's CPU profile (keep it shorter than a phase)")
	klog.InitFlags(nil)
	flag.Parse()
	for _, s := range strings.Split(nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "throughput: bad --nodes entry %q\n", s)
			os.Exit(2)
		}
		o.nodes = append(o.nodes, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "throughput:", err)
		stop()
		os.Exit(1)
	}
}

// result is one profile's figures at one node count.
type result struct {
	nodes     int
	profile   string
	pods      int
	duration  time.Duration
	latencies []time.Duration
	// cpu is the scheduler process's CPU time over the phase (start to
	// the last bind), 0 when it could not be read.
	cpu time.Duration
	// settled is how long the phase waited for an idle scheduler before
	// it started (probe.settle); not part of the phase's figures.
	settled time.Duration
}

func (r result) podsPerSecond() float64 { return float64(r.pods) / r.duration.Seconds() }

// cpuPerPod is the scheduler's CPU time per pod (0 when unknown).
func (r result) cpuPerPod() time.Duration { return r.cpu / time.Duration(r.pods) }

func (r result) p99() time.Duration {
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

func run(ctx context.Context, o options) error {
	schedBin, cleanup := o.schedulerBin, func() {}
	if schedBin != "" {
		// Checked before any control plane starts.
		if fi, err := os.Stat(schedBin); err != nil {
			return fmt.Errorf("--scheduler-bin: %w", err)
		} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("--scheduler-bin=%s: not an executable file", schedBin)
		}
	}
	if schedBin == "" {
		var err error
		if schedBin, cleanup, err = buildScheduler(); err != nil {
			return err
		}
	}
	defer cleanup()
	var results []result
	for _, n := range o.nodes {
		rs, err := runOne(ctx, o, schedBin, n)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		results = append(results, rs...)
	}
	printTable(results)
	return nil
}

func buildScheduler() (string, func(), error) {
	dir, err := os.MkdirTemp("", "gpupack-throughput-")
	if err != nil {
		return "", nil, fmt.Errorf("temp dir: %w", err)
	}
	bin := filepath.Join(dir, "gpupack-scheduler")
	fmt.Fprintln(os.Stderr, "building the scheduler...")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/scheduler-plugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building the scheduler: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

func runOne(parent context.Context, o options, schedBin string, n int) ([]result, error) {
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", fmt.Sprintf("gpupack-throughput-%d-", n))
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	if !o.keepFiles {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(os.Stderr, "[%d nodes] starting etcd and kube-apiserver in %s\n", n, dir)
	cp, err := cluster.Start(ctx, cluster.Config{BinDir: o.binDir, Dir: dir, StartTimeout: 3 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer cp.Stop(context.Background())
	client, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := createNodes(ctx, client, o, n); err != nil {
		return nil, err
	}
	sched, err := startScheduler(ctx, o, schedBin, cp, dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sched.Stop(10 * time.Second) }()
	pr := newProbe(schedBin, o.profileDir, o.profileSeconds)
	if pr.pid == 0 {
		fmt.Fprintln(os.Stderr, "scheduler process not found: no CPU figures")
	}

	// Rounds alternate the order (default, gpupack, gpupack, default, ...)
	// so that neither profile always runs on the fresher apiserver.
	profiles := []string{"default-scheduler", "gpupack-scheduler"}
	total := map[string]*result{}
	for round := range o.rounds {
		order := slices.Clone(profiles)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, profile := range order {
			r, err := measure(ctx, client, o, pr, profile, n, round)
			if err != nil {
				return nil, fmt.Errorf("profile %s: %w", profile, err)
			}
			fmt.Fprintf(os.Stderr, "[%d nodes] round %d %s: %d pods in %s (%.1f pods/s, p99 %s, scheduler CPU %s/pod; started after %s idle wait)\n",
				n, round, profile, r.pods, r.duration.Round(time.Millisecond), r.podsPerSecond(), r.p99().Round(time.Millisecond),
				r.cpuPerPod().Round(time.Microsecond), r.settled.Round(100*time.Millisecond))
			if t, ok := total[profile]; ok {
				t.pods += r.pods
				t.duration += r.duration
				t.cpu += r.cpu
				t.latencies = append(t.latencies, r.latencies...)
			} else {
				total[profile] = &r
			}
		}
	}
	results := make([]result, 0, len(profiles))
	for _, p := range profiles {
		results = append(results, *total[p])
	}
	return results, nil
}

// createNodes creates n nodes carrying the topology annotation of o.machine,
// as the device plugin would publish it, with allocatable GPUs.
func createNodes(ctx context.Context, client kubernetes.Interface, o options, n int) error {
	topo, err := fake.Topology(o.machine)
	if err != nil {
		return err
	}
	ann, err := protocol.EncodeTopology(topo)
	if err != nil {
		return err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("128"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("110"),
		gpuResource:           *resource.NewQuantity(int64(len(topo.GPUs)), resource.DecimalSI),
	}
	start := time.Now()
	err = parallel(ctx, o.workers, n, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("gpu-node-%05d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{"kubernetes.io/hostname": name},
			Annotations: map[string]string{protocol.TopologyAnnotation: ann},
		}}
		created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
		created.Status.Capacity, created.Status.Allocatable = capacity, capacity
		created.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
		if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "[%d nodes] created in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// startScheduler runs one scheduler process with two profiles: ours (from
// o.config) and the default profile.
func startScheduler(ctx context.Context, o options, bin string, cp *cluster.ControlPlane, dir string) (*cluster.Process, error) {
	path, err := cp.WriteSchedulerConfig(o.config, dir, 5000, func(cfg map[string]any) {
		profiles, _ := cfg["profiles"].([]any)
		cfg["profiles"] = append(profiles, map[string]any{"schedulerName": "default-scheduler"})
	})
	if err != nil {
		return nil, err
	}
	args := []string{"--config=" + path, "--secure-port=0", "--v=1"}
	if addr := os.Getenv("GPUPACK_PPROF"); addr != "" {
		// Profiling on an authorised loopback port: /debug/pprof needs no token.
		args = []string{"--config=" + path, "--bind-address=127.0.0.1", "--secure-port=" + addr, "--v=1",
			"--authentication-skip-lookup", "--authorization-always-allow-paths=/debug/pprof,/debug/pprof/*,/healthz,/metrics"}
	}
	p, err := cluster.StartProcess(ctx, dir, "scheduler", bin, args...)
	if err != nil {
		return nil, err
	}
	// Give the informers time to sync before the stream starts.
	select {
	case <-ctx.Done():
		_ = p.Stop(10 * time.Second)
		return nil, ctx.Err()
	case <-time.After(5 * time.Second):
	}
	// A binary that is no scheduler (or refuses its flags) has ended by
	// now: say so instead of waiting --timeout for pods nobody binds.
	if done, err := p.Exited(); done {
		return nil, fmt.Errorf("scheduler %s exited at start (%v): %s", bin, err, p.Tail(2000))
	}
	return p, nil
}

// gpuCounts is the stream's mix: 70% 1-GPU, 20% 2, 10% 4 GPUs (1.5 GPUs a
// pod on average). No 8-GPU pods: a spreading profile strands them, and a
// pod that cannot be placed is no throughput figure.
var gpuCounts = []int{1, 1, 1, 1, 1, 1, 1, 2, 2, 4}

// measure submits o.pods pods (the same stream for both profiles of a round) for one profile and times each from our create
// call to the moment an informer sees it bound.
func measure(ctx context.Context, client kubernetes.Interface, o options, pr *probe, profile string, n, round int) (result, error) {
	ns := fmt.Sprintf("bench-%s-%d", strings.TrimSuffix(profile, "-scheduler"), round)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return result{}, fmt.Errorf("namespace: %w", err)
	}
	var mu sync.Mutex
	created := make(map[string]time.Time, o.pods)
	bound := make(map[string]time.Time, o.pods)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	record := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			mu.Lock()
			if _, seen := bound[p.Name]; !seen {
				bound[p.Name] = time.Now()
			}
			mu.Unlock()
		}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, obj any) { record(obj) },
	}); err != nil {
		return result{}, fmt.Errorf("informer: %w", err)
	}
	stopCh := make(chan struct{})
	defer close(stopCh)
	factory.Start(stopCh)
	factory.WaitForCacheSync(stopCh)

	rng := rand.New(rand.NewPCG(uint64(n), uint64(round)))
	counts := make([]int, o.pods)
	for i := range counts {
		counts[i] = gpuCounts[rng.IntN(len(gpuCounts))]
	}
	settled := pr.settle(ctx)
	cpuStart, cpuOK := pr.cpuSeconds()
	phase := fmt.Sprintf("%d-nodes-round-%d-%s", n, round, profile)
	waitProfile := pr.profile(ctx, phase)
	start := time.Now()
	err := parallel(ctx, o.workers, o.pods, func(ctx context.Context, i int) error {
		pod := benchPod(ns, fmt.Sprintf("pod-%05d", i), profile, counts[i])
		mu.Lock()
		created[pod.Name] = time.Now()
		mu.Unlock()
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return result{}, fmt.Errorf("creating pods: %w", err)
	}
	// Wait for every pod, or until nothing was bound for a minute.
	lastCount, lastChange := 0, time.Now()
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(bound) != lastCount {
			lastCount, lastChange = len(bound), time.Now()
		}
		return len(bound) >= o.pods || time.Since(lastChange) > time.Minute, nil
	})
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		return result{}, fmt.Errorf("only %d of %d pods bound: %w", len(bound), o.pods, err)
	}
	cpuEnd, cpuEndOK := pr.cpuSeconds()
	waitProfile()
	pr.metrics(ctx, phase)
	mu.Lock()
	defer mu.Unlock()
	if len(bound) < o.pods {
		return result{}, fmt.Errorf("only %d of %d pods bound; nothing bound for a minute", len(bound), o.pods)
	}
	r := result{nodes: n, profile: profile, pods: o.pods, settled: settled}
	if cpuOK && cpuEndOK {
		r.cpu = time.Duration((cpuEnd - cpuStart) * float64(time.Second))
	}
	var last time.Time
	for name, t := range bound {
		r.latencies = append(r.latencies, t.Sub(created[name]))
		if t.After(last) {
			last = t
		}
	}
	r.duration = last.Sub(start)
	return r, deletePods(ctx, client, ns)
}

func benchPod(ns, name, profile string, gpus int) *corev1.Pod {
	q := *resource.NewQuantity(int64(gpus), resource.DecimalSI)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			SchedulerName: profile,
			Containers: []corev1.Container{{
				Name: "main", Image: "registry.example/train:latest",
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), gpuResource: q},
					Limits:   corev1.ResourceList{gpuResource: q},
				},
			}},
		},
	}
}

// deletePods frees the GPUs for the next profile.
func deletePods(ctx context.Context, client kubernetes.Interface, ns string) error {
	err := client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("deleting pods: %w", err)
	}
	return wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(l.Items) == 0, nil
	})
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			i = n
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := errors.Join(<-errs); err != nil {
		return err
	}
	return ctx.Err()
}

func printTable(results []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "nodes\tprofile\tpods\tpods/s\tp99 latency\tpods/s vs default\tscheduler CPU/pod\tCPU/pod vs default\t")
	byNodes := map[int]result{}
	for _, r := range results {
		if r.profile == "default-scheduler" {
			byNodes[r.nodes] = r
		}
	}
	for _, r := range results {
		base := byNodes[r.nodes]
		cpuRatio := 0.0
		if base.cpu > 0 {
			cpuRatio = float64(r.cpuPerPod()) / float64(base.cpuPerPod())
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%.1f\t%s\t%.2f\t%s\t%.2f\t\n", r.nodes, r.profile, r.pods, r.podsPerSecond(),
			r.p99().Round(time.Millisecond), r.podsPerSecond()/base.podsPerSecond(), r.cpuPerPod().Round(time.Microsecond), cpuRatio)
	}
	w.Flush()
}
