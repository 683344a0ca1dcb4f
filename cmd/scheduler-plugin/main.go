// Command scheduler-plugin is kube-scheduler v1.37 with the GPUPack plugin
// (run it as a secondary scheduler; see manifests/scheduler).
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/version"
)

const component = "scheduler"

// helpPreface puts gpupack first in --help: kube-scheduler's own text follows.
const helpPreface = `gpupack-scheduler is kube-scheduler with the GPUPack framework plugin
(github.com/gpupack/gpupack). Run it as a secondary scheduler: pods opt in with
spec.schedulerName (manifests/scheduler uses gpupack-scheduler). GPUPack picks
the node and the exact GPUs, MIG devices or time-shared replicas of a pod by
NVLink topology and fragmentation (FGD), and binds the pod with its devices.

GPUPack is configured in the KubeSchedulerConfiguration given with --config,
under profiles[].pluginConfig[name=GPUPack].args (apiVersion
gpupack.io/v1, kind GPUPackArgs); see manifests/scheduler/config.yaml for every
arg with its default.

`

func main() {
	if versionAsked(os.Args[1:]) {
		fmt.Println(versionLine())
		return
	}
	command := app.NewSchedulerCommand(app.WithPlugin(gpupack.Name, gpupack.New))
	command.Long = helpPreface + command.Long
	run := command.RunE
	command.RunE = func(cmd *cobra.Command, args []string) error {
		klog.FromContext(cmd.Context()).Info("Starting gpupack scheduler", "version", version.Get())
		return run(cmd, args)
	}
	legacyregistry.Registerer().MustRegister(version.NewCollector(component))
	os.Exit(cli.Run(command))
}

// versionAsked reports whether the arguments ask for the version (kube-scheduler's
// own --version would print only the Kubernetes version it was built with).
func versionAsked(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "--version" || a == "--version=true" || a == "--version=raw"
	})
}

// versionLine is gpupack's version and the kube-scheduler it embeds.
func versionLine() string {
	line := version.Get().String()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				return fmt.Sprintf("%s, kube-scheduler %s", line, d.Version)
			}
		}
	}
	return line
}
