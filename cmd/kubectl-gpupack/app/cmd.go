// Package app is the `kubectl gpupack` command tree (cmd/kubectl-gpupack).
package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/version"
)

// Output formats of -o.
const (
	outputTable = ""
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// options are the flags every subcommand shares.
type options struct {
	config *genericclioptions.ConfigFlags
	output string
	allNS  bool
	genericiooptions.IOStreams
}

// NewCommand is the `kubectl gpupack` command tree.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{config: genericclioptions.NewConfigFlags(true), IOStreams: streams}
	root := &cobra.Command{
		Use:   "kubectl-gpupack",
		Short: "Show the cluster's GPUs as gpupack places them",
		Long: `kubectl gpupack shows the cluster's GPUs as gpupack's scheduler plugin and
device plugin see them, from the annotations they publish (gpupack.io/topology,
gpupack.io/in-use, gpupack.io/devices).`,
		Version:       version.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: false,
		// Help and usage say how it is called, as a kubectl plugin.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl gpupack"},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.config.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVarP(&o.output, "output", "o", outputTable, "output format: json or yaml (default: tables)")
	root.AddCommand(o.nodesCommand(), o.podsCommand(), o.explainCommand(), o.fragCommand())
	return root
}

func (o *options) nodesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "Per GPU node: the GPU map with links, and who holds each GPU, MIG device and replica",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.cluster(cmd.Context(), true)
			if err != nil {
				return err
			}
			if o.output == outputTable {
				return c.WriteNodes(o.Out, nil)
			}
			return o.print(c.NodeViews(nil))
		},
	}
}

func (o *options) podsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "Per GPU pod: the scheduler's choice, what the kubelet gave, set quality",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.cluster(cmd.Context(), o.allNS)
			if err != nil {
				return err
			}
			if o.output == outputTable {
				return gpuview.WritePods(o.Out, c.PodViews())
			}
			return o.print(c.PodViews())
		},
	}
	cmd.Flags().BoolVarP(&o.allNS, "all-namespaces", "A", false, "pods of every namespace")
	return cmd
}

func (o *options) explainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "explain POD",
		Short: "Why a GPU pod fits or does not fit each node, as the GPUPack plugin's Filter decides",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.explain(cmd.Context(), args[0])
		},
	}
}

func (o *options) fragCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "frag",
		Short: "Cluster fragmentation (FGD) by node and by task type",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.cluster(cmd.Context(), true)
			if err != nil {
				return err
			}
			v, err := c.Frag(nil)
			if err != nil {
				return err
			}
			if o.output == outputTable {
				return gpuview.WriteFrag(o.Out, v)
			}
			return o.print(v)
		},
	}
}

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

// cluster reads every node and the pods of the namespace (all when
// allNamespaces).
func (o *options) cluster(ctx context.Context, allNamespaces bool) (*gpuview.Cluster, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	client, err := o.client()
	if err != nil {
		return nil, err
	}
	ns := metav1.NamespaceAll
	if !allNamespaces {
		if ns, err = o.namespace(); err != nil {
			return nil, err
		}
	}
	nodes, pods, err := list(ctx, client, ns)
	if err != nil {
		return nil, err
	}
	return gpuview.FromObjects(nodes, pods), nil
}

func list(ctx context.Context, client kubernetes.Interface, ns string) ([]corev1.Node, []corev1.Pod, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	return nodes.Items, pods.Items, nil
}

func (o *options) checkOutput() error {
	switch o.output {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: want json or yaml (or none for tables)", o.output)
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

// explainView is explain's answer as data.
type explainView struct {
	Pod   string            `json:"pod"`
	Node  string            `json:"boundTo,omitempty"`
	Nodes []gpupack.NodeFit `json:"nodes"`
}

// explain runs the GPUPack plugin's PreFilter and Filter for the pod on
// every node, against every pod bound in the cluster.
func (o *options) explain(ctx context.Context, name string) error {
	if err := o.checkOutput(); err != nil {
		return err
	}
	client, err := o.client()
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
	nodes, pods, err := list(ctx, client, metav1.NamespaceAll)
	if err != nil {
		return err
	}
	fits, err := gpupack.Explain(ctx, nil, pod, pointers(nodes), pointers(pods))
	if err != nil {
		return err
	}
	v := explainView{Pod: ns + "/" + name, Node: pod.Spec.NodeName, Nodes: fits}
	if o.output != outputTable {
		return o.print(v)
	}
	return writeExplain(o.Out, v)
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
