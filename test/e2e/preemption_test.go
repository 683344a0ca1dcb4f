package e2e

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Issue 12, item 2, on the real apiserver with kube-scheduler's
// DefaultPreemption. DGX-1 V100: "high" (priority 1000) holds GPUs 0,1,2;
// "low" (priority 0) holds 4,6; free {3,5,7} has no 2-lane pair. A
// 2-GPU pod of priority 1000 with topology: required must evict "low" and
// bind to a 2-lane pair (it used to stay Pending: the victim was spared).
func TestPreemptionFreesAVictimsGPUs(t *testing.T) {
	e := newEnv(t)
	topo := e.addNode("dgx1", "dgx-1-v100")
	ctx := context.Background()
	for name, value := range map[string]int32{"high": 1000, "low": 0} {
		_, err := e.client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	e.createPod(holding(t, "holder-high", "dgx1", "high", gpuUUIDs(topo, 0, 1, 2)))
	e.createPod(holding(t, "holder-low", "dgx1", "low", gpuUUIDs(topo, 4, 6)))
	e.startScheduler()

	pre := gpuPod("pre", 2, map[string]string{"gpupack.io/topology": "required"})
	pre.Spec.PriorityClassName = "high"
	e.createPod(pre)
	bound := e.waitBound("pre")
	_, err := e.client.CoreV1().Pods("default").Get(ctx, "holder-low", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the low-priority pod is evicted: %v", err)
	_, err = e.client.CoreV1().Pods("default").Get(ctx, "holder-high", metav1.GetOptions{})
	require.NoError(t, err, "the high-priority pod stays")
	g := indexOf(t, topo, devicesOf(t, bound)).Indexes()
	require.Len(t, g, 2)
	require.Equal(t, 2, topology.DGX1Lanes[g[0]][g[1]], "a 2-lane pair, got GPUs %v", g)
}

// holding is a pod already running on node with the devices ids (as our
// scheduler would have bound it), of priority class prio.
func holding(t *testing.T, name, node, prio string, ids []string) *corev1.Pod {
	raw, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{gpuResource: ids}})
	require.NoError(t, err)
	p := gpuPod(name, len(ids), map[string]string{protocol.DevicesAnnotation: raw})
	p.Spec.NodeName = node
	p.Spec.PriorityClassName = prio
	return p
}

// gpuUUIDs are the UUIDs of the GPUs at idx, in idx's order.
func gpuUUIDs(topo *topology.Node, idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, topo.GPUs[i].UUID)
	}
	return out
}

// Issue 12, item 4, on the real apiserver: the scheduler talks to it
// through a proxy on loopback that lets the Binding of pod "p" through and
// then, once the apiserver has applied it, answers the scheduler with an
// error (as a connection lost after the write would). The scheduler runs
// Unreserve; p runs on its 4 GPUs and must keep them: a 1-GPU pod after it
// must stay unschedulable. The node advertises 8 GPUs to kube-scheduler
// (its topology has 4), so that only GPUPack's device accounting stands
// between the second pod and p's GPUs.
func TestBindErrorAfterTheApiserverAppliedIt(t *testing.T) {
	e := newEnv(t)
	topo := e.addNode("pcie", "pcie-4gpu-2socket")
	require.Len(t, topo.GPUs, 4)
	e.setAllocatableGPUs("pcie", 8)
	var failed atomic.Int32
	proxy := e.failingBindProxy("p", &failed)
	e.startSchedulerVia(proxy)

	e.createPod(gpuPod("p", 4, nil))
	p := e.waitBound("p")
	require.Len(t, devicesOf(t, p), 4)
	require.Eventually(t, func() bool { return failed.Load() > 0 }, 30*time.Second, 50*time.Millisecond, "the bind error was injected")

	e.createPod(gpuPod("q", 1, nil))
	e.requireUnschedulable("q")
}

// setAllocatableGPUs sets the node's capacity and allocatable of
// nvidia.com/gpu.
func (e *env) setAllocatableGPUs(node string, n int64) {
	ctx := context.Background()
	require.NoError(e.t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		nd, err := e.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		q := *resource.NewQuantity(n, resource.DecimalSI)
		nd.Status.Capacity[gpuResource], nd.Status.Allocatable[gpuResource] = q, q
		_, err = e.client.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{})
		return err == nil, nil // retry on conflict with kwok's heartbeat
	}))
}

// failingBindProxy serves the apiserver's API on loopback over TLS (a
// self-signed certificate the kubeconfig trusts) and returns a kubeconfig
// for it. It must be TLS: clientcmd reads a kubeconfig's user credentials
// only for a TLS server, so over plain HTTP the scheduler was
// system:anonymous, could list nothing and never bound p (the test's old
// failure, "pod p not bound with devices"). The Binding of pod victim goes through to
// the apiserver; once it answered, and the watchers had a moment to see
// the pod bound, the proxy answers 500 instead (once), counting in failed.
func (e *env) failingBindProxy(victim string, failed *atomic.Int32) string {
	t := e.t
	target, err := url.Parse(e.cp.URL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // watches stream
	//nolint:gosec // the test's self-signed loopback apiserver
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/pods/"+victim+"/binding") &&
			resp.StatusCode < 300 && failed.Load() == 0 {
			failed.Add(1)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			time.Sleep(time.Second) // the scheduler's informer sees the pod bound first
			body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected: connection reset after the write","code":500}`
			resp.StatusCode = http.StatusInternalServerError
			resp.Status = "500 Internal Server Error"
			resp.Body = io.NopCloser(strings.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Type", "application/json")
			resp.Header.Del("Content-Length")
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(rp) // listens on 127.0.0.1
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	kc := clientcmdapi.NewConfig()
	kc.Clusters["proxy"] = &clientcmdapi.Cluster{Server: srv.URL, CertificateAuthorityData: ca}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: e.cp.AdminToken}
	kc.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "admin"}
	kc.CurrentContext = "proxy"
	path := filepath.Join(e.dir, "proxy.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}
