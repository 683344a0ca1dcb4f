// Package sharing turns a node's GPUs into Kubernetes extended resources:
// whole GPUs, MIG devices (strategies none, single and mixed) and time-shared
// replicas, with the device IDs the kubelet sees. It also holds the device
// plugin's `version: v1` config file, a superset of NVIDIA k8s-device-plugin's
// v1 config where the two overlap.
package sharing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Version is the only config file version understood.
const Version = "v1"

// MIG strategies, as in NVIDIA's device plugin.
const (
	MIGStrategyNone   = "none"
	MIGStrategySingle = "single"
	MIGStrategyMixed  = "mixed"
)

// Replica policies: how a pod asking r replicas of time-shared GPUs is placed.
const (
	// ReplicaPolicyPacked puts all r replicas on one GPU (a share r/R of it).
	ReplicaPolicyPacked = "packed"
	// ReplicaPolicySpread puts the r replicas on r distinct GPUs.
	ReplicaPolicySpread = "spread"
)

// Config is the device plugin's config file. Fields shared with NVIDIA's v1
// config keep NVIDIA's names and meaning.
type Config struct {
	Version string  `json:"version"`
	Flags   Flags   `json:"flags,omitempty"`
	Sharing Sharing `json:"sharing,omitempty"`
	// Health is gpupack's health-check configuration.
	Health Health `json:"health,omitempty"`
	// Publish is what gpupack writes on its Node object.
	Publish Publish `json:"publish,omitempty"`
}

// Flags are NVIDIA's `flags` section (the fields gpupack understands).
type Flags struct {
	MigStrategy      *string      `json:"migStrategy,omitempty"`
	FailOnInitError  *bool        `json:"failOnInitError,omitempty"`
	NvidiaDriverRoot *string      `json:"nvidiaDriverRoot,omitempty"`
	Plugin           *PluginFlags `json:"plugin,omitempty"`
}

// PluginFlags are NVIDIA's `flags.plugin` section.
type PluginFlags struct {
	PassDeviceSpecs *bool `json:"passDeviceSpecs,omitempty"`
	// DeviceListStrategy: only "envvar" is supported.
	DeviceListStrategy *string `json:"deviceListStrategy,omitempty"`
	// DeviceIDStrategy: only "uuid" is supported.
	DeviceIDStrategy *string `json:"deviceIDStrategy,omitempty"`
}

// Sharing is NVIDIA's `sharing` section.
type Sharing struct {
	TimeSlicing TimeSlicing `json:"timeSlicing,omitempty"`
}

// TimeSlicing is NVIDIA's `sharing.timeSlicing`, plus gpupack's ReplicaPolicy.
type TimeSlicing struct {
	RenameByDefault            bool                 `json:"renameByDefault,omitempty"`
	FailRequestsGreaterThanOne bool                 `json:"failRequestsGreaterThanOne,omitempty"`
	Resources                  []ReplicatedResource `json:"resources,omitempty"`
	// ReplicaPolicy is packed (default) or spread.
	ReplicaPolicy string `json:"replicaPolicy,omitempty"`
}

// ReplicatedResource says which devices of a resource are time-shared and how
// many replicas each gets.
type ReplicatedResource struct {
	Name     string `json:"name"`
	Rename   string `json:"rename,omitempty"`
	Replicas int    `json:"replicas"`
	// Devices selects the devices: all (default), or a list of GPU indexes
	// and GPU/MIG UUIDs.
	Devices ReplicatedDevices `json:"devices,omitempty"`
}

// Target is the name r's replicas are advertised under: its rename, else
// name.shared when renameByDefault, else its name.
func (ts *TimeSlicing) Target(r *ReplicatedResource) string {
	switch {
	case r.Rename != "":
		return r.Rename
	case ts.RenameByDefault:
		return r.Name + SharedSuffix
	default:
		return r.Name
	}
}

// ReplicatedDevices is `devices: all`, a count (the first N devices, as in
// NVIDIA's config) or a list of indexes and UUIDs.
type ReplicatedDevices struct {
	All     bool
	Count   int
	Indexes []int
	UUIDs   []string
}

// UnmarshalJSON accepts "all", a count, a list of ints, and a list of strings
// (UUIDs or decimal indexes).
func (d *ReplicatedDevices) UnmarshalJSON(b []byte) error {
	*d = ReplicatedDevices{}
	var count int
	if err := json.Unmarshal(b, &count); err == nil {
		if count <= 0 {
			return fmt.Errorf("devices: a count must be positive, got %d", count)
		}
		d.Count = count
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "all" {
			return fmt.Errorf("devices: %q is neither \"all\" nor a list", s)
		}
		d.All = true
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("devices: want \"all\" or a list of GPU indexes and UUIDs: %w", err)
	}
	for i, raw := range list {
		var idx int
		if err := json.Unmarshal(raw, &idx); err == nil {
			d.Indexes = append(d.Indexes, idx)
			continue
		}
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return fmt.Errorf("devices[%d]: want a GPU index or a UUID, got %s", i, raw)
		}
		var n int
		if _, err := fmt.Sscanf(id, "%d", &n); err == nil && fmt.Sprint(n) == id {
			d.Indexes = append(d.Indexes, n)
			continue
		}
		d.UUIDs = append(d.UUIDs, id)
	}
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (d ReplicatedDevices) MarshalJSON() ([]byte, error) {
	if d.Count > 0 {
		return json.Marshal(d.Count)
	}
	if d.All || (len(d.Indexes) == 0 && len(d.UUIDs) == 0) {
		return json.Marshal("all")
	}
	list := make([]any, 0, len(d.Indexes)+len(d.UUIDs))
	for _, i := range d.Indexes {
		list = append(list, i)
	}
	for _, u := range d.UUIDs {
		list = append(list, u)
	}
	return json.Marshal(list)
}

// Health configures health checking.
type Health struct {
	// Disabled turns health events off (devices are always healthy).
	Disabled bool `json:"disabled,omitempty"`
	// SkippedXIDs are application XIDs that do not make a GPU unhealthy.
	// Unset means the default list (13, 31, 43, 45, 68, 109); an empty list
	// skips none.
	SkippedXIDs []uint64 `json:"skippedXIDs"`
	Recovery    Recovery `json:"recovery,omitempty"`
}

// Recovery configures how unhealthy GPUs come back.
type Recovery struct {
	// Enabled: unhealthy GPUs are probed and recover after Checks
	// consecutive passing checks. Default true.
	Enabled *bool `json:"enabled,omitempty"`
	// Checks is the number of consecutive passing checks needed. Default 3.
	Checks int `json:"checks,omitempty"`
	// Interval between checks. Default 10s.
	Interval *metav1.Duration `json:"interval,omitempty"`
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

// MaxConfigBytes bounds a config file: a ConfigMap, where the file usually
// comes from, holds at most 1 MiB. A larger file is refused before it is
// parsed (a 50 MB file once took a minute and gigabytes to reject).
const MaxConfigBytes = 1 << 20

// Parse decodes a config file strictly (unknown and duplicate fields are
// errors, named by their field path), applies the defaults and validates it.
// It returns every validation error at once.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("config is %d bytes, more than the %d allowed", len(data), MaxConfigBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("config is empty: want at least %q", "version: v1")
	}
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	if c.Version == "" {
		return nil, fmt.Errorf("config has no version: want %q", "version: "+Version)
	}
	SetDefaults(c)
	if errs := Validate(c); len(errs) > 0 {
		return nil, fmt.Errorf("invalid config: %w", errs.ToAggregate())
	}
	return c, nil
}

// decode turns YAML (or JSON) into a Config. Field names match as in
// NVIDIA's plugin (encoding/json: case-insensitively); unknown fields are
// reported with their path ("sharing.timeSlicing.resources[0].replica").
func decode(data []byte) (*Config, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	var c Config
	strict, err := kjson.UnmarshalStrict(j, &c)
	if err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	if len(strict) == 0 {
		return &c, nil
	}
	// kjson matches names case-sensitively: a file that only differs in
	// case still loads, as it does in NVIDIA's plugin.
	var ci Config
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if dec.Decode(&ci) == nil {
		return &ci, nil
	}
	return nil, fmt.Errorf("decoding config: %w", errors.Join(strict...))
}

// Load reads and parses the config file at path; a file over
// MaxConfigBytes is refused without reading it all.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("%s: config is larger than the %d bytes allowed", path, MaxConfigBytes)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Default returns the config used when there is no file.
func Default() *Config {
	c := &Config{Version: Version}
	SetDefaults(c)
	return c
}

// Overrides are command-line values; a non-nil field wins over the file.
type Overrides struct {
	MigStrategy     *string
	FailOnInitError *bool
	PassDeviceSpecs *bool
	ReplicaPolicy   *string
}

// Apply sets every non-nil override on c; validate again afterwards.
func (c *Config) Apply(o Overrides) {
	if o.MigStrategy != nil {
		c.Flags.MigStrategy = o.MigStrategy
	}
	if o.FailOnInitError != nil {
		c.Flags.FailOnInitError = o.FailOnInitError
	}
	if o.PassDeviceSpecs != nil {
		if c.Flags.Plugin == nil {
			c.Flags.Plugin = &PluginFlags{}
		}
		c.Flags.Plugin.PassDeviceSpecs = o.PassDeviceSpecs
	}
	if o.ReplicaPolicy != nil {
		c.Sharing.TimeSlicing.ReplicaPolicy = *o.ReplicaPolicy
	}
}
