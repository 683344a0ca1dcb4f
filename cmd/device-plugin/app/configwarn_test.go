package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// logLines are the lines logger logged.
func logLines(logger klog.Logger) []string {
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(logger.GetSink().(ktesting.Underlier).GetBuffer().String()), "\n") {
		if line != "" {
			got = append(got, line)
		}
	}
	return got
}

// Every config warning is one message, "Config warning", with its kind,
// field and text, whether the file or NVIDIA's flags gave it (the file's
// were "Warning: config file", the others "Config field has no effect in
// gpupack"), each once; those under which a field is not served as written
// at error level.
func TestLogConfigWarnings(t *testing.T) {
	dup := configv1.Warning{Kind: configv1.WarningDuplicateKey, Field: "flags.migStrategy",
		Message: `key "migStrategy" given 2 times in one mapping (the last at line 3): the last value, "mixed", is used and "none" is dropped, as NVIDIA's plugin's decoder keeps the last`}
	gds := configv1.Warning{Kind: configv1.WarningIgnoredField, Field: "flags.plugin.sharedDevicesAllocationPolicy", Message: "ignored"}
	ts := configv1.Warning{Kind: configv1.WarningUnknownField, Field: "Sharing.TimeSlicing.Resources", NotServed: true,
		Message: "unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean resources?): the section shares nothing"}
	doc := configv1.Warning{Kind: configv1.WarningNotFirstDocument, Message: "not the first"}
	tests := []struct {
		name          string
		file, applied configv1.Warnings
		want          []string // one line each, in order
		wantNotServed configv1.Warnings
	}{
		{name: "none"},
		{name: "duplicate key", file: configv1.Warnings{dup},
			want: []string{`INFO Config warning kind="duplicate-key" field="flags.migStrategy" warning="` + strings.ReplaceAll(dup.Message, `"`, `\"`) + `"`}},
		{name: "ignored by the file and by a flag alike, once", file: configv1.Warnings{gds}, applied: configv1.Warnings{gds, gds},
			want: []string{`INFO Config warning kind="ignored-field" field="flags.plugin.sharedDevicesAllocationPolicy" warning="ignored"`}},
		{name: "not served: error level", file: configv1.Warnings{ts, doc}, applied: configv1.Warnings{gds},
			want: []string{
				`INFO Config warning kind="not-first-document" field="" warning="not the first"`,
				`ERROR Config warning kind="unknown-field" field="Sharing.TimeSlicing.Resources" warning="unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean resources?): the section shares nothing" impact="not served as configured"`,
				`INFO Config warning kind="ignored-field" field="flags.plugin.sharedDevicesAllocationPolicy" warning="ignored"`,
			},
			wantNotServed: configv1.Warnings{ts}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			all := logConfigWarnings(logger, tc.file, tc.applied)
			require.Equal(t, tc.want, logLines(logger))
			require.Equal(t, tc.wantNotServed, all.NotServed())
		})
	}
}

// notServedEvents records the config events (configEvents).
type notServedEvents struct {
	refusals
	mu        sync.Mutex
	notServed []string
	labels    []string
}

func (e *notServedEvents) ConfigNotServed(config string, w configv1.Warning) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notServed = append(e.notServed, config+": "+w.String())
}

func (e *notServedEvents) ConfigLabelUnknown(label, value string, configs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.labels = append(e.labels, label+"="+value+" not in "+strings.Join(configs, ","))
}

func (e *notServedEvents) gotNotServed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.notServed...)
}

// The same config warns alike from the config file and as a per-node
// config (one message, its kind and field), and the warnings under which
// it is not served as written are what is recorded on the Node.
func TestConfigWarningsFromFileAndPerNode(t *testing.T) {
	const cfg = "version: v1\nflags: {plugin: {sharedDevicesAllocationPolicy: packed}}\nSharing: {TimeSlicing: {Resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n"
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	want := []string{
		`ERROR Config warning kind="unknown-field" field="Sharing.TimeSlicing.Resources" warning="unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean resources?): the section shares nothing: whole devices are advertised, not replicas" impact="not served as configured"`,
		`INFO Config warning kind="ignored-field" field="flags.plugin.sharedDevicesAllocationPolicy" warning="ignored: gpupack places replicas by sharing.timeSlicing.replicaPolicy and the scheduler's choice"`,
	}
	for _, tc := range []struct {
		name       string
		o          *options
		args       []string
		wantSource string
	}{
		{name: "config file", o: &options{}, args: []string{"--config-file=" + path}, wantSource: path},
		{name: "per-node config", o: &options{configDir: "/configs", chosen: &choice{name: "t4", data: []byte(cfg)}}, wantSource: "t4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := NewCommand()
			require.NoError(t, cmd.Flags().Parse(tc.args))
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			c, l, err := tc.o.loadConfigWarned(klog.NewContext(context.Background(), logger), cmd.Flags())
			require.NoError(t, err, "loads, as in NVIDIA's plugin")
			require.Empty(t, c.Sharing.TimeSlicing.Resources, "NVIDIA's decoder ignores Resources: nothing shared")
			require.Equal(t, want, logLines(logger))
			require.Equal(t, tc.wantSource, l.source)
			require.Len(t, l.notServed, 1)
			ev := &notServedEvents{}
			tc.o.configEvents = ev
			tc.o.recordNotServed(l)
			require.Equal(t, []string{tc.wantSource + ": Sharing.TimeSlicing.Resources: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean resources?): the section shares nothing: whole devices are advertised, not replicas"},
				ev.gotNotServed())
		})
	}
}

// recordNotServed records one event per warning, at most
// maxNotServedEvents and one more counting the rest.
func TestRecordNotServedBounded(t *testing.T) {
	for _, tc := range []struct {
		n, want int
	}{{0, 0}, {1, 1}, {maxNotServedEvents, maxNotServedEvents}, {maxNotServedEvents + 5, maxNotServedEvents + 1}} {
		var l loaded
		l.source = "a"
		for i := range tc.n {
			l.notServed = append(l.notServed, configv1.Warning{Kind: configv1.WarningIgnoredField, Field: strings.Repeat("x", i+1), NotServed: true})
		}
		ev := &notServedEvents{}
		(&options{configEvents: ev}).recordNotServed(l)
		got := ev.gotNotServed()
		require.Len(t, got, tc.want, "%d warnings", tc.n)
		if tc.n > maxNotServedEvents {
			require.Contains(t, got[len(got)-1], "and 5 more warnings of this config")
		}
	}
	(&options{}).recordNotServed(loaded{notServed: configv1.Warnings{{}}}) // no recorder: nothing
}

// A new per-node config that loads but is not served as written runs (as
// in NVIDIA's plugin) and is recorded on the Node; a config without such
// warnings records nothing.
func TestAcceptRecordsNotServed(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{name: "sharing keys in another case", data: "Sharing: {TimeSlicing: {Resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n",
			want: []string{"t4: Sharing.TimeSlicing.Resources: unknown field, ignored (as NVIDIA's plugin ignores it) (did you mean resources?): the section shares nothing: whole devices are advertised, not replicas"}},
		{name: "served as written", data: mixedConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &notServedEvents{}
			o := &options{configDir: dir, chosen: &choice{name: "ts", data: []byte(tsConfig)}, configEvents: ev}
			fs := NewCommand().Flags()
			cfg, err := o.loadConfig(context.Background(), fs)
			require.NoError(t, err)
			next, err := o.accept(context.Background(), fs, deviceplugin.Options{Lib: m.Lib(t), Config: cfg, PluginDir: dir}, choice{name: "t4", data: []byte(tc.data)})
			require.NoError(t, err)
			require.NotNil(t, next)
			require.Equal(t, tc.want, ev.gotNotServed())
			require.Empty(t, ev.got(), "not refused")
		})
	}
}

// The events' notes: the config, what is not served and why, within the
// 1 KiB events.k8s.io takes.
func TestNodeConfigEventNotes(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	e := newNodeConfigEvents(deviceplugin.NewNodeEvents(rec, "n1"), rec, "n1")
	e.ConfigNotServed("t4", configv1.Warning{Kind: configv1.WarningUnknownField, Field: "Sharing.TimeSlicing.Resources", NotServed: true, Message: "unknown field, ignored"})
	e.ConfigNotServed("t4", configv1.Warning{Kind: configv1.WarningIgnoredField, Field: "x", NotServed: true, Message: strings.Repeat("y", 2000)})
	e.ConfigLabelUnknown(DefaultConfigLabel, "a100-mgi", []string{"a100-mig", "t4-shared"})
	e.ConfigRefused("bad", "t4", os.ErrInvalid)
	require.Equal(t, `Warning DevicePluginConfigNotServed device plugin config t4 is not served as configured: Sharing.TimeSlicing.Resources: unknown field, ignored [unknown-field; the plugin runs with it, as NVIDIA's plugin would; its log: "Config warning"]`, <-rec.Events)
	long := <-rec.Events
	require.LessOrEqual(t, len(strings.TrimPrefix(long, "Warning DevicePluginConfigNotServed ")), maxEventNote)
	require.Equal(t, "Warning DevicePluginConfigUnknown node label nvidia.com/device-plugin.config=a100-mgi names none of the per-node device plugin configs (a100-mig, t4-shared): this node runs the default config; correct the label, or add the config to the chart's devicePlugin.config.perNode", <-rec.Events)
	require.Contains(t, <-rec.Events, "Warning DevicePluginConfigRefused")
	e.ConfigTrialFailed("whole", "ts", fmt.Errorf("%w: nvml DeviceGetCount: %w", deviceplugin.ErrDiscovery, gonvml.ERROR_UNKNOWN), time.Minute)
	require.Equal(t, `Warning DevicePluginConfigTrialFailed device plugin config "whole" not refused: trying it on the node failed, still serving config "ts"; retrying in 1m0s: discovering GPUs: nvml DeviceGetCount: `+gonvml.ERROR_UNKNOWN.Error(), <-rec.Events)
}
