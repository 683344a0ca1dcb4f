// Command demo is `make demo`: a real etcd + kube-apiserver + kwok on
// loopback, two identical pools of fake GPU nodes (each node: the real
// kubelet device manager in-process and our device-plugin binary, see
// test/harness), our scheduler binary with the KubeSchedulerConfiguration
// from manifests/ plus the stock default-scheduler profile, the same mixed
// workload submitted to each pool (one per profile), and a report of where
// every pod's devices landed, side by side. Everything it starts is stopped
// at the end, on Ctrl-C and on failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/test/cluster"
	"github.com/gpupack/gpupack/test/harness"
)

type options struct {
	binDir, schedulerBin, pluginBin, config string
	timeout                                 time.Duration
	keep, hold                              bool
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin-dir", ".cache/bin", "etcd, kube-apiserver and kwok (hack/cluster/build.sh)")
	flag.StringVar(&o.schedulerBin, "scheduler-bin", "bin/scheduler-plugin", "our scheduler binary")
	flag.StringVar(&o.pluginBin, "plugin-bin", "bin/device-plugin", "our device-plugin binary")
	flag.StringVar(&o.config, "config", "manifests/scheduler/config.yaml", "the scheduler's KubeSchedulerConfiguration")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the workload to settle")
	flag.BoolVar(&o.keep, "keep", false, "keep the logs directory")
	flag.BoolVar(&o.hold, "hold", false, "after the report, keep the cluster running (for kubectl gpupack) until Ctrl-C")
	klog.InitFlags(nil)
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err := run(ctx, o, os.Stdout)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
}

// outcome is what the demo observed, for its test.
type outcome struct {
	sides []gpuview.Side
	// handoffs: profile -> (pods given exactly the scheduler's devices,
	// pods with a scheduler choice).
	handoffs map[string][2]int
}

func run(ctx context.Context, o options, out io.Writer) (_ *outcome, err error) {
	for _, bin := range []string{o.schedulerBin, o.pluginBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%w (make demo builds it)", err)
		}
	}
	if err := cluster.CheckBinaries(o.binDir); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gpupack-demo-")
	if err != nil {
		return nil, err
	}
	// The in-process kubelets log to a file, not over the report.
	logFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(logFlags)
	for name, value := range map[string]string{
		"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL",
		"one_output": "true", "log_file": filepath.Join(dir, "kubelets.log"),
	} {
		if err := logFlags.Set(name, value); err != nil {
			return nil, err
		}
	}
	defer func() {
		if o.keep || err != nil {
			progress("logs kept in %s", dir)
			return
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			progress("could not remove the logs in %s: %v", dir, rmErr)
			return
		}
		progress("logs in %s removed (go run ./test/demo -keep keeps them; they are kept when the demo fails)", dir)
	}()

	logsNote := "removed at the end; -keep keeps them"
	if o.keep {
		logsNote = "kept"
	}
	progress("starting etcd, kube-apiserver and kwok on 127.0.0.1 (logs in %s, %s)", dir, logsNote)
	cp, err := cluster.Start(ctx, cluster.Config{BinDir: o.binDir, Dir: dir})
	if err != nil {
		return nil, err
	}
	defer cp.Stop(context.Background())
	if err := cp.StartKwok(ctx); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	if err != nil {
		return nil, err
	}

	nodes, err := harness.NewCluster(ctx, harness.Env{Client: client, Kubeconfig: cp.Kubeconfig, PluginBin: o.pluginBin, LogDir: dir})
	if err != nil {
		return nil, err
	}
	defer nodes.Stop(context.Background())
	for _, p := range pools {
		progress("starting pool %q: %d fake GPU nodes, each with the kubelet device manager and our device plugin", p.name, len(shapes))
		for _, s := range shapes {
			cfg := s.config
			cfg.Name = p.name + "-" + s.suffix
			cfg.Labels = map[string]string{poolLabel: p.name}
			if _, err := nodes.AddNode(ctx, cfg); err != nil {
				return nil, err
			}
		}
	}

	progress("starting our scheduler (profiles gpupack-scheduler and default-scheduler)")
	sched, err := startScheduler(ctx, cp, dir, o)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sched.Stop(10 * time.Second) }()

	w := workload()
	progress("submitting the same %d pods to each pool, one after another", len(w))
	if err := submit(ctx, client, w, o.timeout); err != nil {
		return nil, fmt.Errorf("%w\nscheduler log (tail):\n%s", err, sched.Tail(4000))
	}
	progress("waiting for every pod to be placed and admitted, or reported unschedulable")
	sides := make([]gpuview.Side, 0, len(pools))
	handoffs := map[string][2]int{}
	for _, p := range pools {
		side, exact, err := settle(ctx, client, nodes, p, w, o.timeout)
		if err != nil {
			return nil, fmt.Errorf("%w\nscheduler log (tail):\n%s", err, sched.Tail(4000))
		}
		sides = append(sides, side)
		handoffs[p.profile] = exact
	}

	d, err := distribution(requests(w), sharedReplicas)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, header(w))
	if err := gpuview.WriteReportWith(out, sides, gpuview.ReportOptions{
		Workload: d, WorkloadSource: workloadSource, Classes: demoClasses,
	}); err != nil {
		return nil, err
	}
	fmt.Fprintln(out)
	for _, p := range pools {
		if h := handoffs[p.profile]; h[1] > 0 {
			fmt.Fprintf(out, "exact-device handoff (%s): %d of %d pods got from the kubelet exactly the devices the scheduler chose\n", p.profile, h[0], h[1])
		}
	}
	if o.hold {
		progress("cluster kept running until Ctrl-C; try: go run ./cmd/kubectl-gpupack --kubeconfig=%s nodes", cp.Kubeconfig)
		<-ctx.Done()
	}
	progress("stopping everything")
	return &outcome{sides: sides, handoffs: handoffs}, nil
}

// startScheduler runs our scheduler with the manifests' configuration plus
// the stock default profile, pointed at this control plane.
func startScheduler(ctx context.Context, cp *cluster.ControlPlane, dir string, o options) (*cluster.Process, error) {
	path, err := cp.WriteSchedulerConfig(o.config, dir, 200, func(cfg map[string]any) {
		profiles, _ := cfg["profiles"].([]any)
		cfg["profiles"] = append(profiles, map[string]any{"schedulerName": corev1.DefaultSchedulerName})
	})
	if err != nil {
		return nil, err
	}
	return cluster.StartProcess(ctx, dir, "scheduler", o.schedulerBin, "--config="+path, "--secure-port=0", "--v=2")
}

// settle waits until every pod of the pool is admitted on a node or
// reported unschedulable, and returns the pool's side of the report and
// (exact handoffs, pods with a scheduler choice).
func settle(ctx context.Context, client kubernetes.Interface, nodes *harness.Cluster, p pool, w []demoPod, timeout time.Duration) (gpuview.Side, [2]int, error) {
	side := gpuview.Side{Profile: p.profile}
	byNode := map[string][]gpuview.Placement{}
	var exact [2]int
	deadline := time.Now().Add(timeout)
	for _, dp := range w {
		name := p.name + "-" + dp.name
		pod, err := waitSettled(ctx, client, name, time.Until(deadline))
		if err != nil {
			return side, exact, err
		}
		if pod.Spec.NodeName == "" {
			side.Pending = append(side.Pending, name)
			continue
		}
		a, err := nodes.WaitAdmitted(ctx, namespace, name, time.Until(deadline))
		if err != nil {
			return side, exact, err
		}
		if a.Err != nil {
			side.Pending = append(side.Pending, fmt.Sprintf("%s (rejected by the kubelet: %v)", name, a.Err))
			continue
		}
		byNode[pod.Spec.NodeName] = append(byNode[pod.Spec.NodeName], gpuview.Placement{Pod: name, Class: dp.class, Devices: a.Devices})
		if chosen, ok := choice(pod); ok {
			exact[1]++
			if sameDevices(chosen, a.Devices) {
				exact[0]++
			}
		}
	}
	for _, s := range shapes {
		name := p.name + "-" + s.suffix
		topo, err := harness.Topology(ctx, client, name)
		if err != nil {
			return side, exact, err
		}
		side.Nodes = append(side.Nodes, gpuview.NodeState{Name: name, Topo: topo, Pods: byNode[name]})
	}
	return side, exact, nil
}

// waitSettled waits until the pod is bound or reported unschedulable.
func waitSettled(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", name, err)
		}
		if pod.Spec.NodeName != "" || unschedulable(pod) {
			return pod, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s neither placed nor reported unschedulable: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func unschedulable(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// choice is the scheduler's device choice written on the pod.
func choice(pod *corev1.Pod) (map[string][]string, bool) {
	s, ok := pod.Annotations[protocol.DevicesAnnotation]
	if !ok {
		return nil, false
	}
	d, err := protocol.DecodeDevices(s)
	if err != nil {
		return nil, false
	}
	return d.Resources, true
}

// sameDevices reports whether the kubelet gave the scheduler's devices. The
// replicas of one time-shared GPU are interchangeable (the container sees the
// parent GPU either way), so a replica counts as its GPU: two pods that each
// hold one replica of GPU g and trade replica numbers got what was chosen.
func sameDevices(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for r, ids := range a {
		if !slices.Equal(devicesOf(ids), devicesOf(b[r])) {
			return false
		}
	}
	return true
}

// devicesOf is ids with each replica ID replaced by its GPU's UUID, sorted.
func devicesOf(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		if r, err := deviceid.ParseReplica(id); err == nil {
			out[i] = r.UUID
		}
	}
	slices.Sort(out)
	return out
}
