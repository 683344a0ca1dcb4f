// Package e2e runs gpupack against a real etcd + kube-apiserver + kwok on
// loopback (test/cluster). The tests skip, saying why, when the control-plane
// binaries could not be built (make test builds them first).
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/gpupack/gpupack/test/cluster"
)

// schedulerBin and pluginBin are our binaries, built once for the package.
var schedulerBin, pluginBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gpupack-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if schedulerBin, err = cluster.BuildGo(dir, "gpupack-scheduler", "github.com/gpupack/gpupack/cmd/scheduler-plugin"); err == nil {
		pluginBin, err = cluster.BuildGo(dir, "device-plugin", "github.com/gpupack/gpupack/cmd/device-plugin")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}
