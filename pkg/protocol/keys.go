package protocol

// Every annotation and label key gpupack reads or writes, and the one size
// cap of a payload (DESIGN.md section 4). No other package spells a
// gpupack.io/ key or a node label key.

// Node annotations, written by the device plugin, read by the scheduler.
const (
	// TopologyAnnotation carries the node's GPUs, links, MIG devices,
	// replicas, health, clique, resource table and a generation
	// (EncodeTopology, DecodeTopology).
	TopologyAnnotation = "gpupack.io/topology"
	// InUseAnnotation carries the device IDs in use on the node and by which
	// pod, from the kubelet's PodResources (EncodeInUse, DecodeInUse).
	InUseAnnotation = "gpupack.io/in-use"
)

// Pod annotations.
const (
	// DevicesAnnotation carries the scheduler's device choice: resource ->
	// device IDs, pod-level and per container (EncodeDevices,
	// DecodeDevices). Written by the scheduler's Bind in the Binding.
	DevicesAnnotation = "gpupack.io/devices"
	// AssumedAtAnnotation is when the scheduler chose the devices (RFC 3339
	// with nanoseconds; FormatAssumedAt, ParseAssumedAt).
	AssumedAtAnnotation = "gpupack.io/assumed-at"
	// TopologyHintAnnotation is the pod's wish about its GPU set's link
	// quality: required, preferred (the default) or none (TopologyHint).
	// The same key as TopologyAnnotation, on a pod.
	TopologyHintAnnotation = "gpupack.io/topology"
	// ReplicaPolicyAnnotation is where a pod wants the replicas of its
	// time-shared requests: packed (all on one GPU, a share r/R of it) or
	// spread (r distinct GPUs). Without it a pod gets the policy the node
	// publishes for the resource (ReplicaPolicyOf).
	ReplicaPolicyAnnotation = "gpupack.io/replica-policy"
)

// RequestsSignature keys the scheduler plugin's pod signature fragment
// (the pod's GPU requests and hint; KEP-5598).
const RequestsSignature = "gpupack.io/requests"

// Node labels the device plugin writes: GFD's keys (and values) where GFD
// has one, so that a GFD running beside gpupack means the same.
const (
	LabelProduct    = "nvidia.com/gpu.product"
	LabelCount      = "nvidia.com/gpu.count"
	LabelMemory     = "nvidia.com/gpu.memory"
	LabelMIGCapable = "nvidia.com/mig.capable"
	LabelClique     = "nvidia.com/gpu.clique"
	// LabelNVLink is gpupack's own: none, pairs, mesh or switch.
	LabelNVLink = "gpupack.io/nvlink"
)

// MaxPayload is the largest annotation value any decoder here accepts and
// any encoder writes: 256 KiB, the Kubernetes limit for all of an object's
// annotations together (a larger value could not be stored anyway).
const MaxPayload = 256 << 10

// MaxErrorBytes is the longest error a decoder here returns. A decoder's
// error quotes the annotation (a version, a field name, a device ID) and
// joins every problem of a node, so a value near MaxPayload made an error
// as long; it goes into a Node event (whose note the apiserver refuses
// over 1 KiB), into Filter's reason in the pod's PodScheduled condition
// (once per node that gives it) and into the logs. Longer errors are cut
// (shortError), saying how many bytes were left out.
const MaxErrorBytes = 512
