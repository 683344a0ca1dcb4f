package v1

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/topology"
)

// nvidiaConfig is a config written for NVIDIA's k8s-device-plugin.
const nvidiaConfig = `
version: v1
flags:
  migStrategy: "mixed"
  failOnInitError: false
  nvidiaDriverRoot: "/run/nvidia/driver"
  plugin:
    passDeviceSpecs: true
    deviceListStrategy: envvar
    deviceIDStrategy: uuid
sharing:
  timeSlicing:
    renameByDefault: true
    failRequestsGreaterThanOne: true
    resources:
    - name: nvidia.com/gpu
      replicas: 4
    - name: mig-1g.5gb
      replicas: 2
      devices: [0, "1", "GPU-8dd88590-642d-5e6c-80c9-33854b55e870", "1:0"]
`

func TestParseNVIDIAConfig(t *testing.T) {
	c, warnings, err := Decode([]byte(nvidiaConfig))
	require.NoError(t, err)
	require.Equal(t, MIGStrategyMixed, *c.Flags.MigStrategy)
	require.False(t, *c.Flags.FailOnInitError)
	require.True(t, *c.Flags.Plugin.PassDeviceSpecs)
	require.Equal(t, "/run/nvidia/driver", c.Flags.DevRoot(), "the dev root defaults to the driver root, as in NVIDIA's plugin")
	// Derived, not defaulted: a driver root given later moves it too.
	c.Flags.NvidiaDriverRoot = ptr.To("/other")
	require.Equal(t, "/other", c.Flags.DevRoot())
	c.Flags.NvidiaDevRoot = ptr.To("/dev-root")
	require.Equal(t, "/dev-root", c.Flags.DevRoot())
	ts := c.Sharing.TimeSlicing
	require.True(t, ts.RenameByDefault)
	require.True(t, ts.FailRequestsGreaterThanOne)
	require.Len(t, ts.Resources, 2)
	require.Nil(t, ts.Resources[0].Devices)
	require.Equal(t, "nvidia.com/mig-1g.5gb", ts.Resources[1].Name, "NVIDIA qualifies a bare name")
	require.Equal(t, []DeviceRef{"0", "1", "GPU-8dd88590-642d-5e6c-80c9-33854b55e870", "1:0"}, ts.Resources[1].Devices.List)
	// NVIDIA ignores devices: all of the resource's devices are shared.
	require.True(t, ts.Resources[1].Selection().All)
	require.Equal(t, "nvidia.com/mig-1g.5gb.shared", ts.Target(&ts.Resources[1]))
	require.Equal(t, []string{"sharing.timeSlicing.resources[1].devices: ignored, as NVIDIA's plugin ignores it (every device of the resource is shared); gpupack's own field is gpupackDevices"}, warnings.Strings())
	// gpupack's own sections get their defaults.
	require.Equal(t, ReplicaPolicyPacked, ts.ReplicaPolicy)
	require.Equal(t, []uint64{13, 31, 43, 45, 68, 109}, c.Health.SkippedXIDs)
	require.True(t, *c.Health.Recovery.Enabled)
	require.Equal(t, 3, *c.Health.Recovery.Checks)
	require.Equal(t, 10*time.Second, c.Health.Recovery.Interval.Duration)
}

// TestEmptyAndNoVersionAreV1Defaults: NVIDIA's plugin reads an empty file
// and a file without version as v1.
func TestEmptyAndNoVersionAreV1Defaults(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "{}", "null"} {
		c, w, err := Decode([]byte(in))
		require.NoError(t, err, "%q", in)
		require.Empty(t, w)
		require.Equal(t, Default(), c, "%q", in)
	}
	c, err := Parse([]byte("flags: {migStrategy: single}"))
	require.NoError(t, err)
	require.Equal(t, Version, c.Version)
	require.Equal(t, MIGStrategySingle, *c.Flags.MigStrategy)
	// Empty YAML documents around the one config are no second config.
	for _, tc := range []struct {
		in          string
		wantWarning bool // NVIDIA's plugin would read an empty first document
	}{
		{"---\nflags: {migStrategy: single}\n", false},
		{"flags: {migStrategy: single}\n---\n", false},
		{"flags: {migStrategy: single}\n---\n# trailer\n", false},
		// A comment before the first --- is no document: NVIDIA's plugin
		// reads the config (it gave a false warning here).
		{"# header\n---\nflags: {migStrategy: single}\n", false},
		{"# header\n---\nflags: {migStrategy: single}\n---\n", false},
		{"%YAML 1.1\n---\nflags: {migStrategy: single}\n", false},
		{"--- {flags: {migStrategy: single}}\n", false},
		{"flags: {migStrategy: single}\n...\n", false},
		{"---\n---\nflags: {migStrategy: single}\n", true},
		{"---\n# header\n---\nflags: {migStrategy: single}\n---\n# trailer\n", true},
	} {
		c, w, err := Decode([]byte(tc.in))
		require.NoError(t, err, "%q", tc.in)
		require.Equal(t, MIGStrategySingle, *c.Flags.MigStrategy, "%q", tc.in)
		if tc.wantWarning {
			require.Equal(t, Warnings{{Kind: WarningNotFirstDocument,
				Message: "the config is not the file's first YAML document: NVIDIA's plugin reads only the first (empty here) and would run with the defaults"}}, w)
		} else {
			require.Empty(t, w, "%q", tc.in)
		}
	}
}

// TestDeviceListStrategyAsNVIDIA: NVIDIA's plugin reads deviceListStrategy
// as a string or a list and keeps it as a set, so a strategy listed twice
// loads (gpupack once refused it as a duplicate).
func TestDeviceListStrategyAsNVIDIA(t *testing.T) {
	tests := []struct {
		in   string
		want StringList
	}{
		{"flags: {plugin: {deviceListStrategy: envvar}}", StringList{"envvar"}},
		{"flags: {plugin: {deviceListStrategy: [volume-mounts, envvar]}}", StringList{"volume-mounts", "envvar"}},
		{"flags: {plugin: {deviceListStrategy: [envvar, envvar]}}", StringList{"envvar", "envvar"}},
		{"flags: {plugin: {deviceListStrategy: [cdi-cri, cdi-annotations, cdi-cri]}}", StringList{"cdi-cri", "cdi-annotations", "cdi-cri"}},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.in))
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, *c.Flags.Plugin.DeviceListStrategy, tt.in)
	}
	c, err := Parse([]byte(tests[3].in))
	require.NoError(t, err)
	require.True(t, c.Flags.Plugin.UsesCDI())
	require.False(t, c.Flags.Plugin.Includes(DeviceListStrategyEnvvar))
}

// TestDuplicateKeysAsNVIDIA: NVIDIA's plugin decodes with sigs.k8s.io/yaml's
// non-strict Unmarshal, where a key given twice keeps its last value; such
// a file (YAML or JSON) loads the same here, with a duplicate-key warning
// naming the field, the line of the last key and the value used (gpupack
// once refused it, then quoted the YAML decoder's "yaml: unmarshal errors:"
// without the value).
func TestDuplicateKeysAsNVIDIA(t *testing.T) {
	tests := []struct {
		name, in     string
		wantReplicas int
		want         Warnings
	}{
		{"yaml", "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n      replicas: 4\n",
			4, Warnings{{Kind: WarningDuplicateKey, Field: "sharing.timeSlicing.resources[0].replicas",
				Message: `key "replicas" given 2 times in one mapping (the last at line 7): the last value, 4, is used and 2 is dropped, as NVIDIA's plugin's decoder keeps the last`}}},
		{"json section twice", `{"version":"v1","sharing":{"timeSlicing":{"resources":[{"name":"gpu","replicas":5}]}},"sharing":{"timeSlicing":{"resources":[{"name":"gpu","replicas":7}]}}}`,
			7, Warnings{{Kind: WarningDuplicateKey, Field: "sharing",
				Message: `key "sharing" given 2 times in one mapping (the last at line 1): the last mapping is used whole, the earlier one dropped (not merged), as NVIDIA's plugin's decoder keeps the last`}}},
		// A block mapping given twice: the line is the key's, not its
		// first inner key's (where the YAML decoder reports it).
		{"block section twice", "sharing:\n  timeSlicing:\n    resources: [{name: gpu, replicas: 3}]\nsharing:\n  timeSlicing:\n    resources: [{name: gpu, replicas: 6}]\n",
			6, Warnings{{Kind: WarningDuplicateKey, Field: "sharing",
				Message: `key "sharing" given 2 times in one mapping (the last at line 4): the last mapping is used whole, the earlier one dropped (not merged), as NVIDIA's plugin's decoder keeps the last`}}},
		{"three times, a string", "flags: {migStrategy: none, migStrategy: single, migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: gpu, replicas: 2}]}}\n",
			2, Warnings{{Kind: WarningDuplicateKey, Field: "flags.migStrategy",
				Message: `key "migStrategy" given 3 times in one mapping (the last at line 1): the last value, "mixed", is used, as NVIDIA's plugin's decoder keeps the last`}}},
		{"two keys, in document order", "version: v1\nversion: v1\nsharing:\n  timeSlicing:\n    resources:\n    - {name: gpu, replicas: 2, replicas: 8}\n",
			8, Warnings{
				{Kind: WarningDuplicateKey, Field: "sharing.timeSlicing.resources[0].replicas",
					Message: `key "replicas" given 2 times in one mapping (the last at line 6): the last value, 8, is used and 2 is dropped, as NVIDIA's plugin's decoder keeps the last`},
				{Kind: WarningDuplicateKey, Field: "version",
					Message: `key "version" given 2 times in one mapping (the last at line 2): the last value, "v1", is used and "v1" is dropped, as NVIDIA's plugin's decoder keeps the last`},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, w, err := Decode([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.wantReplicas, c.Sharing.TimeSlicing.Resources[0].Replicas)
			require.Equal(t, tt.want, w)
			for _, s := range w.Strings() {
				require.NotContains(t, s, "yaml:", "no raw YAML decoder prefix")
			}
		})
	}
	// A duplicate does not hide errors: the value kept is still checked.
	_, err := Parse([]byte("sharing: {timeSlicing: {resources: [{name: gpu, replicas: 4, replicas: 1}]}}"))
	require.ErrorContains(t, err, "sharing.timeSlicing.resources[0].replicas: Invalid value: 1")
}

// TestLongWrongValueIsCut: a value of the wrong type is quoted in the
// error, cut to its start: `flags:` given a list of ~1 MB once made a 1 MB
// error line (and log line, and termination message).
func TestLongWrongValueIsCut(t *testing.T) {
	long := "[" + strings.Repeat(`"xxxxxxxxxx",`, 50000) + `"x"]`
	tests := []struct {
		name, in, want string
	}{
		{"list for a mapping", "flags: " + long, "flags: Invalid value: \"[\\\"xxxxxxxxxx"},
		{"list for a string", "flags: {migStrategy: " + long + "}", "flags.migStrategy: Invalid value: \"[\\\"xxxxxxxxxx"},
		{"long resource name", "sharing: {timeSlicing: {resources: [{name: " + strings.Repeat("a", 900000) + ", replicas: 2}]}}",
			"sharing.timeSlicing.resources[0].name: Invalid value: \"nvidia.com/aaaa"},
		{"long MIG strategy", "flags: {migStrategy: " + strings.Repeat("a", 900000) + "}", "flags.migStrategy: Unsupported value: \"aaaa"},
		{"list for devices", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, devices: {a: " + long + "}}]}}", "sharing.timeSlicing.resources[0].devices: Invalid value: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			require.ErrorContains(t, err, tt.want)
			require.Less(t, len(err.Error()), 1000, "the value is cut") // 100 bytes of value + the message
		})
	}
	// Short values are quoted whole, as before.
	_, err := Parse([]byte("flags: 3"))
	require.ErrorContains(t, err, "flags: Invalid value: 3: want a mapping")
}

func TestParseOwnFields(t *testing.T) {
	c, err := Parse([]byte(`
version: v1
sharing:
  timeSlicing:
    replicaPolicy: spread
    resources:
    - {name: nvidia.com/gpu, replicas: 3, gpupackDevices: [0, "1:2"], gpupackRename: nvidia.com/gpu-ts}
health:
  skippedXIDs: []
  recovery: {enabled: false, checks: 5, interval: 2s}
publish: {labels: false, inUseInterval: 1m}
`))
	require.NoError(t, err)
	ts := &c.Sharing.TimeSlicing
	require.Equal(t, ReplicaPolicySpread, ts.ReplicaPolicy)
	require.Equal(t, ReplicatedDevices{List: []DeviceRef{"0", "1:2"}}, ts.Resources[0].Selection())
	require.Equal(t, "nvidia.com/gpu-ts", ts.Target(&ts.Resources[0]))
	require.Empty(t, c.Health.SkippedXIDs, "an explicit empty list skips nothing")
	require.False(t, *c.Health.Recovery.Enabled)
	require.Equal(t, 5, *c.Health.Recovery.Checks)
	require.False(t, *c.Publish.Labels)
	require.True(t, *c.Publish.Topology)
	require.Equal(t, time.Minute, c.Publish.InUseInterval.Duration)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings, all must appear
	}{
		{"bad version", "version: v2", []string{`version: Unsupported value: "v2"`}},
		// Two configs pasted into one file: NVIDIA's plugin reads the first
		// only, so the second's time-slicing would silently not apply.
		{"two documents", "version: v1\nflags:\n  migStrategy: none\n---\nversion: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n",
			[]string{"the file holds 2 YAML documents with content (separated by ---), not one config"}},
		{"three documents, empty ones between", "---\nversion: v1\n---\n# nothing\n---\nflags: {migStrategy: mixed}\n---\nsharing: {}\n",
			[]string{"the file holds 3 YAML documents with content"}},
		{"a second document that is not YAML", "version: v1\n---\nflags: [\n",
			[]string{"decoding config"}},
		// Documents the --- lines alone do not separate: NVIDIA's plugin
		// reads the first of each, so the second's sharing was dropped
		// silently.
		{"documents started inline", "--- {version: v1}\n--- {sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}}\n",
			[]string{"the file holds 2 YAML documents with content"}},
		{"a document after an end marker", "version: v1\n...\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n",
			[]string{"YAML document 2 of the file", "NVIDIA's plugin would read the first document only"}},
		{"not yaml", "version: v1\nflags: [", []string{"decoding config"}},
		{"top level a list", "- a", []string{"want a mapping at the top level"}},
		{"unknown top-level field", "version: v1\nbogus: 1", []string{"bogus: Forbidden: unknown field"}},
		{"unknown own field", "version: v1\npublish: {labelz: true}", []string{"publish.labelz: Forbidden: unknown field"}},
		{"wrong type", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: ten}]}}",
			[]string{"sharing.timeSlicing.resources[0].replicas", "want int"}},
		{"flags not a mapping", "version: v1\nflags: 3", []string{"flags: Invalid value: 3: want a mapping"}},
		{"devices zero", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: 0}]}}",
			[]string{"sharing.timeSlicing.resources[0].devices", "count of devices must be positive"}},
		{"devices word", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: some}]}}",
			[]string{`devices: Invalid value: "some": is neither "all" nor a count nor a list`}},
		// NVIDIA rejects replicas: 1 ("must be >= 2"); gpupack once loaded it.
		{"one replica", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 1}]}}",
			[]string{"sharing.timeSlicing.resources[0].replicas: Invalid value: 1: must be between 2 and 43690"}},
		// The GPU Operator's ConfigMap itself given as the file.
		{"a ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: time-slicing-config}\ndata:\n  tesla-t4: 'version: v1'\n  any: 'version: v1'\n",
			[]string{"the file is a Kubernetes ConfigMap holding the configs [any, tesla-t4], not a config"}},
		// NVIDIA: "no replicas specified"; gpupack said "Invalid value: 0".
		{"no replicas", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu}]}}",
			[]string{"sharing.timeSlicing.resources[0].replicas: Required value"}},
		// NVIDIA's decoder looks `replicas` and `name` up exactly: `Replicas`
		// and a typo are other keys, and the field is missing.
		{"replicas in another case", "sharing: {mps: {resources: [{Name: nvidia.com/gpu, Replicas: 2}]}}",
			[]string{`sharing.mps.resources[0].replicas: Required value: NVIDIA's plugin refuses sharing.mps.resources[0] without it (found "Replicas"`,
				`sharing.mps.resources[0].name: Required value`}},
		{"replicas misspelt", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replica: 4}]}}",
			[]string{`sharing.timeSlicing.resources[0].replicas: Required value: NVIDIA's plugin refuses sharing.timeSlicing.resources[0] without it (found "replica"`}},
		{"no name", "sharing: {timeSlicing: {resources: [{replicas: 4}]}}",
			[]string{"sharing.timeSlicing.resources[0].name: Required value"}},
		{"resource pattern without name", "resources: {gpus: [{pattern: '*A100*'}]}",
			[]string{"resources.gpus[0].name: Required value"}},
		{"bad list strategy", "flags: {plugin: {deviceListStrategy: [envvar, bogus]}}",
			[]string{`flags.plugin.deviceListStrategy[1]: Unsupported value: "bogus"`}},
		// NVIDIA's plugin refuses an empty strategy ("invalid strategy: "
		// for "", "no device list strategy specified" for []).
		{"empty list strategy", `flags: {plugin: {deviceListStrategy: ""}}`,
			[]string{"flags.plugin.deviceListStrategy: Required value: empty: NVIDIA's plugin refuses it"}},
		{"empty strategy list", "flags: {plugin: {deviceListStrategy: []}}",
			[]string{"flags.plugin.deviceListStrategy: Required value: empty"}},
		{"blank strategies", `flags: {plugin: {deviceListStrategy: " , "}}`,
			[]string{"flags.plugin.deviceListStrategy: Required value: empty"}},
		{"bad id strategy", "flags: {plugin: {deviceIDStrategy: serial}}",
			[]string{`flags.plugin.deviceIDStrategy: Unsupported value: "serial"`}},
		// NVIDIA's flags.resourceNamePrefix (--resource-name-prefix):
		// NVIDIA advertises <prefix>/gpu; gpupack, ignoring it, would
		// advertise nvidia.com/gpu and pods asking <prefix>/gpu would
		// never be served.
		{"resource name prefix", "flags: {resourceNamePrefix: example.com}",
			[]string{`flags.resourceNamePrefix: Unsupported value: "example.com"`, "advertises under nvidia.com only"}},
		{"resource name prefix with slash", "flags: {resourceNamePrefix: nvidia.com/}",
			[]string{`flags.resourceNamePrefix: Unsupported value: "nvidia.com/"`}},
		{"tegra discovery", "flags: {deviceDiscoveryStrategy: tegra}",
			[]string{"flags.deviceDiscoveryStrategy", "through NVML only"}},
		{"mps one replica", "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 1}]}}",
			[]string{"sharing.mps.resources[0].replicas: Invalid value: 1"}},
		{"old strategy field", "sharing: {timeSlicing: {strategy: round-robin, resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			[]string{`sharing.timeSlicing.strategy: Unsupported value: "round-robin"`}},
		// A relative root would reach the CDI spec and device specs as is.
		{"relative driver root", "flags: {nvidiaDriverRoot: run/nvidia/driver}",
			[]string{`flags.nvidiaDriverRoot: Invalid value: "run/nvidia/driver": must be an absolute path`}},
		{"relative machine type file", "flags: {gfd: {machineTypeFile: sys/class/dmi/id/product_name}}",
			[]string{`flags.gfd.machineTypeFile: Invalid value: "sys/class/dmi/id/product_name": must be an absolute path`}},
		{"relative dev root", "flags: {nvidiaDevRoot: dev-root}",
			[]string{`flags.nvidiaDevRoot: Invalid value: "dev-root": must be an absolute path`}},
		{"relative container driver root", "flags: {plugin: {containerDriverRoot: driver-root}}",
			[]string{`flags.plugin.containerDriverRoot: Invalid value: "driver-root": must be an absolute path`}},
		{"relative kubelet socket", "flags: {plugin: {kubeletSocket: plugins/kubelet.sock}}",
			[]string{`flags.plugin.kubeletSocket: Invalid value: "plugins/kubelet.sock": must be an absolute path`}},
		{"relative CDI hook", "flags: {plugin: {nvidiaCDIHookPath: nvidia-cdi-hook}}",
			[]string{`flags.plugin.nvidiaCDIHookPath: Invalid value: "nvidia-cdi-hook": must be an absolute path`}},
		{"relative nvidia-ctk", "flags: {plugin: {nvidiaCTKPath: nvidia-ctk}}",
			[]string{`flags.plugin.nvidiaCTKPath: Invalid value: "nvidia-ctk": must be an absolute path`}},
		{"imex channels", "imex: {channelIDs: [1, 2]}", []string{"imex.channelIDs", "must be [] or [0]"}},
		{"ignored and skipped differ", "health: {skippedXIDs: [13], ignoredXIDs: [31]}", []string{"health.ignoredXIDs"}},
		{"bad event type", "health: {eventTypes: [EventTypeBogus]}", []string{`health.eventTypes[0]: Unsupported value: "EventTypeBogus"`}},
		{"criticalXIDs word", "health: {criticalXIDs: some}", []string{"health.criticalXIDs", `want "all" or a list`}},
		{"gpupackDevices naming a device twice", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [0, 1, 0]}]}}",
			[]string{`sharing.timeSlicing.resources[0].gpupackDevices[2]: Duplicate value: "0"`}},
		{
			"all errors at once",
			`version: v1
flags: {migStrategy: both}
sharing:
  timeSlicing:
    replicaPolicy: diagonal
    resources:
    - {name: example.com/gpu, replicas: 0}
    - {name: nvidia.com/gpu, replicas: 2, devices: ["xyz"], gpupackDevices: ["nope"]}
    - {name: nvidia.com/gpu, replicas: 50000}
health: {skippedXIDs: [0], recovery: {checks: -1, interval: -1s}}
`,
			[]string{
				`flags.migStrategy: Unsupported value: "both"`,
				`sharing.timeSlicing.replicaPolicy: Unsupported value: "diagonal"`,
				`sharing.timeSlicing.resources[0].name: Invalid value: "nvidia.com/example.com/gpu"`,
				`sharing.timeSlicing.resources[0].replicas: Invalid value: 0`,
				`sharing.timeSlicing.resources[1].devices[0]: Invalid value: "xyz"`,
				`sharing.timeSlicing.resources[1].gpupackDevices[0]: Invalid value: "nope"`,
				`sharing.timeSlicing.resources[2].name: Duplicate value: "nvidia.com/gpu"`,
				`sharing.timeSlicing.resources[2].replicas: Invalid value: 50000`,
				`health.skippedXIDs[0]: Invalid value: 0`,
				`health.recovery.checks: Invalid value: -1`,
				`health.recovery.interval: Invalid value: "-1s"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			require.Error(t, err)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestResourceNamePrefixDefault: NVIDIA's default prefix, or an empty
// one (NVIDIA's default then applies), loads without a warning.
func TestResourceNamePrefixDefault(t *testing.T) {
	for _, in := range []string{"flags: {resourceNamePrefix: nvidia.com}", `flags: {resourceNamePrefix: ""}`} {
		_, w, err := Decode([]byte(in))
		require.NoError(t, err, in)
		require.Empty(t, w, in)
	}
}

// TestNVIDIAUnknownFieldsWarn: NVIDIA's decoder ignores keys it does not
// know, and newer NVIDIA releases add fields: inside NVIDIA's sections an
// unknown key is one warning with its path; in gpupack's sections and at
// the top level it is an error (a typo in our own field).
func TestNVIDIAUnknownFieldsWarn(t *testing.T) {
	c, w, err := Decode([]byte("version: v1\nflags: {futureFlag: 1, plugin: {passDevicesSpecs: true}}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, replica: 3}]}}"))
	require.NoError(t, err)
	require.Equal(t, []string{
		"flags.futureFlag: unknown field, ignored (as NVIDIA's plugin ignores it)",
		"flags.plugin.passDevicesSpecs: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean passDeviceSpecs?)",
		"sharing.timeSlicing.resources[0].replica: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean replicas?)",
	}, w.Strings())
	require.False(t, *c.Flags.Plugin.PassDeviceSpecs)
	for _, tc := range []struct{ in, want string }{
		{"version: v1\nhealth: {recovery: {check: 3}}", `health.recovery.check: Forbidden: unknown field`},
		{"version: v1\nbogus: 1", `bogus: Forbidden: unknown field`},
		{"version: v1\npublish: {inuse: true, topologyy: false}", `publish.topologyy: Forbidden: unknown field`},
		// gpupack's own fields inside NVIDIA's sections stay strict.
		{"sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevice: [0]}]}}",
			`sharing.timeSlicing.resources[0].gpupackDevice: Forbidden: unknown field (gpupack's own field is gpupackDevices)`},
		{"sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackName: x}]}}",
			`sharing.timeSlicing.resources[0].gpupackName: Forbidden: unknown field`},
		{"sharing: {timeSlicing: {replicaPolicys: spread}}", `sharing.timeSlicing.replicaPolicys: Forbidden: unknown field (gpupack's own field is replicaPolicy)`},
	} {
		_, err := Parse([]byte(tc.in))
		require.ErrorContains(t, err, tc.want)
		require.Equal(t, 1, strings.Count(err.Error(), "unknown field"), err.Error())
	}
	// Keys that differ only in case load, as in NVIDIA's plugin.
	c, err = Parse([]byte("version: v1\nflags: {MigStrategy: mixed}"))
	require.NoError(t, err)
	require.Equal(t, MIGStrategyMixed, *c.Flags.MigStrategy)
	// Duplicate keys load with their last value and a warning, as in
	// NVIDIA's plugin (TestDuplicateKeysAsNVIDIA).
	_, w, err = Decode([]byte("version: v1\nversion: v1\n"))
	require.NoError(t, err)
	require.Len(t, w, 1)
}

// TestExactKeysInNVIDIASharing: NVIDIA decodes timeSlicing/mps, their
// resources and resources.gpus/mig with its own UnmarshalJSON, looking keys
// up exactly, so there (unlike in flags) a key in another case is an
// unknown key NVIDIA ignores. gpupack once matched `RenameByDefault: true`
// case-insensitively and advertised nvidia.com/gpu.shared where NVIDIA
// advertises nvidia.com/gpu.
func TestExactKeysInNVIDIASharing(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		wantWarn []string
		check    func(t *testing.T, c *Config)
	}{
		{"renameByDefault in another case", "sharing: {timeSlicing: {RenameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			[]string{"sharing.timeSlicing.RenameByDefault: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean renameByDefault?): the replicas keep the resource's own name (not <name>.shared)"},
			func(t *testing.T, c *Config) {
				require.False(t, c.Sharing.TimeSlicing.RenameByDefault)
				require.Equal(t, ResourceGPU, c.Sharing.TimeSlicing.Target(&c.Sharing.TimeSlicing.Resources[0]))
			}},
		{"failRequestsGreaterThanOne in another case", "sharing: {timeSlicing: {FailRequestsGreaterThanOne: true, resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
			[]string{"sharing.timeSlicing.FailRequestsGreaterThanOne: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean failRequestsGreaterThanOne?)"},
			func(t *testing.T, c *Config) { require.False(t, c.Sharing.FailRequestsGreaterThanOne()) }},
		{"rename in another case under mps", "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2, Rename: nvidia.com/x}]}}",
			[]string{"sharing.mps.resources[0].Rename: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean rename?)"},
			func(t *testing.T, c *Config) { require.Empty(t, c.Sharing.MPS.Resources[0].Rename) }},
		// Exact keys still load.
		{"exact keys", "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2}]}}", nil,
			func(t *testing.T, c *Config) {
				require.Equal(t, ResourceGPU+SharedSuffix, c.Sharing.TimeSlicing.Target(&c.Sharing.TimeSlicing.Resources[0]))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, w, err := Decode([]byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.wantWarn, w.Strings())
			tc.check(t, c)
		})
	}
	// gpupack's own fields in another case are errors, as their typos are.
	_, err := Parse([]byte("sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, GPUPackRename: nvidia.com/x}]}}"))
	require.ErrorContains(t, err, "sharing.timeSlicing.resources[0].GPUPackRename: Forbidden: unknown field (gpupack's own field is gpupackRename)")
}

// TestUnimplementedFieldsWarnOnce: every NVIDIA field gpupack does not
// implement, set, gives exactly one warning naming its path.
func TestUnimplementedFieldsWarnOnce(t *testing.T) {
	_, w, err := Decode([]byte(`
flags:
  restartOnDeviceUnhealthy: true
  mpsRoot: /run/nvidia/mps
  useNodeFeatureAPI: true
  gfd: {oneshot: true, noTimestamp: true, sleepInterval: 60s, outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd, machineTypeFile: /sys/class/dmi/id/product_name}
  plugin: {nvidiaCTKPath: /opt/nvidia-ctk, nvidiaCDIHookPath: /opt/hook, cdiFeatureFlags: [a], sharedDevicesAllocationPolicy: packed}
resources:
  gpus: [{pattern: "*A100*", name: a100}]
  mig: [{pattern: "1g.5gb", name: mig-small}]
sharing:
  timeSlicing:
    resources: [{name: nvidia.com/gpu, rename: gpu-ts, replicas: 2, devices: 2}]
imex: {channelIDs: [0], required: true}
health: {eventTypes: [EventTypeXidCriticalError], criticalXIDs: [79]}
`))
	require.NoError(t, err)
	for _, path := range []string{
		"flags.useNodeFeatureAPI",
		"flags.plugin.cdiFeatureFlags", "flags.plugin.sharedDevicesAllocationPolicy",
		"resources.gpus", "resources.mig",
		"sharing.timeSlicing.resources[0].rename", "sharing.timeSlicing.resources[0].devices",
	} {
		n := 0
		for _, s := range w.Strings() {
			if strings.HasPrefix(s, path+": ") {
				n++
			}
		}
		require.Equal(t, 1, n, "%s in %q", path, w)
	}
	// flags.mpsRoot and restartOnDeviceUnhealthy are implemented: no
	// warning; flags.gfd's fields shape gpupack's GFD labels (noTimestamp,
	// machineTypeFile) and their publication (oneshot, sleepInterval,
	// outputFile).
	for _, s := range w.Strings() {
		for _, f := range []string{"noTimestamp", "machineTypeFile", "oneshot", "sleepInterval", "outputFile"} {
			require.NotContains(t, s, f)
		}
	}
	require.Len(t, w, 7)
}

// TestGFDFlagsValidation: GFD's sleepInterval must be positive and its
// outputFile absolute; each bad value is one error naming its path.
func TestGFDFlagsValidation(t *testing.T) {
	for _, tc := range []struct {
		gfd, wantErr string // wantErr "" = loads
	}{
		{gfd: "{sleepInterval: 30s, outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd}"},
		{gfd: "{sleepInterval: 1000000000}"}, // nanoseconds, as GFD's Go duration: 1s
		{gfd: "{oneshot: true}"},
		{gfd: "{sleepInterval: 0s}", wantErr: `flags.gfd.sleepInterval: Invalid value: "0s": must be positive`},
		{gfd: "{sleepInterval: -5s}", wantErr: `flags.gfd.sleepInterval: Invalid value: "-5s": must be positive`},
		// a bare 90 is 90ns: a relabel as fast as the apiserver answers
		{gfd: "{sleepInterval: 90}", wantErr: `flags.gfd.sleepInterval: Invalid value: "90ns": must be at least 1s`},
		{gfd: "{sleepInterval: 500ms}", wantErr: `flags.gfd.sleepInterval: Invalid value: "500ms": must be at least 1s`},
		{gfd: "{sleepInterval: soon}", wantErr: "sleepInterval"},
		{gfd: "{outputFile: features.d/gfd}", wantErr: "flags.gfd.outputFile"},
	} {
		_, err := Parse([]byte("version: v1\nflags:\n  gfd: " + tc.gfd))
		if tc.wantErr == "" {
			require.NoError(t, err, tc.gfd)
			continue
		}
		require.ErrorContains(t, err, tc.wantErr, tc.gfd)
	}
}

// TestReplicaLimitIsTheCodecs: one replica limit for the config, the
// topology annotation and the kubelet message; NVIDIA wants at least 2.
func TestReplicaLimitIsTheCodecs(t *testing.T) {
	require.Equal(t, topology.MaxReplicas, MaxReplicas)
	// 4 MiB / 96 bytes = 43690 devices in one kubelet message (a 1-GPU
	// node; larger nodes are checked against their exact message).
	require.Equal(t, 43690, MaxReplicas)
	cfg := func(n int) string {
		return "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: " + strconv.Itoa(n) + "}]}}"
	}
	for _, n := range []int{0, 1, 43691, 1 << 20} {
		_, err := Parse([]byte(cfg(n)))
		require.ErrorContains(t, err, "sharing.timeSlicing.resources[0].replicas", n)
		require.ErrorContains(t, err, "between 2 and 43690", n)
	}
	// 16384: what NVIDIA's users run to slice by memory (NVIDIA issue 1433).
	for _, n := range []int{2, 256, 682, 683, 16384, 43690} {
		c, err := Parse([]byte(cfg(n)))
		require.NoError(t, err)
		require.Equal(t, n, c.Sharing.TimeSlicing.Resources[0].Replicas)
	}
}

// TestRenamesThatCollide: gpupackRenames that merge two sets of devices
// into one resource are rejected with the field path.
func TestRenamesThatCollide(t *testing.T) {
	tests := []struct {
		name, ts string
		path     string
	}{
		{"into a MIG resource", `resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/mig-1g.5gb, replicas: 2}]`,
			"sharing.timeSlicing.resources[0].gpupackRename"},
		{"two renamed to one", `resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/shared, replicas: 2},
  {name: nvidia.com/mig-1g.5gb, gpupackRename: nvidia.com/shared, replicas: 2}]`,
			"sharing.timeSlicing.resources[1].gpupackRename"},
		{"into whole GPUs", `resources: [{name: nvidia.com/mig-1g.5gb, gpupackRename: nvidia.com/gpu, replicas: 2}]`,
			"sharing.timeSlicing.resources[0].gpupackRename"},
		{"into another MIG profile", `resources: [{name: nvidia.com/mig-1g.5gb, gpupackRename: nvidia.com/mig-2g.10gb+me, replicas: 2}]`,
			"sharing.timeSlicing.resources[0].gpupackRename"},
		{"into another configured resource", `resources: [{name: nvidia.com/mig-1g.5gb, gpupackRename: nvidia.com/mig-2g.10gb.x, replicas: 2},
  {name: nvidia.com/mig-2g.10gb.x, replicas: 2}]`,
			"sharing.timeSlicing.resources[0].gpupackRename"},
		{"a rename onto a default rename", `renameByDefault: true
    resources: [{name: nvidia.com/gpu, replicas: 2}, {name: nvidia.com/mig-1g.5gb, gpupackRename: nvidia.com/gpu.shared, replicas: 2}]`,
			"sharing.timeSlicing.resources[1].gpupackRename"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("version: v1\nsharing:\n  timeSlicing:\n    " + tc.ts + "\n"))
			require.ErrorContains(t, err, tc.path)
		})
	}
	for _, ok := range []string{
		`resources: [{name: nvidia.com/gpu, gpupackRename: nvidia.com/gpu-shared, replicas: 2}]`,
		`resources: [{name: nvidia.com/mig-1g.5gb, gpupackRename: nvidia.com/mig-1g.5gb.shared, replicas: 2}, {name: nvidia.com/gpu, replicas: 4}]`,
		`renameByDefault: true
    resources: [{name: nvidia.com/gpu, replicas: 2}, {name: nvidia.com/mig-1g.5gb, replicas: 2}]`,
		// NVIDIA's rename is ignored, so it cannot collide.
		`resources: [{name: nvidia.com/gpu, rename: nvidia.com/mig-1g.5gb, replicas: 2}]`,
	} {
		_, err := Parse([]byte("version: v1\nsharing:\n  timeSlicing:\n    " + ok + "\n"))
		require.NoError(t, err, ok)
	}
}

// TestConfigSizeCap: a 50 MB file once took 65 s and 1.8 GB; anything over
// MaxConfigBytes is refused before parsing.
func TestConfigSizeCap(t *testing.T) {
	big := []byte("version: v1\n# " + strings.Repeat("x", MaxConfigBytes) + "\n")
	_, err := Parse(big)
	require.ErrorContains(t, err, "more than the 1048576 allowed")
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, big, 0o600))
	_, _, err = Load(path)
	require.ErrorContains(t, err, "larger than the 1048576 bytes allowed")
	ok := []byte("version: v1\n# " + strings.Repeat("x", MaxConfigBytes-20) + "\n")
	require.NoError(t, os.WriteFile(path, ok, 0o600))
	_, _, err = Load(path)
	require.NoError(t, err)
	_, _, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorContains(t, err, "reading config")
}

func TestDefaultIsValid(t *testing.T) {
	require.Empty(t, Validate(Default()))
}

// FuzzParse: any input gives a config or an error, never a panic, and a
// parsed config is valid.
func FuzzParse(f *testing.F) {
	f.Add(nvidiaConfig)
	f.Add("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [0, GPU-1]}]}}")
	f.Add("version: v1\nhealth: {skippedXIDs: [], recovery: {interval: 1s}}")
	f.Add("flags: {plugin: {deviceListStrategy: [cdi-cri, envvar]}}")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse([]byte(in))
		if err != nil {
			return
		}
		require.Empty(t, Validate(c))
	})
}

// Keys that differ only in letter case decode into one field, the key last
// in byte order winning (uppercase sorts before lowercase), as in NVIDIA's
// plugin: loaded, with a case-variant-keys warning on the field naming
// every key, the value used and why (byte order, not the file's order,
// which "migStrategy is read last" was once taken for).
func TestCaseVariantKeysWarn(t *testing.T) {
	const why = "because keys are read in byte order (A-Z before a-z, not the file's order) and the last one read wins, as NVIDIA's plugin's decoder does"
	tests := []struct {
		name, in     string
		wantStrategy string
		want         Warnings
	}{
		{name: "flags", in: "flags: {MigStrategy: mixed, migStrategy: single}", wantStrategy: "single",
			want: Warnings{{Kind: WarningCaseVariantKeys, Field: "flags.migStrategy",
				Message: `set by 2 keys that differ only in letter case (MigStrategy, migStrategy): migStrategy's value, "single", is used, ` + why}}},
		// Written last in the file, but first in byte order: not used.
		{name: "the file's last key loses", in: "flags: {migStrategy: single, MigStrategy: mixed}", wantStrategy: "single",
			want: Warnings{{Kind: WarningCaseVariantKeys, Field: "flags.migStrategy",
				Message: `set by 2 keys that differ only in letter case (MigStrategy, migStrategy): migStrategy's value, "single", is used, ` + why}}},
		{name: "three spellings", in: "flags: {MIGSTRATEGY: none, migstrategy: mixed, MigStrategy: single}", wantStrategy: "mixed",
			// byte order: MIGSTRATEGY < MigStrategy < migstrategy
			want: Warnings{{Kind: WarningCaseVariantKeys, Field: "flags.migStrategy",
				Message: `set by 3 keys that differ only in letter case (MIGSTRATEGY, MigStrategy, migstrategy): migstrategy's value, "mixed", is used, ` + why}}},
		{name: "top level sections", in: "Flags: {migStrategy: mixed}\nflags: {failOnInitError: false}", wantStrategy: "mixed",
			// merged: migStrategy from Flags, failOnInitError from flags
			want: Warnings{{Kind: WarningCaseVariantKeys, Field: "flags",
				Message: "set by 2 keys that differ only in letter case (Flags, flags): their mappings are merged, flags's values winning where several set a field, " + why}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, w, err := Decode([]byte(tc.in))
			require.NoError(t, err)
			require.NotNil(t, c.Flags.MigStrategy)
			require.Equal(t, tc.wantStrategy, *c.Flags.MigStrategy)
			require.Equal(t, tc.want, w)
		})
	}
	// One spelling: no warning.
	_, w, err := Decode([]byte("flags: {MigStrategy: mixed}"))
	require.NoError(t, err)
	require.Empty(t, w)
}
