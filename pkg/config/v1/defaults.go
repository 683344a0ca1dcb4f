package v1

import (
	"slices"
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
	defaultDriverRoot         = "/"
	defaultRecoveryChecks     = 3
	defaultRecoveryInterval   = 10 * time.Second
	defaultInUseInterval      = 30 * time.Second
	defaultDeviceListStrategy = DeviceListStrategyEnvvar
	defaultDeviceIDStrategy   = DeviceIDStrategyUUID
	defaultDiscoveryStrategy  = DeviceDiscoveryAuto
)

// SetDefaults fills every unset field with its default (NVIDIA's defaults
// for NVIDIA's fields).
func SetDefaults(c *Config) {
	if c.Version == "" {
		c.Version = Version
	}
	f := &c.Flags
	setDefault(&f.MigStrategy, defaultMIGStrategy)
	setDefault(&f.FailOnInitError, true)
	setDefault(&f.NvidiaDriverRoot, defaultDriverRoot)
	setDefault(&f.GDRCopyEnabled, false)
	setDefault(&f.GDSEnabled, false)
	setDefault(&f.MOFEDEnabled, false)
	setDefault(&f.DeviceDiscoveryStrategy, defaultDiscoveryStrategy)
	if f.Plugin == nil {
		f.Plugin = &PluginFlags{}
	}
	pf := f.Plugin
	setDefault(&pf.PassDeviceSpecs, false)
	if pf.DeviceListStrategy == nil { // an empty list given is refused (Validate)
		pf.DeviceListStrategy = &StringList{defaultDeviceListStrategy}
	}
	setDefault(&pf.DeviceIDStrategy, defaultDeviceIDStrategy)
	setDefault(&pf.CDIAnnotationPrefix, DefaultCDIAnnotationPrefix)
	setDefault(&pf.NvidiaCTKPath, DefaultNvidiaCTKPath)
	for _, ts := range []*TimeSlicing{&c.Sharing.TimeSlicing, c.Sharing.MPS} {
		if ts != nil && ts.ReplicaPolicy == "" {
			ts.ReplicaPolicy = ReplicaPolicyPacked
		}
	}
	h := &c.Health
	if h.SkippedXIDs == nil {
		if len(h.IgnoredXIDs) > 0 {
			h.SkippedXIDs = append([]uint64(nil), h.IgnoredXIDs...)
		} else {
			// An XID the file lists as critical is not skipped by default.
			h.SkippedXIDs = slices.DeleteFunc(slices.Clone(DefaultSkippedXIDs), func(x uint64) bool {
				return h.CriticalXIDs != nil && slices.Contains(h.CriticalXIDs.XIDs, x)
			})
		}
	}
	r := &h.Recovery
	setDefault(&r.Enabled, true)
	setDefault(&r.Checks, defaultRecoveryChecks) // an explicit 0 is kept, and refused by Validate
	if r.Interval == nil {
		r.Interval = &metav1.Duration{Duration: defaultRecoveryInterval}
	}
	p := &c.Publish
	setDefault(&p.Topology, true)
	setDefault(&p.Labels, true)
	setDefault(&p.InUse, true)
	if p.InUseInterval == nil {
		p.InUseInterval = &metav1.Duration{Duration: defaultInUseInterval}
	}
}

func setDefault[T any](p **T, v T) {
	if *p == nil {
		*p = ptr.To(v)
	}
}

// DevRoot is the device nodes' root on the host: nvidiaDevRoot, else the
// driver root (NVIDIA's rule). It is derived, not defaulted, so that a
// driver root given later by flag or variable moves it too.
func (f *Flags) DevRoot() string {
	if f.NvidiaDevRoot != nil && *f.NvidiaDevRoot != "" {
		return *f.NvidiaDevRoot
	}
	if f.NvidiaDriverRoot != nil {
		return *f.NvidiaDriverRoot
	}
	return defaultDriverRoot
}
