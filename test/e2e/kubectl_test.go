package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/test/cluster"
	"github.com/gpupack/gpupack/test/harness"
)

// kubectlGpupack runs the kubectl-gpupack binary with args against the
// control plane with its kubeconfig, as a user would.
func (e *env) kubectlGpupack(bin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--kubeconfig=" + e.cp.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w (stderr: %s)", err, errOut.String())
	}
	return out.String(), nil
}

// kubectl gpupack on the real apiserver, fake GPU nodes with our device
// plugin and our scheduler: nodes shows who holds each GPU, pods shows the
// exact handoff and the set quality, explain says why a too-large pod fits
// nowhere, frag sums by node and task type; -o json and yaml parse as
// gpupack.io/v1alpha1 lists.
func TestKubectlGpupack(t *testing.T) {
	e := newEnv(t)
	bin, err := cluster.BuildGo(e.dir, "kubectl-gpupack", "github.com/gpupack/gpupack/cmd/kubectl-gpupack")
	require.NoError(t, err)
	c := e.startNodes(
		harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100"},
		harness.NodeConfig{Name: "pcie", Machine: "pcie-4gpu-2socket"},
	)
	e.publishedTopology("v100", anyTopology)
	e.publishedTopology("pcie", anyTopology)
	e.startScheduler()

	e.createPod(gpuPod("train", 4, nil))
	e.createPod(gpuPod("infer", 1, nil))
	train := e.admittedExactly(c, "train")
	infer := e.admittedExactly(c, "infer")
	require.Len(t, train, 4)
	require.Len(t, infer, 1)

	// pods: both handed off exactly once the in-use reports carry them.
	var views []gpuview.PodView
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := e.kubectlGpupack(bin, "pods", "-o", "json")
		if err != nil {
			return false, err
		}
		var list struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Items      []gpuview.PodView `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err
		}
		if list.APIVersion != "gpupack.io/v1alpha1" || list.Kind != "GPUPodList" {
			return false, fmt.Errorf("pods -o json: apiVersion %q, kind %q", list.APIVersion, list.Kind)
		}
		views = list.Items
		exact := 0
		for _, v := range views {
			if v.Handoff == gpuview.HandoffExact {
				exact++
			}
		}
		return exact == 2, nil
	})
	require.NoError(t, err, "pods: %+v", views)
	require.Len(t, views, 2)
	require.Equal(t, "default/infer", views[0].Pod)
	require.Equal(t, "default/train", views[1].Pod)
	require.Equal(t, train, views[1].Given)
	require.Len(t, views[1].GPUs, 4)
	// The DGX-1 has an all-NVLink quad; the scheduler takes one (quality 1).
	require.NotNil(t, views[1].Quality)
	require.InDelta(t, 1.0, views[1].Quality.Ratio, 1e-9)

	out, err := e.kubectlGpupack(bin, "nodes")
	require.NoError(t, err)
	t.Logf("kubectl gpupack nodes:\n%s", out)
	require.Regexp(t, `(?m)^node pcie: 4 x \S+, fragmentation \d+\.\d\d GPUs$`, out)
	require.Regexp(t, `(?m)^node v100: 8 x V100-SXM2-16GB, fragmentation \d+\.\d\d GPUs$`, out)
	require.Regexp(t, `(?m)^\s+0\s+V100-SXM2-16GB\s+X\s+NV1\s+NV1\s+NV2\s+NV2\s+SYS\s+SYS\s+SYS\s+0\s+\S+$`, out)
	require.Contains(t, out, "default/train")
	require.Contains(t, out, "default/infer")
	require.Contains(t, out, "\nfragmentation workload: GPUPack's default prior (args workload.prior)\n")
	var nodeList struct {
		Kind  string             `json:"kind"`
		Items []gpuview.NodeView `json:"items"`
	}
	out, err = e.kubectlGpupack(bin, "nodes", "-o", "yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal([]byte(out), &nodeList))
	require.Equal(t, "GPUNodeList", nodeList.Kind)
	nodes := nodeList.Items
	require.Len(t, nodes, 2)
	held := 0
	for _, n := range nodes {
		for _, g := range n.GPUs {
			held += len(g.HeldBy)
		}
	}
	require.Equal(t, 5, held, "4 + 1 GPUs held, each once")

	// explain: 9 GPUs fit no node (8 and 4 GPUs), not even emptied
	// ("never": preemption would not help); 3 GPUs fit both.
	big := gpuPod("big", 9, nil)
	big.Spec.SchedulerName = "no-such-scheduler" // stays pending
	e.createPod(big)
	out, err = e.kubectlGpupack(bin, "explain", "big")
	require.NoError(t, err)
	t.Logf("kubectl gpupack explain big:\n%s", out)
	require.Contains(t, out, "pod default/big: fits 0 of 2 nodes")
	require.Contains(t, out, "\nnote: spec.schedulerName is no-such-scheduler, not a GPUPack profile")
	require.Regexp(t, `(?m)^v100\s+never\s+-\s+-\s+-\s+-\s+gpupack: no 9 free healthy whole GPUs for 9 x nvidia.com/gpu \(\d free\), even with none in use( \(8 free then\))?$`, out)
	require.Regexp(t, `(?m)^pcie\s+never\s+`, out)
	out, err = e.kubectlGpupack(bin, "explain", "infer", "-o", "json")
	require.NoError(t, err)
	var ex struct {
		Kind    string `json:"kind"`
		BoundTo string `json:"boundTo"`
		Items   []struct {
			Node  string `json:"node"`
			Fits  bool   `json:"fits"`
			Score *int64 `json:"score"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ex))
	require.Equal(t, "NodeFitList", ex.Kind)
	require.Len(t, ex.Items, 2)
	top := int64(0)
	for _, it := range ex.Items {
		require.Equal(t, it.Fits, it.Score != nil, "a score for each fitting node, none for others: %+v", it)
		if it.Score != nil {
			top = max(top, *it.Score)
		}
	}
	if ex.Items[0].Fits || ex.Items[1].Fits {
		require.Equal(t, int64(100), top, "the preferred fitting node scores 100")
	}
	require.NotEmpty(t, ex.BoundTo)

	out, err = e.kubectlGpupack(bin, "frag")
	require.NoError(t, err)
	t.Logf("kubectl gpupack frag:\n%s", out)
	require.Regexp(t, `(?m)^TOTAL\s+\d+\.\d\d$`, out)
	require.Regexp(t, `(?m)^whole:1\s+\d+%`, out)
	require.Contains(t, out, "\nfragmentation workload: GPUPack's default prior (args workload.prior)\n")

	// A node by name; -v is the log verbosity, not --version.
	out, err = e.kubectlGpupack(bin, "nodes", "v100", "-v=6")
	require.NoError(t, err)
	require.Contains(t, out, "node v100: ")
	require.NotContains(t, out, "node pcie: ")

	_, err = e.kubectlGpupack(bin, "nodes", "-o", "xml")
	require.ErrorContains(t, err, `unknown output format "xml"`)
	_, err = e.kubectlGpupack(bin, "explain", "no-such-pod")
	require.ErrorContains(t, err, "not found")
}
