// Package manifests checks manifests/ against a real apiserver (test/cluster).
// It is apart from test/e2e so that its test binary does not link cgo NVML.
package manifests

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gpupack/gpupack/test/cluster"
)

// renderManifests builds manifests/ with kustomize, as kubectl apply -k does.
func renderManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../../manifests")
	require.NoError(t, err)
	var objs []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		require.NoError(t, err)
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	require.NotEmpty(t, objs)
	return objs
}

// apply server-side applies objs (as a dry run when dryRun is set).
func apply(t *testing.T, cp *cluster.ControlPlane, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	cfg := cp.RESTConfig("")
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	opts := metav1.ApplyOptions{FieldManager: "gpupack-e2e", Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "%s %s", gvk, o.GetName())
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		_, err = ri.Apply(context.Background(), o.GetName(), o, opts)
		require.NoError(t, err, "applying %s %s/%s (dry run %v)", gvk.Kind, o.GetNamespace(), o.GetName(), dryRun)
	}
}

// The manifests a cluster admin applies are accepted by a real apiserver
// (server-side dry run), and once applied the device plugin's identity may
// patch gpupack's keys on its own node only.
func TestManifestsApplyAndDevicePluginRBAC(t *testing.T) {
	cp := cluster.StartForTest(t)
	admin, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	objs := renderManifests(t)
	var namespaces, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			namespaces = append(namespaces, o)
		} else {
			rest = append(rest, o)
		}
	}
	// A dry-run namespace is not there for the dry run of what it holds.
	apply(t, cp, namespaces, false)
	apply(t, cp, rest, true)
	apply(t, cp, rest, false)

	ctx := context.Background()
	for _, name := range []string{"node-a", "node-b"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	// The device plugin on node-a: its projected token names the node.
	cfg := cp.RESTConfig("")
	cfg.Impersonate.UserName = "system:serviceaccount:gpupack-system:gpupack-device-plugin"
	cfg.Impersonate.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:gpupack-system", "system:authenticated"}
	cfg.Impersonate.Extra = map[string][]string{"authentication.kubernetes.io/node-name": {"node-a"}}
	plugin, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	patch := func(node, key string) error {
		p := []byte(`{"metadata":{"annotations":{"` + key + `":"x"}}}`)
		_, err := plugin.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, p, metav1.PatchOptions{})
		return err
	}
	// The admission policy takes effect once the apiserver has loaded it:
	// until then RBAC alone would let the patch through.
	require.Eventually(t, func() bool {
		err := patch("node-b", "gpupack.io/in-use")
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err)
	}, 30*time.Second, 200*time.Millisecond, "the device plugin of node-a must not patch node-b")
	require.NoError(t, patch("node-a", "gpupack.io/in-use"), "its own node, its own key")
	err = patch("node-a", "example.com/other")
	require.True(t, apierrors.IsInvalid(err) || apierrors.IsForbidden(err), "a key not ours: %v", err)
	// RBAC: no writes to pods, no deletes of nodes.
	require.True(t, apierrors.IsForbidden(plugin.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{})))
	sneaky := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sneaky", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/x"}}},
	}
	_, err = plugin.CoreV1().Pods("default").Create(ctx, sneaky, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "%v", err)

	t.Run("scheduler RBAC", func(t *testing.T) { checkSchedulerRBAC(t, admin) })
}

// access is one `kubectl auth can-i` question and its answer.
type access struct {
	verb, group, resource, subresource, namespace, name string
	allowed                                             bool
}

// schedulerSA is gpupack-scheduler's service account and its groups.
const schedulerSA = "system:serviceaccount:kube-system:gpupack-scheduler"

var schedulerSAGroups = []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}

// schedulerAccess is what gpupack-scheduler's service account may do once
// manifests/ are applied: what kube-scheduler and GPUPack need, and nothing
// that rewrites a pod or touches another component's Lease (issue 12 item
// 9).
var schedulerAccess = func() []access {
	const ks = "kube-system"
	return []access{
		// Needed: informers, binding, status, preemption, events.
		{"list", "", "pods", "", "", "", true},
		{"watch", "", "pods", "", "", "", true},
		{"get", "", "pods", "", "team-a", "p", true},
		{"delete", "", "pods", "", "team-a", "victim", true}, // preemption
		{"create", "", "pods", "binding", "team-a", "p", true},
		{"create", "", "bindings", "", "team-a", "", true},
		{"patch", "", "pods", "status", "team-a", "p", true}, // conditions, nominatedNodeName
		{"list", "", "nodes", "", "", "", true},
		{"create", "events.k8s.io", "events", "", "team-a", "", true},
		{"list", "policy", "poddisruptionbudgets", "", "", "", true},
		{"list", "resource.k8s.io", "resourceclaims", "", "", "", true},
		{"update", "", "persistentvolumes", "", "", "pv", true}, // system:volume-scheduler
		{"get", "", "configmaps", "", ks, "extension-apiserver-authentication", true},
		// Never: rewriting a pod (the old ClusterRole's get/update/patch on
		// pods let its token change another namespace's pod image).
		{"update", "", "pods", "", "team-a", "p", false},
		{"patch", "", "pods", "", "team-a", "p", false},
		{"create", "", "pods", "", "team-a", "", false},
		{"patch", "", "pods", "", ks, "kube-apiserver", false},
		{"update", "", "pods", "ephemeralcontainers", "team-a", "p", false},
		{"create", "", "pods", "exec", "team-a", "p", false},
		{"update", "", "nodes", "", "", "gpu-1", false},
		{"patch", "", "nodes", "", "", "gpu-1", false},
		{"get", "", "secrets", "", ks, "any", false},
		{"list", "", "secrets", "", "", "", false},
		// Leader election: its own Lease only.
		{"get", "coordination.k8s.io", "leases", "", ks, "gpupack-scheduler", true},
		{"update", "coordination.k8s.io", "leases", "", ks, "gpupack-scheduler", true},
		{"create", "coordination.k8s.io", "leases", "", ks, "", true},
		{"get", "coordination.k8s.io", "leases", "", ks, "kube-scheduler", false},
		{"update", "coordination.k8s.io", "leases", "", ks, "kube-scheduler", false},
		{"update", "coordination.k8s.io", "leases", "", ks, "kube-controller-manager", false},
		{"delete", "coordination.k8s.io", "leases", "", ks, "gpupack-scheduler", false},
		{"create", "coordination.k8s.io", "leases", "", "team-a", "", false},
		{"update", "coordination.k8s.io", "leases", "", "team-a", "gpupack-scheduler", false},
		{"update", "coordination.k8s.io", "leasecandidates", "", ks, "kube-scheduler", false},
	}
}()

// checkSchedulerRBAC asks the apiserver (SubjectAccessReview, what
// `kubectl auth can-i --as` does) every question of schedulerAccess.
func checkSchedulerRBAC(t *testing.T, admin kubernetes.Interface) {
	for _, a := range schedulerAccess {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: schedulerSA, Groups: schedulerSAGroups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
				Namespace: a.namespace, Name: a.name,
			},
		}}
		got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		require.NoError(t, err)
		require.Equal(t, a.allowed, got.Status.Allowed, "can-i %s %s/%s (group %q) in %q named %q: %s",
			a.verb, a.resource, a.subresource, a.group, a.namespace, a.name, got.Status.Reason)
	}
}
