package manifests

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/gpupack/gpupack/test/cluster"
)

// hardened is the Pod Security Standard the test apiservers enforce (and
// warn about) in every namespace that does not label its own, kube-system
// included: what a hardened cluster sets, and what the manifests and the
// chart must deploy into without a refused pod or a warning.
const hardened = "restricted"

// startHardened starts a control plane whose PodSecurity admission defaults
// to the hardened level.
func startHardened(t *testing.T) *cluster.ControlPlane {
	t.Helper()
	return cluster.StartForTestWith(t, cluster.Config{PodSecurity: hardened})
}

// warningRecorder keeps the apiserver's Warning headers (deprecated APIs,
// unknown or duplicate fields, PodSecurity "would violate"), what kubectl
// and helm print as "Warning:".
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings recorded since the last take.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// podTemplates returns the pod template of every DaemonSet and Deployment
// in objs as the Pod its controller would create, keyed by kind/name.
func podTemplates(t *testing.T, objs []*unstructured.Unstructured) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	for _, o := range objs {
		var tmpl corev1.PodTemplateSpec
		switch o.GetKind() {
		case "DaemonSet":
			ds := &appsv1.DaemonSet{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds))
			tmpl = ds.Spec.Template
		case "Deployment":
			d := &appsv1.Deployment{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, d))
			tmpl = d.Spec.Template
		default:
			continue
		}
		pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		pod.Name = o.GetName() + "-admission-check"
		pod.Namespace = o.GetNamespace()
		pod.Spec.NodeName = "node-a"
		out[o.GetKind()+"/"+o.GetName()] = pod
	}
	require.NotEmpty(t, out)
	return out
}

// checkPodsAdmitted creates (as a server-side dry run) the pod each
// DaemonSet and Deployment of objs would create, in its namespace: the
// namespace's PodSecurity level (the hardened default unless labelled)
// must admit it, with no warning, or the controller's pods would be
// refused on the nodes.
func checkPodsAdmitted(t *testing.T, cp *cluster.ControlPlane, objs []*unstructured.Unstructured) {
	t.Helper()
	rec := &warningRecorder{}
	cfg := cp.RESTConfig("")
	cfg.WarningHandler = rec
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	for name, pod := range podTemplates(t, objs) {
		_, err := c.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err, "the pods of %s in namespace %s", name, pod.Namespace)
		require.Empty(t, rec.take(), "the pods of %s in namespace %s: the apiserver warned", name, pod.Namespace)
	}
}
