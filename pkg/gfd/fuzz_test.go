package gfd_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gpupack/gpupack/pkg/gfd"
)

// Whatever NVML, the DMI file and the config say, Labels neither panics
// nor returns a label the apiserver would refuse.
func FuzzLabels(f *testing.F) {
	f.Add("NVIDIA A100-SXM4-40GB", "8.0", "550.54.15", "12.4", "DGXA100 920-23687-2530-000", "1g.5gb+me", "single", uint32(0x030200), 7, 2, true)
	f.Add("", "", "", "", "", "", "", uint32(0), 0, 0, false)
	f.Add("Tesla T4 (OEM)", "7.5", "418.30", "10.1", "Server (To be filled)", "x/y", "mixed", uint32(0x030000), -1, 1, false)
	f.Add("ünï\x00code", "a.b", "1.2.3.4", "12", "\t\n", "1g.5gb", "bogus", uint32(1), 3, 70000, true)
	f.Fuzz(func(t *testing.T, name, compute, driver, cuda, machine, profile, strategy string, class uint32, parent, replicas int, mig bool) {
		n := &gfd.Node{
			DriverVersion: driver, CUDADriverVersion: cuda, MachineType: machine, MIGStrategy: strategy,
			GPUs: []gfd.GPU{
				{Name: name, MemoryMiB: 40960, ComputeCapability: compute, MIGCapable: mig, MIGEnabled: mig, PCIClass: class},
				{Name: name, ComputeCapability: compute, PCIClass: class, ClusterUUID: machine, CliqueID: class},
			},
			MIG:     []gfd.MIGDevice{{Parent: parent, Profile: profile, MemoryMiB: 4864}},
			Sharing: gfd.Sharing{Strategy: gfd.SharingTimeSlicing, Resources: map[string]gfd.Replication{"nvidia.com/gpu": {Replicas: replicas}, "nvidia.com/mig-" + profile: {Replicas: replicas}}},
		}
		labels, _ := gfd.Labels(n, time.Unix(1764500000, 0))
		for k, v := range labels {
			require.Empty(t, validation.IsQualifiedName(k), k)
			require.Empty(t, validation.IsValidLabelValue(v), "%s=%q", k, v)
			require.True(t, gfd.IsLabel(k), k)
		}
	})
}
