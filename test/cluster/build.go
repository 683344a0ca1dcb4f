package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildGo builds the Go main package pkg (an import path) into dir/name and
// returns the binary's path; the build's output goes to stderr.
func BuildGo(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", out, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", pkg, err)
	}
	return out, nil
}

// KubernetesVersion is the version of k8s.io/kubernetes in go.mod: the
// kube-apiserver hack/cluster/build.sh builds, and the version it stamps
// into it (what the apiserver's /version reports).
func KubernetesVersion() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m k8s.io/kubernetes: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
