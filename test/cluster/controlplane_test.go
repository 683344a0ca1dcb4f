package cluster

import (
	"context"
	"errors"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlaneRunsFakeNodesAndStopsEveryProcess(t *testing.T) {
	cp := StartForTest(t)
	client, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	ctx := context.Background()

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu-node-0", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}},
		Status: corev1.NodeStatus{Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourcePods: resource.MustParse("110"),
		}},
	}
	_, err = client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	require.NoError(t, err)
	// kwok marks the node Ready.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(t, err, "kwok did not make the node Ready")

	// An unknown token is refused: token auth is on.
	bad, err := kubernetes.NewForConfig(cp.RESTConfig("not-a-token"))
	require.NoError(t, err)
	_, err = bad.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.Error(t, err)

	pids := make([]int, 0, len(cp.procs))
	for _, p := range cp.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	cp.Stop(ctx)
	for _, pid := range pids {
		// Signal 0 probes for existence: ESRCH once the process is gone and reaped.
		require.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), "process %d still running", pid)
	}
}

// The apiserver reports go.mod's Kubernetes version, as a real cluster's
// does: hack/cluster/build.sh stamps it as Kubernetes' release builds are
// stamped (unstamped it says v0.0.0-master, against which helm cannot check
// a chart's kubeVersion).
func TestAPIServerReportsItsKubernetesVersion(t *testing.T) {
	want, err := KubernetesVersion()
	require.NoError(t, err)
	cp := StartForTest(t)
	dc, err := discovery.NewDiscoveryClientForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	v, err := dc.ServerVersion()
	require.NoError(t, err)
	require.Equal(t, want, v.GitVersion, "the apiserver's version (a binary built before the stamp: rerun hack/cluster/build.sh kube-apiserver)")
	m := regexp.MustCompile(`^v([0-9]+)\.([0-9]+)\.`).FindStringSubmatch(want)
	require.NotNil(t, m, "go.mod's k8s.io/kubernetes %s", want)
	require.Equal(t, []string{m[1], m[2]}, []string{v.Major, v.Minor}, "major and minor")
	require.Equal(t, "archive", v.GitTreeState, "built from the module proxy's archive of the tag")
}
