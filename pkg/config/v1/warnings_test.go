package v1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWarningKinds: every warning has a kind (the plugin logs it as the
// `kind` key of one "Config warning" message) and its field's path; those
// under which the node does not advertise what the file asks for are
// marked NotServed, the worst being a sharing section whose keys NVIDIA's
// exact-key decoder ignores (Sharing: {TimeSlicing: {Resources: ...}}
// serves whole GPUs, not replicas). Every such file still loads, as in
// NVIDIA's plugin.
func TestWarningKinds(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Warning // Message: a substring of the warning's
	}{
		{name: "sharing keys in another case (NVIDIA ignores Resources)",
			in: "Sharing: {TimeSlicing: {Resources: [{name: nvidia.com/gpu, replicas: 4}]}}",
			want: []Warning{{Kind: WarningUnknownField, Field: "Sharing.TimeSlicing.Resources", NotServed: true,
				Message: "(did you mean resources?): the section shares nothing: whole devices are advertised, not replicas"}}},
		{name: "a misspelt sharing section",
			in: "sharing: {time-slicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}",
			want: []Warning{{Kind: WarningUnknownField, Field: "sharing.time-slicing", NotServed: true,
				Message: "nothing is time-sliced: whole devices are advertised, not replicas"}}},
		{name: "renameByDefault in another case",
			in: "sharing: {timeSlicing: {RenameByDefault: true, resources: [{name: gpu, replicas: 2}]}}",
			want: []Warning{{Kind: WarningUnknownField, Field: "sharing.timeSlicing.RenameByDefault", NotServed: true,
				Message: "not <name>.shared"}}},
		{name: "a misspelt MIG strategy",
			in:   "flags: {migStrategie: mixed}",
			want: []Warning{{Kind: WarningUnknownField, Field: "flags.migStrategie", NotServed: true, Message: "(did you mean migStrategy?)"}}},
		{name: "an unknown flag changes nothing served",
			in:   "flags: {futureFlag: 1}",
			want: []Warning{{Kind: WarningUnknownField, Field: "flags.futureFlag", Message: "unknown field, ignored"}}},
		{name: "timeSlicing beside mps",
			in:   "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 8}]}, mps: {resources: [{name: gpu, replicas: 2}]}}",
			want: []Warning{{Kind: WarningIgnoredField, Field: "sharing.timeSlicing", NotServed: true, Message: "when sharing.mps is set"}}},
		{name: "an empty mps section",
			in:   "sharing: {mps: {}}",
			want: []Warning{{Kind: WarningNoEffect, Field: "sharing.mps", NotServed: true, Message: "no resources to share"}}},
		{name: "resources by pattern",
			in:   "resources: {gpus: [{pattern: '*A100*', name: a100}]}",
			want: []Warning{{Kind: WarningIgnoredField, Field: "resources.gpus", NotServed: true, Message: "resource renaming by pattern"}}},
		{name: "rename and devices",
			in: "sharing: {timeSlicing: {resources: [{name: gpu, rename: gpu-ts, devices: [0], replicas: 2}]}}",
			want: []Warning{
				{Kind: WarningIgnoredField, Field: "sharing.timeSlicing.resources[0].devices", NotServed: true, Message: "every device of the resource is shared"},
				{Kind: WarningIgnoredField, Field: "sharing.timeSlicing.resources[0].rename", NotServed: true, Message: "gpupackRename"},
			}},
		{name: "an ignored flag changes nothing served",
			in:   "flags: {plugin: {sharedDevicesAllocationPolicy: packed}}",
			want: []Warning{{Kind: WarningIgnoredField, Field: "flags.plugin.sharedDevicesAllocationPolicy", Message: "ignored"}}},
		{name: "spread under MPS",
			in:   "sharing: {mps: {replicaPolicy: spread, resources: [{name: gpu, replicas: 2}]}}",
			want: []Warning{{Kind: WarningNoEffect, Field: "sharing.mps.replicaPolicy", Message: "no effect"}}},
		{name: "not the first document",
			in:   "---\n---\nflags: {migStrategy: single}\n",
			want: []Warning{{Kind: WarningNotFirstDocument, Message: "not the file's first YAML document"}}},
		{name: "a key twice",
			in:   "version: v1\nversion: v1\n",
			want: []Warning{{Kind: WarningDuplicateKey, Field: "version", Message: `key "version" given 2 times`}}},
		{name: "keys in two cases",
			in:   "flags: {MigStrategy: mixed, migStrategy: none}",
			want: []Warning{{Kind: WarningCaseVariantKeys, Field: "flags.migStrategy", Message: `migStrategy's value, "none", is used`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, w, err := Decode([]byte(tc.in))
			require.NoError(t, err, "loads, as in NVIDIA's plugin")
			require.Len(t, w, len(tc.want), "%q", w.Strings())
			for i, want := range tc.want {
				got := w[i]
				require.Equal(t, want.Kind, got.Kind, got.String())
				require.Equal(t, want.Field, got.Field, got.String())
				require.Equal(t, want.NotServed, got.NotServed, got.String())
				require.Contains(t, got.Message, want.Message)
				if got.Field != "" {
					require.False(t, strings.HasPrefix(got.Message, got.Field), "the path is not repeated in the message: %s", got)
				}
			}
			var notServed Warnings
			for _, want := range tc.want {
				if want.NotServed {
					notServed = append(notServed, want)
				}
			}
			require.Len(t, w.NotServed(), len(notServed))
		})
	}
}

// TestWarningsSorted: by field, each once.
func TestWarningsSorted(t *testing.T) {
	a := Warning{Kind: WarningIgnoredField, Field: "b", Message: "x"}
	b := Warning{Kind: WarningUnknownField, Field: "a", Message: "y"}
	c := Warning{Kind: WarningNotFirstDocument, Message: "z"}
	require.Equal(t, Warnings{c, b, a}, Warnings{a, b, a, c, b}.Sorted())
	require.Equal(t, []string{"z", "a: y", "b: x"}, Warnings{c, b, a}.Strings())
	require.Nil(t, Warnings(nil).Strings())
}

// TestValueErrorsSayWhatToWrite: a bad value is quoted once, as written
// (criticalXIDs: "48,79" was quoted as "\"48,79\"" and again in the
// message), and the message says what to write instead, with the user's
// own value: a bare number of seconds where a duration is wanted, a list
// written as one string.
func TestValueErrorsSayWhatToWrite(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
	}{
		{"sleepInterval a bare number", "flags: {gfd: {sleepInterval: 60}}",
			`flags.gfd.sleepInterval: Invalid value: "60ns": must be at least 1s (a bare number is nanoseconds, so 60 is 60ns: write "60s" for 60 seconds)`},
		{"sleepInterval under a second", "flags: {gfd: {sleepInterval: 500ms}}",
			`flags.gfd.sleepInterval: Invalid value: "500ms": must be at least 1s`},
		{"recovery interval a bare number", "health: {recovery: {interval: 10}}",
			`health.recovery.interval: Invalid value: 10: want a duration with a unit, such as "10s" for 10 seconds (a bare number has none here)`},
		{"inUseInterval a bare number", "publish: {inUseInterval: 30}",
			`publish.inUseInterval: Invalid value: 30: want a duration with a unit, such as "30s" for 30 seconds`},
		{"criticalXIDs one string", `health: {criticalXIDs: "48,79"}`,
			`health.criticalXIDs: Invalid value: "48,79": want "all" or a list of XIDs: write a YAML list, [48, 79], not one string`},
		{"criticalXIDs a word", `health: {criticalXIDs: some}`,
			`health.criticalXIDs: Invalid value: "some": want "all" or a list of XIDs, such as [48, 79]`},
		{"skippedXIDs one string", `health: {skippedXIDs: "13,31"}`,
			`health.skippedXIDs: Invalid value: "13,31": want a list, got a string: write a YAML list, [13, 31], not one string`},
		{"devices one string", `sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, devices: "0,1"}]}}`,
			`sharing.timeSlicing.resources[0].devices: Invalid value: "0,1": is neither "all" nor a count nor a list: write a YAML list, [0, 1], not one string`},
		{"deviceListStrategy a mapping", `flags: {plugin: {deviceListStrategy: {a: 1}}}`,
			`flags.plugin.deviceListStrategy: Invalid value: {"a":1}: want a string or a list of strings`},
		{"sleepInterval a word", `flags: {gfd: {sleepInterval: soon}}`,
			`flags.gfd.sleepInterval: Invalid value: "soon": want a duration such as "60s"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), `\"`, "quoted once")
		})
	}
}

// TestGPUPackRenameBareName: gpupackRename takes a bare name as `name`
// does (gpu.small is nvidia.com/gpu.small; NVIDIA's rename takes names
// without the prefix too); another prefix is refused, saying why and what
// to write.
func TestGPUPackRenameBareName(t *testing.T) {
	tests := []struct {
		rename, want, wantErr string
	}{
		{rename: "gpu.small", want: "nvidia.com/gpu.small"},
		{rename: "nvidia.com/gpu.small", want: "nvidia.com/gpu.small"},
		{rename: "example.com/gpu.small",
			wantErr: `sharing.timeSlicing.resources[0].gpupackRename: Invalid value: "example.com/gpu.small": must be a resource under nvidia.com/, the only prefix gpupack advertises: write the name alone (gpu.small means nvidia.com/gpu.small, as in name) or with nvidia.com/`},
		{rename: "mig-1g.5gb", wantErr: `sharing.timeSlicing.resources[0].gpupackRename: Invalid value: "nvidia.com/mig-1g.5gb": is the resource name of MIG devices of profile 1g.5gb`},
		{rename: "gpu small", wantErr: `sharing.timeSlicing.resources[0].gpupackRename: Invalid value: "nvidia.com/gpu small"`},
	}
	for _, tc := range tests {
		t.Run(tc.rename, func(t *testing.T) {
			c, err := Parse([]byte("sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, gpupackRename: " + tc.rename + "}]}}"))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			ts := &c.Sharing.TimeSlicing
			require.Equal(t, tc.want, ts.Target(&ts.Resources[0]))
		})
	}
	// Under sharing.mps too.
	c, err := Parse([]byte("sharing: {mps: {resources: [{name: gpu, replicas: 2, gpupackRename: gpu.mps}]}}"))
	require.NoError(t, err)
	require.Equal(t, "nvidia.com/gpu.mps", c.Sharing.MPS.Target(&c.Sharing.MPS.Resources[0]))
}
