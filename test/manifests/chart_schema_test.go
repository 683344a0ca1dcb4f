package manifests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/yaml"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	schedconfigv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1"
)

// badValue is a value the chart must refuse at template time.
type badValue struct {
	name string
	// values is a values file; set, if not empty, one --set.
	values, set string
	// args are more helm arguments (--kube-version).
	args []string
	// schema is what values.schema.json's error says (with the field's
	// path), "" where the schema lets the value through to the templates.
	schema string
	// tmpl is what the templates' own check says, which is what a user of
	// --skip-schema-validation sees ("" where only the schema checks).
	tmpl string
}

// Each 42-character perNode name is one too many: the DaemonSet's
// app.kubernetes.io/name label is "gpupack-device-plugin-" (22 characters)
// + the name, and a label value holds at most 63: 63 - 22 = 41.
var (
	name41 = strings.Repeat("a", 41)
	name42 = strings.Repeat("a", 42)
)

var badValues = []badValue{
	// Names that must not be empty (or malformed): the scheduler's name is
	// its pods' spec.schedulerName and its Lease's name; empty, kube-scheduler
	// runs as default-scheduler.
	{name: "empty schedulerName", set: "scheduler.schedulerName=",
		schema: "at '/scheduler/schedulerName'", tmpl: `scheduler.schedulerName "": want a DNS-1123 subdomain`},
	{name: "null schedulerName (removes the default)", values: "scheduler: {schedulerName: null}",
		schema: "at '/scheduler': missing property 'schedulerName'", tmpl: `scheduler.schedulerName "": want a DNS-1123 subdomain`},
	{name: "schedulerName not a DNS name", set: "scheduler.schedulerName=GPU_Scheduler",
		schema: "at '/scheduler/schedulerName': 'GPU_Scheduler' does not match pattern", tmpl: `scheduler.schedulerName "GPU_Scheduler"`},
	{name: "schedulerName of the default scheduler", set: "scheduler.schedulerName=default-scheduler",
		tmpl: `scheduler.schedulerName "default-scheduler": taken by the default scheduler`},
	{name: "schedulerName naming kube-scheduler's Lease", set: "scheduler.schedulerName=kube-scheduler",
		tmpl: `scheduler.schedulerName "kube-scheduler": taken by the default scheduler`},
	{name: "blank scheduler namespace", values: `scheduler: {namespace: " "}`,
		schema: "at '/scheduler/namespace'", tmpl: `scheduler.namespace " " (empty: the release namespace): want a namespace name`},
	{name: "scheduler namespace not a DNS label", set: "scheduler.namespace=GPU.Ops",
		schema: "at '/scheduler/namespace'", tmpl: `scheduler.namespace "GPU.Ops"`},
	{name: "dashboard namespace not a DNS label", values: "dashboard: {enabled: true, namespace: Grafana_NS}",
		schema: "at '/dashboard/namespace'", tmpl: `dashboard.namespace "Grafana_NS"`},
	{name: "empty device plugin repository", set: "devicePlugin.image.repository=",
		schema: "at '/devicePlugin/image/repository'", tmpl: `devicePlugin.image.repository "": want an image repository`},
	{name: "empty scheduler repository", set: "scheduler.image.repository=",
		schema: "at '/scheduler/image/repository'", tmpl: `scheduler.image.repository "": want an image repository`},
	{name: "repository with a tag", set: "devicePlugin.image.repository=ghcr.io/gpupack/device-plugin:v0.1.0",
		schema: "at '/devicePlugin/image/repository'", tmpl: `devicePlugin.image.repository "ghcr.io/gpupack/device-plugin:v0.1.0"`},
	{name: "tag with a space", values: `scheduler: {image: {tag: "v0.1 rc"}}`,
		schema: "at '/scheduler/image/tag'", tmpl: `scheduler.image.tag "v0.1 rc": want an image tag`},
	{name: "empty kubeletRoot", set: "devicePlugin.kubeletRoot=",
		schema: "at '/devicePlugin/kubeletRoot'", tmpl: `devicePlugin.kubeletRoot "": want the kubelet's root directory`},
	{name: "relative kubeletRoot", set: "devicePlugin.kubeletRoot=var/lib/kubelet",
		schema: "at '/devicePlugin/kubeletRoot'", tmpl: `devicePlugin.kubeletRoot "var/lib/kubelet"`},
	{name: "empty MPS root, MPS forced on", values: `devicePlugin: {mps: {enabled: true, root: ""}}`,
		schema: "at '/devicePlugin/mps/root'", tmpl: `devicePlugin.mps.root "": want the MPS root on the node`},
	{name: "empty MPS root, MPS in a perNode config", values: `devicePlugin: {mps: {root: ""}, config: {perNode: {t4: {sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}}}}}`,
		schema: "at '/devicePlugin/mps/root'", tmpl: `devicePlugin.mps.root "": want the MPS root on the node`},
	{name: "empty nodeLabel with perNode configs", values: `devicePlugin: {config: {nodeLabel: "", perNode: {a100: {version: v1}}}}`,
		schema: "at '/devicePlugin/config/nodeLabel'", tmpl: `devicePlugin.config.nodeLabel "": want a node label key`},
	{name: "nodeLabel not a label key", values: `devicePlugin: {config: {nodeLabel: "gpu config", perNode: {a100: {version: v1}}}}`,
		schema: "at '/devicePlugin/config/nodeLabel'", tmpl: `devicePlugin.config.nodeLabel "gpu config"`},

	// Types, ranges and enums (values.schema.json).
	{name: "replicas not a number", set: "scheduler.replicas=abc", schema: "at '/scheduler/replicas': got string, want integer"},
	{name: "negative replicas", set: "scheduler.replicas=-1", schema: "at '/scheduler/replicas': minimum: got -1, want 0"},
	{name: "port not a number", set: "devicePlugin.metrics.port=abc", schema: "at '/devicePlugin/metrics/port': got string, want integer"},
	{name: "port above 65535", set: "devicePlugin.metrics.port=70000", schema: "at '/devicePlugin/metrics/port': maximum"},
	{name: "port 0", set: "scheduler.metrics.port=0", schema: "at '/scheduler/metrics/port': minimum: got 0, want 1"},
	{name: "pullPolicy not one of Kubernetes'", set: "devicePlugin.image.pullPolicy=Sometimes",
		schema: "at '/devicePlugin/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"},
	{name: "scheduler pullPolicy lower case", set: "scheduler.image.pullPolicy=always", schema: "at '/scheduler/image/pullPolicy'"},
	{name: "leaderElect not a boolean", set: "scheduler.leaderElect=maybe", schema: "at '/scheduler/leaderElect': got string, want boolean"},
	{name: "enabled as a string", values: `devicePlugin: {enabled: "yes"}`, schema: "at '/devicePlugin/enabled': got string, want boolean"},
	{name: "weight not a number", set: "scheduler.weight=abc", schema: "at '/scheduler/weight': got string, want integer"},
	{name: "weight 0 (kube-scheduler would make it 1)", set: "scheduler.weight=0", schema: "at '/scheduler/weight': minimum"},
	{name: "migMonitorDevices not auto/true/false", values: "devicePlugin: {migMonitorDevices: sure}",
		schema: "at '/devicePlugin/migMonitorDevices': value must be one of 'auto', true, false", tmpl: "devicePlugin.migMonitorDevices: want auto, true or false"},
	{name: "mps.enabled not auto/true/false", values: "devicePlugin: {mps: {enabled: maybe}}",
		schema: "at '/devicePlugin/mps/enabled'", tmpl: "devicePlugin.mps.enabled: want auto, true or false"},
	{name: "monitor interval a number", set: "scheduler.metrics.serviceMonitor.interval=30", schema: "at '/scheduler/metrics/serviceMonitor/interval'"},
	{name: "monitor interval not a duration", set: "devicePlugin.metrics.podMonitor.interval=half-a-minute", schema: "at '/devicePlugin/metrics/podMonitor/interval'"},
	{name: "nodeSelector value a number", values: "devicePlugin: {nodeSelector: {gpu-count: 8}}", schema: "at '/devicePlugin/nodeSelector/gpu-count': got number, want string"},
	{name: "dashboard label a number", values: "dashboard: {labels: {grafana_dashboard: 1}}", schema: "at '/dashboard/labels/grafana_dashboard': got number, want string"},
	{name: "tolerations a map", values: "scheduler: {tolerations: {key: gpu}}", schema: "at '/scheduler/tolerations': got object, want array"},
	{name: "imagePullSecrets as strings", values: "devicePlugin: {imagePullSecrets: [regcred]}", schema: "at '/devicePlugin/imagePullSecrets/0': got string, want object"},
	{name: "config version v2", values: "devicePlugin: {config: {default: {version: v2}}}", schema: "at '/devicePlugin/config/default/version'"},
	{name: "config migStrategy unknown", values: "devicePlugin: {config: {perNode: {a100: {flags: {migStrategy: both}}}}}",
		schema: "at '/devicePlugin/config/perNode/a100/flags/migStrategy'"},
	{name: "pluginArgs replicaPolicy unknown", set: "scheduler.pluginArgs.replicaPolicy=spreadd", schema: "at '/scheduler/pluginArgs/replicaPolicy'"},
	{name: "pluginArgs weight above 100", set: "scheduler.pluginArgs.topologyWeight=500", schema: "at '/scheduler/pluginArgs/topologyWeight': maximum"},
	// Typos: a key the chart does not have is refused, not ignored.
	{name: "typo under devicePlugin", set: "devicePlugin.imagee.tag=v0.1.0", schema: "at '/devicePlugin': additional properties 'imagee' not allowed"},
	{name: "typo in a monitor", set: "scheduler.metrics.servicemonitor.enabled=true", schema: "at '/scheduler/metrics': additional properties 'servicemonitor' not allowed"},
	{name: "typo at the top", values: "schedular: {replicas: 1}", schema: "additional properties 'schedular' not allowed"},
	{name: "typo in pluginArgs", set: "scheduler.pluginArgs.topologyweight=3", schema: "at '/scheduler/pluginArgs': additional properties 'topologyweight' not allowed"},
	{name: "typo in workload", set: "scheduler.pluginArgs.workload.halflife=10", schema: "at '/scheduler/pluginArgs/workload': additional properties 'halflife' not allowed"},

	// perNode names become object names and a label value; configs must be maps.
	{name: "perNode name with upper case and '_'", set: "devicePlugin.config.perNode.A100_MIG.version=v1",
		tmpl: `devicePlugin.config.perNode: config name "A100_MIG": want a lower-case RFC 1123 label`},
	{name: "perNode name of 42 characters", set: "devicePlugin.config.perNode." + name42 + ".version=v1",
		tmpl: `config name "` + name42 + `": want a lower-case RFC 1123 label (a-z, 0-9, '-', starting and ending with a letter or digit) of at most 41 characters`},
	{name: "perNode name ending in '-'", values: "devicePlugin: {config: {perNode: {a100-: {version: v1}}}}", tmpl: `config name "a100-"`},
	{name: "perNode name with a dot", values: "devicePlugin: {config: {perNode: {a100.mig: {version: v1}}}}", tmpl: `config name "a100.mig"`},
	{name: "perNode config null", values: "devicePlugin: {config: {perNode: {a100: null}}}",
		schema: "at '/devicePlugin/config/perNode/a100': got null, want object", tmpl: "devicePlugin.config.perNode.a100: want a config file (a map"},
	{name: "perNode config a string", values: "devicePlugin: {config: {perNode: {a100: mixed}}}",
		schema: "at '/devicePlugin/config/perNode/a100': got string, want object", tmpl: "devicePlugin.config.perNode.a100: want a config file (a map"},
	{name: "default config null (removes it)", values: "devicePlugin: {config: {default: null}}",
		schema: "at '/devicePlugin/config': missing property 'default'", tmpl: "devicePlugin.config.default: want a config file (a map"},

	// Values that depend on each other.
	{name: "no leader election, 2 replicas", set: "scheduler.leaderElect=false",
		tmpl: "scheduler.leaderElect is false with scheduler.replicas 2: without leader election every replica schedules"},
	{name: "no leader election, 3 replicas", values: "scheduler: {leaderElect: false, replicas: 3}", tmpl: "scheduler.leaderElect is false with scheduler.replicas 3"},
	{name: "scheduler ServiceMonitor without its Service", values: "scheduler: {metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}}",
		tmpl: "scheduler.metrics.serviceMonitor needs scheduler.metrics.service.enabled"},
	{name: "device plugin ServiceMonitor without its Service", values: "devicePlugin: {metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}}",
		tmpl: "devicePlugin.metrics.serviceMonitor needs devicePlugin.metrics.service.enabled"},
	{name: "device plugin ServiceMonitor with metrics on loopback", values: "devicePlugin: {metrics: {enabled: false, serviceMonitor: {enabled: true}}}",
		tmpl: "devicePlugin.metrics.serviceMonitor needs devicePlugin.metrics.enabled"},
	{name: "device plugin PodMonitor with metrics on loopback", values: "devicePlugin: {metrics: {enabled: false, podMonitor: {enabled: true}}}",
		tmpl: "devicePlugin.metrics.podMonitor needs devicePlugin.metrics.enabled"},
	// Both select the device plugin pods: every target scraped twice.
	{name: "device plugin ServiceMonitor and PodMonitor", values: "devicePlugin: {metrics: {serviceMonitor: {enabled: true}, podMonitor: {enabled: true}}}",
		tmpl: "devicePlugin.metrics.serviceMonitor and devicePlugin.metrics.podMonitor are both enabled: both select the same device plugin pods"},
	{name: "scheduler ServiceMonitor's Secret not a DNS name", set: "scheduler.metrics.serviceMonitor.enabled=true,scheduler.metrics.serviceMonitor.credentials.name=Prom_Token",
		schema: "at '/scheduler/metrics/serviceMonitor/credentials/name'", tmpl: `scheduler.metrics.serviceMonitor.credentials.name "Prom_Token": want the name of a Secret`},
	{name: "scheduler ServiceMonitor's Secret key with a slash", set: "scheduler.metrics.serviceMonitor.enabled=true,scheduler.metrics.serviceMonitor.credentials.key=a/b",
		schema: "at '/scheduler/metrics/serviceMonitor/credentials/key'", tmpl: `scheduler.metrics.serviceMonitor.credentials.key "a/b": want the key`},
	{name: "scheduler ServiceMonitor's credentials removed", values: "scheduler: {metrics: {serviceMonitor: {enabled: true, credentials: null}}}",
		schema: "at '/scheduler/metrics/serviceMonitor': missing property 'credentials'", tmpl: `scheduler.metrics.serviceMonitor.credentials.key "": want the key`},
	{name: "another key of the chart's token Secret", set: "scheduler.metrics.serviceMonitor.enabled=true,scheduler.metrics.serviceMonitor.credentials.key=bearer",
		tmpl: `scheduler.metrics.serviceMonitor.credentials.key "bearer" without credentials.name: the chart's Secret gpupack-metrics-reader-token holds its token under the key token`},
	{name: "typo in the scheduler ServiceMonitor's credentials", set: "scheduler.metrics.serviceMonitor.credentials.secret=prom-token",
		schema: "at '/scheduler/metrics/serviceMonitor/credentials': additional properties 'secret' not allowed"},

	// Lists are lists; extra volumes do not collide with the chart's.
	{name: "extraArgs a string", set: "devicePlugin.extraArgs=--v=4", schema: "at '/devicePlugin/extraArgs': got string, want array"},
	{name: "scheduler args a string", set: "scheduler.args=--v=4", schema: "at '/scheduler/args': got string, want array"},
	{name: "extraArgs with an empty flag", values: `devicePlugin: {extraArgs: [""]}`, schema: "at '/devicePlugin/extraArgs/0'"},
	{name: "extraEnv a map", values: "devicePlugin: {extraEnv: {DP_DISABLE_HEALTHCHECKS: all}}", schema: "at '/devicePlugin/extraEnv': got object, want array"},
	{name: "extraEnv without a name", values: "devicePlugin: {extraEnv: [{value: all}]}", schema: "at '/devicePlugin/extraEnv/0': missing property 'name'"},
	{name: "extraVolumeMounts without mountPath", values: "devicePlugin: {extraVolumeMounts: [{name: x}]}", schema: "at '/devicePlugin/extraVolumeMounts/0': missing property 'mountPath'"},
	{name: "extraVolumes named as the chart's", values: "devicePlugin: {extraVolumes: [{name: config, emptyDir: {}}]}",
		tmpl: `devicePlugin.extraVolumes: volume name "config" is the chart's`},
	{name: "extraVolumes named twice", values: "devicePlugin: {extraVolumes: [{name: x, emptyDir: {}}, {name: x, emptyDir: {}}]}",
		tmpl: `devicePlugin.extraVolumes: volume name "x" is listed twice`},

	// The scheduler is kube-scheduler v1.37.
	{name: "Kubernetes 1.36", args: []string{"--kube-version", "1.36.9"}, schema: "chart requires kubeVersion: >=1.37.0-0 which is incompatible with Kubernetes v1.36.9"},
}

// helmTemplate runs helm template with the case's values and args.
func (b badValue) helmTemplate(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	args := []string{"template", "gpupack", chartDir, "--namespace", releaseNamespace}
	if b.values != "" {
		args = append(args, "--values", valuesFile(t, b.values))
	}
	if b.set != "" {
		args = append(args, "--set", b.set)
	}
	args = append(append(args, b.args...), extra...)
	return helm(t, args...)
}

// TestChartRefusesBadValues: every bad value stops helm template (and so
// install and upgrade) with an error that names it, from the schema where
// JSON Schema can say it, else from the templates; and the templates' own
// checks hold without the schema (--skip-schema-validation), all reported
// at templates/validate/values.yaml.
func TestChartRefusesBadValues(t *testing.T) {
	for _, b := range badValues {
		t.Run(b.name, func(t *testing.T) {
			require.True(t, b.schema != "" || b.tmpl != "", "a case says what the error is")
			out, err := b.helmTemplate(t)
			require.Error(t, err, "renders:\n%s", out)
			want := b.schema
			if want == "" {
				want = b.tmpl
			}
			require.Contains(t, out, want)
			if b.tmpl == "" {
				return
			}
			out, err = b.helmTemplate(t, "--skip-schema-validation")
			require.Error(t, err, "renders without the schema:\n%s", out)
			require.Contains(t, out, b.tmpl, "without the schema")
			// Reported where the checks run, whatever the value.
			require.Contains(t, out, "Error: "+validateLocation, "without the schema")
		})
	}
}

// goodValues are values at the edges of what is allowed: they render, and
// each config the chart writes is one the device plugin loads.
var goodValues = []struct {
	name          string
	values, set   string
	args          []string
	daemonSets    []string
	replicas      int32
	leaderElect   bool
	schedulerNS   string
	schedulerName string
}{
	{name: "defaults", daemonSets: []string{"gpupack-device-plugin"}, replicas: 2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "everything on", values: allOn, daemonSets: []string{"gpupack-device-plugin", "gpupack-device-plugin-a100-mig", "gpupack-device-plugin-t4-shared"},
		replicas: 2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	// 22 + 41 = 63 characters: the longest label value.
	{name: "perNode name of 41 characters", values: "devicePlugin: {config: {perNode: {" + name41 + ": {version: v1}, 0t4: {}, a: {}}}}",
		daemonSets: []string{"gpupack-device-plugin", "gpupack-device-plugin-" + name41, "gpupack-device-plugin-0t4", "gpupack-device-plugin-a"},
		replicas:   2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "one replica without leader election", values: "scheduler: {leaderElect: false, replicas: 1}",
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 1, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "no replica without leader election", values: "scheduler: {leaderElect: false, replicas: 0}",
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 0, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "scheduler in the release namespace with a dotted name", values: `scheduler: {namespace: "", schedulerName: gpu.scheduler.example.com}`,
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 2, leaderElect: true, schedulerNS: releaseNamespace, schedulerName: "gpu.scheduler.example.com"},
	{name: "registry with a port and a pre-release tag and MPS off with any root", values: `devicePlugin: {image: {repository: "registry.local:5000/team/gpupack_dp", tag: v0.2.0-rc.1}, mps: {enabled: false, root: /x}}`,
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "lists on the command line", set: "devicePlugin.extraArgs={--v=4},scheduler.args={--v=5}",
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "a provider's 1.37 pre-release", args: []string{"--kube-version", "1.37.2-eks-4a1b2c"},
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
	{name: "a parent chart's globals", values: "global: {imageRegistry: registry.local}",
		daemonSets: []string{"gpupack-device-plugin"}, replicas: 2, leaderElect: true, schedulerNS: "kube-system", schedulerName: "gpupack-scheduler"},
}

func TestChartAcceptsGoodValues(t *testing.T) {
	for _, g := range goodValues {
		t.Run(g.name, func(t *testing.T) {
			args := []string{"template", "gpupack", chartDir, "--namespace", releaseNamespace}
			if g.values != "" {
				args = append(args, "--values", valuesFile(t, g.values))
			}
			if g.set != "" {
				args = append(args, "--set", g.set)
			}
			out, err := helm(t, append(args, g.args...)...)
			require.NoError(t, err, out)
			objs := decodeDocs(t, out)
			var names []string
			for _, o := range objs {
				if o.GetKind() != "DaemonSet" {
					continue
				}
				names = append(names, o.GetName())
				ds := daemonSet(t, objs, o.GetName())
				require.LessOrEqual(t, len(ds.Spec.Template.Labels["app.kubernetes.io/name"]), 63)
				// The device plugin loads the DaemonSet's config.
				cm := find(objs, "ConfigMap", ds.Spec.Template.Spec.Volumes[2].ConfigMap.Name)
				require.NotNil(t, cm)
				data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
				_, err := configv1.Parse([]byte(data))
				require.NoError(t, err, "%s's config:\n%s", o.GetName(), data)
			}
			require.ElementsMatch(t, g.daemonSets, names)
			dep := find(objs, "Deployment", "gpupack-scheduler")
			require.NotNil(t, dep)
			require.Equal(t, g.schedulerNS, dep.GetNamespace())
			deploy := &appsv1.Deployment{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(dep.Object, deploy))
			require.Equal(t, g.replicas, *deploy.Spec.Replicas)
			cfg := schedulerConfig(t, find(objs, "ConfigMap", "gpupack-scheduler-config"))
			le := cfg["leaderElection"].(map[string]any)
			require.Equal(t, g.leaderElect, le["leaderElect"])
			require.Equal(t, g.schedulerName, le["resourceName"])
			require.Equal(t, g.schedulerName, cfg["profiles"].([]any)[0].(map[string]any)["schedulerName"])
		})
	}
}

// NVIDIA's step 2 (docs/migrate-from-nvidia.md): its ConfigMap of named
// configs mounted for --config-file-srcdir, its environment variables, and
// the Node reads --config-file-srcdir needs, which the default RBAC leaves
// out (nothing else in the device plugin reads a Node; it patches its own),
// as manifests/device-plugin/rbac-per-node-config.yaml.
func TestChartExtrasAndNodeReadAccess(t *testing.T) {
	const extras = `
devicePlugin:
  extraArgs: [--config-file-srcdir=/available-configs]
  extraEnv:
    - {name: DP_DISABLE_HEALTHCHECKS, value: "48"}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
  extraVolumes:
    - {name: nvidia-configs, configMap: {name: nvidia-device-plugin-configs}}
  extraVolumeMounts:
    - {name: nvidia-configs, mountPath: /available-configs, readOnly: true}
  rbac: {nodeReadAccess: true}
  config:
    perNode: {a100: {flags: {migStrategy: mixed}}}
`
	objs := renderChart(t, extras)
	for _, name := range []string{"gpupack-device-plugin", "gpupack-device-plugin-a100"} {
		spec := daemonSet(t, objs, name).Spec.Template.Spec
		c := spec.Containers[0]
		require.Equal(t, "--config-file-srcdir=/available-configs", c.Args[len(c.Args)-1], name)
		// After the chart's: NODE_NAME first, the extras last, verbatim.
		require.Equal(t, "NODE_NAME", c.Env[0].Name)
		require.Equal(t, []corev1.EnvVar{
			{Name: "DP_DISABLE_HEALTHCHECKS", Value: "48"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		}, c.Env[len(c.Env)-2:], name)
		require.Equal(t, corev1.VolumeMount{Name: "nvidia-configs", MountPath: "/available-configs", ReadOnly: true}, c.VolumeMounts[len(c.VolumeMounts)-1], name)
		require.Equal(t, corev1.Volume{Name: "nvidia-configs", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nvidia-device-plugin-configs"}},
		}}, spec.Volumes[len(spec.Volumes)-1], name)
	}

	pluginSA := &user.DefaultInfo{
		Name:   "system:serviceaccount:" + releaseNamespace + ":gpupack-device-plugin",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace, "system:authenticated"},
	}
	can := func(authz authorizer.Authorizer, verb, resource string) bool {
		d, _, err := authz.Authorize(context.Background(), authorizer.AttributesRecord{
			User: pluginSA, Verb: verb, APIVersion: "*", Resource: resource, ResourceRequest: true,
		})
		require.NoError(t, err)
		return d == authorizer.DecisionAllow
	}
	for values, want := range map[string]map[string]bool{
		// The default: nodes patched (its own, node-patch-policy.yaml), never read.
		"": {"patch": true, "list": false, "watch": false, "get": false, "update": false},
		// nodeReadAccess: list and watch (the informer of pernode.go), no more.
		extras: {"patch": true, "list": true, "watch": true, "get": false, "update": false},
	} {
		authz := offlineAuthorizer(t, renderChart(t, values))
		for verb, allowed := range want {
			require.Equal(t, allowed, can(authz, verb, "nodes"), "%s nodes with values %q", verb, values)
		}
		require.True(t, can(authz, "list", "pods"))
	}
	// nodeReadAccess renders what manifests/ has for it.
	chart := normalize(t, slices.DeleteFunc(renderChart(t, extras), func(o *unstructured.Unstructured) bool {
		return !strings.HasSuffix(o.GetName(), "-per-node-config")
	}), false)
	manifest := normalize(t, readManifest(t, "../../manifests/device-plugin/rbac-per-node-config.yaml"), false)
	require.Len(t, manifest, 2)
	require.Equal(t, manifest, chart)
}

// NOTES.txt lists the device plugin's node selection as the DaemonSet has
// it: every term of its node affinity, and its node selector.
func TestChartNotesListTheDaemonSetsNodeSelection(t *testing.T) {
	for _, values := range []string{"", "devicePlugin: {gpuOperator: true, nodeSelector: {pool: gpu}}",
		"devicePlugin: {affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: gpu, operator: Exists}, {key: zone, operator: In, values: [a, b]}]}]}}}}"} {
		ds := daemonSet(t, renderChart(t, values), "gpupack-device-plugin")
		notes := renderNotes(t, values)
		terms := ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		require.NotEmpty(t, terms)
		for _, term := range terms {
			var exprs []string
			for _, e := range term.MatchExpressions {
				s := e.Key + " " + string(e.Operator)
				if len(e.Values) > 0 {
					s += " [" + strings.Join(e.Values, ", ") + "]"
				}
				exprs = append(exprs, s)
			}
			require.Contains(t, notes, "  - "+strings.Join(exprs, " and ")+"\n", values)
		}
		require.Equal(t, len(terms), strings.Count(notes, "\n  - "), "one line per term:\n%s", notes)
		for k, v := range ds.Spec.Template.Spec.NodeSelector {
			require.Contains(t, notes, k+"="+v, values)
		}
	}
}

// Rendered without a cluster (helm template, lint, --dry-run=client),
// where lookup answers empty for every object, the notes say the namespace
// was not checked: neither that it does not exist nor that it lacks the
// Pod Security label (TestChartInstallUpgradeUninstall has the warnings).
func TestChartNotesClaimNothingWithoutCluster(t *testing.T) {
	notes := renderNotes(t, "")
	require.Contains(t, notes, "namespace gpupack-system must be labelled pod-security.kubernetes.io/enforce=privileged")
	require.Contains(t, notes, "Not checked: this render did not look at the cluster.")
	require.NotContains(t, notes, "WARNING")
	require.NotContains(t, notes, "does not exist")
	require.NotContains(t, notes, "is not labelled")
	// Nothing of the device plugin's namespace without the device plugin.
	require.NotContains(t, renderNotes(t, "devicePlugin: {enabled: false}"), "Pod Security")
}

// renderNotes renders NOTES.txt (helm template leaves it out) through a
// copy of the chart that holds it as a ConfigMap.
func renderNotes(t *testing.T, values string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gpupack")
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), notes, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "notes.yaml"),
		[]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n{{ tpl (.Files.Get \"notes.txt\") . | indent 4 }}\n"), 0o600))
	args := []string{"template", "gpupack", dir, "--namespace", releaseNamespace, "--show-only", "templates/notes.yaml"}
	if values != "" {
		args = append(args, "--values", valuesFile(t, values))
	}
	out, err := helm(t, args...)
	require.NoError(t, err, out)
	s, _, _ := unstructured.NestedString(decodeDocs(t, out)[0].Object, "data", "notes")
	return s
}

// chartSchema is values.schema.json, parsed.
func chartSchema(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	s := map[string]any{}
	require.NoError(t, json.Unmarshal(raw, &s))
	return s
}

// resolve follows a node's $ref (#/definitions/<name>).
func resolve(t *testing.T, schema, node map[string]any) map[string]any {
	t.Helper()
	if ref, ok := node["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/definitions/")
		require.True(t, ok, ref)
		def, ok := schema["definitions"].(map[string]any)[name].(map[string]any)
		require.True(t, ok, "definition %s", name)
		return resolve(t, schema, def)
	}
	return node
}

// closed reports whether a schema node is an object whose keys the chart
// owns (additionalProperties: false).
func closed(node map[string]any) bool {
	ap, ok := node["additionalProperties"].(bool)
	return ok && !ap
}

// Every key of values.yaml is described by values.schema.json with a type
// (or an enum), and every key the schema gives an object the chart owns is
// one values.yaml has (pluginArgs apart: its keys are the Go type's, next
// test); so a value added to one and not the other fails here, not in a
// user's install.
func TestChartSchemaCoversValues(t *testing.T) {
	schema := chartSchema(t)
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	values := map[string]any{}
	require.NoError(t, yaml.Unmarshal(raw, &values))

	var walk func(path string, v map[string]any, node map[string]any)
	walk = func(path string, v map[string]any, node map[string]any) {
		props, _ := node["properties"].(map[string]any)
		for k, val := range v {
			p := strings.TrimPrefix(path+"."+k, ".")
			child, ok := props[k].(map[string]any)
			require.True(t, ok, "values.yaml's %s is not in values.schema.json", p)
			child = resolve(t, schema, child)
			_, typed := child["type"]
			_, enum := child["enum"]
			require.True(t, typed || enum, "values.schema.json gives %s no type", p)
			if m, ok := val.(map[string]any); ok && closed(child) {
				walk(p, m, child)
			}
		}
		if !closed(node) || strings.HasPrefix(path, "scheduler.pluginArgs") {
			return
		}
		for k := range props {
			p := strings.TrimPrefix(path+"."+k, ".")
			if p == "global" {
				continue // a parent chart's, not ours
			}
			_, ok := v[k]
			require.True(t, ok, "values.schema.json's %s is not in values.yaml", p)
		}
	}
	walk("", values, schema)
}

// jsonFields are the JSON names of a struct's fields (inline ones apart).
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func schemaKeys(node map[string]any) []string {
	var out []string
	for k := range node["properties"].(map[string]any) {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The schema of scheduler.pluginArgs, which refuses unknown keys, has the
// fields of the plugin's versioned args type (GPUPackArgs, v1), so a field
// added to the type cannot be refused by the chart; and values.yaml's
// pluginArgs decode strictly into that type.
func TestChartSchemaPluginArgsAreTheGoType(t *testing.T) {
	schema := chartSchema(t)
	node := func(path ...string) map[string]any {
		n := schema
		for _, p := range path {
			n = resolve(t, schema, n[p].(map[string]any))
		}
		return n
	}
	args := node("properties", "scheduler", "properties", "pluginArgs")
	// And its TypeMeta, inline in the Go type, which the args may hold.
	require.Equal(t, slices.Sorted(slices.Values(append(jsonFields(reflect.TypeFor[schedconfigv1.GPUPackArgs]()), "apiVersion", "kind"))), schemaKeys(args))
	workload := node("properties", "scheduler", "properties", "pluginArgs", "properties", "workload")
	require.Equal(t, jsonFields(reflect.TypeFor[schedconfigv1.WorkloadArgs]()), schemaKeys(workload))
	prior := node("properties", "scheduler", "properties", "pluginArgs", "properties", "workload", "properties", "prior", "items")
	require.Equal(t, jsonFields(reflect.TypeFor[schedconfigv1.TaskTypeWeight]()), schemaKeys(prior))

	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var values struct {
		Scheduler struct {
			PluginArgs json.RawMessage `json:"pluginArgs"`
		} `json:"scheduler"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &values))
	var decoded schedconfigv1.GPUPackArgs
	dec := json.NewDecoder(strings.NewReader(string(values.Scheduler.PluginArgs)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&decoded))
}
