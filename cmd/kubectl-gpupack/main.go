// Command kubectl-gpupack is `kubectl gpupack`, a kubectl plugin that shows
// the cluster's GPUs as gpupack sees them: each node's GPU map with links
// and who holds each GPU, MIG device and replica (nodes), each GPU pod's
// scheduler choice against what the kubelet gave (pods), why a pending pod
// fits no node (explain), and fragmentation by node and task type (frag).
// It reads the cluster with the user's kubeconfig, as kubectl does.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gpupack/gpupack/cmd/kubectl-gpupack/app"
)

func main() {
	cmd := app.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
