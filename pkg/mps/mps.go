// Package mps runs NVIDIA's MPS control daemon (nvidia-cuda-mps-control),
// one per GPU shared with MPS, as NVIDIA's mps-control-daemon does: the
// daemon's pipe and log directories live under the MPS root, it sees only
// its GPU (CUDA_VISIBLE_DEVICES), and each client gets 1/replicas of the
// GPU's threads and memory (set_default_active_thread_percentage and
// set_default_device_pinned_mem_limit). A Runner starts the daemons, checks
// them, reports each GPU's daemon health, restarts a dead daemon with
// backoff, and quits them all when stopped.
//
// The binary's path, the MPS root and the clock are constructor arguments:
// tests run a fake binary (package mpstest) under t.TempDir().
package mps

import (
	"fmt"
	"path/filepath"
)

// DefaultBinary is the MPS control program, looked up in PATH.
const DefaultBinary = "nvidia-cuda-mps-control"

// ContainerRoot is where a client container sees the MPS root (NVIDIA's
// plugin mounts its pipe directories under /mps too).
const ContainerRoot = Root("/mps")

// ShmContainerPath is the client container's shared memory: the MPS
// server and its clients exchange data through /dev/shm, so the client's
// /dev/shm is the MPS root's shm directory, as in NVIDIA's plugin.
const ShmContainerPath = "/dev/shm"

// pidFile is the file the control daemon writes in its pipe directory.
const pidFile = "nvidia-cuda-mps-control.pid"

// Root is an MPS root: the directory holding one pipe and one log
// directory per GPU, and the shm directory the servers and clients share.
type Root string

// PipeDir is the daemon's pipe directory for the GPU uuid
// (CUDA_MPS_PIPE_DIRECTORY).
func (r Root) PipeDir(uuid string) string { return filepath.Join(string(r), uuid, "pipe") }

// LogDir is the daemon's log directory for the GPU uuid
// (CUDA_MPS_LOG_DIRECTORY).
func (r Root) LogDir(uuid string) string { return filepath.Join(string(r), uuid, "log") }

// ShmDir is the shared-memory directory of every daemon under r.
func (r Root) ShmDir() string { return filepath.Join(string(r), "shm") }

// GPU is one GPU shared with MPS.
type GPU struct {
	Index     int
	UUID      string
	MemoryMiB uint64
	// Replicas is how many MPS clients share the GPU (at least 2).
	Replicas int
}

// ThreadPercentage is each client's default active thread percentage:
// 100/replicas, rounded down (NVIDIA's rule).
func (g GPU) ThreadPercentage() int { return 100 / g.Replicas }

// PinnedMemLimitMiB is each client's default pinned device memory: the
// GPU's memory divided by the replicas, in MiB rounded down; 0 when the
// memory is unknown (then no limit is set, as in NVIDIA's daemon).
func (g GPU) PinnedMemLimitMiB() uint64 { return g.MemoryMiB / uint64(g.Replicas) }

// commands are what the runner sends a freshly started daemon, in order.
func (g GPU) commands() []string {
	var out []string
	if limit := g.PinnedMemLimitMiB(); limit > 0 {
		out = append(out, fmt.Sprintf("set_default_device_pinned_mem_limit %s %dM", g.UUID, limit))
	}
	return append(out, fmt.Sprintf("set_default_active_thread_percentage %d", g.ThreadPercentage()))
}
