// Command device-plugin is gpupack's kubelet device plugin for NVIDIA GPUs:
// whole GPUs, MIG devices and time-shared replicas, health that recovers, and
// a handoff that gives each pod the GPUs the gpupack scheduler chose.
package main

import (
	"os"

	"github.com/gpupack/gpupack/cmd/device-plugin/app"
)

func main() {
	if err := app.NewCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
