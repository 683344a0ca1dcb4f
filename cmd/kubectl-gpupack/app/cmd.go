// Package app is the `kubectl gpupack` command tree (cmd/kubectl-gpupack).
package app

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/version"
)

// Output formats of -o.
const (
	outputTable = ""
	outputWide  = "wide"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// options are the flags every subcommand shares.
type options struct {
	config *genericclioptions.ConfigFlags
	output string
	allNS  bool
	// selector is nodes' and frag's -l.
	selector string
	args     argsFlags
	// newClient connects to the cluster (tests: a fake clientset).
	newClient func() (kubernetes.Interface, error)
	genericiooptions.IOStreams
}

// versionLine is --version's line: the binary's name and pkg/version's
// one-line form, as the other binaries print it ("gpupack v0.2.0 (commit
// ...)" there, "kubectl-gpupack v0.2.0 (commit ...)" here).
func versionLine() string {
	return "kubectl-" + version.Get().String()
}

// NewCommand is the `kubectl gpupack` command tree.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newCommand(streams, nil)
}

// newCommand is NewCommand connecting with newClient (nil: to the cluster
// of the kubeconfig flags).
func newCommand(streams genericiooptions.IOStreams, newClient func() (kubernetes.Interface, error)) *cobra.Command {
	o := &options{config: genericclioptions.NewConfigFlags(true), IOStreams: streams, newClient: newClient}
	if o.newClient == nil {
		o.newClient = o.client
	}
	root := &cobra.Command{
		Use:   "kubectl-gpupack",
		Short: "Show the cluster's GPUs as gpupack places them",
		Long: `kubectl gpupack shows the cluster's GPUs as gpupack's scheduler plugin and
device plugin see them, from the annotations they publish (gpupack.io/topology,
gpupack.io/in-use, gpupack.io/devices).

Fragmentation (nodes, frag, explain) is FGD's: the free GPU capacity that the
task types of a workload, by their shares, could not use, in GPUs. The
workload is GPUPack's default prior unless --scheduler-config or --workload
says otherwise; every output names it.

-o json|yaml print one object, apiVersion gpupack.io/v1alpha1, whose kind
ends in List and whose items are the table's rows (docs/kubectl.md).`,
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: false,
		// Help and usage say how it is called, as a kubectl plugin.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl gpupack"},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.config.AddFlags(root.PersistentFlags())
	addLogFlags(root.PersistentFlags())
	root.PersistentFlags().StringVarP(&o.output, "output", "o", outputTable, "output format: json, yaml or wide (default: tables)")
	root.AddCommand(o.nodesCommand(), o.podsCommand(), o.explainCommand(), o.fragCommand())
	return root
}

// addLogFlags adds klog's -v/--v (log verbosity: 6 logs every API request,
// 8 their bodies, as in kubectl) and --vmodule. Defined before cobra adds
// --version, which then takes no shorthand: -v is kubectl's.
func addLogFlags(fs *pflag.FlagSet) {
	gfs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(gfs)
	for _, name := range []string{"v", "vmodule"} {
		if f := gfs.Lookup(name); f != nil {
			fs.AddFlag(pflag.PFlagFromGoFlag(f)) // "v" gets the shorthand -v
		}
	}
}

// nodeFilterHelp says how nodes and frag choose their nodes.
const nodeFilterHelp = `Nodes are those named (each read by name; a missing one is an error), or those
matching -l/--selector (the API server filters them), or all.`

func (o *options) nodesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes [NODE...]",
		Short: "Per GPU node: the GPU map with links, and who holds each GPU, MIG device and replica",
		Long: `Per GPU node: the GPU map with links (nvidia-smi topo -m labels), who holds each
GPU, MIG device and time-shared replica, and the node's fragmentation in GPUs
under the workload named below the maps.

` + nodeFilterHelp,
		Example: `  kubectl gpupack nodes
  kubectl gpupack nodes gpu-node-1 gpu-node-2
  kubectl gpupack nodes -l nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB
  kubectl gpupack nodes --workload '[{kind: whole, count: 8, weight: 1}]'`,
		RunE: func(cmd *cobra.Command, names []string) error {
			ra, c, err := o.nodeCluster(cmd.Context(), names)
			if err != nil {
				return err
			}
			wv := ra.view()
			if o.table() {
				if err := c.WriteNodes(o.Out, ra.workload); err != nil {
					return err
				}
				if len(c.Side.Nodes) == 0 {
					return nil
				}
				return gpuview.WriteWorkload(o.Out, wv, true)
			}
			return o.print(nodeList{typeMeta: newTypeMeta(kindNodeList), Workload: wv, Items: nonNil(c.NodeViews(ra.workload))})
		},
	}
	o.addNodeFlags(cmd)
	return cmd
}

func (o *options) podsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "Per GPU pod: the scheduler's choice, what the kubelet gave, set quality",
		Long: `Per GPU pod: the scheduler's choice (gpupack.io/devices), what the kubelet gave
(the node's gpupack.io/in-use report), whether they match (HANDOFF) and the link
quality of its GPU set.

CHOSEN and GIVEN name devices by the node's GPU indexes: 0-3,6 (whole GPUs),
3::1 (replica 1 of GPU 3), 0[4-7] (the MIG device on slices 4-7 of GPU 0);
an ID the node does not have keeps its UUID, cut to 8 hex digits. GIVEN is
"= chosen" when the kubelet gave exactly the choice. -o wide prints every ID
in full and the GPUS column; -o json|yaml keep the full IDs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			client, err := o.newClient()
			if err != nil {
				return err
			}
			ns := metav1.NamespaceAll
			if !o.allNS {
				if ns, err = o.namespace(); err != nil {
					return err
				}
			}
			nodes, err := listNodes(cmd.Context(), client, nil, "")
			if err != nil {
				return err
			}
			pods, err := listPods(cmd.Context(), client, ns, "")
			if err != nil {
				return err
			}
			c := gpuview.FromObjects(nodes, pods)
			if o.table() {
				return c.WritePodTable(o.Out, c.PodViews(), gpuview.PodTableOptions{Wide: o.output == outputWide})
			}
			return o.print(podList{typeMeta: newTypeMeta(kindPodList), Items: nonNil(c.PodViews())})
		},
	}
	cmd.Flags().BoolVarP(&o.allNS, "all-namespaces", "A", false, "pods of every namespace")
	return cmd
}

// explainLong is explain's help: what the columns mean.
const explainLong = `Node by node, whether the pod fits as the GPUPack plugin's PreFilter and Filter
decide (kube-scheduler's other plugins are not asked), against every pod bound
in the cluster, and why not. The plugin is built with the args of
--scheduler-config's profile (the pod's own when it is a GPUPack profile) or
its defaults; a pod whose spec.schedulerName is not a GPUPack profile is not
scheduled by GPUPack at all: explain says so, and still shows what GPUPack
would do.

FITS: yes; no (the node's current pods keep it out: preemption could help); or
never (the node does not serve the request, or it would not fit even with none
of the node's devices in use).

SCORE is GPUPack's normalized score (0..100) of a fitting node among the
fitting nodes listed: the highest is the node GPUPack prefers (kube-scheduler
may score a sample of the nodes and adds its other score plugins). It ranks by
a low FRAG DELTA + SUPPLY COST and, for a set of several GPUs, its link
quality (SET QUALITY, and its ring against the fitting nodes of the same GPU
family, by their compute capability labels), weighed by the args'
fragmentationWeight and topologyWeight:
  FRAG DELTA   the change of the node's fragmentation, in GPUs, if the pod goes
               there, at the best device choice. Negative: the node's
               fragmentation drops (the pod fills capacity the workload could
               not use): better. Positive: the pod strands free capacity.
  SUPPLY COST  the expected GPUs of future constrained tasks (CPU, memory or
               model) the choice leaves without a host.
  SET QUALITY  the worst multi-GPU set's ring bandwidth over the best the
               node's shape offers: 1 is the best.`

func (o *options) explainCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain POD",
		Short: "Why a GPU pod fits or does not fit each node, as the GPUPack plugin's Filter decides",
		Long:  explainLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.explain(cmd.Context(), args[0])
		},
	}
	o.args.addFlags(cmd.Flags())
	return cmd
}

func (o *options) fragCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "frag [NODE...]",
		Short: "Cluster fragmentation (FGD) by node and by task type",
		Long: `Fragmentation (FGD) by node and by task type of the workload: the free GPU
capacity each task type could not use, weighed by its share, in GPUs. The
workload is named below the tables; --workload or --scheduler-config choose it.

` + nodeFilterHelp + ` TOTAL sums the nodes shown.`,
		Example: `  kubectl gpupack frag
  kubectl gpupack frag --workload '[{kind: whole, count: 8, weight: 1}]'
  kubectl gpupack frag --scheduler-config scheduler-config.yaml -l pool=training`,
		RunE: func(cmd *cobra.Command, names []string) error {
			ra, c, err := o.nodeCluster(cmd.Context(), names)
			if err != nil {
				return err
			}
			v, err := c.Frag(ra.workload)
			if err != nil {
				return err
			}
			wv := ra.view()
			if o.table() {
				if err := gpuview.WriteFrag(o.Out, v); err != nil {
					return err
				}
				return gpuview.WriteWorkload(o.Out, wv, false)
			}
			return o.print(fragList{typeMeta: newTypeMeta(kindFragList), Workload: wv, Total: v.Total, Types: nonNil(v.Types), Items: nonNil(v.Nodes)})
		},
	}
	o.addNodeFlags(cmd)
	return cmd
}

// addNodeFlags adds nodes' and frag's flags: -l and the args flags.
func (o *options) addNodeFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "label selector of the nodes (e.g. -l key1=value1,key2=value2), filtered by the API server")
	o.args.addFlags(cmd.Flags())
}

// table reports whether -o asks for a table.
func (o *options) table() bool { return o.output == outputTable || o.output == outputWide }

func (o *options) client() (kubernetes.Interface, error) {
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

func (o *options) namespace() (string, error) {
	ns, _, err := o.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	return ns, nil
}

// nodeCluster checks nodes' and frag's flags, then reads the nodes named
// (or matching -l, or all) and the pods of every namespace (of the one
// node's only, when one is named), and warns of named nodes that are not
// GPU nodes.
func (o *options) nodeCluster(ctx context.Context, names []string) (*resolvedArgs, *gpuview.Cluster, error) {
	if err := o.checkOutput(); err != nil {
		return nil, nil, err
	}
	if len(names) > 0 && o.selector != "" {
		return nil, nil, fmt.Errorf("name cannot be provided when a selector is specified")
	}
	if o.selector != "" {
		if _, err := labels.Parse(o.selector); err != nil {
			return nil, nil, fmt.Errorf("-l %q: %w", o.selector, err)
		}
	}
	l, err := o.args.load()
	if err != nil {
		return nil, nil, err
	}
	ra, err := l.pick("")
	if err != nil {
		return nil, nil, err
	}
	client, err := o.newClient()
	if err != nil {
		return nil, nil, err
	}
	nodes, err := listNodes(ctx, client, names, o.selector)
	if err != nil {
		return nil, nil, err
	}
	// One node: only its pods matter (its holders' names, its choices).
	podSel := ""
	if len(nodes) == 1 && len(names) == 1 {
		podSel = fields.OneTermEqualSelector("spec.nodeName", nodes[0].Name).String()
	}
	pods, err := listPods(ctx, client, metav1.NamespaceAll, podSel)
	if err != nil {
		return nil, nil, err
	}
	c := gpuview.FromObjects(nodes, pods)
	for _, n := range names {
		if !slices.ContainsFunc(c.Side.Nodes, func(ns gpuview.NodeState) bool { return ns.Name == n }) {
			fmt.Fprintf(o.ErrOut, "warning: node %q is not a GPU node: it has no %s or %s annotation\n", n, protocol.TopologyAnnotation, protocol.InUseAnnotation)
		}
	}
	return ra, c, nil
}

// listNodes reads the nodes named, each by name (in order, once each), or
// lists those matching selector ("" every node).
func listNodes(ctx context.Context, client kubernetes.Interface, names []string, selector string) ([]corev1.Node, error) {
	if len(names) == 0 {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		return nodes.Items, nil
	}
	var out []corev1.Node
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading node %s: %w", name, err)
		}
		out = append(out, *n)
	}
	return out, nil
}

// listPods lists the pods of namespace ns ("": all) matching the field
// selector.
func listPods(ctx context.Context, client kubernetes.Interface, ns, fieldSelector string) ([]corev1.Pod, error) {
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: fieldSelector})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	return pods.Items, nil
}

func (o *options) checkOutput() error {
	switch o.output {
	case outputTable, outputWide, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: want json, yaml or wide (or none for tables)", o.output)
}

// print writes v as JSON or YAML.
func (o *options) print(v any) error {
	return printObject(o.Out, o.output, v)
}

func printObject(w io.Writer, format string, v any) error {
	if format != outputJSON && format != outputYAML {
		return fmt.Errorf("unknown output format %q", format)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", format, err)
	}
	b = tidyNumbers(b)
	if format == outputJSON {
		var indented bytes.Buffer
		if err := json.Indent(&indented, b, "", "  "); err != nil {
			return fmt.Errorf("encoding %s: %w", format, err)
		}
		b = append(indented.Bytes(), '\n')
	} else if b, err = yaml.JSONToYAML(b); err != nil {
		return fmt.Errorf("encoding %s: %w", format, err)
	}
	_, err = w.Write(b)
	return err
}

// explain runs the GPUPack plugin's PreFilter and Filter for the pod on
// every node, against every pod bound in the cluster.
func (o *options) explain(ctx context.Context, name string) error {
	if err := o.checkOutput(); err != nil {
		return err
	}
	l, err := o.args.load()
	if err != nil {
		return err
	}
	client, err := o.newClient()
	if err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading pod %s/%s: %w", ns, name, err)
	}
	schedulerName := pod.Spec.SchedulerName
	if schedulerName == "" {
		schedulerName = corev1.DefaultSchedulerName
	}
	ra, err := l.pick(schedulerName)
	if err != nil {
		return err
	}
	nodes, err := listNodes(ctx, client, nil, "")
	if err != nil {
		return err
	}
	pods, err := listPods(ctx, client, metav1.NamespaceAll, "")
	if err != nil {
		return err
	}
	nodes = withoutPodInUse(nodes, pod)
	fits, err := gpupack.Explain(ctx, ra.args, pod, pointers(nodes), pointers(pods))
	if err != nil {
		return err
	}
	v := fitList{
		typeMeta: newTypeMeta(kindFitList), Pod: ns + "/" + name, BoundTo: pod.Spec.NodeName,
		SchedulerName: schedulerName, GPUPackProfile: slices.Contains(ra.profiles, schedulerName),
		Workload: ra.view(), Items: nonNil(fits),
	}
	if !v.GPUPackProfile {
		v.Note = notGPUPackNote(schedulerName, ra)
	}
	if !o.table() {
		return o.print(v)
	}
	return writeExplain(o.Out, v)
}

// notGPUPackNote says that GPUPack does not schedule a pod of
// schedulerName, which is none of ra's GPUPack profiles.
func notGPUPackNote(schedulerName string, ra *resolvedArgs) string {
	where := "the default GPUPack profile; --scheduler-config reads the scheduler's own"
	if ra.fromConfig {
		where = "the GPUPack profiles of --scheduler-config"
	}
	return fmt.Sprintf("spec.schedulerName is %s, not a GPUPack profile (%s: %s): GPUPack does not schedule this pod; shown is what GPUPack would do",
		schedulerName, strings.Join(ra.profiles, ", "), where)
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// withoutPodInUse is nodes with pod's entries left out of its node's
// in-use report: Explain leaves the pod itself out of the pods it is
// explained against, and its devices on the node it is bound to must not
// hold that node against it either. A report that cannot be read, or does
// not name the pod, is kept as it is; the node objects are copied, not
// changed.
func withoutPodInUse(nodes []corev1.Node, pod *corev1.Pod) []corev1.Node {
	if pod.Spec.NodeName == "" || pod.UID == "" {
		return nodes
	}
	i := slices.IndexFunc(nodes, func(n corev1.Node) bool { return n.Name == pod.Spec.NodeName })
	if i < 0 {
		return nodes
	}
	raw, ok := nodes[i].Annotations[protocol.InUseAnnotation]
	if !ok {
		return nodes
	}
	u, err := protocol.DecodeInUse(raw)
	if err != nil {
		return nodes
	}
	rest := slices.DeleteFunc(slices.Clone(u.Pods), func(p protocol.PodDevices) bool { return p.UID == string(pod.UID) })
	if len(rest) == len(u.Pods) {
		return nodes
	}
	stripped, err := protocol.EncodeInUse(rest)
	if err != nil {
		return nodes
	}
	out := slices.Clone(nodes)
	out[i] = *nodes[i].DeepCopy()
	out[i].Annotations[protocol.InUseAnnotation] = stripped
	return out
}
