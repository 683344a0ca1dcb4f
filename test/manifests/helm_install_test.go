package manifests

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gpupack/gpupack/test/cluster"
)

// requireKubernetesVersion fails unless the test apiserver reports go.mod's
// Kubernetes version, as hack/cluster/build.sh stamps it: helm checks the
// chart's kubeVersion against it, as on a real cluster (an apiserver built
// before the stamp says v0.0.0-master, which no kubeVersion admits).
func requireKubernetesVersion(t *testing.T, cp *cluster.ControlPlane) {
	t.Helper()
	want, err := cluster.KubernetesVersion()
	require.NoError(t, err)
	dc, err := discovery.NewDiscoveryClientForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	v, err := dc.ServerVersion()
	require.NoError(t, err)
	require.Equal(t, want, v.GitVersion, "the test apiserver's version: rebuild it with hack/cluster/build.sh kube-apiserver")
}

// apiserverWarning is how helm prints a Warning header of the apiserver.
var apiserverWarning = regexp.MustCompile(`(?m)^.*Warning: .*$`)

// What an admin does with the chart, run as helm does it against a real
// apiserver whose PodSecurity default is restricted: install as
// docs/operations.md says (namespace first), upgrade to per-node configs and
// back (the per-node DaemonSets and ConfigMaps go), uninstall (nothing of
// the release stays; the namespace the admin created does). Dry runs show
// the notes' warnings: a namespace that does not exist, one without the Pod
// Security label; none where helm looks nothing up.
func TestChartInstallUpgradeUninstall(t *testing.T) {
	cp := startHardened(t)
	requireKubernetesVersion(t, cp)
	chart := chartDir
	helmK := func(args ...string) string {
		t.Helper()
		out, err := helm(t, append(args, "--kubeconfig", cp.Kubeconfig)...)
		require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), out)
		require.Empty(t, apiserverWarning.FindAllString(out, -1), "helm %s: the apiserver warned", strings.Join(args, " "))
		return out
	}
	const (
		podSecurityWarning = "WARNING: namespace gpupack-system is not labelled pod-security.kubernetes.io/enforce=privileged"
		missingWarning     = "WARNING: namespace gpupack-system does not exist."
		notChecked         = "Not checked: this render did not look at the cluster."
	)

	// No namespace yet: a server-side dry run (whose lookups reach the
	// apiserver) says so and how to create it with its labels; helm's
	// --create-namespace would make it without them.
	for _, extra := range [][]string{nil, {"--create-namespace"}} {
		out := helmK(append([]string{"install", "gpupack", chart, "-n", releaseNamespace, "--dry-run=server"}, extra...)...)
		require.Contains(t, out, missingWarning, extra)
		require.Contains(t, out, "kubectl apply -f manifests/device-plugin/namespace.yaml", extra)
		require.NotContains(t, out, podSecurityWarning, extra)
		require.NotContains(t, out, notChecked, extra)
	}
	// A client-side dry run looks nothing up: the notes claim nothing of
	// the namespace.
	out := helmK("install", "gpupack", chart, "-n", releaseNamespace, "--dry-run=client")
	require.Contains(t, out, notChecked)
	require.NotContains(t, out, "does not exist")
	require.NotContains(t, out, "is not labelled")

	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	// A namespace without the labels (helm's --create-namespace makes such a one).
	plain := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}}
	_, err = admin.CoreV1().Namespaces().Create(ctx, plain, metav1.CreateOptions{})
	require.NoError(t, err)
	out = helmK("install", "gpupack", chart, "-n", plain.Name, "--dry-run=server")
	require.Contains(t, out, "WARNING: namespace unlabelled is not labelled pod-security.kubernetes.io/enforce=privileged")
	require.Contains(t, out, "kubectl label namespace unlabelled pod-security.kubernetes.io/enforce=privileged")
	require.NotContains(t, out, "does not exist")

	// docs/operations.md, With Helm.
	apply(t, cp, readManifest(t, namespaceFile), false)
	out = helmK("install", "gpupack", chart, "-n", releaseNamespace)
	require.NotContains(t, out, "does not exist")
	require.NotContains(t, out, "is not labelled")
	require.NotContains(t, out, notChecked)
	checkPodsAdmitted(t, cp, decodeDocs(t, helmK("get", "manifest", "gpupack", "-n", releaseNamespace)))

	deviceObjects := func() (daemonSets, configMaps []string) {
		t.Helper()
		dss, err := admin.AppsV1().DaemonSets(releaseNamespace).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		for _, d := range dss.Items {
			daemonSets = append(daemonSets, d.Name)
		}
		cms, err := admin.CoreV1().ConfigMaps(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/part-of=gpupack"})
		require.NoError(t, err)
		for _, c := range cms.Items {
			configMaps = append(configMaps, c.Name)
		}
		slices.Sort(daemonSets)
		slices.Sort(configMaps)
		return daemonSets, configMaps
	}
	ds, cms := deviceObjects()
	require.Equal(t, []string{"gpupack-device-plugin"}, ds)
	require.Equal(t, []string{"gpupack-device-plugin"}, cms)

	// Per-node configs added (the example of docs/operations.md, without
	// the monitors and the runtime class this apiserver lacks).
	perNode := valuesFile(t, `
devicePlugin:
  gpuOperator: true
  config:
    perNode:
      a100-mig: {version: v1, flags: {migStrategy: mixed}}
      t4-shared: {version: v1, sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}}
dashboard: {enabled: true}
`)
	upgraded := helmK("upgrade", "--install", "gpupack", chart, "-n", releaseNamespace, "-f", perNode)
	require.Contains(t, upgraded, "Per-node configs a100-mig, t4-shared")
	checkPodsAdmitted(t, cp, decodeDocs(t, helmK("get", "manifest", "gpupack", "-n", releaseNamespace)))
	ds, cms = deviceObjects()
	all := []string{"gpupack-device-plugin", "gpupack-device-plugin-a100-mig", "gpupack-device-plugin-t4-shared"}
	require.Equal(t, all, ds)
	require.Equal(t, append([]string{"gpupack-dashboard"}, all...), cms)

	// Back to the defaults: the per-node objects go. (helm upgrade without
	// values would reuse the release's: --reset-values.)
	helmK("upgrade", "gpupack", chart, "-n", releaseNamespace, "--reset-values")
	ds, cms = deviceObjects()
	require.Equal(t, []string{"gpupack-device-plugin"}, ds)
	require.Equal(t, []string{"gpupack-device-plugin"}, cms)

	helmK("uninstall", "gpupack", "-n", releaseNamespace)
	require.Equal(t, []string{"Namespace//gpupack-system"}, leftovers(t, cp),
		"after helm uninstall only the namespace the admin created stays")
}

// leftovers lists every object of the cluster (every listable resource
// but events) named gpupack* or labelled app.kubernetes.io/part-of=gpupack,
// as kind/namespace/name.
func leftovers(t *testing.T, cp *cluster.ControlPlane) []string {
	t.Helper()
	cfg := cp.RESTConfig("")
	cfg.WarningHandler = rest.NoWarnings{} // listing deprecated kinds (Endpoints) warns
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	lists, err := dc.ServerPreferredResources()
	require.NoError(t, err)
	var out []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		require.NoError(t, err)
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || r.Name == "events" {
				continue
			}
			objs, err := dyn.Resource(gv.WithResource(r.Name)).List(context.Background(), metav1.ListOptions{})
			require.NoError(t, err, "listing %s", r.Name)
			for _, o := range objs.Items {
				if strings.HasPrefix(o.GetName(), "gpupack") || strings.Contains(o.GetName(), ".gpupack.") ||
					o.GetLabels()["app.kubernetes.io/part-of"] == "gpupack" {
					out = append(out, r.Kind+"/"+o.GetNamespace()+"/"+o.GetName())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
