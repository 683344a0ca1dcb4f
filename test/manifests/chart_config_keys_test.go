package manifests

import (
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

// mpsResources is a sharing.mps resources list the plugin loads.
const mpsResources = "[{name: nvidia.com/gpu, replicas: 2}]"

// What the chart renders for one DaemonSet from the fields it reads of its
// config (_helpers.tpl, gpupack.deviceConfig).
type configView struct {
	mig, mps, cdi bool
	driverRoot    string // the driver-root hostPath; "" without CDI
}

// chartView reads a DaemonSet's render: the MIG monitor env, MPS_ROOT, the
// CDI spec dir flag and the driver root's hostPath.
func chartView(t *testing.T, objs []*unstructured.Unstructured, name string) configView {
	t.Helper()
	spec := daemonSet(t, objs, name).Spec.Template.Spec
	c := spec.Containers[0]
	var v configView
	for _, e := range c.Env {
		v.mig = v.mig || e.Name == "NVIDIA_MIG_MONITOR_DEVICES"
		v.mps = v.mps || e.Name == "MPS_ROOT"
	}
	v.cdi = slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--cdi-spec-dir=") })
	for _, vol := range spec.Volumes {
		if vol.Name == "driver-root" {
			v.driverRoot = vol.HostPath.Path
		}
	}
	return v
}

// pluginView is what the device plugin makes of the DaemonSet's config (its
// ConfigMap, decoded by pkg/config/v1 as on the node), in the same terms.
func pluginView(t *testing.T, objs []*unstructured.Unstructured, name string) configView {
	t.Helper()
	cm := find(objs, "ConfigMap", name)
	require.NotNil(t, cm, "ConfigMap %s", name)
	data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	c, _, err := configv1.Decode([]byte(data))
	require.NoError(t, err, "the plugin loads %s's config:\n%s", name, data)
	v := configView{
		mig: *c.Flags.MigStrategy != configv1.MIGStrategyNone,
		mps: c.Sharing.MPS != nil && len(c.Sharing.MPS.Resources) > 0,
		cdi: c.Flags.Plugin.UsesCDI(),
	}
	if v.cdi {
		v.driverRoot = *c.Flags.NvidiaDriverRoot
		if v.driverRoot == "" {
			v.driverRoot = "/"
		}
	}
	return v
}

// TestChartReadsConfigKeysAsThePlugin: the device plugin matches its
// config's keys in any letter case (encoding/json's rule, long s 'ſ' for
// 's' included), except inside sharing.timeSlicing and sharing.mps, which
// NVIDIA decodes by exact key; and splits a deviceListStrategy string at
// commas. The chart reads the fields that choose its mounts, env and
// flags (flags.migStrategy, flags.nvidiaDriverRoot,
// flags.plugin.deviceListStrategy, sharing.mps.resources) the same way, so
// each DaemonSet gets what its plugin will do: MigStrategy: mixed once
// rendered a MIG plugin without the MIG monitor, and SHARING.MPS an MPS
// plugin without its MPS root.
func TestChartReadsConfigKeysAsThePlugin(t *testing.T) {
	perNode := func(config string) string {
		return "devicePlugin: {config: {perNode: {gpu: " + config + "}}}"
	}
	const pn, def = "gpupack-device-plugin-gpu", "gpupack-device-plugin"
	tests := []struct {
		name, values, ds string
		want             configView
	}{
		// The exact names, as before.
		{"migStrategy", perNode("{flags: {migStrategy: mixed}}"), pn, configView{mig: true}},
		{"deviceListStrategy and nvidiaDriverRoot", perNode("{flags: {nvidiaDriverRoot: /run/nvidia/driver, plugin: {deviceListStrategy: [envvar, cdi-cri]}}}"), pn,
			configView{cdi: true, driverRoot: "/run/nvidia/driver"}},
		{"sharing.mps", perNode("{sharing: {mps: {resources: " + mpsResources + "}}}"), pn, configView{mps: true}},
		{"defaults", "", def, configView{}},

		// Other letter cases.
		{"MigStrategy", perNode("{flags: {MigStrategy: mixed}}"), pn, configView{mig: true}},
		{"migstrategy", perNode("{flags: {migstrategy: single}}"), pn, configView{mig: true}},
		{"FLAGS.MIGSTRATEGY", perNode("{FLAGS: {MIGSTRATEGY: mixed}}"), pn, configView{mig: true}},
		{"MigStrategy none", perNode("{Flags: {MigStrategy: none}}"), pn, configView{}},
		{"migStrategy with a long s", perNode("{flags: {migſtrategy: mixed}}"), pn, configView{mig: true}},
		{"Plugin.DeviceListStrategy", perNode("{flags: {Plugin: {DeviceListStrategy: cdi-cri}}}"), pn, configView{cdi: true, driverRoot: "/"}},
		{"NVIDIADRIVERROOT and deviceliststrategy", perNode("{Flags: {NVIDIADRIVERROOT: /run/nvidia/driver, plugin: {deviceliststrategy: [cdi-annotations]}}}"), pn,
			configView{cdi: true, driverRoot: "/run/nvidia/driver"}},
		{"NvidiaDriverRoot without CDI", perNode("{flags: {NvidiaDriverRoot: /run/nvidia/driver}}"), pn, configView{}},
		{"Sharing.MPS", perNode("{Sharing: {MPS: {resources: " + mpsResources + "}}}"), pn, configView{mps: true}},
		{"sharing.Mps", perNode("{sharing: {Mps: {resources: " + mpsResources + "}}}"), pn, configView{mps: true}},
		{"sharing with a long s", perNode("{ſharing: {mps: {resources: " + mpsResources + "}}}"), pn, configView{mps: true}},
		// sharing.mps is NVIDIA's exact-key section: Resources is an unknown
		// key there, which the plugin ignores (no MPS).
		{"sharing.mps.Resources", perNode("{sharing: {mps: {Resources: " + mpsResources + "}}}"), pn, configView{}},
		// Not a per-node config: in devicePlugin.config.default the chart's
		// own key is dropped with a null, else both are there (refused,
		// TestChartRefusesConfigsAsThePlugin).
		{"default MIGSTRATEGY", "devicePlugin: {config: {default: {flags: {migStrategy: null, MIGSTRATEGY: mixed}}}}", def, configView{mig: true}},
		{"default Plugin", "devicePlugin: {config: {default: {flags: {plugin: null, Plugin: {DeviceListStrategy: cdi-cri}}}}}", def, configView{cdi: true, driverRoot: "/"}},
		{"default Sharing", "devicePlugin: {config: {default: {sharing: null, Sharing: {mps: {resources: " + mpsResources + "}}}}}", def, configView{mps: true}},

		// A deviceListStrategy string is split at commas (and trimmed).
		{"deviceListStrategy list in a string", perNode(`{flags: {plugin: {deviceListStrategy: "envvar, cdi-cri"}}}`), pn, configView{cdi: true, driverRoot: "/"}},
		{"deviceListStrategy string without CDI", perNode(`{flags: {plugin: {deviceListStrategy: "envvar,volume-mounts"}}}`), pn, configView{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.values)
			objs := renderChart(t, tc.values)
			require.Equal(t, tc.want, chartView(t, objs, tc.ds), "what the chart rendered")
			require.Equal(t, tc.want, pluginView(t, objs, tc.ds), "what the plugin does with the rendered config")
		})
	}
}

// TestChartRefusesConfigsAsThePlugin: in the fields it reads, the chart
// refuses at render time what the device plugin would refuse on the node
// (each config below is one the plugin refuses), naming the key as
// written; and two keys for one of those fields, which the plugin would
// silently read as one (the last in byte order wins), the one case where
// the chart is stricter than the plugin: in devicePlugin.config.default,
// MigStrategy: mixed would add to values.yaml's migStrategy: none rather
// than replace it, and the plugin would run with none. The templates
// check these, so --skip-schema-validation refuses them too.
func TestChartRefusesConfigsAsThePlugin(t *testing.T) {
	tests := []struct {
		name string
		// config is a config file, given as devicePlugin.config.perNode.gpu
		// unless inDefault (devicePlugin.config.default, merged with the
		// chart's).
		config    string
		inDefault bool
		want      string
		// pluginAccepts: the plugin loads config (two keys for one field).
		pluginAccepts bool
	}{
		{name: "unknown top-level key", config: "{version: v1, flag: {migStrategy: mixed}}",
			want: `devicePlugin.config.perNode.gpu: unknown key "flag": the device plugin refuses a config with a top-level key it does not know; its keys are version, flags, resources, sharing, imex, health, publish (in any letter case)`},
		{name: "a ConfigMap", config: "{apiVersion: v1, kind: ConfigMap, data: {a: '{}'}}", want: `devicePlugin.config.perNode.gpu: unknown key "apiVersion"`},
		{name: "unknown top-level key in default", config: "{timeslicing: {}}", inDefault: true, want: `devicePlugin.config.default: unknown key "timeslicing"`},
		{name: "Version v2", config: "{Version: v2}", want: `devicePlugin.config.perNode.gpu.Version "v2": the device plugin knows config version v1 only`},
		{name: "Flags not a mapping", config: "{Flags: [migStrategy]}", want: "devicePlugin.config.perNode.gpu.Flags: want a mapping, got a list"},
		{name: "MigStrategy unknown", config: "{flags: {MigStrategy: both}}", want: `devicePlugin.config.perNode.gpu.flags.MigStrategy "both": want none, single or mixed`},
		{name: "MIGSTRATEGY in upper case", config: "{flags: {MIGSTRATEGY: MIXED}}", want: `devicePlugin.config.perNode.gpu.flags.MIGSTRATEGY "MIXED": want none, single or mixed`},
		{name: "migStrategy a boolean", config: "{flags: {migstrategy: true}}", want: `devicePlugin.config.perNode.gpu.flags.migstrategy true: want none, single or mixed`},
		{name: "NvidiaDriverRoot relative", config: "{flags: {NvidiaDriverRoot: run/nvidia/driver}}", want: `devicePlugin.config.perNode.gpu.flags.NvidiaDriverRoot "run/nvidia/driver": want the driver's root on the host, an absolute path`},
		{name: "Plugin not a mapping", config: "{flags: {Plugin: cdi-cri}}", want: "devicePlugin.config.perNode.gpu.flags.Plugin: want a mapping, got a string"},
		{name: "DeviceListStrategy unknown", config: "{flags: {plugin: {DeviceListStrategy: [envvar, cdi]}}}",
			want: `devicePlugin.config.perNode.gpu.flags.plugin.DeviceListStrategy: unknown strategy "cdi": want envvar, volume-mounts, cdi-annotations, cdi-cri`},
		{name: "deviceListStrategy exact, unknown in a string", config: `{flags: {plugin: {deviceListStrategy: "envvar,cdi"}}}`,
			want: `devicePlugin.config.perNode.gpu.flags.plugin.deviceListStrategy: unknown strategy "cdi"`},
		{name: "deviceListStrategy empty string", config: `{flags: {plugin: {deviceListStrategy: " , "}}}`,
			want: `devicePlugin.config.perNode.gpu.flags.plugin.deviceListStrategy " , ": empty: the device plugin refuses it`},
		{name: "DeviceListStrategy empty list", config: `{flags: {plugin: {DeviceListStrategy: []}}}`,
			want: `devicePlugin.config.perNode.gpu.flags.plugin.DeviceListStrategy []: empty: the device plugin refuses it`},
		{name: "DeviceListStrategy a number", config: `{flags: {plugin: {DeviceListStrategy: 1}}}`,
			want: `devicePlugin.config.perNode.gpu.flags.plugin.DeviceListStrategy 1: want a strategy or a list of strategies`},
		{name: "Sharing.mps not a mapping", config: "{Sharing: {mps: true}}", want: "devicePlugin.config.perNode.gpu.Sharing.mps: want a mapping, got a boolean"},
		{name: "MPS resources not a list", config: "{sharing: {MPS: {resources: {name: nvidia.com/gpu, replicas: 2}}}}", want: "devicePlugin.config.perNode.gpu.sharing.MPS.resources: want a list, got a mapping"},

		// Two keys for one field.
		{name: "MigStrategy beside values.yaml's migStrategy", config: "{flags: {MigStrategy: mixed}}", inDefault: true, pluginAccepts: true,
			want: `devicePlugin.config.default.flags: the keys "MigStrategy" and "migStrategy" name one field, migStrategy: the device plugin matches keys in any letter case, would read them all into that field and silently keep one value; keep one key (values given for devicePlugin.config.default are merged into the chart's default config: a key in another letter case than the chart's own is added beside it; write it migStrategy, or set migStrategy: null to drop the chart's)`},
		{name: "Flags beside values.yaml's flags", config: "{Flags: {migStrategy: mixed}}", inDefault: true, pluginAccepts: true,
			want: `devicePlugin.config.default: the keys "Flags" and "flags" name one field, flags`},
		{name: "three spellings", config: "{flags: {migStrategy: none, MigStrategy: mixed, migstrategy: single}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu.flags: the keys "MigStrategy", "migStrategy", "migstrategy" name one field, migStrategy: the device plugin matches keys in any letter case, would read them all into that field and silently keep one value; keep one key`},
		{name: "long s", config: "{flags: {migStrategy: none, migſtrategy: mixed}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu.flags: the keys "migStrategy" and "migſtrategy" name one field, migStrategy`},
		{name: "nvidiaDriverRoot twice", config: "{flags: {nvidiaDriverRoot: /, NvidiaDriverRoot: /run/nvidia/driver}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu.flags: the keys "NvidiaDriverRoot" and "nvidiaDriverRoot" name one field, nvidiaDriverRoot`},
		{name: "deviceListStrategy twice", config: "{flags: {plugin: {deviceListStrategy: envvar, DeviceListStrategy: cdi-cri}}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu.flags.plugin: the keys "DeviceListStrategy" and "deviceListStrategy" name one field, deviceListStrategy`},
		{name: "plugin twice", config: "{Flags: {plugin: {deviceListStrategy: envvar}, PLUGIN: {deviceListStrategy: cdi-cri}}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu.Flags: the keys "PLUGIN" and "plugin" name one field, plugin`},
		{name: "sharing twice", config: "{sharing: {timeSlicing: {}}, Sharing: {mps: {resources: " + mpsResources + "}}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu: the keys "Sharing" and "sharing" name one field, sharing`},
		{name: "mps twice", config: "{sharing: {mps: {resources: " + mpsResources + "}, MPS: {}}}", pluginAccepts: true,
			want: `devicePlugin.config.perNode.gpu.sharing: the keys "MPS" and "mps" name one field, mps`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configv1.Parse([]byte(tc.config))
			if tc.pluginAccepts {
				require.NoError(t, err, "the plugin loads it (if it now refuses it, say so in docs/operations.md and here)")
			} else {
				require.Error(t, err, "the plugin refuses it: the chart must not refuse more")
			}
			values := "devicePlugin: {config: {perNode: {gpu: " + tc.config + "}}}"
			if tc.inDefault {
				values = "devicePlugin: {config: {default: " + tc.config + "}}"
			}
			b := badValue{values: values}
			for _, extra := range [][]string{nil, {"--skip-schema-validation"}} {
				out, err := b.helmTemplate(t, extra...)
				require.Error(t, err, "%v renders:\n%s", extra, out)
				require.Contains(t, out, tc.want, extra)
			}
		})
	}
}

// The top-level keys the chart lets through are the plugin's: Config's
// fields (a field added there must not be refused by the chart).
func TestChartConfigTopLevelKeysAreTheGoType(t *testing.T) {
	out, err := badValue{values: "devicePlugin: {config: {perNode: {gpu: {x: 1}}}}"}.helmTemplate(t)
	require.Error(t, err)
	m := regexp.MustCompile(`its keys are ([a-zA-Z, ]+) \(in any letter case\)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	keys := strings.Split(m[1], ", ")
	slices.Sort(keys)
	require.Equal(t, jsonFields(reflect.TypeFor[configv1.Config]()), keys)
	// Every one of them, in another case, renders.
	for i, k := range keys {
		values := "devicePlugin: {config: {perNode: {gpu: {" + strings.ToUpper(k) + ": null}}}}"
		require.NotEmpty(t, renderChart(t, values), strconv.Itoa(i))
	}
}
