package deviceplugin_test

import (
	"testing"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func TestRegistrationAndCapacity(t *testing.T) {
	sevenSmall := []string{"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"}
	tests := []struct {
		name string
		o    pluginOpts
		want map[string]int64
	}{
		{"dgx-h100 whole", pluginOpts{machine: "dgx-h100"}, map[string]int64{"nvidia.com/gpu": 8}},
		{
			"dgx-a100 mixed MIG",
			pluginOpts{machine: "dgx-a100", config: "version: v1\nflags: {migStrategy: mixed}",
				fake: []fake.Option{fake.WithMIG(map[int][]string{
					0: sevenSmall,
					1: {"3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"},
					2: {"7g.40gb"},
				})}},
			// GPUs 3-7 whole = 5; 1g.5gb: 7 on GPU0 + 2 on GPU1 = 9.
			map[string]int64{"nvidia.com/gpu": 5, "nvidia.com/mig-1g.5gb": 9, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-7g.40gb": 1},
		},
		{
			"time-sliced renamed",
			pluginOpts{machine: "dgx-a100", config: "version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 10, gpupackDevices: [0, 1]}]}}"},
			// GPUs 0,1 x 10 replicas = 20 shared; GPUs 2-7 whole = 6.
			map[string]int64{"nvidia.com/gpu.shared": 20, "nvidia.com/gpu": 6},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, _ := setup(t, tt.o)
			k.waitCounts(tt.want)
		})
	}
}
