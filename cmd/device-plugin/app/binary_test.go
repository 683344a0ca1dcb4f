package app

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// The tests in this file run the device-plugin binary itself, built once
// per test process, as an admin would run it: flags, environment, config
// files.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func deviceInfoBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gpupack-device-plugin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "device-plugin")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/gpupack/gpupack/cmd/device-plugin").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	require.NoError(t, buildErr, binPath)
	return binPath
}

// repoRoot is the repository root (this file is cmd/device-plugin/app).
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// runBinary runs the binary with args and env (on top of a clean
// environment, so the caller's variables do not leak in) and returns its
// stdout, stderr and exit code.
func runBinary(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(deviceInfoBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errb.String(), 0
}

// advertised parses the RESOURCE/DEVICES table --print-topology ends with.
func advertised(t *testing.T, stdout string) map[string]int {
	t.Helper()
	out := map[string]int{}
	in := false
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "RESOURCE" && f[1] == "DEVICES" {
			in = true
			continue
		}
		if in && len(f) == 2 {
			n, err := strconv.Atoi(f[1])
			require.NoError(t, err, sc.Text())
			out[f[0]] = n
		}
	}
	require.True(t, in, "no resource table in:\n%s", stdout)
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestNVIDIAFlagsAndEnvThroughTheBinary: NVIDIA's flag and variable names,
// precedence flag > environment > file, and bad values as errors naming
// their source (MIG_STRATEGY=bogus and CONFIG_FILE=/nonexistent exited 0).
func TestNVIDIAFlagsAndEnvThroughTheBinary(t *testing.T) {
	single := writeFile(t, "version: v1\nflags: {migStrategy: single}\n")
	sliced := writeFile(t, "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n")
	// GPU 0 of the DGX A100 with two MIG devices; the other 7 whole.
	mig := []string{"--fake", "dgx-a100", "--fake-mig", "0=3g.20gb+1g.5gb", "--print-topology"}
	whole := []string{"--fake", "dgx-a100", "--print-topology"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    map[string]int
		wantErr string
	}{
		{"defaults", nil, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"MIG_STRATEGY", map[string]string{"MIG_STRATEGY": "mixed"}, mig,
			map[string]int{"nvidia.com/gpu": 7, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-1g.5gb": 1}, ""},
		{"MIG_STRATEGY bogus", map[string]string{"MIG_STRATEGY": "bogus"}, whole, nil, `MIG_STRATEGY=bogus): flags.migStrategy: Unsupported value: "bogus"`},
		{"flag beats env", map[string]string{"MIG_STRATEGY": "mixed"}, append([]string{"--mig-strategy", "none"}, mig...),
			map[string]int{"nvidia.com/gpu": 8}, ""},
		// The file says single (which fails: 1 of 8 GPUs has MIG); the
		// variable wins over the file.
		{"env beats file", map[string]string{"MIG_STRATEGY": "mixed", "CONFIG_FILE": single}, mig,
			map[string]int{"nvidia.com/gpu": 7, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-1g.5gb": 1}, ""},
		{"file alone", map[string]string{"CONFIG_FILE": single}, mig, nil, "MIG strategy single: 1 of 8 GPUs have MIG enabled"},
		{"CONFIG_FILE", map[string]string{"CONFIG_FILE": sliced}, whole, map[string]int{"nvidia.com/gpu": 32}, ""}, // 8 x 4
		{"--config-file", nil, append([]string{"--config-file", sliced}, whole...), map[string]int{"nvidia.com/gpu": 32}, ""},
		{"--config alias", nil, append([]string{"--config", sliced}, whole...), map[string]int{"nvidia.com/gpu": 32}, ""},
		{"--config-file beats CONFIG_FILE", map[string]string{"CONFIG_FILE": "/nonexistent"}, append([]string{"--config-file", sliced}, whole...),
			map[string]int{"nvidia.com/gpu": 32}, ""},
		{"CONFIG_FILE missing", map[string]string{"CONFIG_FILE": "/nonexistent"}, whole, nil, "open /nonexistent: no such file or directory"},
		{"FAIL_ON_INIT_ERROR", map[string]string{"FAIL_ON_INIT_ERROR": "false"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"FAIL_ON_INIT_ERROR bad", map[string]string{"FAIL_ON_INIT_ERROR": "sometimes"}, whole, nil, `FAIL_ON_INIT_ERROR=sometimes: "sometimes" is not a boolean`},
		{"--fail-on-init-error bad", nil, append([]string{"--fail-on-init-error=maybe"}, whole...), nil, `--fail-on-init-error=maybe: "maybe" is not a boolean`},
		{"PASS_DEVICE_SPECS bad", map[string]string{"PASS_DEVICE_SPECS": "yes"}, whole, nil, `PASS_DEVICE_SPECS=yes: "yes" is not a boolean`},
		{"NVIDIA_DRIVER_ROOT", map[string]string{"NVIDIA_DRIVER_ROOT": "/run/nvidia/driver"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"--driver-root", nil, append([]string{"--driver-root", "/run/nvidia/driver"}, whole...), map[string]int{"nvidia.com/gpu": 8}, ""},
		{"DEVICE_LIST_STRATEGY list", map[string]string{"DEVICE_LIST_STRATEGY": "cdi-cri,envvar"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		// A chart that renders the variable empty chose nothing: the default.
		{"DEVICE_LIST_STRATEGY empty", map[string]string{"DEVICE_LIST_STRATEGY": ""}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"DEVICE_LIST_STRATEGY bad", map[string]string{"DEVICE_LIST_STRATEGY": "envvar,bogus"}, whole, nil, `flags.plugin.deviceListStrategy[1]: Unsupported value: "bogus"`},
		{"DEVICE_ID_STRATEGY", map[string]string{"DEVICE_ID_STRATEGY": "index"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"DEVICE_ID_STRATEGY bad", map[string]string{"DEVICE_ID_STRATEGY": "serial"}, whole, nil, `flags.plugin.deviceIDStrategy: Unsupported value: "serial"`},
		{"DEVICE_DISCOVERY_STRATEGY tegra", map[string]string{"DEVICE_DISCOVERY_STRATEGY": "tegra"}, whole, nil, "through NVML only"},
		{"DP_DISABLE_HEALTHCHECKS", map[string]string{"DP_DISABLE_HEALTHCHECKS": "all"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"DP_DISABLE_HEALTHCHECKS bad", map[string]string{"DP_DISABLE_HEALTHCHECKS": "most"}, whole, nil, "DP_DISABLE_HEALTHCHECKS=\"most\": want all, xids or XID numbers"},
		{"DP_ENABLE_HEALTHCHECKS", map[string]string{"DP_ENABLE_HEALTHCHECKS": "31,43"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"DP_ENABLE_HEALTHCHECKS bad", map[string]string{"DP_ENABLE_HEALTHCHECKS": "x"}, whole, nil, "DP_ENABLE_HEALTHCHECKS=\"x\": want all, xids or XID numbers"},
		{"NVIDIA_MIG_MONITOR_DEVICES is the runtime's", map[string]string{"NVIDIA_MIG_MONITOR_DEVICES": "all"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"GDS_ENABLED", map[string]string{"GDS_ENABLED": "true", "MOFED_ENABLED": "true"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"GDS_ENABLED bad", map[string]string{"GDS_ENABLED": "on"}, whole, nil, `GDS_ENABLED=on: "on" is not a boolean`},
		{"KUBELET_SOCKET bad", map[string]string{"KUBELET_SOCKET": "/var/lib/kubelet/device-plugins/other.sock"}, whole, nil, "want a path ending in /kubelet.sock"},
		{"RESOURCE_PREFIX nvidia.com", map[string]string{"RESOURCE_PREFIX": "nvidia.com"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"RESOURCE_PREFIX other", map[string]string{"RESOURCE_PREFIX": "example.com"}, whole, nil, "RESOURCE_PREFIX=example.com: gpupack advertises under nvidia.com/ only"},
		// NVIDIA's --resource-name-prefix / RESOURCE_NAME_PREFIX: its
		// default loads, another prefix is refused (NVIDIA would
		// advertise <prefix>/gpu, gpupack nvidia.com/gpu).
		{"RESOURCE_NAME_PREFIX nvidia.com", map[string]string{"RESOURCE_NAME_PREFIX": "nvidia.com"}, whole, map[string]int{"nvidia.com/gpu": 8}, ""},
		{"--resource-name-prefix nvidia.com", nil, append([]string{"--resource-name-prefix", "nvidia.com"}, whole...), map[string]int{"nvidia.com/gpu": 8}, ""},
		{"RESOURCE_NAME_PREFIX other", map[string]string{"RESOURCE_NAME_PREFIX": "example.com"}, whole, nil,
			`RESOURCE_NAME_PREFIX=example.com): flags.resourceNamePrefix: Unsupported value: "example.com"`},
		{"--resource-name-prefix other", nil, append([]string{"--resource-name-prefix=example.com"}, whole...), nil,
			`flags.resourceNamePrefix: Unsupported value: "example.com"`},
		{"unknown flag", nil, append([]string{"--mig-stratgy", "none"}, whole...), nil, "unknown flag: --mig-stratgy"},
		{"replica policy alias env", map[string]string{"GPUPACK_REPLICA_POLICY": "diagonal"}, whole, nil, `sharing.timeSlicing.replicaPolicy: Unsupported value: "diagonal"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runBinary(t, tc.env, tc.args...)
			if tc.wantErr != "" {
				require.NotZero(t, code, "stdout:\n%s", stdout)
				// klog quotes the error: unquote before comparing.
				require.Contains(t, strings.ReplaceAll(strings.ReplaceAll(stderr, `\\`, `\`), `\"`, `"`), tc.wantErr)
				return
			}
			require.Zero(t, code, stderr)
			require.Equal(t, tc.want, advertised(t, stdout))
		})
	}
}

// TestVersionFlag: --version prints the version and exits 0.
func TestVersionFlag(t *testing.T) {
	stdout, _, code := runBinary(t, nil, "--version")
	require.Zero(t, code)
	require.Contains(t, stdout, "gpupack ")
}

// TestCDISpecThroughTheBinary: the running plugin, told by NVIDIA's
// variables to use CDI with the driver under /run/nvidia/driver-like
// root, writes the node's CDI spec with every device node under that root.
func TestCDISpecThroughTheBinary(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "dev", "nvidiactl"), nil, 0o644))
	specDir := t.TempDir()
	pluginDir, err := os.MkdirTemp("", "gpupack-cdi-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(pluginDir) })
	cmd := exec.Command(deviceInfoBinary(t), "--fake", "dgx-h100", "--device-plugin-dir", pluginDir,
		"--cdi-spec-dir", specDir, "--metrics-bind-address", "")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DEVICE_LIST_STRATEGY=cdi-cri", "DEVICE_ID_STRATEGY=index", "NVIDIA_DRIVER_ROOT=" + root}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	specPath := filepath.Join(specDir, "k8s.device-plugin.nvidia.com-gpu.json")
	require.Eventually(t, func() bool { _, err := os.Stat(specPath); return err == nil }, 30*time.Second, 100*time.Millisecond, stderr.String())
	spec, err := cdi.ReadSpec(specPath, 0)
	require.NoError(t, err, "the CDI library reads and validates it")
	// 8 GPUs named by index, and all.
	var names []string
	for _, d := range spec.Devices {
		names = append(names, d.Name)
		for _, n := range d.ContainerEdits.DeviceNodes {
			require.Equal(t, filepath.Join(root, n.Path), n.HostPath)
		}
	}
	require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "all"}, names)
	require.Len(t, spec.ContainerEdits.DeviceNodes, 1, "only the control node present under the root")
	require.Equal(t, filepath.Join(root, "dev", "nvidiactl"), spec.ContainerEdits.DeviceNodes[0].HostPath)
}

// printedLabels parses --print-labels' key=value lines.
func printedLabels(t *testing.T, stdout string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		out[k] = v
	}
	return out
}

// GFD's labels through the binary, per sharing and MIG mode, as GFD
// documents them: the config file and NVIDIA's variables choose the mode,
// --print-labels prints what the publisher applies.
func TestLabelsThroughTheBinary(t *testing.T) {
	var all7 []string
	for i := range 8 {
		all7 = append(all7, strconv.Itoa(i)+"="+strings.Repeat("1g.5gb+", 6)+"1g.5gb")
	}
	machineRoot := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(machineRoot, "machine-type"), []byte("My Box 2U\n"), 0o600))
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		config string
		want   map[string]string // "" : absent
	}{
		{"whole T4s", nil, []string{"--fake=pcie-4gpu-2socket"}, "", map[string]string{
			"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.replicas": "1",
			"nvidia.com/gpu.sharing-strategy": "none", "nvidia.com/gpu.family": "turing", "nvidia.com/gpu.machine": "PowerEdge-R740",
			"nvidia.com/gpu.mode": "compute", "nvidia.com/mig.strategy": "", "gpupack.io/nvlink": "none",
		}},
		{"time-slicing", nil, []string{"--fake=pcie-4gpu-2socket"}, "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}", map[string]string{
			"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.replicas": "4",
			"nvidia.com/gpu.sharing-strategy": "time-slicing",
		}},
		{"time-slicing renameByDefault", nil, []string{"--fake=pcie-4gpu-2socket"}, "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: gpu, replicas: 4}]}}", map[string]string{
			"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "time-slicing",
		}},
		{"MPS", nil, []string{"--fake=pcie-4gpu-2socket"}, "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}", map[string]string{
			"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "mps",
			"nvidia.com/mps.capable": "true",
		}},
		{"MPS renameByDefault", nil, []string{"--fake=pcie-4gpu-2socket"}, "sharing: {mps: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2}]}}", map[string]string{
			"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "mps",
			"nvidia.com/mps.capable": "true",
		}},
		{"MIG single by MIG_STRATEGY", map[string]string{"MIG_STRATEGY": "single"}, []string{"--fake=dgx-a100", "--fake-mig=" + strings.Join(all7, ",")}, "", map[string]string{
			"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.count": "56", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb",
			"nvidia.com/gpu.memory": "4864", "nvidia.com/gpu.multiprocessors": "14", "nvidia.com/gpu.replicas": "1",
		}},
		{"MIG mixed by flag", nil, []string{"--fake=dgx-a100", "--fake-mig=0=3g.20gb+1g.5gb", "--mig-strategy=mixed"}, "", map[string]string{
			"nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.count": "8", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
			"nvidia.com/mig-3g.20gb.count": "1", "nvidia.com/mig-1g.5gb.count": "1", "nvidia.com/mig-3g.20gb.slices.gi": "3",
		}},
		{"flags.gfd: no timestamp, another machine file", nil, []string{"--fake=dgx-1-v100", "--host-root=" + machineRoot},
			"flags: {gfd: {noTimestamp: true, machineTypeFile: /machine-type}}", map[string]string{
				"nvidia.com/gfd.timestamp": "", "nvidia.com/gpu.machine": "My-Box-2U",
				"nvidia.com/gpu.mode": "unknown", // no PCI class files under that root
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--print-labels"}, tc.args...)
			if tc.config != "" {
				args = append(args, "--config-file="+writeFile(t, "version: v1\n"+tc.config))
			}
			stdout, stderr, code := runBinary(t, tc.env, args...)
			require.Zero(t, code, stderr)
			got := printedLabels(t, stdout)
			for k, v := range tc.want {
				if v == "" {
					require.NotContains(t, got, k)
					continue
				}
				require.Equal(t, v, got[k], k)
			}
			if _, ok := tc.want["nvidia.com/gfd.timestamp"]; !ok {
				ts, err := strconv.ParseInt(got["nvidia.com/gfd.timestamp"], 10, 64)
				require.NoError(t, err)
				require.InDelta(t, time.Now().Unix(), ts, 120)
			}
		})
	}
}

// A relative --host-root is refused, naming the flag.
func TestRelativeHostRootRefused(t *testing.T) {
	_, stderr, code := runBinary(t, nil, "--print-labels", "--fake=dgx-a100", "--host-root=sys-copy")
	require.NotZero(t, code)
	require.Contains(t, stderr, "--host-root=sys-copy: must be an absolute path")
}

// A relative --cdi-spec-dir is refused before the plugin starts, naming the
// flag: the runtime would never read a spec written under the plugin's
// working directory.
func TestRelativeCDISpecDirRefused(t *testing.T) {
	_, stderr, code := runBinary(t, nil, "--fake=dgx-a100", "--cdi-spec-dir=relative/cdi", "--device-plugin-dir="+t.TempDir())
	require.NotZero(t, code)
	require.Contains(t, stderr, "--cdi-spec-dir=relative/cdi: must be an absolute path")
}

// lockedBuffer is a process's output read while the process runs (the
// exec package copies into it from a goroutine of its own).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
