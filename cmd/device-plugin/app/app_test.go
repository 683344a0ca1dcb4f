package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func TestFlagsOverrideTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("version: v1\nflags: {migStrategy: single, failOnInitError: false}\n"), 0o600))
	cmd := NewCommand()
	require.NoError(t, cmd.Flags().Parse([]string{"--config", path, "--mig-strategy", "mixed"}))
	c, err := (&options{}).loadConfig(context.Background(), cmd.Flags())
	require.NoError(t, err)
	require.Equal(t, configv1.MIGStrategyMixed, *c.Flags.MigStrategy, "the flag wins")
	require.False(t, *c.Flags.FailOnInitError, "an unset flag keeps the file's value")
}

// TestAliasesGivenTwoValues: two names of one option (NVIDIA's and
// gpupack's) given different values used to pick one silently (--config
// won over --config-file whatever the order); it is an error naming both.
// The same value twice is fine.
func TestAliasesGivenTwoValues(t *testing.T) {
	dir := t.TempDir()
	single, mixed := filepath.Join(dir, "single.yaml"), filepath.Join(dir, "mixed.yaml")
	require.NoError(t, os.WriteFile(single, []byte("flags: {migStrategy: single}\n"), 0o600))
	require.NoError(t, os.WriteFile(mixed, []byte("flags: {migStrategy: mixed}\n"), 0o600))
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantMIG string
	}{
		{"config file twice", []string{"--config-file", mixed, "--config", single},
			"--config-file=" + mixed + " and --config=" + single + ": one option given two values", ""},
		{"driver root twice", []string{"--driver-root", "/a", "--nvidia-driver-root", "/b"},
			"--driver-root=/a and --nvidia-driver-root=/b: one option given two values", ""},
		{"same value twice", []string{"--config-file", mixed, "--config", mixed}, "", configv1.MIGStrategyMixed},
		{"one name", []string{"--config", single}, "", configv1.MIGStrategySingle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := NewCommand()
			require.NoError(t, cmd.Flags().Parse(tt.args))
			c, err := (&options{}).loadConfig(context.Background(), cmd.Flags())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantMIG, *c.Flags.MigStrategy)
		})
	}
}

func TestMalformedConfigIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("version: v1\nflags: {migStrategy: all}\nhealth: {recovery: {checks: 0, interval: -5s}}\n"), 0o600))
	cmd := NewCommand()
	cmd.SetArgs([]string{"--config", path, "--fake", "dgx-h100"})
	cmd.SetOut(os.Stderr)
	err := cmd.Execute()
	require.ErrorContains(t, err, `flags.migStrategy: Unsupported value: "all"`)
	require.ErrorContains(t, err, `health.recovery.interval: Invalid value: "-5s"`)

	cmd = NewCommand()
	cmd.SetArgs([]string{"--mig-strategy", "diagonal", "--fake", "dgx-h100"})
	require.ErrorContains(t, cmd.Execute(), `invalid flags (given --mig-strategy=diagonal): flags.migStrategy: Unsupported value: "diagonal"`)
}

// --fake-mig joins profiles by '+', which NVIDIA's attribute profiles
// (1g.10gb+me) contain too: a '+' followed by a digit starts a profile, one
// followed by a letter stays in it. Each layout that parses is also built on
// its machine, as --fake does.
func TestParseFakeMIG(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		in      map[string]string
		want    map[int][]string
		wantErr string
	}{
		{
			// The old forms: '+' before a digit, one profile.
			name: "plain profiles", machine: fake.DGXA100,
			in:   map[string]string{"0": "3g.20gb+1g.5gb", "2": "7g.40gb"},
			want: map[int][]string{0: {"3g.20gb", "1g.5gb"}, 2: {"7g.40gb"}},
		},
		{
			name: "blanks around '+'", machine: fake.DGXA100,
			in:   map[string]string{"0": "3g.20gb + 2g.10gb+ 1g.5gb"},
			want: map[int][]string{0: {"3g.20gb", "2g.10gb", "1g.5gb"}},
		},
		{
			// "+me" follows a letter-led token: one profile, not two.
			name: "one +me profile", machine: fake.HGXH200,
			in:   map[string]string{"1": "1g.18gb+me"},
			want: map[int][]string{1: {"1g.18gb+me"}},
		},
		{
			// "3g.40gb" | "+1g.10gb" starts a profile | "+me" stays: 2 profiles.
			name: "+me after another profile", machine: fake.DGXH100,
			in:   map[string]string{"0": "3g.40gb+1g.10gb+me"},
			want: map[int][]string{0: {"3g.40gb", "1g.10gb+me"}},
		},
		{
			// "1g.10gb+me" then "+3g.40gb" (a digit): 2 profiles.
			name: "+me before another profile", machine: fake.DGXH100,
			in:   map[string]string{"0": "1g.10gb+me+3g.40gb"},
			want: map[int][]string{0: {"1g.10gb+me", "3g.40gb"}},
		},
		{
			// A compute-instance profile starts with a digit too.
			name: "compute-instance profile", machine: fake.DGXA100,
			in:   map[string]string{"0": "1c.3g.20gb+3g.20gb"},
			want: map[int][]string{0: {"1c.3g.20gb", "3g.20gb"}},
		},
		{name: "not a GPU index", in: map[string]string{"x": "1g.5gb"}, wantErr: `"x" is not a GPU index`},
		{name: "negative GPU index", in: map[string]string{"-1": "1g.5gb"}, wantErr: `"-1" is not a GPU index`},
		{name: "empty profile at the end", in: map[string]string{"1": "1g.5gb++"}, wantErr: "empty profile for GPU 1"},
		{name: "empty profile before an attribute", in: map[string]string{"1": "1g.5gb++me"}, wantErr: "empty profile for GPU 1"},
		{name: "empty value", in: map[string]string{"1": ""}, wantErr: "empty profile for GPU 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFakeMIG(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			_, err = fake.New(tc.machine, fake.WithMIG(got))
			require.NoError(t, err, "the layout on %s", tc.machine)
		})
	}
}

func TestHealthEnv(t *testing.T) {
	c := configv1.Default()
	require.NoError(t, applyHealthEnv(c, "48, 63"))
	// The defaults 13, 31, 43, 45, 68, 109 plus 48 and 63.
	require.Equal(t, []uint64{13, 31, 43, 45, 68, 109, 48, 63}, c.Health.SkippedXIDs)
	require.False(t, c.Health.Disabled)
	// DP_ENABLE_HEALTHCHECKS: 31 and 48 count again.
	require.NoError(t, applyEnableHealthEnv(c, "31,48"))
	require.Equal(t, []uint64{13, 43, 45, 68, 109, 63}, c.Health.SkippedXIDs)
	require.NoError(t, applyEnableHealthEnv(c, "all"))
	require.Empty(t, c.Health.SkippedXIDs)
	require.NoError(t, applyHealthEnv(c, "all"))
	require.True(t, c.Health.Disabled)
	require.ErrorContains(t, applyHealthEnv(configv1.Default(), "some"), "want all, xids or XID numbers")
	require.ErrorContains(t, applyEnableHealthEnv(configv1.Default(), "x1"), "want all, xids or XID numbers")
}

// TestHealthEnvChoosesTheFatalXIDs: DP_DISABLE_HEALTHCHECKS=all with
// DP_ENABLE_HEALTHCHECKS=48,79 leaves health checks on for exactly those
// XIDs (NVIDIA's way to pick the fatal ones); DP_ENABLE_HEALTHCHECKS=all
// makes the application XIDs count too.
func TestHealthEnvChoosesTheFatalXIDs(t *testing.T) {
	t.Setenv(envDisableHealthChecks, "all")
	t.Setenv(envEnableHealthChecks, "48,79")
	c, err := (&options{}).loadConfig(context.Background(), NewCommand().Flags())
	require.NoError(t, err)
	require.False(t, c.Health.Disabled)
	require.True(t, c.Health.Critical(48))
	require.True(t, c.Health.Critical(79))
	require.False(t, c.Health.Critical(94))
	require.False(t, c.Health.Critical(13))

	t.Setenv(envDisableHealthChecks, "")
	t.Setenv(envEnableHealthChecks, "all")
	c, err = (&options{}).loadConfig(context.Background(), NewCommand().Flags())
	require.NoError(t, err)
	require.True(t, c.Health.Critical(13))
	require.True(t, c.Health.Critical(94))
}

// TestConfigErrorPrintedOnce: the command logs its error; cobra must not
// print it a second time.
func TestConfigErrorPrintedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replica: 2}]}}\n"), 0o600))
	cmd := NewCommand()
	cmd.SetArgs([]string{"--config", path, "--fake", "dgx-h100"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	// The misspelt key is named: NVIDIA refuses the resource too ("no replicas specified").
	require.ErrorContains(t, err, `sharing.timeSlicing.resources[0].replicas: Required value: NVIDIA's plugin refuses sharing.timeSlicing.resources[0] without it (found "replica"`)
	require.Empty(t, out.String(), "cobra printed the error too")
}

// TestFakeLostOutOfRange: --fake-lost names GPUs of the machine, each once.
func TestFakeLostOutOfRange(t *testing.T) {
	cmd := NewCommand()
	cmd.SetArgs([]string{"--fake", "dgx-h100", "--fake-lost", "8"})
	require.ErrorContains(t, cmd.Execute(), "--fake-lost: no GPU 8")
	cmd = NewCommand()
	cmd.SetArgs([]string{"--fake", "dgx-h100", "--fake-lost", "0,0"})
	require.ErrorContains(t, cmd.Execute(), "--fake-lost: GPU 0 listed twice")
}

// TestRestartPacer: restarts for unhealthy devices are spaced as the
// kubelet spaces a container's restarts: at once, then 10 s doubling to
// 5 min; 10 min without one start over.
func TestRestartPacer(t *testing.T) {
	var p restartPacer
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		after time.Duration // since the previous restart began
		want  time.Duration
	}{
		{0, 0},                              // the first: at once
		{time.Second, 10 * time.Second},     // a second one soon after
		{time.Second, 20 * time.Second},     // 10 s x 2
		{time.Second, 40 * time.Second},     // x 2
		{time.Second, 80 * time.Second},     //
		{time.Second, 160 * time.Second},    //
		{time.Second, 5 * time.Minute},      // 320 s capped at 300 s
		{time.Second, 5 * time.Minute},      // stays capped
		{11 * time.Minute, 0},               // 11 min without: start over
		{9 * time.Minute, 10 * time.Second}, // within 10 min: counted
		{10*time.Minute + 1, 0},             // just over 10 min: start over
	} {
		t0 = t0.Add(step.after)
		got := p.next(t0)
		require.Equal(t, step.want, got, "after %v", step.after)
		t0 = t0.Add(got) // the restart begins after the wait
	}
}

// The publish section, defaulted or set, is what the publisher is
// reconfigured with at start and at each reload.
func TestPublishSettings(t *testing.T) {
	c := configv1.Default()
	configv1.SetDefaults(c)
	require.Equal(t, nodepublish.Settings{Topology: true, Labels: true, InUse: true, InUseInterval: 30 * time.Second,
		RelabelInterval: time.Minute}, publishSettings(c)) // GFD's default --sleep-interval
	for _, tc := range []struct {
		config string
		want   nodepublish.Settings
	}{
		{"publish: {labels: false, inUse: false, inUseInterval: 1m}",
			nodepublish.Settings{Topology: true, InUseInterval: time.Minute, RelabelInterval: time.Minute}},
		{"flags: {gfd: {sleepInterval: 10s, outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd}}",
			nodepublish.Settings{Topology: true, Labels: true, InUse: true, InUseInterval: 30 * time.Second,
				RelabelInterval: 10 * time.Second, LabelFile: "/etc/kubernetes/node-feature-discovery/features.d/gfd"}},
		{"flags: {gfd: {oneshot: true, sleepInterval: 10s}}", // oneshot wins: published at start and on change only
			nodepublish.Settings{Topology: true, Labels: true, InUse: true, InUseInterval: 30 * time.Second}},
	} {
		c, err := configv1.Parse([]byte("version: v1\n" + tc.config))
		require.NoError(t, err, tc.config)
		require.Equal(t, tc.want, publishSettings(c), tc.config)
	}
}

// TestBlankBooleanVariables: NVIDIA's plugin (urfave/cli) takes a boolean
// variable that is set but empty as false, over the file's value and the
// default; a blank string variable stays unset in gpupack (the file's value
// or the default), where NVIDIA's plugin would refuse most of them.
func TestBlankBooleanVariables(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		check func(t *testing.T, c *configv1.Config)
	}{
		{"FAIL_ON_INIT_ERROR empty: false, not the default true", "", map[string]string{"FAIL_ON_INIT_ERROR": ""},
			func(t *testing.T, c *configv1.Config) { require.False(t, *c.Flags.FailOnInitError) }},
		{"FAIL_ON_INIT_ERROR unset: the default true", "", nil,
			func(t *testing.T, c *configv1.Config) { require.True(t, *c.Flags.FailOnInitError) }},
		{"PASS_DEVICE_SPECS blank beats the file's true", "flags: {plugin: {passDeviceSpecs: true}}", map[string]string{"PASS_DEVICE_SPECS": "  "},
			func(t *testing.T, c *configv1.Config) { require.False(t, *c.Flags.Plugin.PassDeviceSpecs) }},
		{"GDS_ENABLED empty beats the file's true", "flags: {gdsEnabled: true}", map[string]string{"GDS_ENABLED": ""},
			func(t *testing.T, c *configv1.Config) { require.False(t, *c.Flags.GDSEnabled) }},
		{"IMEX_REQUIRED empty: false", "imex: {required: true}", map[string]string{"IMEX_REQUIRED": ""},
			func(t *testing.T, c *configv1.Config) { require.False(t, c.Imex.Required) }},
		{"MIG_STRATEGY empty keeps the file's", "flags: {migStrategy: mixed}", map[string]string{"MIG_STRATEGY": ""},
			func(t *testing.T, c *configv1.Config) {
				require.Equal(t, configv1.MIGStrategyMixed, *c.Flags.MigStrategy)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := []string{}
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "config.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o600))
				args = append(args, "--config-file", path)
			}
			cmd := NewCommand()
			require.NoError(t, cmd.Flags().Parse(args))
			c, err := (&options{}).loadConfig(context.Background(), cmd.Flags())
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// TestListFlagsRepeated: NVIDIA's list flags (urfave/cli string and int
// slices) add up when repeated and split on commas:
// --device-list-strategy=envvar --device-list-strategy=cdi-cri is both
// strategies, not the last one.
func TestListFlagsRepeated(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *configv1.Config)
	}{
		{"device list strategy repeated", []string{"--device-list-strategy=envvar", "--device-list-strategy=cdi-cri"},
			func(t *testing.T, c *configv1.Config) {
				require.Equal(t, configv1.StringList{"envvar", "cdi-cri"}, *c.Flags.Plugin.DeviceListStrategy)
			}},
		{"device list strategy repeated and comma-separated", []string{"--device-list-strategy", "envvar,volume-mounts", "--device-list-strategy", "cdi-annotations"},
			func(t *testing.T, c *configv1.Config) {
				require.Equal(t, configv1.StringList{"envvar", "volume-mounts", "cdi-annotations"}, *c.Flags.Plugin.DeviceListStrategy)
			}},
		{"device list strategy once", []string{"--device-list-strategy=cdi-cri"},
			func(t *testing.T, c *configv1.Config) {
				require.Equal(t, configv1.StringList{"cdi-cri"}, *c.Flags.Plugin.DeviceListStrategy)
			}},
		{"imex channel ids", []string{"--imex-channel-ids=0"},
			func(t *testing.T, c *configv1.Config) { require.Equal(t, []int{0}, c.Imex.ChannelIDs) }},
		{"cdi feature flags repeated", []string{"--cdi-feature-flags=a", "--cdi-feature-flags=b"},
			func(t *testing.T, c *configv1.Config) {
				require.Equal(t, configv1.StringList{"a", "b"}, *c.Flags.Plugin.CDIFeatureFlags)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := NewCommand()
			require.NoError(t, cmd.Flags().Parse(tt.args))
			c, err := (&options{}).loadConfig(context.Background(), cmd.Flags())
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// TestShownDelay: a retry's delay is shown to the second, to 10 ms under
// one second.
func TestShownDelay(t *testing.T) {
	for _, tc := range []struct {
		d, want time.Duration
	}{
		{d: 2093847263, want: 2 * time.Second},
		{d: 4*time.Second + 600*time.Millisecond, want: 5 * time.Second},
		{d: 5*time.Minute + 17*time.Second + 300*time.Millisecond, want: 5*time.Minute + 17*time.Second},
		{d: time.Minute, want: time.Minute},
		{d: 123456789, want: 120 * time.Millisecond},
	} {
		t.Run(tc.d.String(), func(t *testing.T) {
			require.Equal(t, tc.want, shownDelay(tc.d))
		})
	}
}
