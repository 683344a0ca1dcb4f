#!/bin/bash
# Real-GPU smoke test from a bundle built by `make gpu-smoke-bundle` (for a GPU
# machine without a Go toolchain): NVML discovery and a health watch, the
# device plugin served to the in-process kubelet device manager under four
# configs (MIG strategies none/mixed, time-slicing x4, cdi-cri with the spec
# validated by the CDI library) with one allocation each, the binary's
# --print-topology/--print-labels, and (GPUPACK_REAL_MPS=1) one real MPS
# control daemon under a temporary root. Read-only: it never changes MIG mode
# or resets a GPU. Logs go to $OUT (default ./gpu-smoke-out); the exit status
# is the number of failed steps.
#
#   GPUPACK_DRIVER_ROOT=/usr/local/nvidia ./smoke.sh   # where the driver's files are, if not under /
cd "$(dirname "$0")" || exit 1
out=${OUT:-$PWD/gpu-smoke-out}
mkdir -p "$out"
for f in *.xz; do [ -e "$f" ] && xz -d "$f"; done
export PATH=$PATH:/usr/local/nvidia/bin LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64
failed=0
step() { # step NAME CMD...: run, log to $out/NAME.log, count a failure
	local name=$1; shift
	echo "== $name"
	timeout 180 "$@" >"$out/$name.log" 2>&1
	local rc=$?
	grep -E '^(--- |PASS|FAIL|ok)|allocated|CDI devices|capacity' "$out/$name.log" | tail -20
	# A skipped real-GPU test checked nothing: on the machine this script is
	# for, that is a failure (no driver found), not a pass.
	if [ $rc -eq 0 ] && grep -q -e '--- SKIP' "$out/$name.log"; then
		grep -E -e '--- SKIP' -B1 "$out/$name.log" | tail -4
		rc=skipped
	fi
	[ $rc = 124 ] && echo "$name: timed out after 180s"
	echo "$name rc=$rc"
	if [ "$rc" != 0 ]; then
		[ "$rc" = skipped ] || tail -3 "$out/$name.log" | cut -c1-400
		failed=$((failed + 1))
	fi
}
{ nvidia-smi; nvidia-smi topo -m; } >"$out/nvidia-smi.log" 2>&1
step nvml ./nvml.test -test.v -test.run RealGPU
step deviceplugin ./deviceplugin.test -test.v -test.run RealGPU
step topology ./device-plugin --print-topology --mig-strategy=mixed
step labels ./device-plugin --print-labels --host-root=/
if [ "${GPUPACK_REAL_MPS:-}" = 1 ]; then
	step mps ./mps.test -test.v -test.run RealGPUMPS
fi
echo "failed steps: $failed"
exit $failed
