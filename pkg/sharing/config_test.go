package sharing

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"
)

// nvidiaConfig is a config written for NVIDIA's k8s-device-plugin that uses
// only fields gpupack shares with it.
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
    - name: nvidia.com/mig-1g.5gb
      replicas: 2
      devices: [0, "1", "GPU-abc"]
`

func TestParseNVIDIAConfig(t *testing.T) {
	c, err := Parse([]byte(nvidiaConfig))
	require.NoError(t, err)
	require.Equal(t, MIGStrategyMixed, *c.Flags.MigStrategy)
	require.False(t, *c.Flags.FailOnInitError)
	require.True(t, *c.Flags.Plugin.PassDeviceSpecs)
	ts := c.Sharing.TimeSlicing
	require.True(t, ts.RenameByDefault)
	require.True(t, ts.FailRequestsGreaterThanOne)
	require.Len(t, ts.Resources, 2)
	require.True(t, ts.Resources[0].Devices.All, "devices unset means all")
	require.Equal(t, []int{0, 1}, ts.Resources[1].Devices.Indexes)
	require.Equal(t, []string{"GPU-abc"}, ts.Resources[1].Devices.UUIDs)
	// gpupack's own sections get their defaults.
	require.Equal(t, ReplicaPolicyPacked, ts.ReplicaPolicy)
	require.Equal(t, []uint64{13, 31, 43, 45, 68, 109}, c.Health.SkippedXIDs)
	require.True(t, *c.Health.Recovery.Enabled)
	require.Equal(t, 3, c.Health.Recovery.Checks)
	require.Equal(t, 10*time.Second, c.Health.Recovery.Interval.Duration)
}

func TestParseOwnFields(t *testing.T) {
	c, err := Parse([]byte(`
version: v1
sharing:
  timeSlicing:
    replicaPolicy: spread
health:
  skippedXIDs: []
  recovery: {enabled: false, checks: 5, interval: 2s}
publish: {labels: false, inUseInterval: 1m}
`))
	require.NoError(t, err)
	require.Equal(t, ReplicaPolicySpread, c.Sharing.TimeSlicing.ReplicaPolicy)
	require.Empty(t, c.Health.SkippedXIDs, "an explicit empty list skips nothing")
	require.False(t, *c.Health.Recovery.Enabled)
	require.Equal(t, 5, c.Health.Recovery.Checks)
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
		{"empty", "", []string{"config is empty"}},
		{"no version", "flags: {migStrategy: none}", []string{"no version"}},
		{"bad version", "version: v2", []string{`version: Unsupported value: "v2"`}},
		{"not yaml", "version: v1\nflags: [", []string{"decoding config"}},
		{"unknown field", "version: v1\nflags: {migStrategyy: none}", []string{"decoding config", "migStrategyy"}},
		{"wrong type", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: ten}]}}", []string{"decoding config"}},
		{"devices zero", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: 0}]}}", []string{"count must be positive"}},
		{"devices word", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: some}]}}", []string{`"some" is neither`}},
		{
			"all errors at once",
			`version: v1
flags: {migStrategy: both}
sharing:
  timeSlicing:
    replicaPolicy: diagonal
    resources:
    - {name: example.com/gpu, replicas: 0}
    - {name: nvidia.com/gpu, replicas: 2, devices: [-1, "xyz"]}
    - {name: nvidia.com/gpu, replicas: 2000}
health: {skippedXIDs: [0], recovery: {checks: -1, interval: -1s}}
`,
			[]string{
				`flags.migStrategy: Unsupported value: "both"`,
				`sharing.timeSlicing.replicaPolicy: Unsupported value: "diagonal"`,
				`sharing.timeSlicing.resources[0].name: Invalid value: "example.com/gpu"`,
				`sharing.timeSlicing.resources[0].replicas: Invalid value: 0`,
				`sharing.timeSlicing.resources[1].devices[0]: Invalid value: -1`,
				`sharing.timeSlicing.resources[1].devices[1]: Invalid value: "xyz"`,
				`sharing.timeSlicing.resources[2].name: Duplicate value: "nvidia.com/gpu"`,
				`sharing.timeSlicing.resources[2].replicas: Invalid value: 2000`,
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

func TestLoadAndOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("version: v1\nflags: {migStrategy: single, failOnInitError: true}\n"), 0o600))
	c, err := Load(path)
	require.NoError(t, err)
	c.Apply(Overrides{MigStrategy: ptr.To(MIGStrategyMixed)})
	require.Equal(t, MIGStrategyMixed, *c.Flags.MigStrategy, "flag wins over the file")
	require.True(t, *c.Flags.FailOnInitError, "unset flag keeps the file's value")
	require.Empty(t, Validate(c))

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorContains(t, err, "reading config")
}

func TestDefaultIsValid(t *testing.T) {
	require.Empty(t, Validate(Default()))
}

// FuzzParse: any input gives a config or an error, never a panic, and a
// parsed config is valid.
func FuzzParse(f *testing.F) {
	f.Add(nvidiaConfig)
	f.Add("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: [0, GPU-1]}]}}")
	f.Add("version: v1\nhealth: {skippedXIDs: [], recovery: {interval: 1s}}")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse([]byte(in))
		if err != nil {
			return
		}
		require.Empty(t, Validate(c))
	})
}
