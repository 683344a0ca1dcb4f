package gfd

import (
	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

// Sharing strategies, GFD's values of nvidia.com/gpu.sharing-strategy
// (configv1's names).
const (
	SharingNone        = configv1.SharingStrategyNone
	SharingTimeSlicing = configv1.SharingStrategyTimeSlicing
	SharingMPS         = configv1.SharingStrategyMPS
)

// Sharing is the config's sharing section as GFD reads it: the strategy in
// force and, per resource name, how it is replicated.
type Sharing struct {
	// Strategy is SharingNone, SharingTimeSlicing or SharingMPS.
	Strategy string
	// Resources maps a resource name ("nvidia.com/gpu",
	// "nvidia.com/mig-1g.5gb") to its replication.
	Resources map[string]Replication
}

// Replication is one replicated resource of the config.
type Replication struct {
	Replicas int
	// Renamed is true when the replicas are advertised under another name
	// (renameByDefault, or gpupack's gpupackRename): the product label then
	// gets no -SHARED suffix. NVIDIA's `rename` is not a rename: GFD, like
	// NVIDIA's plugin, clears it (DisableResourceNamingInConfig).
	Renamed bool
}

// SharingOf reads the config's sharing section as the device plugin serves
// it (configv1's Sharing.Strategy and Sharing.Replicated, NVIDIA's rules):
// MPS when a sharing.mps section is set and lists resources, time-slicing
// when sharing.timeSlicing lists resources and there is no sharing.mps,
// else none; the first entry of a resource name wins.
func SharingOf(c *configv1.Config) Sharing {
	s := Sharing{Strategy: SharingNone}
	if c == nil {
		return s
	}
	ts, _ := c.Sharing.Replicated()
	switch c.Sharing.Strategy() {
	case configv1.SharingStrategyMPS:
		s.Strategy = SharingMPS
	case configv1.SharingStrategyTimeSlicing:
		s.Strategy = SharingTimeSlicing
	default:
		return s
	}
	s.Resources = map[string]Replication{}
	for i := range ts.Resources {
		r := &ts.Resources[i]
		if _, dup := s.Resources[r.Name]; dup {
			continue
		}
		s.Resources[r.Name] = Replication{Replicas: r.Replicas, Renamed: ts.Target(r) != r.Name}
	}
	return s
}
