// Package mpstest writes a fake nvidia-cuda-mps-control for tests: a shell
// script that behaves as the real control program does for the commands
// gpupack sends (-d starts a background daemon that writes its PID in the
// pipe directory; a command on stdin is answered by that daemon, or fails
// when none runs) and records every invocation.
package mpstest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// script is the fake control program; @DIR@ is the fake's directory. A
// daemon is a background sleep; a zombie counts as dead (the test's PID 1
// may not reap it). Each line of the record is "<CUDA_VISIBLE_DEVICES>:
// <invocation>".
const script = `#!/bin/sh
dir='@DIR@'
gpu="${CUDA_VISIBLE_DEVICES:-all}"
pipe="${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}"
pidf="$pipe/nvidia-cuda-mps-control.pid"
alive() {
	[ -f "$pidf" ] || return 1
	st=$(cat "/proc/$(cat "$pidf")/stat" 2>/dev/null) || return 1
	case "$st" in ""|*") Z "*) return 1;; esac
	return 0
}
if [ "$1" = "-d" ]; then
	if [ -e "$dir/fail-start-$gpu" ]; then
		echo "$gpu: -d pipe=$pipe log=$CUDA_MPS_LOG_DIRECTORY (failed)" >> "$dir/record"
		echo "fake: cannot start the MPS control daemon" >&2
		exit 1
	fi
	echo "$gpu: -d pipe=$pipe log=$CUDA_MPS_LOG_DIRECTORY" >> "$dir/record"
	if alive; then echo "An instance of this daemon is already running" >&2; exit 1; fi
	rm -f "$pipe/atp"
	sleep 1000000 </dev/null >/dev/null 2>&1 &
	echo $! > "$pidf"
	echo $! >> "$dir/pids"
	exit 0
fi
read -r cmd
echo "$gpu: $cmd" >> "$dir/record"
if ! alive; then echo "Cannot find MPS control daemon process" >&2; exit 1; fi
case "$cmd" in
quit) kill "$(cat "$pidf")"; rm -f "$pidf" ;;
"set_default_active_thread_percentage "*) echo "${cmd#* }" > "$pipe/atp" ;;
get_default_active_thread_percentage) if [ -f "$pipe/atp" ]; then echo "$(cat "$pipe/atp").0"; else echo "100.0"; fi ;;
"set_default_device_pinned_mem_limit "*) ;;
*) echo "Unrecognized command: $cmd"; exit 1 ;;
esac
`

// Fake is a fake MPS control program in a test's temporary directory.
type Fake struct {
	// Binary is the program's path.
	Binary string
	dir    string
}

// New writes the fake into t.TempDir(); the daemons it starts are killed
// when the test ends.
func New(t testing.TB) *Fake {
	t.Helper()
	dir := t.TempDir()
	f := &Fake{Binary: filepath.Join(dir, "nvidia-cuda-mps-control"), dir: dir}
	require.NoError(t, os.WriteFile(f.Binary, []byte(strings.ReplaceAll(script, "@DIR@", dir)), 0o755))
	t.Cleanup(func() {
		b, _ := os.ReadFile(filepath.Join(dir, "pids"))
		for _, l := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(l); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL) // only the daemons this fake started
			}
		}
	})
	return f
}

// Record is every invocation so far, one "<GPU>: <invocation>" line each;
// a start that FailStarts made fail ends in " (failed)".
func (f *Fake) Record(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "record"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// RecordOf is the invocations for one GPU, without the GPU prefix.
func (f *Fake) RecordOf(t testing.TB, uuid string) []string {
	t.Helper()
	var out []string
	for _, l := range f.Record(t) {
		if rest, ok := strings.CutPrefix(l, uuid+": "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// Crash kills the daemon whose PID file is pidFile (SIGKILL, as a crash).
func (f *Fake) Crash(t testing.TB, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err, "no daemon running")
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
}

// FailStarts makes "-d" fail for the GPU uuid (on) or work again (off).
func (f *Fake) FailStarts(t testing.TB, uuid string, on bool) {
	t.Helper()
	p := filepath.Join(f.dir, "fail-start-"+uuid)
	if on {
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		return
	}
	require.NoError(t, os.Remove(p))
}
