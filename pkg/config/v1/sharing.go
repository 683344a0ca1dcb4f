package v1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Sharing strategies, as NVIDIA's plugin and GFD name them
// (nvidia.com/gpu.sharing-strategy).
const (
	SharingStrategyNone        = "none"
	SharingStrategyTimeSlicing = "time-slicing"
	SharingStrategyMPS         = "mps"
)

// DefaultMPSRoot is NVIDIA's default flags.mpsRoot: the host directory
// under which each MPS control daemon has its pipe and log directories.
const DefaultMPSRoot = "/run/nvidia/mps"

// MPS client limits per GPU (NVIDIA's mps-control-daemon refuses more
// replicas): 48 clients on compute capability 7.5 and later, 16 before.
const (
	MaxMPSClients       = 48
	MaxMPSClientsLegacy = 16
)

// Replicated is the sharing section in force and its field path. As in
// NVIDIA's plugin, a `sharing.mps` section (even without resources) is the
// one in force and `sharing.timeSlicing` is then ignored; otherwise
// `sharing.timeSlicing`.
func (s *Sharing) Replicated() (*TimeSlicing, *field.Path) {
	if s.MPS != nil {
		return s.MPS, field.NewPath("sharing", "mps")
	}
	return &s.TimeSlicing, field.NewPath("sharing", "timeSlicing")
}

// Strategy is the sharing strategy in force: mps when `sharing.mps` has
// resources, time-slicing when `sharing.timeSlicing` has (and there is no
// `sharing.mps`), else none (NVIDIA's SharingStrategy).
func (s *Sharing) Strategy() string {
	ts, _ := s.Replicated()
	switch {
	case len(ts.Resources) == 0:
		return SharingStrategyNone
	case s.MPS != nil:
		return SharingStrategyMPS
	default:
		return SharingStrategyTimeSlicing
	}
}

// FailRequestsGreaterThanOne reports whether requests of more than one
// replica are refused: always under MPS (NVIDIA's plugin forces it: one MPS
// client gets one share), else timeSlicing's setting.
func (s *Sharing) FailRequestsGreaterThanOne() bool {
	if s.Strategy() == SharingStrategyMPS {
		return true
	}
	return s.TimeSlicing.FailRequestsGreaterThanOne
}

// MPSRoot is flags.mpsRoot, else NVIDIA's default /run/nvidia/mps.
func (f *Flags) MPSRoot() string {
	if f.MpsRoot != nil && *f.MpsRoot != "" {
		return *f.MpsRoot
	}
	return DefaultMPSRoot
}

// validateMPS checks what NVIDIA's plugin refuses for MPS, beyond what
// both sharing sections share: MIG devices cannot be shared with MPS, MPS
// in force with migStrategy mixed is refused whatever the node serves (as
// NVIDIA's plugin refuses it at start), and the MPS root must be an
// absolute path.
func validateMPS(c *Config) field.ErrorList {
	var errs field.ErrorList
	if r := c.Flags.MpsRoot; r != nil && *r != "" && !strings.HasPrefix(*r, "/") {
		errs = append(errs, field.Invalid(field.NewPath("flags", "mpsRoot"), *r, "must be an absolute path"))
	}
	if c.Sharing.Strategy() == SharingStrategyMPS && c.Flags.MigStrategy != nil && *c.Flags.MigStrategy == MIGStrategyMixed {
		errs = append(errs, field.Forbidden(field.NewPath("flags", "migStrategy"),
			"migStrategy mixed is not supported with MPS (sharing.mps), as in NVIDIA's plugin: use none or single, or time-slicing"))
	}
	m := c.Sharing.MPS
	if m == nil {
		return errs
	}
	p := field.NewPath("sharing", "mps")
	for i := range m.Resources {
		r := &m.Resources[i]
		if r.Replicas > MaxMPSClients {
			errs = append(errs, field.Invalid(p.Child("resources").Index(i).Child("replicas"), r.Replicas,
				fmt.Sprintf("an MPS server takes at most %d clients per GPU (%d before compute capability 7.5)", MaxMPSClients, MaxMPSClientsLegacy)))
		}
		if strings.HasPrefix(r.Name, MIGResourcePrefix) {
			errs = append(errs, field.Invalid(p.Child("resources").Index(i).Child("name"), r.Name,
				"sharing using MPS is not supported for MIG devices (as in NVIDIA's plugin): share nvidia.com/gpu, or time-slice MIG devices"))
		}
	}
	for i, sel := range m.Resources {
		if sel.GPUPackDevices == nil {
			continue
		}
		for j, ref := range sel.GPUPackDevices.List {
			if _, _, ok := ref.MIGIndex(); ok || strings.HasPrefix(string(ref), "MIG-") {
				errs = append(errs, field.Invalid(p.Child("resources").Index(i).Child("gpupackDevices").Index(j), string(ref),
					"names a MIG device: sharing using MPS is not supported for MIG devices"))
			}
		}
	}
	return errs
}
