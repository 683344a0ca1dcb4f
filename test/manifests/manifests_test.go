// Package manifests checks manifests/ against a real apiserver (test/cluster).
// It is apart from test/e2e so that its test binary does not link cgo NVML.
package manifests

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gpupack/gpupack/test/cluster"
)

// renderManifests builds manifests/ with kustomize, as kubectl apply -k does.
func renderManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return render(t, "../../manifests")
}

// readManifest reads a file of YAML documents, as kubectl apply -f does.
func readManifest(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if len(o.Object) > 0 {
			objs = append(objs, o)
		}
	}
	require.NotEmpty(t, objs)
	return objs
}

// render builds a kustomization directory.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
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

// apply server-side applies objs (as a dry run when dryRun is set). Any
// warning of the apiserver (a deprecated API, an unknown or duplicate
// field, a pod template its namespace's PodSecurity level would refuse)
// fails the test: kubectl and helm print it to the admin.
func apply(t *testing.T, cp *cluster.ControlPlane, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	cfg := cp.RESTConfig("")
	rec := &warningRecorder{}
	cfg.WarningHandler = rec
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
		require.Empty(t, rec.take(), "applying %s %s/%s (dry run %v): the apiserver warned", gvk.Kind, o.GetNamespace(), o.GetName(), dryRun)
	}
}

// applyAll applies namespaces first (a dry-run namespace is not there for
// the dry run of what it holds), then the rest as a dry run, then for real.
func applyAll(t *testing.T, cp *cluster.ControlPlane, objs []*unstructured.Unstructured) {
	t.Helper()
	var namespaces, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			namespaces = append(namespaces, o)
		} else {
			rest = append(rest, o)
		}
	}
	apply(t, cp, namespaces, false)
	apply(t, cp, rest, true)
	apply(t, cp, rest, false)
}

// devicePluginClient acts as the device plugin of node: its ServiceAccount
// in namespace, with the node name its projected token carries.
func devicePluginClient(t *testing.T, cp *cluster.ControlPlane, namespace, node string) kubernetes.Interface {
	t.Helper()
	cfg := cp.RESTConfig("")
	cfg.Impersonate.UserName = "system:serviceaccount:" + namespace + ":gpupack-device-plugin"
	cfg.Impersonate.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	cfg.Impersonate.Extra = map[string][]string{"authentication.kubernetes.io/node-name": {node}}
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return c
}

func denied(err error) bool { return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) }

// mergePatch sends a JSON merge patch to a node.
func mergePatch(c kubernetes.Interface, node, body string) error {
	_, err := c.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	return err
}

// checkNodePolicy checks what the device plugin of node-a may patch: its own
// node and keys only; no other key, no spec, no finalizers, no owner
// references, no other node.
func checkNodePolicy(t *testing.T, plugin kubernetes.Interface) {
	t.Helper()
	// The admission policy takes effect once the apiserver has loaded it:
	// until then RBAC alone would let the patch through.
	// The probe is a dry run: a patch let through before the policy is
	// loaded must not stay on the node (a finalizer already there would
	// make every later identical patch a no-op the policy allows).
	require.Eventually(t, func() bool {
		_, err := plugin.CoreV1().Nodes().Patch(context.Background(), "node-a", types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":["example.com/block"]}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return denied(err)
	}, 30*time.Second, 200*time.Millisecond, "the device plugin must not add a finalizer to its node")
	require.NoError(t, mergePatch(plugin, "node-a", `{"metadata":{"annotations":{"gpupack.io/in-use":"x"}}}`), "its own node, its own key")
	require.NoError(t, mergePatch(plugin, "node-a", `{"metadata":{"labels":{"gpupack.io/nvlink":"mesh"}}}`), "its own node, its own label")
	for name, body := range map[string]string{
		"finalizer":                 `{"metadata":{"finalizers":["example.com/block"]}}`,
		"owner reference":           `{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x","uid":"6a3c1b1e-0000-4000-8000-000000000001"}]}}`,
		"other annotation":          `{"metadata":{"annotations":{"example.com/other":"x"}}}`,
		"other label":               `{"metadata":{"labels":{"example.com/other":"x"}}}`,
		"removing a label":          `{"metadata":{"labels":{"type":null}}}`,
		"spec":                      `{"spec":{"unschedulable":true}}`,
		"both ours and a finalizer": `{"metadata":{"annotations":{"gpupack.io/in-use":"y"},"finalizers":["example.com/block"]}}`,
	} {
		err := mergePatch(plugin, "node-a", body)
		require.True(t, denied(err), "%s: want denied, got %v", name, err)
	}
	err := mergePatch(plugin, "node-b", `{"metadata":{"annotations":{"gpupack.io/in-use":"x"}}}`)
	require.True(t, denied(err), "the device plugin of node-a must not patch node-b: %v", err)
}

// canI asks the apiserver what the impersonated client may do
// (kubectl auth can-i).
func canI(t *testing.T, c kubernetes.Interface, verb, resource, namespace string) bool {
	t.Helper()
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Resource: resource, Namespace: namespace,
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return r.Status.Allowed
}

// The manifests a cluster admin applies are accepted by a real apiserver
// (server-side dry run) without a warning, on a cluster whose PodSecurity
// default is restricted: the device plugin's namespace says it needs
// privileged (hostPath), and the pods of the DaemonSet and the scheduler's
// Deployment are admitted. Once applied, the device plugin's identity may
// do what its code calls and nothing else: patch gpupack's keys on its own
// node only, list and watch pods, record events.
func TestManifestsApplyAndDevicePluginRBAC(t *testing.T) {
	cp := startHardened(t)
	admin, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	applyAll(t, cp, renderManifests(t))
	checkPodsAdmitted(t, cp, renderManifests(t))

	ctx := context.Background()
	for _, name := range []string{"node-a", "node-b"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"type": "gpu"}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	plugin := devicePluginClient(t, cp, "gpupack-system", "node-a")
	checkNodePolicy(t, plugin)
	checkPublisher(t, cp, plugin, admin, "gpupack-system")
	n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	require.NoError(t, err)
	require.Empty(t, n.Finalizers)
	require.Empty(t, n.OwnerReferences)

	// auth can-i, verb by verb: what the code calls, and nothing else.
	for _, c := range []struct {
		verb, resource, namespace string
		want                      bool
	}{
		{"list", "pods", "", true}, {"watch", "pods", "", true},
		{"patch", "nodes", "", true},
		// Per-node configs only (rbac-per-node-config.yaml, below).
		{"list", "nodes", "", false}, {"watch", "nodes", "", false},
		{"create", "events", "default", true}, {"patch", "events", "default", true},
		// Unused, so not granted.
		{"get", "pods", "default", false}, {"get", "nodes", "", false},
		{"update", "nodes", "", false}, {"delete", "nodes", "", false}, {"patch", "nodes/status", "", false},
		{"create", "pods", "default", false}, {"delete", "pods", "default", false}, {"patch", "pods", "default", false},
		{"get", "secrets", "default", false}, {"list", "secrets", "", false}, {"get", "configmaps", "gpupack-system", false},
		{"create", "pods/exec", "default", false}, {"create", "pods/eviction", "default", false},
	} {
		require.Equal(t, c.want, canI(t, plugin, c.verb, c.resource, c.namespace), "can-i %s %s -n %q", c.verb, c.resource, c.namespace)
	}
	// Per-node configs (--config-file-srcdir): the optional file grants
	// list + watch of nodes, and nothing more.
	applyAll(t, cp, readManifest(t, "../../manifests/device-plugin/rbac-per-node-config.yaml"))
	require.Eventually(t, func() bool { return canI(t, plugin, "list", "nodes", "") }, 30*time.Second, 200*time.Millisecond)
	require.True(t, canI(t, plugin, "watch", "nodes", ""))
	require.False(t, canI(t, plugin, "get", "nodes", ""))
	require.False(t, canI(t, plugin, "update", "nodes", ""))
	// Node events (a GPU unhealthy or recovered) go through events.k8s.io.
	require.True(t, canIGroup(t, plugin, "create", "events.k8s.io", "events", "default"))
	require.True(t, canIGroup(t, plugin, "patch", "events.k8s.io", "events", "default"))
	require.False(t, canIGroup(t, plugin, "delete", "events.k8s.io", "events", "default"))
	// RBAC: no writes to pods, no deletes of nodes.
	require.True(t, apierrors.IsForbidden(plugin.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{})))
	sneaky := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sneaky", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/x"}}},
	}
	_, err = plugin.CoreV1().Pods("default").Create(ctx, sneaky, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "%v", err)

	// A kustomize overlay that moves everything to namespace gpu-ops: the
	// policy still binds the moved ServiceAccount (it matched the
	// gpupack-system name only, so the overlay's plugin could add
	// finalizers and owner references to its node).
	applyAll(t, cp, render(t, "testdata/namespace-overlay"))
	checkPodsAdmitted(t, cp, render(t, "testdata/namespace-overlay"))
	moved := devicePluginClient(t, cp, "gpu-ops", "node-a")
	require.Eventually(t, func() bool { return canI(t, moved, "patch", "nodes", "") }, 30*time.Second, 200*time.Millisecond)
	checkNodePolicy(t, moved)
	t.Run("scheduler RBAC", func(t *testing.T) { checkSchedulerRBAC(t, admin) })
}

// The DaemonSet's hardening, as rendered: RuntimeDefault seccomp, read-only
// root filesystem, no privilege escalation, no capabilities, typed hostPaths.
func TestDaemonSetHardening(t *testing.T) {
	var ds *appsv1.DaemonSet
	for _, o := range renderManifests(t) {
		if o.GetKind() == "DaemonSet" && o.GetName() == "gpupack-device-plugin" {
			ds = &appsv1.DaemonSet{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds))
		}
	}
	require.NotNil(t, ds, "the device-plugin DaemonSet")
	spec := ds.Spec.Template.Spec
	require.NotNil(t, spec.SecurityContext)
	require.NotNil(t, spec.SecurityContext.SeccompProfile)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, spec.SecurityContext.SeccompProfile.Type)
	require.Len(t, spec.Containers, 1)
	sc := spec.Containers[0].SecurityContext
	require.NotNil(t, sc)
	require.Equal(t, ptr.To(true), sc.ReadOnlyRootFilesystem)
	require.Equal(t, ptr.To(false), sc.AllowPrivilegeEscalation)
	require.Nil(t, sc.Privileged)
	require.NotNil(t, sc.Capabilities)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	require.Empty(t, sc.Capabilities.Add)
	require.NotNil(t, sc.SeccompProfile)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
	hostPaths := 0
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		hostPaths++
		require.Equal(t, ptr.To(corev1.HostPathDirectory), v.HostPath.Type, "hostPath %s must be typed", v.Name)
	}
	require.Equal(t, 2, hostPaths, "device-plugins and pod-resources")
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.Name == "pod-resources" || m.Name == "config" {
			require.True(t, m.ReadOnly, "%s is only read", m.Name)
		}
	}
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
