package cluster

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// WriteSchedulerConfig copies the KubeSchedulerConfiguration at src into
// dir, pointed at this control plane (qps qps) with leader election off;
// edit, when set, changes it further. It returns the new file's path.
func (cp *ControlPlane) WriteSchedulerConfig(src, dir string, qps int, edit func(cfg map[string]any)) (string, error) {
	raw, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", src, err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("parsing %s: %w", src, err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": cp.Kubeconfig, "qps": qps, "burst": 2 * qps}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	if edit != nil {
		edit(cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encoding the scheduler config: %w", err)
	}
	path := filepath.Join(dir, "scheduler-config.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return "", fmt.Errorf("writing the scheduler config: %w", err)
	}
	return path, nil
}
