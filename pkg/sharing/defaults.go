package sharing

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Defaults, in one place.
var (
	// DefaultSkippedXIDs are application errors that say nothing about the
	// GPU's health (NVIDIA's device plugin skips the same ones).
	DefaultSkippedXIDs = []uint64{13, 31, 43, 45, 68, 109}
)

const (
	defaultMIGStrategy        = MIGStrategyNone
	defaultRecoveryChecks     = 3
	defaultRecoveryInterval   = 10 * time.Second
	defaultInUseInterval      = 30 * time.Second
	defaultDeviceListStrategy = "envvar"
	defaultDeviceIDStrategy   = "uuid"
)

// SetDefaults fills every unset field with its default.
func SetDefaults(c *Config) {
	if c.Version == "" {
		c.Version = Version
	}
	f := &c.Flags
	if f.MigStrategy == nil {
		f.MigStrategy = ptr.To(defaultMIGStrategy)
	}
	if f.FailOnInitError == nil {
		f.FailOnInitError = ptr.To(true)
	}
	if f.NvidiaDriverRoot == nil {
		f.NvidiaDriverRoot = ptr.To("/")
	}
	if f.Plugin == nil {
		f.Plugin = &PluginFlags{}
	}
	if f.Plugin.PassDeviceSpecs == nil {
		f.Plugin.PassDeviceSpecs = ptr.To(false)
	}
	if f.Plugin.DeviceListStrategy == nil {
		f.Plugin.DeviceListStrategy = ptr.To(defaultDeviceListStrategy)
	}
	if f.Plugin.DeviceIDStrategy == nil {
		f.Plugin.DeviceIDStrategy = ptr.To(defaultDeviceIDStrategy)
	}
	ts := &c.Sharing.TimeSlicing
	if ts.ReplicaPolicy == "" {
		ts.ReplicaPolicy = ReplicaPolicyPacked
	}
	for i := range ts.Resources {
		d := &ts.Resources[i].Devices
		if d.Count == 0 && len(d.Indexes) == 0 && len(d.UUIDs) == 0 {
			d.All = true
		}
	}
	h := &c.Health
	if h.SkippedXIDs == nil {
		h.SkippedXIDs = append([]uint64(nil), DefaultSkippedXIDs...)
	}
	r := &h.Recovery
	if r.Enabled == nil {
		r.Enabled = ptr.To(true)
	}
	if r.Checks == 0 {
		r.Checks = defaultRecoveryChecks
	}
	if r.Interval == nil {
		r.Interval = &metav1.Duration{Duration: defaultRecoveryInterval}
	}
	p := &c.Publish
	if p.Topology == nil {
		p.Topology = ptr.To(true)
	}
	if p.Labels == nil {
		p.Labels = ptr.To(true)
	}
	if p.InUse == nil {
		p.InUse = ptr.To(true)
	}
	if p.InUseInterval == nil {
		p.InUseInterval = &metav1.Duration{Duration: defaultInUseInterval}
	}
}
