package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/utils/ptr"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

// setting is one of NVIDIA's device-plugin options: its flag names (NVIDIA's
// first, then aliases: NVIDIA's own and gpupack's), its environment
// variables, and the config field it sets. Precedence, as in NVIDIA's
// plugin: a flag given on the command line, else the first variable set in
// the environment, else the file, else the default.
type setting struct {
	names []string
	envs  []string
	bool  bool
	// list: NVIDIA's slice flags (urfave/cli), whose values add up when
	// the flag is repeated and split on commas.
	list  bool
	usage string
	// apply sets the config field from the value (a bad value is an error).
	apply func(c *configv1.Config, v string) error
}

// settings are NVIDIA's device-plugin flags and variables (its
// `nvidia-device-plugin --help`), and gpupack's replica policy.
var settings = []setting{
	{names: []string{"mig-strategy"}, envs: []string{"MIG_STRATEGY"},
		usage: "MIG strategy: none, single or mixed",
		apply: func(c *configv1.Config, v string) error { c.Flags.MigStrategy = &v; return nil }},
	{names: []string{"fail-on-init-error"}, envs: []string{"FAIL_ON_INIT_ERROR"}, bool: true,
		usage: "exit with an error when NVML cannot be initialised (else wait idle) (default true)",
		apply: boolField(func(c *configv1.Config) **bool { return &c.Flags.FailOnInitError })},
	{names: []string{"restart-on-device-unhealthy"}, envs: []string{"RESTART_ON_DEVICE_UNHEALTHY"}, bool: true,
		usage: "restart the plugin in process (discover the node again) when a device goes unhealthy, where NVIDIA's liveness probe restarts its container",
		apply: boolField(func(c *configv1.Config) **bool { return &c.Flags.RestartOnDeviceUnhealthy })},
	{names: []string{"driver-root", "nvidia-driver-root"}, envs: []string{"NVIDIA_DRIVER_ROOT"},
		usage: "root of the NVIDIA driver installation on the host ('/' or '/run/nvidia/driver') (default \"/\")",
		apply: func(c *configv1.Config, v string) error { c.Flags.NvidiaDriverRoot = &v; return nil }},
	{names: []string{"dev-root", "nvidia-dev-root"}, envs: []string{"NVIDIA_DEV_ROOT"},
		usage: "root of the NVIDIA device nodes on the host (default: the driver root)",
		apply: func(c *configv1.Config, v string) error { c.Flags.NvidiaDevRoot = &v; return nil }},
	{names: []string{"mps-root"}, envs: []string{"MPS_ROOT"},
		usage: "root of the MPS control daemons' pipe and log directories and shm, on the host and in this container (default \"/run/nvidia/mps\")",
		apply: func(c *configv1.Config, v string) error { c.Flags.MpsRoot = &v; return nil }},
	{names: []string{"pass-device-specs"}, envs: []string{"PASS_DEVICE_SPECS"}, bool: true,
		usage: "pass the /dev/nvidia* device specs in Allocate",
		apply: pluginBool(func(p *configv1.PluginFlags) **bool { return &p.PassDeviceSpecs })},
	{names: []string{"device-list-strategy"}, envs: []string{"DEVICE_LIST_STRATEGY"}, list: true,
		usage: "how the device list reaches the runtime, comma-separated: envvar, volume-mounts, cdi-annotations, cdi-cri (default \"envvar\")",
		apply: func(c *configv1.Config, v string) error {
			// An empty value (a chart that renders DEVICE_LIST_STRATEGY="")
			// is no choice: the config file's or the default stays.
			if l := configv1.StringList(configv1.SplitList(v)); len(l) > 0 {
				c.Flags.Plugin.DeviceListStrategy = &l
			}
			return nil
		}},
	{names: []string{"device-id-strategy"}, envs: []string{"DEVICE_ID_STRATEGY"},
		usage: "how devices are named in the device list: uuid or index (default \"uuid\")",
		apply: pluginString(func(p *configv1.PluginFlags) **string { return &p.DeviceIDStrategy })},
	{names: []string{"gdrcopy-enabled"}, envs: []string{"GDRCOPY_ENABLED"}, bool: true,
		usage: "start containers with NVIDIA_GDRCOPY=enabled",
		apply: boolField(func(c *configv1.Config) **bool { return &c.Flags.GDRCopyEnabled })},
	{names: []string{"gds-enabled"}, envs: []string{"GDS_ENABLED"}, bool: true,
		usage: "start containers with NVIDIA_GDS=enabled",
		apply: boolField(func(c *configv1.Config) **bool { return &c.Flags.GDSEnabled })},
	{names: []string{"mofed-enabled"}, envs: []string{"MOFED_ENABLED"}, bool: true,
		usage: "start containers with NVIDIA_MOFED=enabled",
		apply: boolField(func(c *configv1.Config) **bool { return &c.Flags.MOFEDEnabled })},
	{names: []string{"cdi-annotation-prefix"}, envs: []string{"CDI_ANNOTATION_PREFIX"},
		usage: "prefix of the CDI annotation keys (default \"cdi.k8s.io/\")",
		apply: pluginString(func(p *configv1.PluginFlags) **string { return &p.CDIAnnotationPrefix })},
	{names: []string{"nvidia-cdi-hook-path", "nvidia-ctk-path"}, envs: []string{"NVIDIA_CDI_HOOK_PATH", "NVIDIA_CTK_PATH"},
		usage: "NVIDIA's CDI hook binary (nvidia-cdi-hook, or nvidia-ctk) the CDI spec's hooks run (default /usr/bin/nvidia-cdi-hook)",
		apply: pluginString(func(p *configv1.PluginFlags) **string { return &p.NvidiaCDIHookPath })},
	{names: []string{"container-driver-root", "driver-root-ctr-path"}, envs: []string{"DRIVER_ROOT_CTR_PATH", "CONTAINER_DRIVER_ROOT"},
		usage: "where the host's driver root is mounted in this container (default: the driver root itself)",
		apply: pluginString(func(p *configv1.PluginFlags) **string { return &p.ContainerDriverRoot })},
	{names: []string{"device-discovery-strategy"}, envs: []string{"DEVICE_DISCOVERY_STRATEGY"},
		usage: "auto or nvml (tegra and wsl are not supported) (default \"auto\")",
		apply: func(c *configv1.Config, v string) error { c.Flags.DeviceDiscoveryStrategy = &v; return nil }},
	{names: []string{"resource-name-prefix"}, envs: []string{"RESOURCE_NAME_PREFIX"},
		usage: "NVIDIA's vendor prefix of the resource names; nvidia.com only (another is refused) (default \"nvidia.com\")",
		apply: func(c *configv1.Config, v string) error { c.Flags.ResourceNamePrefix = &v; return nil }},
	{names: []string{"kubelet-socket"}, envs: []string{"KUBELET_SOCKET"},
		usage: "the kubelet's registration socket; its directory is the device-plugin directory (default \"/var/lib/kubelet/device-plugins/kubelet.sock\")",
		apply: pluginString(func(p *configv1.PluginFlags) **string { return &p.KubeletSocket })},
	{names: []string{"cdi-feature-flags"}, envs: []string{"CDI_FEATURE_FLAGS"}, list: true,
		usage: "NVIDIA's CDI feature flags; ignored with a warning",
		apply: func(c *configv1.Config, v string) error {
			l := configv1.StringList(configv1.SplitList(v))
			c.Flags.Plugin.CDIFeatureFlags = &l
			return nil
		}},
	{names: []string{"shared-devices-allocation-policy"}, envs: []string{"SHARED_DEVICES_ALLOCATION_POLICY"},
		usage: "NVIDIA's distributed or packed; ignored with a warning (see --replica-policy)",
		apply: pluginString(func(p *configv1.PluginFlags) **string { return &p.SharedDevicesAllocationPolicy })},
	{names: []string{"imex-channel-ids"}, envs: []string{"IMEX_CHANNEL_IDS"}, list: true,
		usage: "NVIDIA's IMEX channel IDs ([] or 0), given to every container that gets a device",
		apply: func(c *configv1.Config, v string) error {
			c.Imex.ChannelIDs = nil
			for _, f := range configv1.SplitList(v) {
				n, err := strconv.Atoi(f)
				if err != nil {
					return fmt.Errorf("%q is not a channel ID", f)
				}
				c.Imex.ChannelIDs = append(c.Imex.ChannelIDs, n)
			}
			return nil
		}},
	{names: []string{"imex-required"}, envs: []string{"IMEX_REQUIRED"}, bool: true,
		usage: "NVIDIA's: a missing IMEX channel stops the plugin",
		apply: func(c *configv1.Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.Imex.Required = b
			return err
		}},
	{names: []string{"replica-policy"}, envs: []string{"GPUPACK_REPLICA_POLICY"},
		usage: "gpupack's: time-shared replicas of one request packed on one GPU or spread over GPUs (default \"packed\")",
		apply: func(c *configv1.Config, v string) error { c.Sharing.TimeSlicing.ReplicaPolicy = v; return nil }},
}

func boolField(field func(*configv1.Config) **bool) func(*configv1.Config, string) error {
	return func(c *configv1.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", v)
		}
		*field(c) = ptr.To(b)
		return nil
	}
}

func pluginBool(field func(*configv1.PluginFlags) **bool) func(*configv1.Config, string) error {
	return boolField(func(c *configv1.Config) **bool { return field(c.Flags.Plugin) })
}

func pluginString(field func(*configv1.PluginFlags) **string) func(*configv1.Config, string) error {
	return func(c *configv1.Config, v string) error {
		*field(c.Flags.Plugin) = ptr.To(v)
		return nil
	}
}

// addSettings registers every name of every setting on fs. Defaults live
// in pkg/config/v1 (an unset flag leaves the file's value).
func addSettings(fs *pflag.FlagSet) {
	for _, s := range settings {
		for i, n := range s.names {
			usage := s.usage + " [$" + strings.Join(s.envs, ", $") + "]"
			if i > 0 {
				usage = "alias of --" + s.names[0]
			}
			switch {
			case s.bool:
				fs.String(n, "", usage)
				fs.Lookup(n).NoOptDefVal = "true"
			case s.list:
				fs.StringSlice(n, nil, usage)
			default:
				fs.String(n, "", usage)
			}
		}
	}
}

// value returns a setting's value and where it came from: a flag given on
// the command line, else the first of its variables set and not blank (a
// boolean's set blank is false, as in NVIDIA's plugin). Two
// of its names given different values (--config-file=a --config=b) are an
// error: which one was meant cannot be told.
func (s *setting) value(fs *pflag.FlagSet, getenv func(string) (v string, set bool)) (v, source string, ok bool, err error) {
	for _, n := range s.names {
		f := fs.Lookup(n)
		if f == nil || !f.Changed {
			continue
		}
		fv := flagValue(f)
		if ok && fv != v {
			return "", "", false, fmt.Errorf("%s=%s and --%s=%s: one option given two values", source, v, n, fv)
		}
		v, source, ok = fv, "--"+n, true
	}
	if ok {
		return v, source, true, nil
	}
	for _, e := range s.envs {
		v, set := getenv(e)
		if !set {
			continue
		}
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), e, true, nil
		}
		// NVIDIA's plugin (urfave/cli) takes a boolean variable set empty
		// as false, over the file and the default; a blank string
		// variable is no choice here (NVIDIA's plugin refuses most).
		if s.bool {
			return "false", e, true, nil
		}
	}
	return "", "", false, nil
}

// flagValue is a flag's value as a setting reads it: a slice flag's
// values (every occurrence's, each split on commas) joined by commas.
func flagValue(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

// applySettings sets on c every setting given by flag or environment and
// returns them as "<source>=<value>", for error messages.
func applySettings(c *configv1.Config, fs *pflag.FlagSet, getenv func(string) (string, bool)) ([]string, error) {
	if c.Flags.Plugin == nil {
		c.Flags.Plugin = &configv1.PluginFlags{}
	}
	var applied []string
	for i := range settings {
		s := &settings[i]
		v, source, ok, err := s.value(fs, getenv)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := s.apply(c, v); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", source, v, err)
		}
		applied = append(applied, source+"="+v)
	}
	return applied, nil
}

// configFile is the config file path: --config-file (or its alias
// --config), else $CONFIG_FILE.
func configFile(fs *pflag.FlagSet, getenv func(string) (string, bool)) (string, error) {
	v, _, err := configFileSource(fs, getenv)
	return v, err
}

// configFileSource is configFile and what gave it: the flag (--config-file,
// --config) or the variable (CONFIG_FILE).
func configFileSource(fs *pflag.FlagSet, getenv func(string) (string, bool)) (path, source string, err error) {
	s := setting{names: []string{"config-file", "config"}, envs: []string{"CONFIG_FILE"}}
	v, source, _, err := s.value(fs, getenv)
	return v, source, err
}

// pluginDirFromSocket returns the device-plugin directory of a kubelet
// socket path (NVIDIA's --kubelet-socket): gpupack registers through
// kubelet.sock in that directory.
func pluginDirFromSocket(socket string) (string, error) {
	if filepath.Base(socket) != KubeletSocketBase {
		return "", fmt.Errorf("flags.plugin.kubeletSocket %q: want a path ending in /%s (the kubelet's registration socket)", socket, KubeletSocketBase)
	}
	return filepath.Dir(socket), nil
}

// KubeletSocketBase is the kubelet's registration socket's name.
const KubeletSocketBase = "kubelet.sock"

// lookupEnv is os.LookupEnv; tests pass their own.
var lookupEnv = os.LookupEnv
