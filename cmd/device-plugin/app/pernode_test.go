package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// configMapDir lays out configs as a ConfigMap volume does: the files in
// ..<timestamp>/, ..data linking to it, and each name linking into ..data.
func configMapDir(t *testing.T, configs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	updateConfigMapDir(t, dir, configs)
	return dir
}

func updateConfigMapDir(t *testing.T, dir string, configs map[string]string) {
	t.Helper()
	ts := "..2026_" + time.Now().Format("150405.000000000")
	require.NoError(t, os.Mkdir(filepath.Join(dir, ts), 0o755))
	for name, content := range configs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ts, name), []byte(content), 0o644))
	}
	tmp := filepath.Join(dir, "..data_tmp")
	require.NoError(t, os.Symlink(ts, tmp))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "..data")))
	for name := range configs {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			require.NoError(t, os.Symlink(filepath.Join("..data", name), link))
		}
	}
}

const (
	tsConfig    = "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n"
	mixedConfig = "version: v1\nflags: {migStrategy: mixed}\n"
)

func TestChoosePerNodeConfig(t *testing.T) {
	two := configMapDir(t, map[string]string{"ts": tsConfig, "mig-mixed": mixedConfig})
	one := configMapDir(t, map[string]string{"ts": tsConfig})
	tests := []struct {
		name      string
		dir       string
		label     string
		def       string
		fallbacks []string
		want      string // chosen name; "" = empty config
		wantErr   string
	}{
		{"the label names it", two, "mig-mixed", "ts", []string{"named"}, "mig-mixed", ""},
		{"a label naming nothing", two, "mig-single", "ts", []string{"named", "empty"}, "", `nvidia.com/device-plugin.config=mig-single names no config`},
		{"no label: the default", two, "", "ts", []string{"named", "single"}, "ts", ""},
		{"no label, default missing: the only one", one, "", "gone", []string{"named", "single"}, "ts", ""},
		{"no label, two configs, no default", two, "", "", []string{"named", "single"}, "", "no fallback applies"},
		{"no label: empty", two, "", "", []string{"named", "single", "empty"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pn := &perNode{dir: tc.dir, label: DefaultConfigLabel, defaultCfg: tc.def, fallbacks: tc.fallbacks}
			c, err := pn.choose(tc.label)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.name)
		})
	}
	require.ErrorContains(t, validFallbacks([]string{"named", "first"}), `"first" is not one of named, single, empty`)
}

type fakeLabels struct {
	mu      sync.Mutex
	value   string
	changed chan struct{}
}

func (f *fakeLabels) Label() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value
}

func (f *fakeLabels) Changed() <-chan struct{} { return f.changed }

// set changes the label and tells the watch.
func (f *fakeLabels) set(v string) {
	f.mu.Lock()
	f.value = v
	f.mu.Unlock()
	f.changed <- struct{}{}
}

// settle steps clk past configSettle once the watch has armed its timer
// (a change was seen), so the watch reads the configs.
func settle(t *testing.T, clk *testingclock.FakeClock) {
	t.Helper()
	require.Eventually(t, clk.HasWaiters, 10*time.Second, time.Millisecond, "the watch saw no change")
	clk.Step(configSettle)
}

// TestPerNodeConfigReload: a label change and a ConfigMap update each
// deliver the new config once; a label naming no config keeps the
// running one.
func TestPerNodeConfigReload(t *testing.T) {
	dir := configMapDir(t, map[string]string{"ts": tsConfig, "mig-mixed": mixedConfig})
	pn := &perNode{dir: dir, label: DefaultConfigLabel, defaultCfg: "ts", fallbacks: []string{"named"}}
	labels := &fakeLabels{changed: make(chan struct{}, 1)}
	current, err := pn.choose("")
	require.NoError(t, err)
	require.Equal(t, "ts", current.name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan choice, 1)
	clk := testingclock.NewFakeClock(time.Now())
	require.NoError(t, watchConfigs(ctx, pn, labels, current, reload, clk))
	// next steps the clock while the watch waits for quiet (a late event
	// of a change arms the wait again), until it reloads.
	next := func() choice {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			if clk.HasWaiters() {
				clk.Step(configSettle)
			}
			select {
			case c := <-reload:
				return c
			case <-time.After(5 * time.Millisecond):
			case <-deadline:
				t.Fatal("no reload")
				return choice{}
			}
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case c := <-reload:
			t.Fatalf("unexpected reload to %q", c.name)
		case <-time.After(300 * time.Millisecond):
		}
	}

	labels.set("mig-mixed")
	settle(t, clk)
	require.Equal(t, choice{name: "mig-mixed", data: []byte(mixedConfig)}, next())

	labels.set("nope")
	settle(t, clk)
	quiet()

	labels.set("mig-mixed")
	settle(t, clk)
	quiet() // the same config: nothing to do

	updated := "version: v1\nflags: {migStrategy: single}\n"
	updateConfigMapDir(t, dir, map[string]string{"ts": tsConfig, "mig-mixed": updated})
	settle(t, clk)
	require.Equal(t, choice{name: "mig-mixed", data: []byte(updated)}, next())
}

// TestConfigFileChangedInPlace: per-node configs in a plain directory
// (not a ConfigMap's atomic swap) changed while the plugin runs. The watch
// reads them once the changes have settled, so the only reload is the new
// content: a file seen truncated (an empty config is the defaults) or
// missing for a moment is never run. Before, the truncation alone
// reloaded the plugin with the defaults.
func TestConfigFileChangedInPlace(t *testing.T) {
	const updated = "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}\n"
	tests := []struct {
		name string
		// first is the change the watch sees before the new content is
		// written.
		first func(t *testing.T, path string)
		// write puts the new content in place.
		write func(t *testing.T, path string)
	}{
		{name: "truncated, then written", first: func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 0))
		}, write: func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte(updated), 0o644))
		}},
		{name: "half written, then the rest", first: func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte(updated[:20]), 0o644))
		}, write: func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte(updated), 0o644))
		}},
		{name: "removed, then written again", first: func(t *testing.T, path string) {
			require.NoError(t, os.Remove(path))
		}, write: func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte(updated), 0o644))
		}},
		{name: "replaced by a rename", first: func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), ".ts.tmp"), []byte(updated), 0o644))
		}, write: func(t *testing.T, path string) {
			require.NoError(t, os.Rename(filepath.Join(filepath.Dir(path), ".ts.tmp"), path))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ts")
			require.NoError(t, os.WriteFile(path, []byte(tsConfig), 0o644))
			pn := &perNode{dir: dir, label: DefaultConfigLabel, defaultCfg: "ts", fallbacks: []string{"named"}}
			current, err := pn.choose("")
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			reload := make(chan choice, 4)
			clk := testingclock.NewFakeClock(time.Now())
			require.NoError(t, watchConfigs(ctx, pn, nil, current, reload, clk))

			tc.first(t, path)
			require.Eventually(t, clk.HasWaiters, 10*time.Second, time.Millisecond, "the watch saw no change")
			select {
			case c := <-reload:
				t.Fatalf("reloaded before the change settled: %q", c.data)
			default:
			}
			tc.write(t, path)
			// Step the clock while the watch waits for quiet, until it
			// reloads: an event of the write that arrives after a step
			// arms the wait again.
			deadline := time.After(10 * time.Second)
			for done := false; !done; {
				if clk.HasWaiters() {
					clk.Step(configSettle)
				}
				select {
				case c := <-reload:
					require.Equal(t, choice{name: "ts", data: []byte(updated)}, c)
					done = true
				case <-time.After(5 * time.Millisecond):
				case <-deadline:
					t.Fatal("no reload")
				}
			}
			// Events of the write that come after the step change nothing.
			if clk.HasWaiters() {
				clk.Step(configSettle)
			}
			select {
			case c := <-reload:
				t.Fatalf("a second reload: %q", c.data)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// TestPerNodeConfigThroughTheBinary: without a node label the default
// config of the directory is the node's, as with NVIDIA's config manager.
func TestPerNodeConfigThroughTheBinary(t *testing.T) {
	dir := configMapDir(t, map[string]string{"ts": tsConfig, "mig-mixed": mixedConfig})
	stdout, stderr, code := runBinary(t, map[string]string{"DEFAULT_CONFIG": "ts"}, "--config-file-srcdir", dir, "--fake", "dgx-a100", "--print-topology")
	require.Zero(t, code, stderr)
	require.Equal(t, map[string]int{"nvidia.com/gpu": 32}, advertised(t, stdout)) // 8 x 4
	_, stderr, code = runBinary(t, nil, "--config-file-srcdir", dir, "--fake", "dgx-a100", "--print-topology")
	require.NotZero(t, code)
	require.Contains(t, stderr, "no fallback applies")
}

// refusals records the refused configs (configEvents).
type refusals struct {
	mu    sync.Mutex
	names []string
}

func (r *refusals) ConfigRefused(name, running string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, name+" (running "+running+"): "+err.Error())
}

func (r *refusals) ConfigNotServed(string, configv1.Warning) {}

func (r *refusals) ConfigLabelUnknown(string, string, []string) {}

func (r *refusals) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.names)
}

// TestReloadRunsTheNewConfig: a per-node config change that loads and fits
// the node stops the running resources and returns the new config. One
// that does not load, does not fit the node, or is the running config
// again leaves the running Manager serving: its sockets stay (the kubelet
// keeps its registrations; a pod admitted meanwhile would fail admission
// against a resource without a plugin), each refusal is an event naming
// it, and a valid config after them is still taken.
func TestReloadRunsTheNewConfig(t *testing.T) {
	tests := []struct {
		name string
		// sent in order before the good config; each must be refused
		// without stopping the running Manager.
		refused []choice
		// events: the refusals recorded (the running config again is none).
		events int
	}{
		{name: "a valid config at once"},
		{name: "a config that does not load", refused: []choice{{name: "bad", data: []byte("flags: {migStrategy: diagonal}")}}, events: 1},
		{name: "a config that does not fit the node", refused: []choice{{name: "bad",
			data: []byte("sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [99]}]}}")}}, events: 1}, // valid, but no GPU 99 here
		{name: "malformed YAML", refused: []choice{{name: "ts", data: []byte("version: v1\nsharing: {timeSlicing: [")}}, events: 1},
		{name: "invalid, then the running one again", refused: []choice{
			{name: "ts", data: []byte("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: -1}]}}")},
			{name: "ts", data: []byte(tsConfig)},
		}, events: 1},
		{name: "the running one again (label set to the default config)", refused: []choice{{name: "ts", data: []byte(tsConfig)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			lib := m.Lib(t)
			dir, err := os.MkdirTemp("", "gpupack-reload-")
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(dir) })

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fs := NewCommand().Flags()
			ev := &refusals{}
			ts := &choice{name: "ts", data: []byte(tsConfig)}
			o := &options{configDir: dir, chosen: ts, served: ts, configEvents: ev}
			cfg, err := o.loadConfig(ctx, fs)
			require.NoError(t, err)
			dopts := deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir}
			mgr, err := deviceplugin.New(dopts)
			require.NoError(t, err)

			reload := make(chan choice)
			type result struct {
				next *configv1.Config
				err  error
			}
			done := make(chan result, 1)
			kept := make(chan struct{})
			go func() {
				next, err := runUntilReload(ctx, mgr, reload, noRetry, func(c *choice) (*configv1.Config, bool) {
					cfg, err := o.accept(ctx, fs, dopts, *c)
					if err != nil {
						t.Errorf("the trial build of %s failed: %v", c.name, err)
					}
					if cfg == nil {
						kept <- struct{}{}
					}
					return cfg, cfg != nil
				})
				done <- result{next, err}
			}()
			// Serving: every resource has its socket.
			var sockets []string
			require.Eventually(t, func() bool {
				sockets = sockets[:0]
				for _, p := range mgr.Plugins() {
					if s := p.Socket(); s != "" {
						sockets = append(sockets, s)
					}
				}
				return len(sockets) == len(mgr.Plugins())
			}, 10*time.Second, 5*time.Millisecond)
			for _, c := range tc.refused {
				reload <- c
				<-kept
				select {
				case r := <-done:
					t.Fatalf("the running Manager stopped on a refused config (%q): %v", c.data, r.err)
				default:
				}
				require.Equal(t, "ts", o.chosen.name)
				for i, p := range mgr.Plugins() {
					require.Equal(t, sockets[i], p.Socket(), "served on, not served again")
					_, err := os.Stat(sockets[i])
					require.NoError(t, err)
				}
			}
			reload <- choice{name: "mig-mixed", data: []byte(mixedConfig)}
			r := <-done
			require.NoError(t, r.err)
			require.NotNil(t, r.next)
			require.Equal(t, configv1.MIGStrategyMixed, *r.next.Flags.MigStrategy)
			require.Empty(t, r.next.Sharing.TimeSlicing.Resources)
			require.Equal(t, "mig-mixed", o.chosen.name)
			require.Len(t, ev.got(), tc.events, "refusals recorded: %v", ev.got())
			for _, e := range ev.got() {
				require.Contains(t, e, "(running ts)")
			}
		})
	}

	// The context ending is no reload.
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	cfg, err := (&options{chosen: &choice{name: "ts", data: []byte(tsConfig)}}).loadConfig(context.Background(), NewCommand().Flags())
	require.NoError(t, err)
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: m.Lib(t), Config: cfg, PluginDir: t.TempDir()})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	stop()
	next, err := runUntilReload(runCtx, mgr, make(chan choice), noRetry, func(*choice) (*configv1.Config, bool) {
		t.Error("no config was sent")
		return nil, false
	})
	require.Nil(t, next)
	require.NoError(t, err)
}

// noRetry is runUntilReload's due when no retry is pending.
func noRetry() <-chan time.Time { return nil }

// Where no node is read (--print-topology, --print-labels, no
// --node-name), --config-name previews the config of a node labelled with
// it; without it the fallbacks apply as for a node without the label, and
// when none does the error says no node was read and how to preview (it
// said "node has no nvidia.com/device-plugin.config label").
func TestChooseOffline(t *testing.T) {
	two := configMapDir(t, map[string]string{"ts": tsConfig, "mig-mixed": mixedConfig})
	tests := []struct {
		name, configName, def string
		want                  string
		wantErr               string
	}{
		{name: "a named config", configName: "mig-mixed", want: "mig-mixed"},
		{name: "a name of no config", configName: "mig-mxied", wantErr: "--config-name=mig-mxied names no config in " + two + " (configs: mig-mixed, ts)"},
		{name: "no name: the default config", def: "ts", want: "ts"},
		{name: "no name, no fallback",
			wantErr: `no node is read (--print-topology and --print-labels read none; without --node-name neither does the plugin), so no nvidia.com/device-plugin.config label chooses a config, and no fallback applies (strategies named,single; default config ""; configs: mig-mixed, ts): give --config-name=<name> to preview the config of a node labelled nvidia.com/device-plugin.config=<name>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pn := &perNode{dir: two, label: DefaultConfigLabel, defaultCfg: tc.def, fallbacks: []string{"named", "single"}}
			c, err := pn.chooseOffline(tc.configName)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "node has no")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.name)
		})
	}
}

// choosePerNode: --config-name needs --config-file-srcdir and no node
// read; a config file given beside --config-file-srcdir is not read, and
// the log says which wins.
func TestChoosePerNodeFlags(t *testing.T) {
	dir := configMapDir(t, map[string]string{"ts": tsConfig, "mig-mixed": mixedConfig})
	tests := []struct {
		name    string
		o       options
		args    []string
		client  bool
		want    string // chosen config
		wantErr string
		wantLog string
	}{
		{name: "config-name without srcdir", o: options{configName: "ts"}, wantErr: "--config-name previews one of the per-node configs of --config-file-srcdir, which is not given"},
		{name: "config-name with a node read", o: options{configDir: dir, configName: "ts", nodeName: "n1", nodeLabel: DefaultConfigLabel}, client: true,
			wantErr: "--config-name=ts previews a per-node config where no node is read (--print-topology, --print-labels, no --node-name): here node n1's label nvidia.com/device-plugin.config chooses"},
		{name: "config-name offline", o: options{configDir: dir, configName: "mig-mixed", nodeLabel: DefaultConfigLabel}, want: "mig-mixed"},
		{name: "config file beside srcdir", o: options{configDir: dir, configName: "ts", nodeLabel: DefaultConfigLabel}, args: []string{"--config-file=/etc/nvidia/config.yaml"}, want: "ts",
			wantLog: `INFO Config file not read: the per-node configs of --config-file-srcdir win over it, the node label choosing one configFile="/etc/nvidia/config.yaml" givenBy="--config-file" configFileSrcdir="` + dir + `"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := NewCommand()
			require.NoError(t, cmd.Flags().Parse(tc.args))
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			o := tc.o
			o.fallbacks = []string{"named", "single"}
			var client kubernetes.Interface
			if tc.client {
				client = k8sfake.NewClientset()
			}
			_, _, err := o.choosePerNode(klog.NewContext(context.Background(), logger), cmd.Flags(), client)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, o.chosen.name)
			if tc.wantLog != "" {
				require.Contains(t, logLines(logger)[0], tc.wantLog)
			}
		})
	}
}

// Through the binary: --config-name previews a labelled node's config, and
// CONFIG_FILE beside --config-file-srcdir is said not to be read.
func TestPreviewPerNodeConfigThroughTheBinary(t *testing.T) {
	dir := configMapDir(t, map[string]string{"ts": tsConfig, "mig-mixed": mixedConfig})
	stdout, stderr, code := runBinary(t, map[string]string{"CONFIG_FILE": "/etc/nvidia/config.yaml"},
		"--config-file-srcdir", dir, "--config-name", "ts", "--fake", "dgx-a100", "--print-topology")
	require.Zero(t, code, stderr)
	require.Equal(t, map[string]int{"nvidia.com/gpu": 32}, advertised(t, stdout)) // 8 x 4
	require.Contains(t, stderr, `Config file not read: the per-node configs of --config-file-srcdir win over it`)
	require.Contains(t, stderr, `givenBy="CONFIG_FILE"`)
	_, stderr, code = runBinary(t, nil, "--config-file-srcdir", dir, "--fake", "dgx-a100", "--print-topology")
	require.NotZero(t, code)
	require.Contains(t, stderr, "no node is read")
	require.Contains(t, stderr, "--config-name=<name>")
}
