// Package e2e runs gpupack against a real etcd + kube-apiserver + kwok on
// loopback (test/cluster). The tests skip, saying why, when the control-plane
// binaries could not be built (make test builds them first).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// schedulerBin is the gpupack scheduler built once for the whole package.
var schedulerBin string

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
	schedulerBin = filepath.Join(dir, "gpupack-scheduler")
	build := exec.Command("go", "build", "-o", schedulerBin, "github.com/gpupack/gpupack/cmd/scheduler-plugin")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the scheduler:", err)
		return 1
	}
	return m.Run()
}
