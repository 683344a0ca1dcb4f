package manifests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/test/cluster"
)

const (
	chartDir         = "../../charts/gpupack"
	releaseNamespace = "gpupack-system"
	// namespaceFile is the release namespace with its PodSecurity labels,
	// which docs/operations.md has the admin apply before helm install.
	namespaceFile = "../../manifests/device-plugin/namespace.yaml"
)

// allOn turns on every optional part of the chart: per-node configs (one of
// them MIG), the GPU Operator's node label, a runtime class, extra flags,
// environment and volumes with the Node reads of --config-file-srcdir,
// the device plugin's ServiceMonitor (its PodMonitor is the other choice,
// never both: TestChartMonitors), the scheduler's ServiceMonitor with the
// chart's metrics reader, and the dashboard.
const allOn = `
devicePlugin:
  runtimeClassName: nvidia
  gpuOperator: true
  extraArgs: [--v=4]
  extraEnv: [{name: DP_DISABLE_HEALTHCHECKS, value: "48"}]
  extraVolumes: [{name: nvidia-configs, configMap: {name: nvidia-device-plugin-configs, optional: true}}]
  extraVolumeMounts: [{name: nvidia-configs, mountPath: /available-configs, readOnly: true}]
  rbac: {nodeReadAccess: true}
  config:
    perNode:
      a100-mig:
        version: v1
        flags: {migStrategy: mixed}
      t4-shared:
        version: v1
        sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}
  metrics:
    serviceMonitor: {enabled: true}
scheduler:
  metrics:
    serviceMonitor: {enabled: true}
dashboard:
  enabled: true
`

// helm runs the helm binary that hack/cluster/build.sh built.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cluster.HelmForTest(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// valuesFile writes values into a temp file for --values. Not in
// t.TempDir(): its path holds the test's name, and helm splits --values at
// commas.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpupack-values-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "values.yaml")
	require.NoError(t, os.WriteFile(path, []byte(values), 0o600))
	return path
}

// renderChart is `helm template gpupack charts/gpupack -n gpupack-system`
// with extra values ("" for the defaults).
func renderChart(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "gpupack", chartDir, "--namespace", releaseNamespace}
	if values != "" {
		args = append(args, "--values", valuesFile(t, values))
	}
	out, err := helm(t, args...)
	require.NoError(t, err, "helm template:\n%s", out)
	return decodeDocs(t, out)
}

// decodeDocs reads a multi-document YAML stream into objects.
func decodeDocs(t *testing.T, s string) []*unstructured.Unstructured {
	t.Helper()
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := d.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	require.NotEmpty(t, objs)
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func daemonSet(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.DaemonSet {
	t.Helper()
	o := find(objs, "DaemonSet", name)
	require.NotNil(t, o, "DaemonSet %s", name)
	ds := &appsv1.DaemonSet{}
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds))
	return ds
}

// The chart passes helm lint (defaults and everything on), and a tag
// "latest" or a bad migMonitorDevices is refused with a clear message
// (chart_schema_test.go has the rest of the bad values).
func TestChartLint(t *testing.T) {
	for name, values := range map[string]string{"defaults": "", "everything on": allOn} {
		args := []string{"lint", chartDir, "--strict", "--namespace", releaseNamespace}
		if values != "" {
			args = append(args, "--values", valuesFile(t, values))
		}
		out, err := helm(t, args...)
		require.NoError(t, err, "%s: helm lint:\n%s", name, out)
		require.Contains(t, out, "0 chart(s) failed", name)
	}
	for values, want := range map[string]string{
		"devicePlugin: {image: {tag: latest}}":                                                  `image tag "latest" is not allowed`,
		"scheduler: {image: {tag: latest}}":                                                     `image tag "latest" is not allowed`,
		"devicePlugin: {migMonitorDevices: sure}":                                               "at '/devicePlugin/migMonitorDevices': value must be one of 'auto', true, false",
		"devicePlugin: {metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}}": "serviceMonitor needs devicePlugin.metrics.service.enabled",
	} {
		out, err := helm(t, "template", "gpupack", chartDir, "--values", valuesFile(t, values))
		require.Error(t, err, values)
		require.Contains(t, out, want, values)
	}
}

// Every knob renders where it should: one DaemonSet per config with node
// affinity on NVIDIA's config label (the default one on the other nodes),
// the MIG monitor env and CAP_SYS_ADMIN only where the config has MIG, the
// runtime class and the GPU Operator's label, images pinned to the chart's
// appVersion, metrics on the pod's port, the monitors and the dashboard.
func TestChartValues(t *testing.T) {
	objs := renderChart(t, allOn)
	chart := map[string]any{}
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &chart))
	appVersion := chart["appVersion"].(string)

	configLabel := "nvidia.com/device-plugin.config"
	for name, want := range map[string]struct {
		op     corev1.NodeSelectorOperator
		values []string
		mig    bool
	}{
		"gpupack-device-plugin":           {corev1.NodeSelectorOpNotIn, []string{"a100-mig", "t4-shared"}, false},
		"gpupack-device-plugin-a100-mig":  {corev1.NodeSelectorOpIn, []string{"a100-mig"}, true},
		"gpupack-device-plugin-t4-shared": {corev1.NodeSelectorOpIn, []string{"t4-shared"}, false},
	} {
		ds := daemonSet(t, objs, name)
		spec := ds.Spec.Template.Spec
		require.Equal(t, "nvidia", *spec.RuntimeClassName, name)
		require.Equal(t, "true", spec.NodeSelector["nvidia.com/gpu.deploy.device-plugin"], name)
		terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		// NVIDIA's three terms (NFD PCI vendor, NFD CPU vendor, gpu.present),
		// each ANDed with this DaemonSet's config label.
		require.Len(t, terms, 3, name)
		var keys []string
		for _, term := range terms {
			exprs := term.MatchExpressions
			require.Len(t, exprs, 2, name)
			keys = append(keys, exprs[0].Key)
			require.Equal(t, corev1.NodeSelectorRequirement{Key: configLabel, Operator: want.op, Values: want.values}, exprs[1], name)
		}
		require.Equal(t, []string{"feature.node.kubernetes.io/pci-10de.present", "feature.node.kubernetes.io/cpu-model.vendor_id", "nvidia.com/gpu.present"}, keys)
		c := spec.Containers[0]
		require.Equal(t, "ghcr.io/gpupack/device-plugin:"+appVersion, c.Image)
		require.Contains(t, c.Args, "--metrics-bind-address=:9464")
		require.Equal(t, []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9464, Protocol: corev1.ProtocolTCP}}, c.Ports)
		mig := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NVIDIA_MIG_MONITOR_DEVICES" && e.Value == "all" })
		require.Equal(t, want.mig, mig, "%s: NVIDIA_MIG_MONITOR_DEVICES", name)
		require.Equal(t, want.mig, slices.Contains(c.SecurityContext.Capabilities.Add, "SYS_ADMIN"), "%s: SYS_ADMIN", name)
		require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
		cm := find(objs, "ConfigMap", name)
		require.NotNil(t, cm, "the ConfigMap of %s", name)
		require.Equal(t, name, spec.Volumes[2].ConfigMap.Name)
	}
	// Per-node DaemonSets have selectors of their own (no overlap).
	require.Equal(t, map[string]string{"app.kubernetes.io/name": "gpupack-device-plugin-a100-mig"},
		daemonSet(t, objs, "gpupack-device-plugin-a100-mig").Spec.Selector.MatchLabels)

	require.Equal(t, []string{"ServiceMonitor/gpupack-device-plugin", "ServiceMonitor/gpupack-scheduler"}, monitors(objs))
	require.NotNil(t, find(objs, "Secret", "gpupack-metrics-reader-token"))
	dash := find(objs, "ConfigMap", "gpupack-dashboard")
	require.NotNil(t, dash)
	require.Equal(t, "1", dash.GetLabels()["grafana_dashboard"])
	data, _, _ := unstructured.NestedString(dash.Object, "data", "gpupack.json")
	require.True(t, json.Valid([]byte(data)), "the dashboard ConfigMap holds valid JSON")

	// migMonitorDevices forces the MIG monitor on (a config without MIG)
	// or off (a MIG config).
	for values, want := range map[string]bool{
		"devicePlugin: {migMonitorDevices: true}": true,
		"devicePlugin: {migMonitorDevices: false, config: {default: {version: v1, flags: {migStrategy: mixed}}}}": false,
		"devicePlugin: {config: {default: {version: v1, flags: {migStrategy: single}}}}":                          true,
	} {
		c := daemonSet(t, renderChart(t, values), "gpupack-device-plugin").Spec.Template.Spec.Containers[0]
		require.Equal(t, want, slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NVIDIA_MIG_MONITOR_DEVICES" }), values)
		require.Equal(t, want, slices.Contains(c.SecurityContext.Capabilities.Add, "SYS_ADMIN"), values)
	}
	// Metrics off: loopback only, no port, no Service.
	off := renderChart(t, "devicePlugin: {metrics: {enabled: false}}")
	c := daemonSet(t, off, "gpupack-device-plugin").Spec.Template.Spec.Containers[0]
	require.Contains(t, c.Args, "--metrics-bind-address=127.0.0.1:9464")
	require.Empty(t, c.Ports)
	require.Nil(t, find(off, "Service", "gpupack-device-plugin-metrics"))

	// Both components can be switched off.
	only := renderChart(t, "scheduler: {enabled: false}")
	require.Nil(t, find(only, "Deployment", "gpupack-scheduler"))
	require.NotNil(t, find(only, "DaemonSet", "gpupack-device-plugin"))
	only = renderChart(t, "devicePlugin: {enabled: false}")
	require.Nil(t, find(only, "DaemonSet", "gpupack-device-plugin"))
	require.Nil(t, find(only, "ClusterRole", "gpupack-device-plugin"))
	require.NotNil(t, find(only, "Deployment", "gpupack-scheduler"))

	// Scheduler args and plugin args reach the Deployment and its config.
	objs = renderChart(t, "scheduler: {args: [--v=4], pluginArgs: {topologyWeight: 5}, schedulerName: gpu-sched, namespace: gpu-ops}")
	dep := find(objs, "Deployment", "gpupack-scheduler")
	require.Equal(t, "gpu-ops", dep.GetNamespace())
	cfg := schedulerConfig(t, find(objs, "ConfigMap", "gpupack-scheduler-config"))
	require.Equal(t, "gpu-sched", cfg["profiles"].([]any)[0].(map[string]any)["schedulerName"])
	le := cfg["leaderElection"].(map[string]any)
	require.Equal(t, "gpu-ops", le["resourceNamespace"])
	pc := cfg["profiles"].([]any)[0].(map[string]any)["pluginConfig"].([]any)[0].(map[string]any)
	require.EqualValues(t, 5, pc["args"].(map[string]any)["topologyWeight"])
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	require.Equal(t, []any{"--config=/etc/gpupack/config.yaml", "--secure-port=10259", "--v=4"}, containers[0].(map[string]any)["args"])
}

// The scheduler's secure port and its update strategy follow the values:
// the port the probes and the Service use is the one kube-scheduler is told
// to listen on, and without leader election the old pod stops before the
// new one starts (a rolling update would run two schedulers, each with its
// own GPU cache, which could give one GPU twice).
func TestChartSchedulerPortAndStrategy(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		port         int64
		strategy     string // "" : the Deployment's default (RollingUpdate)
	}{
		{name: "defaults", values: "", port: 10259},
		{name: "other port", values: "scheduler: {metrics: {port: 10300}}", port: 10300},
		{name: "no leader election", values: "scheduler: {leaderElect: false, replicas: 1}", port: 10259, strategy: "Recreate"},
		{name: "no leader election, other port", values: "scheduler: {leaderElect: false, replicas: 1, metrics: {port: 10300}}", port: 10300, strategy: "Recreate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dep := find(renderChart(t, tc.values), "Deployment", "gpupack-scheduler")
			require.NotNil(t, dep)
			strategy, _, _ := unstructured.NestedString(dep.Object, "spec", "strategy", "type")
			require.Equal(t, tc.strategy, strategy)
			containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			c := containers[0].(map[string]any)
			require.Contains(t, c["args"], fmt.Sprintf("--secure-port=%d", tc.port))
			ports, _, _ := unstructured.NestedSlice(c, "ports")
			require.EqualValues(t, tc.port, ports[0].(map[string]any)["containerPort"])
			for _, probe := range []string{"livenessProbe", "readinessProbe"} {
				port, _, _ := unstructured.NestedFieldNoCopy(c, probe, "httpGet", "port")
				require.EqualValues(t, tc.port, port, probe)
			}
		})
	}
}

func schedulerConfig(t *testing.T, cm *unstructured.Unstructured) map[string]any {
	t.Helper()
	require.NotNil(t, cm)
	s, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	out := map[string]any{}
	require.NoError(t, yaml.Unmarshal([]byte(s), &out))
	return out
}

// Labels Helm adds that kustomize does not.
var helmOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// clusterScoped are the cluster-scoped kinds the manifests hold.
var clusterScoped = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// kustomizeHash is the content-hash suffix of a configMapGenerator's name.
var kustomizeHash = regexp.MustCompile(`^(.*)-[a-z0-9]{10}$`)

// normalize keys objects by kind/namespace/name, as plain JSON values, with
// the differences that do not change what runs taken out: Helm's labels,
// the config checksum annotation (Helm's way to roll a changed config;
// kustomize's is the name hash, also taken out), and config files compared
// as parsed YAML (comments and key order apart).
func normalize(t *testing.T, objs []*unstructured.Unstructured, fromKustomize bool) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, in := range objs {
		// A JSON copy: kustomize's ints and helm's floats compare alike.
		raw, err := json.Marshal(in.Object)
		require.NoError(t, err)
		o := &unstructured.Unstructured{}
		require.NoError(t, json.Unmarshal(raw, &o.Object))
		if o.GetKind() == "Namespace" {
			continue // applied apart before helm install (namespaceFile)
		}
		if clusterScoped[o.GetKind()] {
			// kustomize's namespace: sets it on kinds it does not know to be
			// cluster-scoped (the admission policy); the apiserver ignores it.
			o.SetNamespace("")
		}
		labels := o.GetLabels()
		for _, k := range helmOnlyLabels {
			delete(labels, k)
		}
		o.SetLabels(labels)
		if fromKustomize && o.GetKind() == "ConfigMap" {
			if m := kustomizeHash.FindStringSubmatch(o.GetName()); m != nil {
				o.SetName(m[1])
			}
		}
		if o.GetKind() == "ConfigMap" {
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			parsed := map[string]any{}
			for k, v := range data {
				var y any
				require.NoError(t, yaml.Unmarshal([]byte(v), &y), "%s %s", o.GetName(), k)
				parsed[k] = y
			}
			o.Object["data"] = parsed
		}
		if tmpl, ok, _ := unstructured.NestedMap(o.Object, "spec", "template"); ok {
			ann, _, _ := unstructured.NestedStringMap(tmpl, "metadata", "annotations")
			delete(ann, "checksum/config")
			if len(ann) == 0 {
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations")
			} else {
				require.NoError(t, unstructured.SetNestedStringMap(o.Object, ann, "spec", "template", "metadata", "annotations"))
			}
			if fromKustomize {
				vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
				for _, v := range vols {
					if cm, ok := v.(map[string]any)["configMap"].(map[string]any); ok {
						if m := kustomizeHash.FindStringSubmatch(cm["name"].(string)); m != nil {
							cm["name"] = m[1]
						}
					}
				}
				require.NoError(t, unstructured.SetNestedSlice(o.Object, vols, "spec", "template", "spec", "volumes"))
			}
		}
		raw, err = json.Marshal(o.Object)
		require.NoError(t, err)
		var plain any
		require.NoError(t, json.Unmarshal(raw, &plain))
		out[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = plain
	}
	return out
}

// manifests/ (kubectl apply -k) and the chart's default render (helm
// install -n gpupack-system) deploy the same objects: the chart is the
// source of every knob, and the kustomize manifests must follow it.
func TestChartDefaultRenderEqualsManifests(t *testing.T) {
	chart := normalize(t, renderChart(t, ""), false)
	kust := normalize(t, renderManifests(t), true)
	require.ElementsMatch(t, keysOf(kust), keysOf(chart), "the same objects")
	for k, want := range kust {
		require.Equal(t, want, chart[k], "%s differs between manifests/ and the chart's default render", k)
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The chart's render (defaults, then every knob on but the monitors, whose
// CRDs a bare apiserver lacks) passes a server-side dry run and applies on
// a real apiserver without a warning, in the namespace docs/operations.md
// has the admin create, on a cluster whose PodSecurity default is
// restricted, and the pods of every DaemonSet (MIG's SYS_ADMIN included)
// and of the scheduler are admitted; and the installed RBAC and node policy hold as with
// manifests/: the device plugin patches only its own node's keys and may
// record Node events (events.k8s.io) as well as pod events.
func TestChartAppliesOnTheAPIServer(t *testing.T) {
	defaults := renderChart(t, "")
	everything := slices.DeleteFunc(renderChart(t, allOn), func(o *unstructured.Unstructured) bool {
		return o.GetAPIVersion() == "monitoring.coreos.com/v1"
	})
	cp := startHardened(t)
	admin, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	// The namespace as docs/operations.md creates it before helm install.
	applyAll(t, cp, append(readManifest(t, namespaceFile), defaults...))
	checkPodsAdmitted(t, cp, defaults)
	// allOn's runtime class, as the GPU Operator creates it.
	applyAll(t, cp, decodeDocs(t, "{apiVersion: node.k8s.io/v1, kind: RuntimeClass, metadata: {name: nvidia}, handler: nvidia}"))
	applyAll(t, cp, everything)
	checkPodsAdmitted(t, cp, everything)
	// A CDI device list strategy: the spec directory and the driver root
	// from the host.
	cdi := renderChart(t, "devicePlugin: {config: {default: {version: v1, flags: {plugin: {deviceListStrategy: cdi-cri}}}}}")
	applyAll(t, cp, cdi)
	checkPodsAdmitted(t, cp, cdi)

	ctx := context.Background()
	for _, name := range []string{"node-a", "node-b"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"type": "gpu"}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	plugin := devicePluginClient(t, cp, releaseNamespace, "node-a")
	require.Eventually(t, func() bool { return canI(t, plugin, "patch", "nodes", "") }, 30*time.Second, 200*time.Millisecond)
	checkNodePolicy(t, plugin)
	checkPublisher(t, cp, plugin, admin, releaseNamespace)
	for _, c := range []struct {
		verb, resource, namespace string
		want                      bool
	}{
		{"create", "events", "default", true}, {"patch", "events", "default", true},
		{"list", "pods", "", true}, {"get", "secrets", "default", false}, {"get", "nodes", "", false},
		// allOn's rbac.nodeReadAccess (the defaults grant neither).
		{"list", "nodes", "", true}, {"watch", "nodes", "", true},
	} {
		require.Equal(t, c.want, canI(t, plugin, c.verb, c.resource, c.namespace), "can-i %s %s", c.verb, c.resource)
	}
	require.True(t, canIGroup(t, plugin, "create", "events.k8s.io", "events", "default"), "Node events through events.k8s.io")
	checkSchedulerRBAC(t, admin)
}

// canIGroup is canI for a resource of an API group.
func canIGroup(t *testing.T, c kubernetes.Interface, verb, group, resource, namespace string) bool {
	t.Helper()
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Namespace: namespace,
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return r.Status.Allowed
}
