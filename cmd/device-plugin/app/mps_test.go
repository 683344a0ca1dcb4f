package app

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/mps/mpstest"
)

// TestMPSThroughTheBinary: the running plugin, with an NVIDIA MPS config,
// MPS_ROOT and --mps-control-binary, starts one control daemon per GPU of
// the 4 x T4 box with NVIDIA's settings, and quits them all on SIGINT.
func TestMPSThroughTheBinary(t *testing.T) {
	ctl := mpstest.New(t)
	root := t.TempDir()
	pluginDir, err := os.MkdirTemp("", "gpupack-mps-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(pluginDir) })
	cfg := writeFile(t, "version: v1\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n")
	cmd := exec.Command(deviceInfoBinary(t), "--fake", "pcie-4gpu-2socket", "--config-file", cfg, "--device-plugin-dir", pluginDir,
		"--metrics-bind-address", "", "--mps-control-binary", ctl.Binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MPS_ROOT=" + root}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}
	})
	gpus := func() map[string][]string {
		out := map[string][]string{}
		for _, l := range ctl.Record(t) {
			if u, rest, ok := strings.Cut(l, ": "); ok {
				out[u] = append(out[u], rest)
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		g := gpus()
		if len(g) != 4 {
			return false
		}
		for _, rec := range g {
			if len(rec) < 4 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, stderr.String())
	for u, rec := range gpus() {
		// 15360 MiB / 4 = 3840 MiB; 100 / 4 = 25 %; under MPS_ROOT.
		require.Equal(t, []string{
			"-d pipe=" + root + "/" + u + "/pipe log=" + root + "/" + u + "/log",
			"set_default_device_pinned_mem_limit " + u + " 3840M",
			"set_default_active_thread_percentage 25",
			"get_default_active_thread_percentage",
		}, rec[:4])
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), stderr.String())
	stopped = true
	for u, rec := range gpus() {
		require.Equal(t, "quit", rec[len(rec)-1], "daemon of %s quit", u)
	}
}

// TestMPSMissingBinaryThroughTheBinary: an MPS config without the control
// program is a clear error and a non-zero exit, not a plugin serving
// replicas nobody runs a daemon for; --print-topology does not need it.
func TestMPSMissingBinaryThroughTheBinary(t *testing.T) {
	cfg := writeFile(t, "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}\n")
	pluginDir := t.TempDir()
	_, stderr, code := runBinary(t, nil, "--fake", "pcie-4gpu-2socket", "--config", cfg, "--device-plugin-dir", pluginDir,
		"--metrics-bind-address", "", "--mps-control-binary", "/nonexistent/nvidia-cuda-mps-control")
	require.NotZero(t, code)
	require.Contains(t, stderr, `MPS control binary \"/nonexistent/nvidia-cuda-mps-control\"`)
	stdout, stderr, code := runBinary(t, nil, "--fake", "pcie-4gpu-2socket", "--config", cfg, "--print-topology",
		"--mps-control-binary", "/nonexistent/nvidia-cuda-mps-control")
	require.Zero(t, code, stderr)
	require.Equal(t, map[string]int{"nvidia.com/gpu": 8}, advertised(t, stdout)) // 4 x 2
}
