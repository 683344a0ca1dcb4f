package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
