// Package v1 holds the device plugin's config file, `version: v1`: every
// field of NVIDIA k8s-device-plugin's v1 config (written from NVIDIA's
// published config reference) with NVIDIA's names and meaning, plus
// gpupack's own fields under names NVIDIA does not use. pkg/sharing turns a
// loaded Config into resources; this package only says what a file means.
//
// The rule for NVIDIA's fields: the same file advertises the same resources
// under gpupack as under NVIDIA's plugin. A field gpupack implements behaves
// as NVIDIA's; one it does not implement gives one warning naming its path,
// unless ignoring it would change the advertised devices (then Load fails
// and names it). Unknown keys inside NVIDIA's sections warn (NVIDIA's
// decoder ignores them); unknown keys in gpupack's own sections and at the
// top level are errors.
package v1

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Version is the only config file version understood; an empty file or a
// file without `version` means v1, as in NVIDIA's plugin.
const Version = "v1"

// MIG strategies, as in NVIDIA's device plugin.
const (
	MIGStrategyNone   = "none"
	MIGStrategySingle = "single"
	MIGStrategyMixed  = "mixed"
)

// Device list strategies: how Allocate tells the container runtime which
// devices a container gets (NVIDIA's names and meaning).
const (
	DeviceListStrategyEnvvar         = "envvar"
	DeviceListStrategyVolumeMounts   = "volume-mounts"
	DeviceListStrategyCDIAnnotations = "cdi-annotations"
	DeviceListStrategyCDICRI         = "cdi-cri"
)

// Device ID strategies: what names a device in the device list.
const (
	DeviceIDStrategyUUID  = "uuid"
	DeviceIDStrategyIndex = "index"
)

// Device discovery strategies (NVIDIA's flags.deviceDiscoveryStrategy).
const (
	DeviceDiscoveryAuto  = "auto"
	DeviceDiscoveryNVML  = "nvml"
	DeviceDiscoveryTegra = "tegra"
	DeviceDiscoveryWSL   = "wsl"
)

// Replica policies: how a pod asking r replicas of time-shared GPUs is placed.
const (
	// ReplicaPolicyPacked puts all r replicas on one GPU (a share r/R of it).
	ReplicaPolicyPacked = "packed"
	// ReplicaPolicySpread puts the r replicas on r distinct GPUs.
	ReplicaPolicySpread = "spread"
)

// Resource names, as NVIDIA's plugin advertises them.
const (
	// DefaultResourceNamePrefix is NVIDIA's flags.resourceNamePrefix
	// default, the only one gpupack serves.
	DefaultResourceNamePrefix = "nvidia.com"
	// ResourcePrefix is the vendor prefix of every resource we advertise.
	ResourcePrefix = DefaultResourceNamePrefix + "/"
	// ResourceGPU is the whole-GPU resource (and MIG devices under the single strategy).
	ResourceGPU = ResourcePrefix + "gpu"
	// SharedSuffix is appended to a time-shared resource when renameByDefault.
	SharedSuffix = ".shared"
	// MIGResourcePrefix starts the mixed-strategy MIG resources.
	MIGResourcePrefix = ResourcePrefix + "mig-"
)

// MIGResourceName is the mixed strategy's resource of a MIG profile, as
// NVIDIA's plugin names it: MIGResourcePrefix and the profile with '+'
// written '.' ("1g.10gb+me" -> nvidia.com/mig-1g.10gb.me), since '+' is
// not allowed in an extended resource name.
func MIGResourceName(profile string) string {
	return MIGResourcePrefix + strings.ReplaceAll(profile, "+", ".")
}

// Defaults of NVIDIA's CDI flags.
const (
	DefaultCDIAnnotationPrefix = "cdi.k8s.io/"
	DefaultNvidiaCTKPath       = "/usr/bin/nvidia-ctk"
	DefaultContainerDriverRoot = "/driver-root"
)

// Config is the device plugin's config file.
type Config struct {
	Version string `json:"version"`
	// Flags is NVIDIA's `flags` section.
	Flags Flags `json:"flags"`
	// Resources is NVIDIA's `resources` (resource renaming by pattern),
	// which NVIDIA's plugin ignores with a log line; so does gpupack.
	Resources Resources `json:"resources"`
	// Sharing is NVIDIA's `sharing` section plus gpupack's fields in it.
	Sharing Sharing `json:"sharing"`
	// Imex is NVIDIA's `imex` section (IMEX channels for fabric-attached GPUs).
	Imex Imex `json:"imex"`
	// Health is gpupack's health configuration; NVIDIA's newer `health`
	// fields (eventTypes, ignoredXIDs, criticalXIDs) decode into it too.
	Health Health `json:"health"`
	// Publish is what gpupack writes on its Node object (gpupack's own).
	Publish Publish `json:"publish"`
}

// Flags is NVIDIA's `flags` section (its command-line flags in the file).
type Flags struct {
	MigStrategy              *string `json:"migStrategy,omitempty"`
	FailOnInitError          *bool   `json:"failOnInitError,omitempty"`
	RestartOnDeviceUnhealthy *bool   `json:"restartOnDeviceUnhealthy,omitempty"`
	MpsRoot                  *string `json:"mpsRoot,omitempty"`
	NvidiaDriverRoot         *string `json:"nvidiaDriverRoot,omitempty"`
	NvidiaDevRoot            *string `json:"nvidiaDevRoot,omitempty"`
	GDRCopyEnabled           *bool   `json:"gdrcopyEnabled,omitempty"`
	GDSEnabled               *bool   `json:"gdsEnabled,omitempty"`
	MOFEDEnabled             *bool   `json:"mofedEnabled,omitempty"`
	UseNodeFeatureAPI        *bool   `json:"useNodeFeatureAPI,omitempty"`
	DeviceDiscoveryStrategy  *string `json:"deviceDiscoveryStrategy,omitempty"`
	// ResourceNamePrefix is NVIDIA's (--resource-name-prefix): the vendor
	// part of every resource name. gpupack advertises under nvidia.com
	// only; another prefix is refused (see Unimplemented).
	ResourceNamePrefix *string      `json:"resourceNamePrefix,omitempty"`
	Plugin             *PluginFlags `json:"plugin,omitempty"`
	GFD                *GFDFlags    `json:"gfd,omitempty"`
}

// PluginFlags is NVIDIA's `flags.plugin` section.
type PluginFlags struct {
	PassDeviceSpecs *bool `json:"passDeviceSpecs,omitempty"`
	// DeviceListStrategy is one strategy or a list of them.
	DeviceListStrategy  *StringList `json:"deviceListStrategy,omitempty"`
	DeviceIDStrategy    *string     `json:"deviceIDStrategy,omitempty"`
	CDIAnnotationPrefix *string     `json:"cdiAnnotationPrefix,omitempty"`
	NvidiaCTKPath       *string     `json:"nvidiaCTKPath,omitempty"`
	NvidiaCDIHookPath   *string     `json:"nvidiaCDIHookPath,omitempty"`
	ContainerDriverRoot *string     `json:"containerDriverRoot,omitempty"`
	KubeletSocket       *string     `json:"kubeletSocket,omitempty"`
	CDIFeatureFlags     *StringList `json:"cdiFeatureFlags,omitempty"`
	// SharedDevicesAllocationPolicy is NVIDIA's preferred-allocation policy
	// for shared devices: distributed or packed.
	SharedDevicesAllocationPolicy *string `json:"sharedDevicesAllocationPolicy,omitempty"`
}

// GFDFlags is NVIDIA's `flags.gfd` section (GPU Feature Discovery's flags).
type GFDFlags struct {
	Oneshot         *bool     `json:"oneshot,omitempty"`
	NoTimestamp     *bool     `json:"noTimestamp,omitempty"`
	SleepInterval   *Duration `json:"sleepInterval,omitempty"`
	OutputFile      *string   `json:"outputFile,omitempty"`
	MachineTypeFile *string   `json:"machineTypeFile,omitempty"`
}

// Resources is NVIDIA's `resources`: resource names chosen by product
// pattern.
type Resources struct {
	GPUs []NamedPattern `json:"gpus,omitempty"`
	MIGs []NamedPattern `json:"mig,omitempty"`
}

// NamedPattern maps a product-name pattern to a resource name.
type NamedPattern struct {
	Pattern string `json:"pattern"`
	Name    string `json:"name"`
}

// Sharing is NVIDIA's `sharing` section.
type Sharing struct {
	TimeSlicing TimeSlicing `json:"timeSlicing"`
	// MPS is NVIDIA's MPS sharing: replicas of whole GPUs, each a client
	// of the GPU's MPS control daemon with 1/replicas of its threads and
	// memory. When set it is the section in force and TimeSlicing is
	// ignored, as in NVIDIA's plugin (see Sharing.Replicated).
	MPS *TimeSlicing `json:"mps,omitempty"`
}

// TimeSlicing is NVIDIA's `sharing.timeSlicing` (and `sharing.mps`), plus
// gpupack's ReplicaPolicy.
type TimeSlicing struct {
	// Strategy is the field of NVIDIA's early v1 schema; only "" was valid.
	Strategy                   string               `json:"strategy,omitempty"`
	RenameByDefault            bool                 `json:"renameByDefault,omitempty"`
	FailRequestsGreaterThanOne bool                 `json:"failRequestsGreaterThanOne,omitempty"`
	Resources                  []ReplicatedResource `json:"resources,omitempty"`
	// ReplicaPolicy is gpupack's: packed (default) or spread.
	ReplicaPolicy string `json:"replicaPolicy,omitempty" gpupack:"own"`
}

// ReplicatedResource says which devices of a resource are time-shared and
// how many replicas each gets.
//
// NVIDIA's plugin ignores `rename` and `devices` (with a warning): every
// device of the resource is shared and the replicas are advertised under
// name, or name.shared when renameByDefault. gpupack does the same with
// those two fields; its per-device sharing lives in GPUPackDevices and
// GPUPackRename.
type ReplicatedResource struct {
	Name     string             `json:"name"`
	Rename   string             `json:"rename,omitempty"`
	Devices  *ReplicatedDevices `json:"devices,omitempty"`
	Replicas int                `json:"replicas"`
	// GPUPackDevices selects the devices to share (gpupack's own): all
	// (default), a count (the first N) or a list of GPU indexes, MIG
	// indexes "<gpu>:<mig>" and GPU/MIG UUIDs.
	GPUPackDevices *ReplicatedDevices `json:"gpupackDevices,omitempty" gpupack:"own"`
	// GPUPackRename is the name the replicas are advertised under
	// (gpupack's own); it wins over renameByDefault.
	GPUPackRename string `json:"gpupackRename,omitempty" gpupack:"own"`
}

// Target is the name r's replicas are advertised under: its gpupackRename,
// else name.shared when renameByDefault, else its name. NVIDIA's `rename`
// is ignored, as NVIDIA's plugin ignores it.
func (ts *TimeSlicing) Target(r *ReplicatedResource) string {
	switch {
	case r.GPUPackRename != "":
		return r.GPUPackRename
	case ts.RenameByDefault:
		return r.Name + SharedSuffix
	default:
		return r.Name
	}
}

// Selection is the device selection in force for r: gpupackDevices, or all.
func (r *ReplicatedResource) Selection() ReplicatedDevices {
	if r.GPUPackDevices != nil {
		return *r.GPUPackDevices
	}
	return ReplicatedDevices{All: true}
}

// ReplicatedDevices is `all`, a count (the first N devices) or a list of
// device references: GPU indexes, MIG indexes "<gpu>:<mig>", GPU and MIG
// UUIDs.
type ReplicatedDevices struct {
	All   bool
	Count int
	List  []DeviceRef
}

// DeviceRef names one device in a `devices` list.
type DeviceRef string

// GPUIndex returns the GPU index r names, if it is one.
func (r DeviceRef) GPUIndex() (int, bool) {
	n, err := strconv.ParseUint(string(r), 10, 31)
	return int(n), err == nil
}

// MIGIndex returns the GPU and MIG indexes of a "<gpu>:<mig>" reference.
func (r DeviceRef) MIGIndex() (gpu, mig int, ok bool) {
	g, m, found := strings.Cut(string(r), ":")
	if !found {
		return 0, 0, false
	}
	gi, err1 := strconv.ParseUint(g, 10, 31)
	mi, err2 := strconv.ParseUint(m, 10, 31)
	return int(gi), int(mi), err1 == nil && err2 == nil
}

// IsUUID reports whether r is a GPU or MIG UUID (by prefix; Validate checks the form).
func (r DeviceRef) IsUUID() bool {
	return strings.HasPrefix(string(r), "GPU-") || strings.HasPrefix(string(r), "MIG-")
}

// UnmarshalJSON accepts "all", a positive count, and a list of unsigned
// integers and strings.
func (d *ReplicatedDevices) UnmarshalJSON(b []byte) error {
	*d = ReplicatedDevices{}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "all" {
			return fmt.Errorf("is neither \"all\" nor a count nor a list%s", listHint(s))
		}
		d.All = true
		return nil
	}
	var count int
	if err := json.Unmarshal(b, &count); err == nil {
		if count <= 0 {
			return errors.New("a count of devices must be positive")
		}
		d.Count = count
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want \"all\", a count, or a list of GPU indexes, MIG indexes and UUIDs")
	}
	d.List = make([]DeviceRef, 0, len(list))
	for i, raw := range list {
		var idx uint
		if err := json.Unmarshal(raw, &idx); err == nil {
			d.List = append(d.List, DeviceRef(strconv.FormatUint(uint64(idx), 10)))
			continue
		}
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return fmt.Errorf("[%d]: want a GPU index, a MIG index or a UUID, got %s", i, raw)
		}
		d.List = append(d.List, DeviceRef(id))
	}
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (d ReplicatedDevices) MarshalJSON() ([]byte, error) {
	switch {
	case d.Count > 0:
		return json.Marshal(d.Count)
	case d.All || len(d.List) == 0:
		return json.Marshal("all")
	default:
		return json.Marshal(d.List)
	}
}

// Imex is NVIDIA's `imex` section.
type Imex struct {
	ChannelIDs []int `json:"channelIDs,omitempty"`
	Required   bool  `json:"required,omitempty"`
}

// Health configures health checking.
type Health struct {
	// Disabled turns health events off (devices are always healthy); the
	// same field in NVIDIA's newer `health` section.
	Disabled bool `json:"disabled,omitempty"`
	// SkippedXIDs are application XIDs that do not make a GPU unhealthy.
	// Unset means the default list (13, 31, 43, 45, 68, 109); an empty list
	// skips none.
	SkippedXIDs []uint64 `json:"skippedXIDs"`
	// IgnoredXIDs is NVIDIA's name for SkippedXIDs: a non-empty list
	// replaces the default list.
	IgnoredXIDs []uint64 `json:"ignoredXIDs,omitempty"`
	// EventTypes are the NVML event types acted on (NVIDIA's; empty: all).
	// CriticalXIDs ("all" or a list; NVIDIA's) are the XIDs that make a GPU
	// unhealthy, skipped ones excepted (see Health.Critical).
	EventTypes   []string `json:"eventTypes,omitempty"`
	CriticalXIDs *XIDList `json:"criticalXIDs,omitempty"`
	Recovery     Recovery `json:"recovery,omitempty"`
}

// XIDList is "all" or a list of XIDs.
type XIDList struct {
	All  bool
	XIDs []uint64
}

// UnmarshalJSON accepts "all" (any case) or a list of XIDs.
func (x *XIDList) UnmarshalJSON(b []byte) error {
	*x = XIDList{}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if !strings.EqualFold(s, "all") {
			if hint := listHint(s); hint != "" {
				return errors.New("want \"all\" or a list of XIDs" + hint)
			}
			return errors.New("want \"all\" or a list of XIDs, such as [48, 79]")
		}
		x.All = true
		return nil
	}
	if err := json.Unmarshal(b, &x.XIDs); err != nil {
		return errors.New("want \"all\" or a list of XIDs, such as [48, 79]")
	}
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (x XIDList) MarshalJSON() ([]byte, error) {
	if x.All {
		return json.Marshal("all")
	}
	return json.Marshal(x.XIDs)
}

// Recovery configures how unhealthy GPUs come back.
type Recovery struct {
	// Enabled: unhealthy GPUs are probed and recover after Checks
	// consecutive passing checks. Default true.
	Enabled *bool `json:"enabled,omitempty"`
	// Checks is the number of consecutive passing checks needed, at least
	// 1. Default 3. A pointer, so that an explicit 0 is refused rather than
	// taken as unset (never recovering is enabled: false).
	Checks *int `json:"checks,omitempty"`
	// Interval between checks. Default 10s.
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// RequiredChecks is the number of consecutive passing checks a GPU needs to
// recover: Checks, or its default when unset.
func (r *Recovery) RequiredChecks() int {
	if r.Checks == nil {
		return defaultRecoveryChecks
	}
	return *r.Checks
}

// Publish configures what the plugin writes on its Node.
type Publish struct {
	// Topology writes the gpupack.io/topology annotation. Default true.
	Topology *bool `json:"topology,omitempty"`
	// Labels writes the GFD-compatible labels. Default true.
	Labels *bool `json:"labels,omitempty"`
	// InUse writes the gpupack.io/in-use annotation. Default true.
	InUse *bool `json:"inUse,omitempty"`
	// InUseInterval is the periodic refresh of the in-use annotation. Default 30s.
	InUseInterval *metav1.Duration `json:"inUseInterval,omitempty"`
}

// StringList is one string or a list of strings (NVIDIA's
// deviceListStrategy takes both).
type StringList []string

// UnmarshalJSON accepts a string or a list of strings; a string holding
// commas is split, as the command-line flag is.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = SplitList(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = list
	return nil
}

// SplitList splits a comma-separated value, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Duration is a duration written as a string ("30s") or as nanoseconds.
type Duration time.Duration

// UnmarshalJSON accepts "30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration such as \"60s\" (a number and a unit: ns, us, ms, s, m, h)")
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a duration such as \"60s\"")
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
