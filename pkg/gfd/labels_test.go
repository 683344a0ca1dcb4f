package gfd_test

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// now is the labelling time of every test: gfd.timestamp is its Unix seconds.
var now = time.Unix(1764500000, 0)

// machineWant is what GFD's documentation says a catalog machine gets, from
// the machine's description (pkg/nvml/fake/machines.go): its DMI product
// name, GPU model, count and memory (MiB), compute capability, driver and
// CUDA driver versions, MIG capability.
type machineWant struct {
	machine          string // gpu.machine: the DMI product name, spaces as '-'
	product          string // gpu.product: NVML's name sanitised
	count            int
	memory           string
	family           string
	computeMajor     string
	computeMinor     string
	driver           [3]string // major, minor, revision
	cuda             [2]string
	migCapable       bool
	clique           bool   // a GB200 tray: <cluster UUID>.<clique ID 32766>
	singleProfile    string // a 1-slice profile (MIG machines)
	singlePerGPU     int    // how many fit on one GPU
	singleProfileAtt attrs  // its attributes
}

// attrs are a MIG profile's labels: memory, multiprocessors, slices
// gi/ci, engines copy/decoder/encoder/jpeg/ofa (from NVIDIA's profile
// tables the fake machines are built on).
type attrs struct {
	memory, mps, gi, ci, copy, dec, enc, jpeg, ofa int
}

var machines = map[string]machineWant{
	fake.DGXA100: {
		machine: "DGXA100-920-23687-2530-000", product: "NVIDIA-A100-SXM4-40GB", count: 8, memory: "40960",
		family: "ampere", computeMajor: "8", computeMinor: "0",
		driver: [3]string{"550", "54", "15"}, cuda: [2]string{"12", "4"}, migCapable: true,
		// A100-40GB 1g.5gb: 4864 MiB, 14 SMs, 1 copy engine, no decoder.
		singleProfile: "1g.5gb", singlePerGPU: 7, singleProfileAtt: attrs{4864, 14, 1, 1, 1, 0, 0, 0, 0},
	},
	fake.DGXH100: {
		machine: "DGXH100", product: "NVIDIA-H100-80GB-HBM3", count: 8, memory: "81920",
		family: "hopper", computeMajor: "9", computeMinor: "0",
		driver: [3]string{"550", "54", "15"}, cuda: [2]string{"12", "4"}, migCapable: true,
		// H100-80GB 1g.10gb: 10240 MiB, 16 SMs, 1 copy engine, 1 decoder.
		singleProfile: "1g.10gb", singlePerGPU: 7, singleProfileAtt: attrs{10240, 16, 1, 1, 1, 1, 0, 0, 0},
	},
	fake.DGX1V100: {
		machine: "DGX-1-with-V100-16", product: "Tesla-V100-SXM2-16GB", count: 8, memory: "16384",
		family: "volta", computeMajor: "7", computeMinor: "0",
		driver: [3]string{"535", "183", "01"}, cuda: [2]string{"12", "2"},
	},
	fake.PCIe4GPU2Socket: {
		machine: "PowerEdge-R740", product: "Tesla-T4", count: 4, memory: "15360",
		family: "turing", computeMajor: "7", computeMinor: "5", // 7.5 is Turing, not Volta
		driver: [3]string{"535", "183", "01"}, cuda: [2]string{"12", "2"},
	},
	fake.A100PCIeBridge: {
		machine: "ProLiant-DL380-Gen10-Plus", product: "NVIDIA-A100-PCIE-40GB", count: 8, memory: "40960",
		family: "ampere", computeMajor: "8", computeMinor: "0",
		driver: [3]string{"550", "54", "15"}, cuda: [2]string{"12", "4"}, migCapable: true,
		singleProfile: "1g.5gb", singlePerGPU: 7, singleProfileAtt: attrs{4864, 14, 1, 1, 1, 0, 0, 0, 0},
	},
	fake.NVSwitch16GPU: {
		machine: "DGX-2", product: "Tesla-V100-SXM3-32GB", count: 16, memory: "32768",
		family: "volta", computeMajor: "7", computeMinor: "0",
		driver: [3]string{"535", "183", "01"}, cuda: [2]string{"12", "2"},
	},
	fake.GB2004GPU: {
		machine: "GB200-NVL", product: "NVIDIA-GB200", count: 4, memory: "184320",
		family: "blackwell", computeMajor: "10", computeMinor: "0", // 10.x and 12.x are Blackwell
		driver: [3]string{"570", "133", "20"}, cuda: [2]string{"12", "8"}, migCapable: true, clique: true,
		// B200 one-slice instance: 23552 MiB, 18 SMs, 1 copy engine, 1
		// decoder; go-nvlib names it 1g.45gb (23552 of the mock's 184320
		// MiB is more than 1/8, so its memory rounds up to 2/8 of 180 GB).
		singleProfile: "1g.45gb", singlePerGPU: 7, singleProfileAtt: attrs{23552, 18, 1, 1, 1, 1, 0, 0, 0},
	},
}

// base is the documented label set of w with sharing and MIG off: every
// version label (deprecated and new), the whole-GPU labels, mig/mps
// capability, mode (data-center GPUs are 3D controllers: compute),
// machine and timestamp.
func base(w machineWant) map[string]string {
	driverFull := w.driver[0] + "." + w.driver[1] + "." + w.driver[2]
	return map[string]string{
		"nvidia.com/cuda.driver.major":            w.driver[0],
		"nvidia.com/cuda.driver.minor":            w.driver[1],
		"nvidia.com/cuda.driver.rev":              w.driver[2],
		"nvidia.com/cuda.driver-version.major":    w.driver[0],
		"nvidia.com/cuda.driver-version.minor":    w.driver[1],
		"nvidia.com/cuda.driver-version.revision": w.driver[2],
		"nvidia.com/cuda.driver-version.full":     driverFull,
		"nvidia.com/cuda.runtime.major":           w.cuda[0],
		"nvidia.com/cuda.runtime.minor":           w.cuda[1],
		"nvidia.com/cuda.runtime-version.major":   w.cuda[0],
		"nvidia.com/cuda.runtime-version.minor":   w.cuda[1],
		"nvidia.com/cuda.runtime-version.full":    w.cuda[0] + "." + w.cuda[1],
		"nvidia.com/gfd.timestamp":                strconv.FormatInt(now.Unix(), 10),
		"nvidia.com/gpu.machine":                  w.machine,
		"nvidia.com/gpu.product":                  w.product,
		"nvidia.com/gpu.count":                    strconv.Itoa(w.count),
		"nvidia.com/gpu.memory":                   w.memory,
		"nvidia.com/gpu.family":                   w.family,
		"nvidia.com/gpu.compute.major":            w.computeMajor,
		"nvidia.com/gpu.compute.minor":            w.computeMinor,
		"nvidia.com/gpu.replicas":                 "1",
		"nvidia.com/gpu.sharing-strategy":         "none",
		"nvidia.com/gpu.mode":                     "compute",
		"nvidia.com/mig.capable":                  strconv.FormatBool(w.migCapable),
		"nvidia.com/mps.capable":                  "false",
	}
}

// with returns m with the changes applied; "" deletes a key.
func with(m map[string]string, changes map[string]string) map[string]string {
	out := maps.Clone(m)
	for k, v := range changes {
		if v == "" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// migProfileLabels are the per-profile labels of resource (nvidia.com/gpu
// under single, nvidia.com/mig-<profile> under mixed).
func migProfileLabels(resource string, a attrs) map[string]string {
	return map[string]string{
		resource + ".memory":          strconv.Itoa(a.memory),
		resource + ".multiprocessors": strconv.Itoa(a.mps),
		resource + ".slices.gi":       strconv.Itoa(a.gi),
		resource + ".slices.ci":       strconv.Itoa(a.ci),
		resource + ".engines.copy":    strconv.Itoa(a.copy),
		resource + ".engines.decoder": strconv.Itoa(a.dec),
		resource + ".engines.encoder": strconv.Itoa(a.enc),
		resource + ".engines.jpeg":    strconv.Itoa(a.jpeg),
		resource + ".engines.ofa":     strconv.Itoa(a.ofa),
	}
}

// labels runs a catalog machine through the device plugin's path: NVML
// discovery on the fake, its host files under a temp root, the config's
// MIG strategy and sharing.
func labels(t *testing.T, machine string, cfg *configv1.Config, opts ...fake.Option) map[string]string {
	t.Helper()
	m, err := fake.New(machine, opts...)
	require.NoError(t, err)
	lib := m.Lib(t)
	inv, err := lib.Discover()
	require.NoError(t, err)
	root := t.TempDir()
	require.NoError(t, m.WriteHostFiles(root))
	n, errs := inv.GFDNode(root, "")
	require.Empty(t, errs)
	n.MIGStrategy = configv1.MIGStrategyNone
	if cfg != nil {
		if cfg.Flags.MigStrategy != nil {
			n.MIGStrategy = *cfg.Flags.MigStrategy
		}
		n.Sharing = gfd.SharingOf(cfg)
	}
	got, errs := gfd.Labels(n, now)
	require.Empty(t, errs)
	if machines[machine].clique {
		// The fake's cluster UUID is derived; the clique ID is the tray's.
		require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.32766$`), got["nvidia.com/gpu.clique"])
		require.Equal(t, inv.GPUs[0].ClusterUUID+".32766", got["nvidia.com/gpu.clique"])
		delete(got, "nvidia.com/gpu.clique")
	} else {
		require.NotContains(t, got, "nvidia.com/gpu.clique", "no NVLink fabric, no clique")
	}
	return got
}

func timeSlicing(rename bool, resources ...configv1.ReplicatedResource) *configv1.Config {
	return &configv1.Config{Sharing: configv1.Sharing{TimeSlicing: configv1.TimeSlicing{RenameByDefault: rename, Resources: resources}}}
}

func mps(resources ...configv1.ReplicatedResource) *configv1.Config {
	return &configv1.Config{Sharing: configv1.Sharing{MPS: &configv1.TimeSlicing{Resources: resources}}}
}

func migStrategy(s string, c *configv1.Config) *configv1.Config {
	if c == nil {
		c = &configv1.Config{}
	}
	c.Flags.MigStrategy = ptr.To(s)
	return c
}

func gpuReplicas(n int) configv1.ReplicatedResource {
	return configv1.ReplicatedResource{Name: "nvidia.com/gpu", Replicas: n}
}

// Every catalog machine, without MIG, in each sharing mode GFD knows.
func TestLabelsPerMachineAndSharingMode(t *testing.T) {
	require.Len(t, machines, len(fake.Names()), "every catalog machine needs a written expectation")
	for _, name := range fake.Names() {
		w := machines[name]
		b := base(w)
		for _, tc := range []struct {
			mode string
			cfg  *configv1.Config
			want map[string]string
		}{
			{"no sharing", nil, b},
			// Replicas keep the name nvidia.com/gpu: the product says -SHARED.
			{"time-slicing", timeSlicing(false, gpuReplicas(4)), with(b, map[string]string{
				"nvidia.com/gpu.product": w.product + "-SHARED", "nvidia.com/gpu.replicas": "4",
				"nvidia.com/gpu.sharing-strategy": "time-slicing",
			})},
			// renameByDefault: replicas are nvidia.com/gpu.shared; no -SHARED.
			{"time-slicing renameByDefault", timeSlicing(true, gpuReplicas(4)), with(b, map[string]string{
				"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "time-slicing",
			})},
			// gpupack's own rename is a rename too.
			{"time-slicing gpupackRename", timeSlicing(false, configv1.ReplicatedResource{Name: "nvidia.com/gpu", Replicas: 2, GPUPackRename: "nvidia.com/gpu.half"}), with(b, map[string]string{
				"nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "time-slicing",
			})},
			// NVIDIA's `rename` is cleared by GFD as by NVIDIA's plugin: -SHARED.
			{"time-slicing with NVIDIA's rename", timeSlicing(false, configv1.ReplicatedResource{Name: "nvidia.com/gpu", Replicas: 2, Rename: "gpu-ts"}), with(b, map[string]string{
				"nvidia.com/gpu.product": w.product + "-SHARED", "nvidia.com/gpu.replicas": "2",
				"nvidia.com/gpu.sharing-strategy": "time-slicing",
			})},
			{"MPS renameByDefault", func() *configv1.Config {
				c := mps(gpuReplicas(3))
				c.Sharing.MPS.RenameByDefault = true
				return c
			}(), with(b, map[string]string{
				"nvidia.com/gpu.replicas": "3", "nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/mps.capable": "true",
			})},
			// Sharing another resource leaves nvidia.com/gpu's labels alone.
			{"time-slicing of another resource", timeSlicing(false, configv1.ReplicatedResource{Name: "nvidia.com/mig-1g.5gb", Replicas: 4}), b},
			{"MPS", mps(gpuReplicas(3)), with(b, map[string]string{
				"nvidia.com/gpu.product": w.product + "-SHARED", "nvidia.com/gpu.replicas": "3",
				"nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/mps.capable": "true",
			})},
			// MIG strategies with MIG off on every GPU: only mig.strategy.
			{"MIG single, MIG disabled", migStrategy("single", nil), with(b, map[string]string{"nvidia.com/mig.strategy": "single"})},
			{"MIG mixed, MIG disabled", migStrategy("mixed", nil), with(b, map[string]string{"nvidia.com/mig.strategy": "mixed"})},
		} {
			t.Run(name+"/"+tc.mode, func(t *testing.T) {
				require.Equal(t, tc.want, labels(t, name, tc.cfg))
			})
		}
	}
}

// allGPUs puts n devices of profile on each of the machine's GPUs.
func allGPUs(count int, profile string, n int) fake.Option {
	layout := map[int][]string{}
	for i := range count {
		for range n {
			layout[i] = append(layout[i], profile)
		}
	}
	return fake.WithMIG(layout)
}

// MIG single on every MIG-capable machine: each GPU full of one 1-slice
// profile, so gpu.count is devices per GPU x GPUs (GFD's example: 7 x 8
// A100 -> 56) and the product the MIG profile's; family and compute stay
// the GPU's.
func TestLabelsMIGSingle(t *testing.T) {
	for _, name := range fake.Names() {
		w := machines[name]
		if !w.migCapable {
			continue
		}
		single := with(base(w), map[string]string{
			"nvidia.com/mig.strategy": "single",
			"nvidia.com/gpu.product":  w.product + "-MIG-" + w.singleProfile,
			"nvidia.com/gpu.count":    strconv.Itoa(w.singlePerGPU * w.count),
		})
		maps.Copy(single, migProfileLabels("nvidia.com/gpu", w.singleProfileAtt))
		t.Run(name, func(t *testing.T) {
			require.Equal(t, single, labels(t, name, migStrategy("single", nil), allGPUs(w.count, w.singleProfile, w.singlePerGPU)))
		})
		t.Run(name+"/time-slicing", func(t *testing.T) {
			// The MIG devices are nvidia.com/gpu: its replicas apply to them.
			want := with(single, map[string]string{
				"nvidia.com/gpu.product":  w.product + "-MIG-" + w.singleProfile + "-SHARED",
				"nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "time-slicing",
			})
			require.Equal(t, want, labels(t, name, migStrategy("single", timeSlicing(false, gpuReplicas(2))), allGPUs(w.count, w.singleProfile, w.singlePerGPU)))
		})
		t.Run(name+"/time-slicing renameByDefault", func(t *testing.T) {
			want := with(single, map[string]string{"nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "time-slicing"})
			require.Equal(t, want, labels(t, name, migStrategy("single", timeSlicing(true, gpuReplicas(2))), allGPUs(w.count, w.singleProfile, w.singlePerGPU)))
		})
		t.Run(name+"/MPS", func(t *testing.T) {
			// MPS on MIG devices: shared labels, but not MPS capable.
			want := with(single, map[string]string{
				"nvidia.com/gpu.product":  w.product + "-MIG-" + w.singleProfile + "-SHARED",
				"nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "mps",
			})
			require.Equal(t, want, labels(t, name, migStrategy("single", mps(gpuReplicas(2))), allGPUs(w.count, w.singleProfile, w.singlePerGPU)))
		})
	}
}

// The single strategy cannot describe a node with MIG disabled on some
// GPUs, an empty MIG-enabled GPU, or two profiles: GFD's invalid labels
// (count, replicas and memory 0), whatever the sharing.
func TestLabelsMIGSingleInvalid(t *testing.T) {
	w := machines[fake.DGXA100]
	invalid := with(base(w), map[string]string{
		"nvidia.com/mig.strategy": "single",
		"nvidia.com/gpu.product":  "NVIDIA-A100-SXM4-40GB-MIG-INVALID",
		"nvidia.com/gpu.count":    "0", "nvidia.com/gpu.replicas": "0", "nvidia.com/gpu.memory": "0",
	})
	for _, tc := range []struct {
		name   string
		layout map[int][]string
		cfg    *configv1.Config
	}{
		{"MIG on GPUs 0-1 only", map[int][]string{0: {"1g.5gb"}, 1: {"1g.5gb"}}, nil},
		{"a MIG-enabled GPU without MIG devices", func() map[int][]string {
			l := map[int][]string{0: {}}
			for i := 1; i < 8; i++ {
				l[i] = []string{"1g.5gb"}
			}
			return l
		}(), nil},
		{"two profiles", func() map[int][]string {
			l := map[int][]string{}
			for i := range 8 {
				l[i] = []string{"1g.5gb"}
			}
			l[3] = []string{"3g.20gb"}
			return l
		}(), nil},
		{"two profiles, time-sliced", map[int][]string{0: {"1g.5gb"}, 1: {"2g.10gb"}, 2: {"1g.5gb"}, 3: {"1g.5gb"}, 4: {"1g.5gb"}, 5: {"1g.5gb"}, 6: {"1g.5gb"}, 7: {"1g.5gb"}}, timeSlicing(false, gpuReplicas(4))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, invalid, labels(t, fake.DGXA100, migStrategy("single", tc.cfg), fake.WithMIG(tc.layout)))
		})
	}
}

// Mixed: one label set per profile, nvidia.com/mig-<profile>.*, counted
// over all GPUs; nvidia.com/gpu.* stays the whole GPUs' (count: all GPUs of
// the model, MIG-enabled or not).
func TestLabelsMIGMixed(t *testing.T) {
	w := machines[fake.DGXA100]
	// GPU 0: 3g.20gb + 2g.10gb + 2 x 1g.5gb; GPU 1: 7 x 1g.5gb; GPUs 2-7 whole.
	layout := fake.WithMIG(map[int][]string{
		0: {"3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"},
		1: {"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"},
	})
	profile := func(p string, count int, a attrs, product string, replicas, strategy string) map[string]string {
		r := "nvidia.com/mig-" + p
		m := migProfileLabels(r, a)
		m[r+".count"], m[r+".product"], m[r+".replicas"], m[r+".sharing-strategy"] = strconv.Itoa(count), product, replicas, strategy
		return m
	}
	mixed := with(base(w), map[string]string{"nvidia.com/mig.strategy": "mixed"})
	// 2 + 7 = 9 devices of 1g.5gb; A100 2g.10gb: 9856 MiB, 28 SMs, 2 copy
	// engines, 1 decoder; 3g.20gb: 19968 MiB, 42 SMs, 3 copy, 2 decoders.
	maps.Copy(mixed, profile("1g.5gb", 9, attrs{4864, 14, 1, 1, 1, 0, 0, 0, 0}, "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "1", "none"))
	maps.Copy(mixed, profile("2g.10gb", 1, attrs{9856, 28, 2, 2, 2, 1, 0, 0, 0}, "NVIDIA-A100-SXM4-40GB-MIG-2g.10gb", "1", "none"))
	maps.Copy(mixed, profile("3g.20gb", 1, attrs{19968, 42, 3, 3, 3, 2, 0, 0, 0}, "NVIDIA-A100-SXM4-40GB-MIG-3g.20gb", "1", "none"))
	t.Run("no sharing", func(t *testing.T) {
		require.Equal(t, mixed, labels(t, fake.DGXA100, migStrategy("mixed", nil), layout))
	})
	t.Run("time-slicing of one profile and the whole GPUs", func(t *testing.T) {
		want := with(mixed, map[string]string{
			"nvidia.com/mig-1g.5gb.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED", "nvidia.com/mig-1g.5gb.replicas": "3",
			"nvidia.com/mig-1g.5gb.sharing-strategy": "time-slicing",
			"nvidia.com/gpu.product":                 "NVIDIA-A100-SXM4-40GB-SHARED", "nvidia.com/gpu.replicas": "2",
			"nvidia.com/gpu.sharing-strategy": "time-slicing",
		})
		cfg := timeSlicing(false, configv1.ReplicatedResource{Name: "nvidia.com/mig-1g.5gb", Replicas: 3}, gpuReplicas(2))
		require.Equal(t, want, labels(t, fake.DGXA100, migStrategy("mixed", cfg), layout))
	})
	t.Run("every GPU MIG-enabled: the whole GPUs are not shared", func(t *testing.T) {
		// MIG-enabled GPUs are labelled without sharing: replicas 0.
		w := machines[fake.DGXH100]
		want := with(base(w), map[string]string{"nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.replicas": "0"})
		maps.Copy(want, profile("1g.10gb", 56, w.singleProfileAtt, "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb", "1", "none"))
		require.Equal(t, want, labels(t, fake.DGXH100, migStrategy("mixed", timeSlicing(false, gpuReplicas(4))), allGPUs(8, "1g.10gb", 7)))
	})
	t.Run("MIG strategy none with MIG enabled", func(t *testing.T) {
		// No MIG labels; the MIG-enabled GPUs' whole-GPU labels say replicas 0.
		want := with(base(w), map[string]string{"nvidia.com/gpu.replicas": "0"})
		require.Equal(t, want, labels(t, fake.DGXA100, nil, allGPUs(8, "1g.5gb", 7)))
	})
}

// GFD's sanitising of product names, and its machine rule (spaces only).
func TestSanitise(t *testing.T) {
	for in, want := range map[string]string{
		"NVIDIA A100-SXM4-40GB":          "NVIDIA-A100-SXM4-40GB",
		"Tesla T4":                       "Tesla-T4",
		"  Tesla   V100  ":               "Tesla-V100",
		"GeForce RTX 4090 (OEM)":         "GeForce-RTX-4090-OEM",
		"NVIDIA H100 80GB HBM3":          "NVIDIA-H100-80GB-HBM3",
		"Quadro RTX 6000/8000":           "Quadro-RTX-60008000",
		"NVIDIA RTX A6000 @ 300W, rev#2": "NVIDIA-RTX-A6000-300W-rev2",
		"under_score.dot-dash":           "under_score.dot-dash",
		"tab\tand\nnewline":              "tabandnewline", // removed, not blanks
		"ünïcödé GPU":                    "ncd-GPU",
		"":                               "",
		"()":                             "",
	} {
		require.Equal(t, want, gfd.Sanitise(in), "%q", in)
	}
}

// Hand-made nodes for what the catalog does not have: products and DMI
// names the apiserver would refuse, odd versions, mixed PCI classes, a
// fabric that disagrees, unreadable GPUs, no GPU at all.
func TestLabelsEdgeCases(t *testing.T) {
	gpu := gfd.GPU{Name: "NVIDIA L40S", MemoryMiB: 46068, ComputeCapability: "8.9", PCIClass: 0x030000}
	node := func(f func(n *gfd.Node)) *gfd.Node {
		n := &gfd.Node{DriverVersion: "560.35.03", CUDADriverVersion: "12.6", GPUs: []gfd.GPU{gpu, gpu}, MachineType: "ESC8000A-E12", MIGStrategy: "none", NoTimestamp: true}
		f(n)
		return n
	}
	t.Run("graphics mode, ada-lovelace, no timestamp", func(t *testing.T) {
		got, errs := gfd.Labels(node(func(*gfd.Node) {}), now)
		require.Empty(t, errs)
		require.NotContains(t, got, "nvidia.com/gfd.timestamp")
		require.Equal(t, "graphics", got["nvidia.com/gpu.mode"])
		require.Equal(t, "ada-lovelace", got["nvidia.com/gpu.family"]) // 8.9
		require.Equal(t, "NVIDIA-L40S", got["nvidia.com/gpu.product"])
		require.Equal(t, "2", got["nvidia.com/gpu.count"])
	})
	for name, tc := range map[string]struct {
		f      func(n *gfd.Node)
		key    string
		want   string // "" : absent
		errors int
	}{
		"mixed PCI classes":       {func(n *gfd.Node) { n.GPUs[1].PCIClass = 0x030200 }, "nvidia.com/gpu.mode", "unknown", 0},
		"unreadable PCI class":    {func(n *gfd.Node) { n.GPUs[1].PCIClass = 0 }, "nvidia.com/gpu.mode", "unknown", 0},
		"other PCI class":         {func(n *gfd.Node) { n.GPUs[0].PCIClass, n.GPUs[1].PCIClass = 0x038000, 0x038000 }, "nvidia.com/gpu.mode", "unknown", 0},
		"bad driver version":      {func(n *gfd.Node) { n.DriverVersion = "560" }, "nvidia.com/cuda.driver.major", "", 1},
		"bad CUDA version":        {func(n *gfd.Node) { n.CUDADriverVersion = "twelve" }, "nvidia.com/cuda.runtime.major", "", 1},
		"unknown machine":         {func(n *gfd.Node) { n.MachineType = "" }, "nvidia.com/gpu.machine", "unknown", 0},
		"machine with spaces":     {func(n *gfd.Node) { n.MachineType = "ProLiant XL675d Gen10 Plus" }, "nvidia.com/gpu.machine", "ProLiant-XL675d-Gen10-Plus", 0},
		"machine GFD can't label": {func(n *gfd.Node) { n.MachineType = "Server (To be filled by O.E.M.)" }, "nvidia.com/gpu.machine", "", 1},
		"machine over 63 chars":   {func(n *gfd.Node) { n.MachineType = fmt.Sprintf("%070d", 7) }, "nvidia.com/gpu.machine", "", 1},
		"product over 63 chars": {func(n *gfd.Node) {
			n.GPUs[0].Name, n.GPUs[1].Name = fmt.Sprintf("GPU %064d", 1), fmt.Sprintf("GPU %064d", 1)
		}, "nvidia.com/gpu.product", "", 1},
		"product ending in '.'": {func(n *gfd.Node) { n.GPUs[0].Name, n.GPUs[1].Name = "Tesla T4.", "Tesla T4." }, "nvidia.com/gpu.product", "", 1},
		"unknown compute":       {func(n *gfd.Node) { n.GPUs[0].ComputeCapability, n.GPUs[1].ComputeCapability = "", "" }, "nvidia.com/gpu.family", "", 0},
		"compute 0.0":           {func(n *gfd.Node) { n.GPUs[0].ComputeCapability, n.GPUs[1].ComputeCapability = "0.0", "0.0" }, "nvidia.com/gpu.compute.major", "", 0},
		"future compute":        {func(n *gfd.Node) { n.GPUs[0].ComputeCapability, n.GPUs[1].ComputeCapability = "13.0", "13.0" }, "nvidia.com/gpu.family", "undefined", 0},
		"blackwell 12.0":        {func(n *gfd.Node) { n.GPUs[0].ComputeCapability, n.GPUs[1].ComputeCapability = "12.0", "12.0" }, "nvidia.com/gpu.family", "blackwell", 0},
		"memory unknown":        {func(n *gfd.Node) { n.GPUs[0].MemoryMiB, n.GPUs[1].MemoryMiB = 0, 0 }, "nvidia.com/gpu.memory", "", 0},
		"an unreadable GPU":     {func(n *gfd.Node) { n.GPUs[1] = gfd.GPU{} }, "nvidia.com/gpu.count", "1", 0},
		"one fabric": {func(n *gfd.Node) {
			n.GPUs[0].ClusterUUID, n.GPUs[0].CliqueID = "7b968a6d-c8aa-45e1-9e07-e1e51be99c31", 1
		}, "nvidia.com/gpu.clique", "7b968a6d-c8aa-45e1-9e07-e1e51be99c31.1", 0},
		"cliques disagree": {func(n *gfd.Node) {
			n.GPUs[0].ClusterUUID, n.GPUs[0].CliqueID = "7b968a6d-c8aa-45e1-9e07-e1e51be99c31", 1
			n.GPUs[1].ClusterUUID, n.GPUs[1].CliqueID = "7b968a6d-c8aa-45e1-9e07-e1e51be99c31", 2
		}, "nvidia.com/gpu.clique", "", 1}, // left out, not silently: the error names both cliques (TestCliqueOfDisagreeingGPUs)
		"MPS with MIG enabled": {func(n *gfd.Node) {
			n.Sharing = gfd.Sharing{Strategy: gfd.SharingMPS, Resources: map[string]gfd.Replication{"nvidia.com/gpu": {Replicas: 2}}}
			n.GPUs[0].MIGEnabled = true
		}, "nvidia.com/mps.capable", "false", 0},
		"MIG profile outside NVIDIA's spelling": {func(n *gfd.Node) {
			n.MIGStrategy, n.GPUs[0].MIGEnabled = "mixed", true
			n.MIG = []gfd.MIGDevice{{Parent: 0, Profile: "1G.5GB", MemoryMiB: 4864}}
		}, "nvidia.com/mig-1G.5GB.count", "", 13}, // product, count, replicas, sharing-strategy, memory, multiprocessors, 2 slices, 5 engines: 13 keys, each left out
		"MPS replicas 0": {func(n *gfd.Node) {
			n.Sharing = gfd.Sharing{Strategy: gfd.SharingMPS, Resources: map[string]gfd.Replication{"nvidia.com/gpu": {Replicas: 0}}}
		}, "nvidia.com/gpu.sharing-strategy", "none", 0},
	} {
		t.Run(name, func(t *testing.T) {
			got, errs := gfd.Labels(node(tc.f), now)
			require.Len(t, errs, tc.errors, "%v", errs)
			if tc.want == "" {
				require.NotContains(t, got, tc.key)
			} else {
				require.Equal(t, tc.want, got[tc.key])
			}
			for k, v := range got {
				require.True(t, gfd.IsLabel(k), "%s is a GFD key", k)
				require.LessOrEqual(t, len(v), 63)
			}
		})
	}
	t.Run("vGPU guest", func(t *testing.T) {
		got, errs := gfd.Labels(node(func(n *gfd.Node) {
			n.VGPUs = []gfd.VGPU{{HostDriverVersion: "460.16", HostDriverBranch: "r460_00"}, {}}
		}), now)
		require.Empty(t, errs)
		require.Equal(t, "true", got["nvidia.com/vgpu.present"])
		require.Equal(t, "460.16", got["nvidia.com/vgpu.host-driver-version"])
		require.Equal(t, "r460_00", got["nvidia.com/vgpu.host-driver-branch"])
		got, _ = gfd.Labels(node(func(*gfd.Node) {}), now)
		require.NotContains(t, got, "nvidia.com/vgpu.present", "bare metal")
	})
	t.Run("no GPUs", func(t *testing.T) {
		got, errs := gfd.Labels(&gfd.Node{MachineType: "R760", DriverVersion: "x"}, now)
		require.Empty(t, errs)
		require.Equal(t, map[string]string{"nvidia.com/gpu.machine": "R760", "nvidia.com/gfd.timestamp": strconv.FormatInt(now.Unix(), 10)}, got)
	})
	t.Run("two-part driver keeps an empty revision", func(t *testing.T) {
		got, errs := gfd.Labels(node(func(n *gfd.Node) { n.DriverVersion = "418.30" }), now)
		require.Empty(t, errs)
		require.Equal(t, "418", got["nvidia.com/cuda.driver-version.major"])
		require.Equal(t, "30", got["nvidia.com/cuda.driver-version.minor"])
		v, ok := got["nvidia.com/cuda.driver-version.revision"]
		require.True(t, ok)
		require.Empty(t, v)
	})
}

// SharingOf reads the strategy and renames from the config types: MPS wins
// when it lists resources; renameByDefault and gpupackRename are renames,
// NVIDIA's `rename` is not (GFD clears it, as NVIDIA's plugin does); the
// first entry of a name wins.
func TestSharingOf(t *testing.T) {
	require.Equal(t, gfd.Sharing{Strategy: "none"}, gfd.SharingOf(nil))
	require.Equal(t, gfd.Sharing{Strategy: "none"}, gfd.SharingOf(&configv1.Config{Sharing: configv1.Sharing{MPS: &configv1.TimeSlicing{}}}))
	// A sharing.mps section is in force even without resources: the
	// timeSlicing beside it is ignored, as the device plugin ignores it.
	require.Equal(t, gfd.Sharing{Strategy: "none"}, gfd.SharingOf(&configv1.Config{Sharing: configv1.Sharing{
		MPS: &configv1.TimeSlicing{}, TimeSlicing: configv1.TimeSlicing{Resources: []configv1.ReplicatedResource{gpuReplicas(4)}}}}))
	s := gfd.SharingOf(timeSlicing(false,
		configv1.ReplicatedResource{Name: "nvidia.com/gpu", Replicas: 4},
		configv1.ReplicatedResource{Name: "nvidia.com/gpu", Replicas: 9},
		configv1.ReplicatedResource{Name: "nvidia.com/mig-1g.5gb", Replicas: 2, Rename: "x"},
	))
	require.Equal(t, gfd.Sharing{Strategy: "time-slicing", Resources: map[string]gfd.Replication{
		"nvidia.com/gpu": {Replicas: 4}, "nvidia.com/mig-1g.5gb": {Replicas: 2},
	}}, s)
	c := mps(gpuReplicas(2))
	c.Sharing.TimeSlicing.Resources = []configv1.ReplicatedResource{gpuReplicas(8)}
	require.Equal(t, gfd.Sharing{Strategy: "mps", Resources: map[string]gfd.Replication{"nvidia.com/gpu": {Replicas: 2}}}, gfd.SharingOf(c))
	c = mps(gpuReplicas(2))
	c.Sharing.MPS.RenameByDefault = true
	require.Equal(t, gfd.Sharing{Strategy: "mps", Resources: map[string]gfd.Replication{"nvidia.com/gpu": {Replicas: 2, Renamed: true}}}, gfd.SharingOf(c))
}

// The keys GFD writes: the fixed ones and the mixed strategy's pattern,
// which must not take the keys of others (mig-manager's nvidia.com/mig.config,
// the GPU Operator's nvidia.com/gpu.deploy.*, the config label).
func TestIsLabel(t *testing.T) {
	for _, k := range []string{"nvidia.com/gpu.product", "nvidia.com/cuda.driver.rev", "nvidia.com/mig-1g.5gb.count",
		"nvidia.com/mig-1g.10gb.me.engines.ofa", "nvidia.com/mig-1c.2g.10gb.slices.ci", "nvidia.com/gpu.engines.jpeg"} {
		require.True(t, gfd.IsLabel(k), k)
	}
	for _, k := range []string{"nvidia.com/mig.config", "nvidia.com/mig.config.state", "nvidia.com/gpu.deploy.device-plugin",
		"nvidia.com/gpu.present", "nvidia.com/device-plugin.config", "gpupack.io/nvlink", "nvidia.com/mig-1g.5gb.other",
		"nvidia.com/gpu.imex-domain", "example.com/gpu.product"} {
		require.False(t, gfd.IsLabel(k), k)
	}
}
