package baseline

import (
	"fmt"
	"slices"
)

var registry = []Policy{
	Random{}, FirstFit{}, BestFit{}, DotProduct{}, GPUPacking{}, GPUClustering{},
	LeastAllocated{}, MostAllocated{},
}

// Names lists every baseline policy.
func Names() []string {
	names := make([]string, len(registry))
	for i, p := range registry {
		names[i] = p.Name()
	}
	return names
}

// New returns the policy called name.
func New(name string) (Policy, error) {
	i := slices.IndexFunc(registry, func(p Policy) bool { return p.Name() == name })
	if i < 0 {
		return nil, fmt.Errorf("unknown baseline policy %q (known: %v)", name, Names())
	}
	return registry[i], nil
}
