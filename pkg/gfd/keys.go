package gfd

import (
	"regexp"
	"slices"
)

// Label keys GFD writes (the per-resource keys are <resource>.<suffix>).
const (
	Prefix = "nvidia.com/"

	// Driver and CUDA versions; the first five are GFD's deprecated keys,
	// still written.
	LabelDriverMajor         = Prefix + "cuda.driver.major"
	LabelDriverMinor         = Prefix + "cuda.driver.minor"
	LabelDriverRev           = Prefix + "cuda.driver.rev"
	LabelRuntimeMajor        = Prefix + "cuda.runtime.major"
	LabelRuntimeMinor        = Prefix + "cuda.runtime.minor"
	LabelDriverVersionMajor  = Prefix + "cuda.driver-version.major"
	LabelDriverVersionMinor  = Prefix + "cuda.driver-version.minor"
	LabelDriverVersionRev    = Prefix + "cuda.driver-version.revision"
	LabelDriverVersionFull   = Prefix + "cuda.driver-version.full"
	LabelRuntimeVersionMajor = Prefix + "cuda.runtime-version.major"
	LabelRuntimeVersionMinor = Prefix + "cuda.runtime-version.minor"
	LabelRuntimeVersionFull  = Prefix + "cuda.runtime-version.full"
	LabelTimestamp           = Prefix + "gfd.timestamp"
	LabelMachine             = Prefix + "gpu.machine"
	LabelMode                = Prefix + "gpu.mode"
	LabelClique              = Prefix + "gpu.clique"
	LabelMIGCapable          = Prefix + "mig.capable"
	LabelMIGStrategy         = Prefix + "mig.strategy"
	LabelMPSCapable          = Prefix + "mps.capable"
	LabelVGPUPresent         = Prefix + "vgpu.present"
	LabelVGPUHostDriver      = Prefix + "vgpu.host-driver-version"
	LabelVGPUHostBranch      = Prefix + "vgpu.host-driver-branch"
	ResourceGPU              = Prefix + "gpu"
	MIGResourcePrefix        = Prefix + "mig-"
	LabelProduct             = ResourceGPU + "." + SuffixProduct
	LabelCount               = ResourceGPU + "." + SuffixCount
	LabelMemory              = ResourceGPU + "." + SuffixMemory
	LabelReplicas            = ResourceGPU + "." + SuffixReplicas
	LabelSharingStrategy     = ResourceGPU + "." + SuffixSharingStrategy
	LabelFamily              = ResourceGPU + "." + SuffixFamily
	LabelComputeMajor        = ResourceGPU + "." + SuffixComputeMajor
	LabelComputeMinor        = ResourceGPU + "." + SuffixComputeMinor
	SuffixProduct            = "product"
	SuffixCount              = "count"
	SuffixMemory             = "memory"
	SuffixReplicas           = "replicas"
	SuffixSharingStrategy    = "sharing-strategy"
	SuffixFamily             = "family"
	SuffixComputeMajor       = "compute.major"
	SuffixComputeMinor       = "compute.minor"
	SuffixMultiprocessors    = "multiprocessors"
	SuffixSlicesGI           = "slices.gi"
	SuffixSlicesCI           = "slices.ci"
	SuffixEnginesCopy        = "engines.copy"
	SuffixEnginesDecoder     = "engines.decoder"
	SuffixEnginesEncoder     = "engines.encoder"
	SuffixEnginesJPEG        = "engines.jpeg"
	SuffixEnginesOFA         = "engines.ofa"
)

// labelMIGInvalidProductTag ends the product of a node the MIG single
// strategy cannot describe: <model>-MIG-INVALID.
const labelMIGInvalidProductTag = "INVALID"

// gpuSuffixes are the suffixes of nvidia.com/gpu.<suffix> GFD writes.
var gpuSuffixes = []string{
	SuffixProduct, SuffixCount, SuffixMemory, SuffixReplicas, SuffixSharingStrategy,
	SuffixFamily, SuffixComputeMajor, SuffixComputeMinor,
	SuffixMultiprocessors, SuffixSlicesGI, SuffixSlicesCI,
	SuffixEnginesCopy, SuffixEnginesDecoder, SuffixEnginesEncoder, SuffixEnginesJPEG, SuffixEnginesOFA,
}

// FixedKeys are the label keys GFD may write whose name does not depend on
// the node: every key but the mixed strategy's nvidia.com/mig-<profile>.*.
func FixedKeys() []string {
	keys := []string{
		LabelDriverMajor, LabelDriverMinor, LabelDriverRev, LabelRuntimeMajor, LabelRuntimeMinor,
		LabelDriverVersionMajor, LabelDriverVersionMinor, LabelDriverVersionRev, LabelDriverVersionFull,
		LabelRuntimeVersionMajor, LabelRuntimeVersionMinor, LabelRuntimeVersionFull,
		LabelTimestamp, LabelMachine, LabelMode, LabelClique,
		LabelMIGCapable, LabelMIGStrategy, LabelMPSCapable,
		LabelVGPUPresent, LabelVGPUHostDriver, LabelVGPUHostBranch,
	}
	for _, s := range gpuSuffixes {
		keys = append(keys, ResourceGPU+"."+s)
	}
	return keys
}

// MIGKeyPattern matches the mixed strategy's per-profile keys,
// nvidia.com/mig-<profile>.<suffix> (a profile's '+' is written '.'). The
// ValidatingAdmissionPolicy in manifests/ allows the same pattern.
var MIGKeyPattern = regexp.MustCompile(`^nvidia\.com/mig-[0-9a-z.-]+\.(product|count|memory|replicas|sharing-strategy|multiprocessors|slices\.gi|slices\.ci|engines\.(copy|decoder|encoder|jpeg|ofa))$`)

// IsLabel reports whether key is one GFD writes: gpupack owns these keys
// when it publishes GFD's labels.
func IsLabel(key string) bool {
	return slices.Contains(FixedKeys(), key) || MIGKeyPattern.MatchString(key)
}
