// Command scheduler-plugin is kube-scheduler v1.37 with the GPUPack plugin
// (run it as a secondary scheduler; see manifests/scheduler).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
)

func main() {
	command := app.NewSchedulerCommand(app.WithPlugin(gpupack.Name, gpupack.New))
	os.Exit(cli.Run(command))
}
