// Package app is the device-plugin command: flags, config, and wiring of
// NVML, the plugins, the handoff informer, publishing and metrics.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"k8s.io/utils/clock"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/mps"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/pkg/version"
)

// options are the command-line flags gpupack adds to NVIDIA's (those are
// in settings).
type options struct {
	fakeMachine        string
	fakeMIG            map[string]string
	fakeControl        string
	fakeLost           []int
	printTopology      bool
	printLabels        bool
	pluginDir          string
	podResourcesSocket string
	nodeName           string
	kubeconfig         string
	metricsAddress     string
	cdiSpecDir         string
	mpsControlBinary   string
	hostRoot           string
	// cleanup runs when run returns.
	cleanup []func()
	// out is where --print-topology prints (the command's output).
	out io.Writer

	// Per-node configs (NVIDIA's config manager's flags).
	configDir     string
	nodeLabel     string
	defaultConfig string
	fallbacks     []string
	// configName previews a per-node config offline (no node read): the
	// config a node labelled with it gets.
	configName string
	// perNodeNames are the chart's per-node config names, each served by
	// a DaemonSet of its own: this (the default DaemonSet's) plugin warns
	// when its node's label names none of them.
	perNodeNames []string
	// chosen is the per-node config in force (nil: --config-file): the
	// one the next Manager is built from. A rebuild that fails leaves it
	// chosen while the Manager of served runs on.
	chosen *choice
	// served is the per-node config of the running Manager (nil: none
	// runs yet, or --config-file), set only once a Manager built from it
	// runs (serve): the config events and logs say "still serving" it.
	served *choice
	// configEvents records config events on the Node (a refused per-node
	// config, a config not served as written; a failed rebuild when it is
	// a rebuildEvents too); nil records none.
	configEvents configEvents
	// rebuildRetry paces the retries of a rebuild whose Manager could not
	// be built, on rebuildClock (serve); the zero values are
	// defaultRebuildRetry and the real clock. The restarts of
	// restartOnDeviceUnhealthy are paced on rebuildClock too.
	rebuildRetry wait.Backoff
	rebuildClock clock.Clock
}

// configEvents records config events on the Node (nodeConfigEvents).
type configEvents interface {
	ConfigRefused(name, running string, err error)
	ConfigNotServed(config string, w configv1.Warning)
	ConfigLabelUnknown(label, value string, configs []string)
}

// NewCommand returns the device-plugin command.
func NewCommand() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:          "device-plugin",
		Short:        "gpupack kubelet device plugin for NVIDIA GPUs",
		Version:      version.Get().String(),
		SilenceUsage: true,
		// RunE logs the error; cobra would print it a second time.
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, cancel := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer cancel()
			ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithName("device-plugin"))
			o.out = cmd.OutOrStdout()
			err := o.run(ctx, cmd.Flags())
			if err != nil {
				klog.FromContext(ctx).Error(err, "Device plugin failed")
			}
			return err
		},
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	// RunE does not run on a flag error: say it here (errors are silenced).
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		c.PrintErrln("Error:", err)
		return err
	})
	fs := cmd.Flags()
	fs.String("config-file", "", "config file: NVIDIA k8s-device-plugin's v1 config, with gpupack's fields [$CONFIG_FILE]")
	fs.String("config", "", "alias of --config-file")
	addSettings(fs)
	fs.StringVar(&o.configDir, "config-file-srcdir", os.Getenv("CONFIG_FILE_SRCDIR"), "per-node configs: a directory of named configs (a mounted ConfigMap); the node label --node-label chooses one [$CONFIG_FILE_SRCDIR]")
	fs.StringVar(&o.nodeLabel, "node-label", envOr("NODE_LABEL", DefaultConfigLabel), "the node label naming the node's config in --config-file-srcdir [$NODE_LABEL]")
	fs.StringVar(&o.defaultConfig, "default-config", os.Getenv("DEFAULT_CONFIG"), "the config used when the node has no label (fallback strategy named) [$DEFAULT_CONFIG]")
	fs.StringSliceVar(&o.fallbacks, "fallback-strategies", configv1.SplitList(envOr("FALLBACK_STRATEGIES", "named,single")), "when the node has no label: named (the default config), single (the only config), empty (defaults), tried in order [$FALLBACK_STRATEGIES]")
	fs.StringVar(&o.configName, "config-name", "", "with --config-file-srcdir and no node read (--print-topology, --print-labels, no --node-name): preview the config a node labelled --node-label=<name> gets")
	fs.StringSliceVar(&o.perNodeNames, "per-node-config-names", configv1.SplitList(os.Getenv("PER_NODE_CONFIG_NAMES")), "the chart's per-node config names (config.perNode), each served by a DaemonSet of its own: the default DaemonSet's plugin warns (log, Node event) when its node's --node-label names none of them [$PER_NODE_CONFIG_NAMES]")
	fs.StringVar(&o.fakeMachine, "fake", "", fmt.Sprintf("run on a fake NVML machine from the catalog %v", fake.Names()))
	fs.StringToStringVar(&o.fakeMIG, "fake-mig", nil, "with --fake: MIG devices per GPU index, profiles joined by '+', e.g. 0=3g.20gb+1g.5gb,1=7g.40gb; a '+' followed by a letter stays in the profile (NVIDIA's attributes: 0=3g.40gb+1g.10gb+me is 3g.40gb and 1g.10gb+me)")
	fs.IntSliceVar(&o.fakeLost, "fake-lost", nil, "with --fake: GPU indexes that have fallen off the bus before the plugin starts (restore them on --fake-control)")
	fs.StringVar(&o.fakeControl, "fake-control", "", "with --fake: serve fault injection (XID, ECC, lost GPU) on this unix socket")
	fs.BoolVar(&o.printTopology, "print-topology", false, "print the node's GPU map and exit")
	fs.BoolVar(&o.printLabels, "print-labels", false, "print the node labels the plugin would publish (GPU Feature Discovery's and gpupack's), one key=value a line as GFD's output file, and exit")
	fs.StringVar(&o.pluginDir, "device-plugin-dir", pluginapi.DevicePluginPath, "kubelet device-plugin directory (holds kubelet.sock); wins over --kubelet-socket")
	fs.StringVar(&o.cdiSpecDir, "cdi-spec-dir", deviceplugin.DefaultCDISpecDir, "where the node's CDI spec is written under the cdi-annotations and cdi-cri device list strategies")
	fs.StringVar(&o.mpsControlBinary, "mps-control-binary", envOr("MPS_CONTROL_BINARY", mps.DefaultBinary), "the MPS control program run once per GPU shared with MPS (sharing.mps): a path, or a name looked up in PATH [$MPS_CONTROL_BINARY]")
	fs.StringVar(&o.podResourcesSocket, "pod-resources-socket", "/var/lib/kubelet/pod-resources/kubelet.sock", "kubelet PodResources API socket")
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME); empty disables publishing and the handoff")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig; empty means in-cluster")
	fs.StringVar(&o.metricsAddress, "metrics-bind-address", "127.0.0.1:9464", "Prometheus metrics address; empty disables")
	fs.StringVar(&o.hostRoot, "host-root", "/", "where the host's /sys is (GPU Feature Discovery labels: DMI product name, PCI classes); with --fake and no --host-root, the fake machine's files in a temporary directory")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	return cmd
}

// NVIDIA's health-check variables, honoured as NVIDIA's plugin does:
// DP_DISABLE_HEALTHCHECKS "all" or "xids" turns XID checks off, a list of
// XIDs adds to the skipped ones; DP_ENABLE_HEALTHCHECKS lists XIDs that are
// critical even when skipped ("all": every XID), and with
// DP_DISABLE_HEALTHCHECKS=all the only critical ones (configv1.Health.Enable).
const (
	envDisableHealthChecks = "DP_DISABLE_HEALTHCHECKS"
	envEnableHealthChecks  = "DP_ENABLE_HEALTHCHECKS"
)

func applyHealthEnv(c *configv1.Config, v string) error {
	return applyXIDEnv(envDisableHealthChecks, v, c.Health.Disable)
}

func applyEnableHealthEnv(c *configv1.Config, v string) error {
	return applyXIDEnv(envEnableHealthChecks, v, c.Health.Enable)
}

// applyXIDEnv reads the health-check variable name, "all" (or "xids") and
// XID numbers, comma-separated, and hands them to apply.
func applyXIDEnv(name, v string, apply func(all bool, xids []uint64)) error {
	all := false
	var xids []uint64
	for _, f := range configv1.SplitList(strings.ToLower(v)) {
		if f == "all" || f == "xids" {
			all = true
			continue
		}
		x, err := strconv.ParseUint(f, 10, 64)
		if err != nil || x == 0 {
			return fmt.Errorf("%s=%q: want all, xids or XID numbers", name, v)
		}
		xids = append(xids, x)
	}
	apply(all, xids)
	return nil
}

// loadConfig reads the file (or the defaults), applies NVIDIA's variables
// and flags (flag > environment > file) and validates the result. The
// file's warnings are logged once each.
func (o *options) loadConfig(ctx context.Context, fs *pflag.FlagSet) (*configv1.Config, error) {
	c, _, err := o.loadConfigWarned(ctx, fs)
	return c, err
}

// loaded is what loadConfigWarned read besides the config: which config
// (for events) and its warnings under which a field is not served as
// written (logged already; the caller records them on the Node once the
// config runs).
type loaded struct {
	source    string
	notServed configv1.Warnings
}

// loadConfigWarned is loadConfig, also returning what it loaded.
func (o *options) loadConfigWarned(ctx context.Context, fs *pflag.FlagSet) (*configv1.Config, loaded, error) {
	logger := klog.FromContext(ctx)
	c := configv1.Default()
	var warnings configv1.Warnings
	path, err := configFile(fs, lookupEnv)
	if err != nil {
		return nil, loaded{}, fmt.Errorf("invalid flags: %w", err)
	}
	source := "(defaults)"
	switch {
	case o.chosen != nil && o.chosen.name != "":
		source = o.chosen.name
		if c, warnings, err = configv1.Decode(o.chosen.data); err != nil {
			return nil, loaded{}, fmt.Errorf("config %q of %s: %w", o.chosen.name, o.configDir, err)
		}
	case o.chosen != nil:
		source = "(empty per-node config: defaults)"
	case path != "":
		source = path
		if c, warnings, err = configv1.Load(path); err != nil {
			return nil, loaded{}, err
		}
	}
	applied, err := applySettings(c, fs, lookupEnv)
	if err != nil {
		return nil, loaded{}, fmt.Errorf("invalid flags: %w", err)
	}
	disable, _ := lookupEnv(envDisableHealthChecks)
	if err := applyHealthEnv(c, disable); err != nil {
		return nil, loaded{}, err
	}
	// NVIDIA's plugin advertises <RESOURCE_PREFIX>/gpu...: ignoring another
	// prefix would advertise other resources.
	if p, _ := lookupEnv("RESOURCE_PREFIX"); strings.TrimSpace(p) != "" && strings.TrimSpace(p) != strings.TrimSuffix(configv1.ResourcePrefix, "/") {
		return nil, loaded{}, fmt.Errorf("RESOURCE_PREFIX=%s: gpupack advertises under %s only", p, configv1.ResourcePrefix)
	}
	enable, _ := lookupEnv(envEnableHealthChecks)
	if err := applyEnableHealthEnv(c, enable); err != nil {
		return nil, loaded{}, err
	}
	configv1.SetDefaults(c)
	ws, errs := configv1.Unimplemented(c)
	errs = append(errs, configv1.Validate(c)...)
	if len(errs) > 0 {
		if len(applied) > 0 {
			return nil, loaded{}, fmt.Errorf("invalid flags (given %s): %w", strings.Join(applied, " "), errs.ToAggregate())
		}
		return nil, loaded{}, fmt.Errorf("invalid config: %w", errs.ToAggregate())
	}
	all := logConfigWarnings(logger, warnings, ws)
	if sock := c.Flags.Plugin.KubeletSocket; sock != nil && *sock != "" && !fs.Changed("device-plugin-dir") {
		dir, err := pluginDirFromSocket(*sock)
		if err != nil {
			return nil, loaded{}, err
		}
		o.pluginDir = dir
	}
	return c, loaded{source: source, notServed: all.NotServed()}, nil
}

// Config warnings are logged as one message, with the warning's kind
// (configv1.WarningKind), its field's path and what happens; those under
// which a field is not served as written (NotServed) at error level, with
// impact=notServedAsConfigured.
const (
	configWarningMessage  = "Config warning"
	notServedAsConfigured = "not served as configured"
)

// logConfigWarnings logs each warning once, sorted by field: the file's
// (an unknown field, a key given twice, ...) and those of the config with
// NVIDIA's flags and variables applied (fields without effect), which
// repeat the file's own. The plugin runs with the config. It returns the
// warnings logged.
func logConfigWarnings(logger klog.Logger, file, applied configv1.Warnings) configv1.Warnings {
	all := append(slices.Clone(file), applied...).Sorted()
	for _, w := range all {
		kv := []any{"kind", w.Kind, "field", w.Field, "warning", w.Message}
		if w.NotServed {
			logger.Error(nil, configWarningMessage, append(kv, "impact", notServedAsConfigured)...)
			continue
		}
		logger.Info(configWarningMessage, kv...)
	}
	return all
}

// maxNotServedEvents bounds the Node events of one config's warnings
// (one each); a last one counts the rest.
const maxNotServedEvents = 10

// recordNotServed records a Warning event on the Node for each of l's
// warnings under which a field is not served as written.
func (o *options) recordNotServed(l loaded) {
	if o.configEvents == nil {
		return
	}
	for i, w := range l.notServed {
		if i == maxNotServedEvents {
			o.configEvents.ConfigNotServed(l.source, configv1.Warning{Kind: w.Kind, NotServed: true, Message: fmt.Sprintf(
				"and %d more warnings of this config (the plugin's log: %q)", len(l.notServed)-i, configWarningMessage)})
			return
		}
		o.configEvents.ConfigNotServed(l.source, w)
	}
}

// lib returns NVML: the real library, or with --fake the catalog machine
// (also returned, for fault injection). Discovery's warnings (NVML answers
// it works around, such as NVLink ends that disagree) go to logger, the
// command's, with its name and values.
func (o *options) lib(logger klog.Logger) (nvml.Lib, *fake.Machine, error) {
	if o.fakeMachine == "" {
		if o.fakeControl != "" {
			return nil, nil, errors.New("--fake-control needs --fake")
		}
		return nvml.New(gonvml.New(), nvml.WithLogger(logger)), nil, nil
	}
	layout, err := parseFakeMIG(o.fakeMIG)
	if err != nil {
		return nil, nil, err
	}
	var opts []fake.Option
	if len(layout) > 0 {
		opts = append(opts, fake.WithMIG(layout))
	}
	// Every fake node gets its own GPU UUIDs, as real nodes have (without
	// --node-name, e.g. --print-topology, the machine type's own).
	if o.nodeName != "" {
		opts = append(opts, fake.WithHostname(o.nodeName))
	}
	m, err := fake.New(o.fakeMachine, opts...)
	if err != nil {
		return nil, nil, err
	}
	lost := map[int]bool{}
	for _, i := range o.fakeLost {
		if i < 0 || i >= m.NumGPUs() {
			return nil, nil, fmt.Errorf("--fake-lost: no GPU %d on %s (%d GPUs)", i, o.fakeMachine, m.NumGPUs())
		}
		if lost[i] {
			return nil, nil, fmt.Errorf("--fake-lost: GPU %d listed twice", i)
		}
		lost[i] = true
		m.LoseGPU(i)
	}
	return nvml.New(m.Interface(), nvml.WithLogger(logger)), m, nil
}

// parseFakeMIG reads --fake-mig: GPU index -> profiles joined by '+'
// (splitFakeMIGProfiles: 1g.10gb+me is one profile).
func parseFakeMIG(in map[string]string) (map[int][]string, error) {
	out := map[int][]string{}
	for k, v := range in {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 {
			return nil, fmt.Errorf("--fake-mig: %q is not a GPU index", k)
		}
		for _, p := range splitFakeMIGProfiles(v) {
			if p == "" {
				return nil, fmt.Errorf("--fake-mig: empty profile for GPU %d", i)
			}
			out[i] = append(out[i], p)
		}
	}
	return out, nil
}

func (o *options) run(ctx context.Context, fs *pflag.FlagSet) (err error) {
	logger := klog.FromContext(ctx)
	defer func() {
		for _, f := range o.cleanup {
			f()
		}
	}()
	if !o.printing() {
		logger.Info("Starting gpupack device plugin", "version", version.Get())
	}
	var client kubernetes.Interface
	if o.nodeName != "" && !o.printing() {
		if client, err = o.client(); err != nil {
			return err
		}
	}
	pn, labels, err := o.choosePerNode(ctx, fs, client)
	if err != nil {
		return err
	}
	cfg, load, err := o.loadConfigWarned(ctx, fs)
	if err != nil {
		return err
	}
	lib, machine, err := o.lib(logger)
	if err != nil {
		return err
	}
	if err := lib.Init(); err != nil {
		if *cfg.Flags.FailOnInitError || o.printing() {
			return fmt.Errorf("initialising NVML: %w", err)
		}
		logger.Error(err, "NVML failed to initialise; failOnInitError is false, so waiting idle")
		<-ctx.Done()
		return nil
	}
	defer func() { _ = lib.Shutdown() }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		version.NewCollector("device-plugin"))
	hostRoot, err := o.hostFiles(fs, machine)
	if err != nil {
		return err
	}
	dopts := deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: o.pluginDir, Metrics: deviceplugin.NewMetrics(reg), HostRoot: hostRoot,
		Logger: logger}
	dopts.Metrics.SetHostname(metricsHostname(o.nodeName))

	if o.printing() {
		m, err := deviceplugin.New(dopts)
		if err != nil {
			return err
		}
		if o.printTopology {
			if err := topology.Render(o.out, m.Node()); err != nil {
				return err
			}
			if err := printResources(o.out, m.Plugins()); err != nil {
				return err
			}
		}
		if o.printLabels {
			return printLabels(ctx, o.out, m)
		}
		return nil
	}
	if !filepath.IsAbs(o.cdiSpecDir) {
		// The container runtime reads specs from an absolute directory; a
		// relative one would land under the plugin's working directory.
		return fmt.Errorf("--cdi-spec-dir=%s: must be an absolute path", o.cdiSpecDir)
	}
	dopts.CDISpecDir = o.cdiSpecDir
	dopts.MPS = &deviceplugin.MPSOptions{Binary: o.mpsControlBinary}

	if o.nodeName != "" {
		// The handoff exists before the informer delivers anything: every
		// delivery is observed in order. The kubelet is served at once; until
		// the informer has synced the handoff answers without the
		// scheduler's choices (after its informer wait).
		podres := deviceplugin.NewPodResources(o.podResourcesSocket)
		defer func() { _ = podres.Close() }()
		handoff := deviceplugin.NewHandoff(nil, deviceplugin.WithInformerWait(handoffInformerWait),
			deviceplugin.WithUnsynced(), deviceplugin.WithAllocations(podres))
		// The ends of the node's pods: a device withheld for a holder comes
		// back once the kubelet no longer lists it.
		ends := deviceplugin.NewPodEnds()
		pods, err := startPodInformer(ctx, client, o.nodeName, handoff, ends)
		if err != nil {
			return err
		}
		handoff.SetLister(pods)
		dopts.Handoff = handoff
		// Devices whose GPU a running container holds under an earlier
		// config's name or ID are withheld.
		dopts.PodResources, dopts.PodEnds = podres, ends
		// So are those of a GPU whose MIG device a running container holds
		// although it is gone: a MIG layout change made while the plugin
		// was down (NVIDIA's mig-manager stops it meanwhile) is told by
		// what the plugin published last.
		dopts.MIGParents = publishedMIGParents(ctx, client, o.nodeName)
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
		defer broadcaster.Shutdown()
		// Node events (a GPU unhealthy with its XID, or recovered) through
		// events.k8s.io/v1.
		nodeEvents := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
		nodeEvents.StartRecordingToSink(ctx.Done())
		defer nodeEvents.Shutdown()
		recorder := nodeEvents.NewRecorder(scheme.Scheme, "gpupack-device-plugin")
		ne := deviceplugin.NewNodeEvents(recorder, o.nodeName)
		dopts.Events, o.configEvents = ne, newNodeConfigEvents(ne, recorder, o.nodeName)
		// The config runs although some of it is not served as written:
		// said on the Node, where a log line is not looked for.
		o.recordNotServed(load)
		if len(o.perNodeNames) > 0 && pn == nil {
			go watchConfigLabel(ctx, dryRunNodeReader{client: client}, o.nodeName, o.nodeLabel, o.perNodeNames, o.configEvents, configLabelCheckEvery)
		}
		dopts.Publisher = nodepublish.New(nodepublish.Options{
			Client: client, NodeName: o.nodeName, PodResources: podres, Pods: pods,
			Recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "gpupack-device-plugin", Host: o.nodeName}),
			Metrics:  dopts.Metrics,
		})
		// With per-node configs the node informer reading the config
		// label also shows the publisher each change of the Node: an
		// edited topology annotation is repaired at once.
		if observeNodes(labels, dopts.Publisher) {
			logger.V(2).Info("The node watch of the per-node configs also checks the node's topology annotation", "node", klog.KRef("", o.nodeName))
		}
	} else {
		logger.Info("No node name: not publishing to the Node and not reading the scheduler's choices")
	}
	if o.metricsAddress != "" {
		go serveMetrics(ctx, o.metricsAddress, reg)
	}
	if o.fakeControl != "" {
		l, err := listenFakeControl(o.fakeControl)
		if err != nil {
			return err
		}
		go serveFakeControl(ctx, l, machine)
	}
	reload := make(chan choice, 1)
	if pn != nil {
		if err := watchConfigs(ctx, pn, labels, *o.chosen, reload, clock.RealClock{}); err != nil {
			return err
		}
	}
	return o.serve(ctx, fs, dopts, reload)
}

// defaultRebuildRetry paces the retries of a rebuild whose Manager could
// not be built (options.rebuildRetry).
var defaultRebuildRetry = wait.Backoff{Duration: 2 * time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 5 * time.Minute}

// shownDelay is a retry's delay d as events and logs show it: to the
// second (to 10 ms under one), without the jitter's nanoseconds
// ("retrying in 2s", not 2.093847263s). The timer waits d itself.
func shownDelay(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// errRebuildDue is runUntilReload's answer when the retry of a failed
// rebuild is due.
var errRebuildDue = errors.New("the retry of the rebuild is due")

// serve runs a Manager built from dopts until ctx ends, and builds the next
// one at each reload of the per-node config and each rediscovery, with
// what the one it replaces knew. A first Manager that cannot be built is an
// error. A rebuild that fails (a one-off NVML error in discovery) is
// retried with backoff (rebuildRetry), the running Manager serving again
// meanwhile: exiting would lose what only this process knows (the GPUs
// that faulted with recovery disabled, the devices known held, the GPUs of
// gone MIG devices), and a restarted plugin would serve a faulted GPU. So
// is the trial build of a reloaded config (accept) that fails for no fault
// of the config, on the same backoff and timer: that config is not
// refused, and the running Manager serves until it is tried again.
func (o *options) serve(ctx context.Context, fs *pflag.FlagSet, dopts deviceplugin.Options, reload <-chan choice) error {
	logger := klog.FromContext(ctx)
	retry, clk := o.rebuildRetry, o.rebuildClock
	if retry.Duration <= 0 {
		retry = defaultRebuildRetry
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	var (
		pace    restartPacer
		m       *deviceplugin.Manager
		backoff = retry
		// restart: the pending rebuild is restartOnDeviceUnhealthy's,
		// which starts with every device healthy.
		restart bool
		// retryAt is the pending retry (nil: none): of the failed
		// rebuild (rebuildFailed: m is the Manager it was to replace),
		// or of pending, a config whose trial build failed.
		retryAt       clock.Timer
		rebuildFailed bool
		pending       *choice
	)
	arm := func(d time.Duration) {
		if retryAt != nil {
			retryAt.Stop()
		}
		retryAt = nil
		if d >= 0 {
			retryAt = clk.NewTimer(d)
		}
	}
	defer arm(-1)
	due := func() <-chan time.Time {
		if retryAt == nil {
			return nil
		}
		return retryAt.C()
	}
	// step answers runUntilReload: a new per-node config (c), or the
	// retry due (nil).
	step := func(c *choice) (*configv1.Config, bool) {
		if c == nil {
			retryAt = nil
			if pending == nil {
				return nil, true
			}
			c = pending
			logger.Info("Trying the new per-node config again", "config", c.name)
		}
		// A new config replaces the one pending.
		pending = nil
		cfg, err := o.accept(ctx, fs, dopts, *c)
		switch {
		case cfg != nil:
			return cfg, true
		case err != nil:
			pending = c
			d := backoff.Step()
			logger.Error(err, "Trying the new per-node config failed, not for a fault of the config: serving the running one until the retry",
				"config", c.name, "running", o.running(), "retryIn", shownDelay(d))
			if e, ok := o.configEvents.(rebuildEvents); ok {
				e.ConfigTrialFailed(c.name, o.running(), err, shownDelay(d))
			}
			arm(d)
		case !rebuildFailed:
			// Refused (or the running config again): nothing is
			// pending any more.
			arm(-1)
			backoff = retry
		case retryAt == nil:
			// Refused, and the failed rebuild's retry, whose place a
			// trial's took, is due.
			return nil, true
		}
		return nil, false
	}
	for {
		next, err := deviceplugin.New(dopts)
		switch {
		case err == nil:
			m, backoff, restart, rebuildFailed = next, retry, false, false
			o.served = o.chosen
			if dopts.Publisher != nil {
				// The publish section follows a reloaded config too.
				dopts.Publisher.Reconfigure(publishSettings(dopts.Config))
			}
			for _, p := range m.Plugins() {
				logger.Info("Resource", "name", p.Name(), "devices", len(p.Devices()))
			}
		case m == nil:
			return err
		default:
			d := backoff.Step()
			kv := []any{"retryIn", shownDelay(d)}
			if o.chosen != nil {
				// The config of the rebuild, and the one served.
				kv = append(kv, "config", o.chosen.name, "running", o.running())
			}
			logger.Error(err, "Rebuilding the device plugin failed: serving the running devices again until the retry", kv...)
			if e, ok := o.configEvents.(rebuildEvents); ok {
				e.RebuildFailed(err, shownDelay(d))
			}
			// A config pending is tried at this retry, before the
			// rebuild.
			rebuildFailed = true
			arm(d)
		}
		cfg, err := runUntilReload(ctx, m, reload, due, step)
		// Nothing is due any more, unless a config is pending: it is
		// tried at its retry, on the next Manager.
		if pending == nil {
			arm(-1)
		}
		// The next Manager keeps the devices that failed: a rebuild is no
		// recovery check (restartOnDeviceUnhealthy's restart is, as
		// NVIDIA's restarted plugin sees every device healthy).
		dopts.Unhealthy = m.Health().UnhealthyUUIDs()
		// And what it knew containers hold, should PodResources not answer
		// the next one.
		dopts.Held = m.Held()
		// And where it withheld held shares: they keep their replicas.
		dopts.Withheld = m.Withheld()
		// And the GPUs of the MIG devices it served or remembered that a
		// container still holds: a MIG layout change destroys them, and
		// the kubelet lists them until the container ends.
		dopts.MIGParents = m.MIGParents()
		// And whether it told PodResources down: the next one tells when
		// it answers again.
		dopts.PodResourcesDown = m.PodResourcesDown()
		switch {
		case cfg != nil:
			dopts.Config = cfg
		case errors.Is(err, errRebuildDue):
			logger.Info("Retrying the rebuild")
		case !errors.Is(err, deviceplugin.ErrRediscover):
			// A GPU that discovery could not read answers again, or a
			// device went unhealthy under restartOnDeviceUnhealthy:
			// discover anew; anything else ends the plugin.
			return err
		case errors.Is(err, deviceplugin.ErrRestartOnUnhealthy):
			restart = true
			if d := pace.next(clk.Now()); d > 0 {
				logger.Info("Waiting before the restart, as the kubelet paces a restarted container", "delay", d)
				paced := clk.NewTimer(d)
				select {
				case <-ctx.Done():
					paced.Stop()
					return nil
				case <-paced.C():
				}
			}
			fallthrough
		default:
			logger.Info("Discovering the node's GPUs again")
		}
		if restart {
			dopts.Unhealthy = nil
		}
	}
}

// publishedReadTimeout bounds the read of the node at start
// (publishedMIGParents): the kubelet is served without it rather than late.
const publishedReadTimeout = 5 * time.Second

// publishedMIGParents is what the node's gpupack.io/topology annotation,
// written by this plugin's last run, says of its MIG devices' GPUs
// (migParentsOfNode): the first Manager's memory of MIG devices
// (deviceplugin.Options.MIGParents). NVML cannot tell the GPU of a MIG
// device destroyed while the plugin was down; a container the kubelet
// still lists with one keeps that GPU withheld by this. nil when the
// node or its annotation cannot be read (logged): such a holding then
// withholds every MIG-capable GPU.
func publishedMIGParents(ctx context.Context, client kubernetes.Interface, node string) sharing.MIGParents {
	logger := klog.FromContext(ctx)
	rctx, cancel := context.WithTimeout(ctx, publishedReadTimeout)
	defer cancel()
	n, err := client.CoreV1().Nodes().Get(rctx, node, metav1.GetOptions{})
	if err != nil {
		logger.Error(err, "Reading the node failed: a MIG device destroyed while the plugin was down withholds every MIG-capable GPU while a container holds it",
			"node", node)
		return nil
	}
	parents, err := migParentsOfNode(n)
	if err != nil {
		logger.Error(err, "The node's published MIG devices cannot be read: a MIG device destroyed while the plugin was down withholds every MIG-capable GPU while a container holds it",
			"node", node)
		return nil
	}
	logger.V(2).Info("MIG devices published by the plugin's last run", "count", len(parents))
	return parents
}

// migParentsOfNode maps the MIG devices n's gpupack.io/topology
// annotation lists to their GPUs' UUIDs (their parent's index there), at
// most sharing.MaxMIGParents of them; nil without the annotation. A GPU
// published under a placeholder UUID (not read) names none.
func migParentsOfNode(n *corev1.Node) (sharing.MIGParents, error) {
	raw, ok := n.Annotations[protocol.TopologyAnnotation]
	if !ok {
		return nil, nil
	}
	topo, err := protocol.DecodeTopology(raw)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	gpus := make(map[int]string, len(topo.GPUs))
	for _, g := range topo.GPUs {
		if !nvml.IsPlaceholderUUID(g.UUID) {
			gpus[g.Index] = g.UUID
		}
	}
	out := sharing.MIGParents{}
	for _, m := range topo.MIG {
		if p, ok := gpus[m.Parent]; ok && len(out) < sharing.MaxMIGParents {
			out[m.UUID] = p
		}
	}
	return out, nil
}

// restartPacer spaces the restarts of restartOnDeviceUnhealthy as the
// kubelet spaces the restarts of NVIDIA's plugin when its liveness probe
// fails (CrashLoopBackOff): the first at once, then 10 s, doubling up to
// 5 min; 10 min without a restart start the count over. A GPU that keeps
// raising XIDs so cannot restart the plugin in a tight loop.
type restartPacer struct {
	last  time.Time // when the last restart began
	delay time.Duration
}

const (
	restartDelayFirst = 10 * time.Second
	restartDelayMax   = 5 * time.Minute
	restartResetAfter = 10 * time.Minute
)

// next returns how long to wait before a restart asked at now.
func (p *restartPacer) next(now time.Time) time.Duration {
	switch {
	case p.last.IsZero() || now.Sub(p.last) > restartResetAfter:
		p.delay = 0
	case p.delay == 0:
		p.delay = restartDelayFirst
	default:
		p.delay = min(2*p.delay, restartDelayMax)
	}
	p.last = now.Add(p.delay)
	return p.delay
}

// printing is true when the command prints and exits (--print-topology,
// --print-labels).
func (o *options) printing() bool { return o.printTopology || o.printLabels }

// printLabels prints the labels the publisher would apply for m, sorted,
// as key=value lines (GFD's output file format); a label left out is logged.
func printLabels(ctx context.Context, w io.Writer, m *deviceplugin.Manager) error {
	labels, errs := nodepublish.Labels(m.Node(), m.GFD(), time.Now())
	for _, err := range errs {
		klog.FromContext(ctx).Error(err, "A GPU Feature Discovery label is left out")
	}
	return nodepublish.WriteLabels(w, labels)
}

// publishSettings are the config's publish section.
func publishSettings(c *configv1.Config) nodepublish.Settings {
	p := &c.Publish
	s := nodepublish.Settings{Topology: p.Topology == nil || *p.Topology, Labels: p.Labels == nil || *p.Labels, InUse: p.InUse == nil || *p.InUse}
	if p.InUseInterval != nil {
		s.InUseInterval = p.InUseInterval.Duration
	}
	// GPU Feature Discovery's relabel loop: every sleepInterval (60s by
	// default), once with oneshot; and its output file, when set.
	s.RelabelInterval = nodepublish.DefaultRelabelInterval
	if g := c.Flags.GFD; g != nil {
		if g.SleepInterval != nil {
			s.RelabelInterval = time.Duration(*g.SleepInterval)
		}
		if g.Oneshot != nil && *g.Oneshot {
			s.RelabelInterval = 0
		}
		if g.OutputFile != nil {
			s.LabelFile = *g.OutputFile
		}
	}
	return s
}

// hostFiles is the host root for GPU Feature Discovery's host files: the
// --host-root flag; with --fake and no --host-root, a temporary directory
// holding the fake machine's files (removed at exit).
func (o *options) hostFiles(fs *pflag.FlagSet, machine *fake.Machine) (string, error) {
	if o.hostRoot != "" && !filepath.IsAbs(o.hostRoot) {
		return "", fmt.Errorf("--host-root=%s: must be an absolute path", o.hostRoot)
	}
	if machine == nil || fs.Changed("host-root") {
		return o.hostRoot, nil
	}
	dir, err := os.MkdirTemp("", "gpupack-fake-host-")
	if err != nil {
		return "", fmt.Errorf("--fake: %w", err)
	}
	o.cleanup = append(o.cleanup, func() { _ = os.RemoveAll(dir) })
	if err := machine.WriteHostFiles(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// runUntilReload runs m until it ends, or until step, called with each new
// per-node config and with nil when due delivers (due is asked again after
// each step; nil never delivers), says to stop it: then it returns the
// config step gave, or errRebuildDue without one. Else m runs on: the
// kubelet keeps its registrations, and no pod admitted meanwhile meets a
// resource without a plugin.
func runUntilReload(ctx context.Context, m *deviceplugin.Manager, reload <-chan choice, due func() <-chan time.Time,
	step func(*choice) (*configv1.Config, bool)) (*configv1.Config, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    *configv1.Config
		stopped bool
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var c *choice
			select {
			case r := <-reload:
				c = &r
			case <-due():
			case <-runCtx.Done():
				return
			}
			if next, stopped = step(c); stopped {
				cancel()
				return
			}
		}
	}()
	err := m.Run(runCtx)
	cancel()
	<-done
	switch {
	case ctx.Err() != nil:
		return nil, err
	case next != nil:
		return next, nil
	case stopped && err == nil:
		return nil, errRebuildDue
	}
	return nil, err
}

// accept returns the config to run after a per-node config change, or nil
// to keep the running one: the new config must load and fit the node (a
// trial Manager, built beside the running one, that serves nothing), and
// differ from the running one (a config made invalid and then restored
// changes nothing). A refusal is logged and recorded as a Node event. A
// trial build whose discovery fails (deviceplugin.ErrDiscovery: a one-off
// NVML error, no fault of the config) refuses nothing: accept returns that
// error, and the caller tries next again later.
func (o *options) accept(ctx context.Context, fs *pflag.FlagSet, dopts deviceplugin.Options, next choice) (*configv1.Config, error) {
	logger := klog.FromContext(ctx)
	prev := o.chosen
	if prev.same(next) {
		if o.served.same(next) {
			logger.Info("Per-node config is the running one again; nothing to do", "config", next.name)
		} else {
			// Chosen before, its rebuild failed: the retry already armed
			// builds it, and the config before it serves meanwhile.
			logger.Info("Per-node config is the one chosen already, whose start is being retried; nothing to do",
				"config", next.name, "running", o.running())
		}
		return nil, nil
	}
	o.chosen = &next
	cfg, load, err := o.loadConfigWarned(ctx, fs)
	if err == nil {
		trial := dopts
		// Nothing of the trial is written, published or scraped.
		trial.Config, trial.CDISpecDir, trial.Metrics, trial.Publisher, trial.Events = cfg, "", nil, nil, nil
		if _, err = deviceplugin.New(trial); errors.Is(err, deviceplugin.ErrDiscovery) {
			o.chosen = prev
			return nil, err
		}
	}
	o.chosen = prev
	if err != nil {
		logger.Error(err, "New per-node config refused; keeping the running one", "config", next.name, "running", o.running())
		if o.configEvents != nil {
			o.configEvents.ConfigRefused(next.name, o.running(), err)
		}
		return nil, nil
	}
	o.chosen = &next
	logger.Info("Running with the new per-node config", "config", next.name)
	o.recordNotServed(load)
	return cfg, nil
}

// running names the per-node config served (the running Manager's),
// "(none)" without one: not chosen, which a failed rebuild has not put in
// service yet.
func (o *options) running() string {
	if o.served == nil {
		return "(none)"
	}
	return o.served.name
}

// choosePerNode, with --config-file-srcdir, picks this node's config by its
// label (read once here, then watched) and the fallbacks; without a node
// to read (client nil: --print-topology, --print-labels, no --node-name),
// the one --config-name names, else the fallbacks. A config file given
// too (--config-file, CONFIG_FILE) is not read, and said so.
func (o *options) choosePerNode(ctx context.Context, fs *pflag.FlagSet, client kubernetes.Interface) (*perNode, labelSource, error) {
	logger := klog.FromContext(ctx)
	if o.configDir == "" {
		if o.configName != "" {
			return nil, nil, errors.New("--config-name previews one of the per-node configs of --config-file-srcdir, which is not given")
		}
		return nil, nil, nil
	}
	if err := validFallbacks(o.fallbacks); err != nil {
		return nil, nil, err
	}
	if path, source, err := configFileSource(fs, lookupEnv); err == nil && path != "" {
		logger.Info("Config file not read: the per-node configs of --config-file-srcdir win over it, the node label choosing one",
			"configFile", path, "givenBy", source, "configFileSrcdir", o.configDir)
	}
	if len(o.perNodeNames) > 0 {
		logger.Info("--per-node-config-names is not used with --config-file-srcdir: a label naming no config there is refused", "names", o.perNodeNames)
	}
	pn := &perNode{dir: o.configDir, label: o.nodeLabel, defaultCfg: o.defaultConfig, fallbacks: o.fallbacks}
	if client == nil {
		c, err := pn.chooseOffline(o.configName)
		if err != nil {
			return nil, nil, err
		}
		logger.Info("Per-node config, no node read", "configName", o.configName, "config", c.name)
		o.chosen = &c
		return pn, nil, nil
	}
	if o.configName != "" {
		return nil, nil, fmt.Errorf("--config-name=%s previews a per-node config where no node is read (--print-topology, --print-labels, no --node-name): here node %s's label %s chooses", o.configName, o.nodeName, o.nodeLabel)
	}
	nl, err := watchNodeLabel(ctx, client, o.nodeName, o.nodeLabel)
	if err != nil {
		return nil, nil, err
	}
	label := nl.Label()
	c, err := pn.choose(label)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("Per-node config", "label", o.nodeLabel, "value", label, "config", c.name)
	o.chosen = &c
	return pn, nl, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (o *options) client() (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if o.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

// handoffInformerWait bounds how long GetPreferredAllocation waits for the
// pod informer to deliver the pod the kubelet is admitting. It costs nothing
// when the informer is not behind.
const handoffInformerWait = 3 * time.Second

// Bounds of the wait for the pod informer's first list: it is logged every
// informerSyncLogEvery and reported as an error after informerSyncWarnAfter,
// while the kubelet is served all along (the handoff then answers without
// the scheduler's choices). Variables for the tests.
var (
	informerSyncLogEvery  = 10 * time.Second
	informerSyncWarnAfter = 2 * time.Minute
)

// podObserver is what the pod informer feeds: the handoff.
type podObserver interface {
	Observe(*corev1.Pod)
	Forget(types.UID)
	Synced()
}

// startPodInformer watches the pods of this node only (field selector), as
// the RBAC in manifests/device-plugin allows, and feeds each add, update and
// delete to obs in delivery order, and to ends (pods that finished or were
// deleted). It does not wait for the first list: a goroutine logs the wait
// (the apiserver may be unreachable) and calls obs.Synced once the list is
// in.
func startPodInformer(ctx context.Context, client kubernetes.Interface, node string, obs podObserver, ends *deviceplugin.PodEnds) (deviceplugin.PodLister, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := f.Core().V1().Pods()
	lister := inf.Lister()
	handle := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			obs.Observe(p)
			ends.Observe(p)
		}
	}
	reg, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				obs.Forget(p.UID)
				ends.Deleted()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("pod informer handler: %w", err)
	}
	f.Start(ctx.Done())
	go waitForPodInformer(ctx, reg.HasSynced, obs.Synced, informerSyncLogEvery, informerSyncWarnAfter)
	return lister, nil
}

// waitForPodInformer polls synced until it is true (then calls done) or ctx
// ends, logging the wait every logEvery and as an error after warnAfter.
func waitForPodInformer(ctx context.Context, synced func() bool, done func(), logEvery, warnAfter time.Duration) {
	logger := klog.FromContext(ctx)
	start := time.Now()
	lastLog := start
	warned := false
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		if synced() {
			return true, nil
		}
		waited := time.Since(start)
		switch {
		case waited >= warnAfter && !warned:
			warned = true
			logger.Error(nil, "The pod informer has not synced: is the apiserver reachable? Serving the kubelet without the scheduler's device choices meanwhile", "waited", waited.Round(time.Second))
		case time.Since(lastLog) >= logEvery:
			lastLog = time.Now()
			logger.Info("Waiting for the pod informer to sync", "waited", waited.Round(time.Second))
		}
		return false, nil
	})
	if err != nil {
		return
	}
	logger.Info("Pod informer synced", "waited", time.Since(start).Round(time.Millisecond))
	done()
}

// metricsHostname is the Hostname label of the per-GPU series: the node's
// name (dcgm-exporter's on Kubernetes), else the host's name.
func metricsHostname(node string) string {
	if node != "" {
		return node
	}
	h, _ := os.Hostname()
	return h
}

func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) {
	logger := klog.FromContext(ctx)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.Info("Serving metrics", "address", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error(err, "Metrics server failed")
	}
}

// printResources lists the resources the node advertises, as the kubelet
// would see them: name and device count.
func printResources(w io.Writer, plugins []*deviceplugin.Plugin) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "\nRESOURCE\tDEVICES")
	for _, p := range plugins {
		_, _ = fmt.Fprintf(tw, "%s\t%d\n", p.Name(), len(p.Devices()))
	}
	return tw.Flush()
}
