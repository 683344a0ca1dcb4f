package sharing

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// checkMPS refuses what NVIDIA's plugin and its MPS control daemon refuse
// on a node: MPS in force while the node serves MIG devices (NVIDIA's
// plugin fails every resource then: "sharing using MPS is not supported
// for MIG devices"), and more replicas on a GPU than its MPS server takes
// clients (MPSMaxClients).
func checkMPS(inv *nvml.Inventory, base map[string][]Device, ts *configv1.TimeSlicing, section *field.Path, migStrategy string) field.ErrorList {
	var errs field.ErrorList
	mig := 0
	for _, devs := range base {
		for i := range devs {
			if devs[i].MIG {
				mig++
			}
		}
	}
	if mig > 0 {
		errs = append(errs, field.Invalid(section, fmt.Sprintf("%d MIG devices", mig), fmt.Sprintf(
			"sharing using MPS is not supported for MIG devices, and this node serves %d under migStrategy %s (as NVIDIA's plugin, gpupack refuses the node): use migStrategy none, or time-slicing",
			mig, migStrategy)))
		return errs
	}
	for i := range ts.Resources {
		r := &ts.Resources[i]
		// One error per resource, naming every GPU over its limit (8 V100s
		// once gave 8 errors in one line), grouped by model.
		type model struct {
			name, cc string
			limit    int
		}
		var models []model
		over := map[model][]int{}
		for j, d := range base[r.Name] {
			if !selected(r.Selection(), j, &d) {
				continue
			}
			g := gpuByIndex(inv, d.GPUIndex)
			if g == nil {
				continue
			}
			if limit := MPSMaxClients(g.CUDACompute); r.Replicas > limit {
				m := model{g.Name, g.CUDACompute, limit}
				if _, ok := over[m]; !ok {
					models = append(models, m)
				}
				if !slices.Contains(over[m], g.Index) {
					over[m] = append(over[m], g.Index)
				}
			}
		}
		if len(models) == 0 {
			continue
		}
		var parts []string
		for _, m := range models {
			parts = append(parts, fmt.Sprintf("%s (%s, compute capability %s) takes at most %d MPS clients", gpuIndexes(over[m]), m.name, m.cc, m.limit))
		}
		errs = append(errs, field.Invalid(section.Child("resources").Index(i).Child("replicas"), r.Replicas, strings.Join(parts, "; ")))
	}
	return errs
}

// gpuIndexes names GPUs by index: "GPU 3", "each of GPUs 0, 1, 2".
func gpuIndexes(idx []int) string {
	if len(idx) == 1 {
		return fmt.Sprintf("GPU %d", idx[0])
	}
	s := make([]string, len(idx))
	for i, n := range idx {
		s[i] = strconv.Itoa(n)
	}
	return "each of GPUs " + strings.Join(s, ", ")
}

// MPSMaxClients is how many clients one MPS server takes on a GPU of
// compute capability cc ("8.0"): 48 from 7.5 on, 16 before (NVIDIA's
// mps-control-daemon's rule). An unknown capability gets the larger limit.
func MPSMaxClients(cc string) int {
	major, minor, ok := strings.Cut(cc, ".")
	maj, err1 := strconv.Atoi(major)
	mnr, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil {
		return configv1.MaxMPSClients
	}
	if maj > 7 || (maj == 7 && mnr >= 5) {
		return configv1.MaxMPSClients
	}
	return configv1.MaxMPSClientsLegacy
}

func gpuByIndex(inv *nvml.Inventory, index int) *nvml.GPU {
	for i := range inv.GPUs {
		if inv.GPUs[i].Index == index {
			return &inv.GPUs[i]
		}
	}
	return nil
}
