#!/usr/bin/env bash
# Builds the control-plane binaries gpupack's end-to-end tests and demo run
# against: etcd, kube-apiserver (stamped with its release version, as
# Kubernetes builds it) and kwok, and helm (the chart's lint, template
# and dry-run tests), from the Go module proxy, once, cached under .cache/bin
# (ignored by git). A cold build takes ~15 minutes on 2 cores.
#
# Usage: hack/cluster/build.sh [etcd|kube-apiserver|kwok|helm ...]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache="${GPUPACK_CACHE:-$root/.cache}"
bin="$cache/bin"
export GOTOOLCHAIN=local
mkdir -p "$bin" "$cache/build"

ETCD_VERSION=v3.7.3
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
K8S_VERSION=$(cd "$root" && go list -m -f '{{.Version}}' k8s.io/kubernetes)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# stamp NAME VERSION: true when bin/NAME was built from VERSION.
stamp_ok() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }

# kube_ldflags VERSION: the version stamp of a Kubernetes release build, as
# Kubernetes' hack/lib/version.sh (kube::version::ldflags) passes it: -X of
# gitVersion, gitMajor, gitMinor (with "+" after a pre-release), gitTreeState
# and buildDate in k8s.io/component-base/version (what /version and
# --version report) and k8s.io/client-go/pkg/version. Unstamped, the
# apiserver reports v0.0.0-master and helm cannot check a chart's kubeVersion
# against it. The source is the module proxy's zip of the tag: no git tree,
# so gitCommit stays unset and the tree state is "archive" (version.sh's word
# for a tree exported without git), and buildDate is the tag's time (as
# SOURCE_DATE_EPOCH would give it), so the flags, and the cache key made of
# them, do not change from one build to the next.
kube_ldflags() {
	local version=$1 major minor date flags="" key pkg
	if ! [[ $version =~ ^v([0-9]+)\.([0-9]+)(\.[0-9]+)?([-].*)?([+].*)?$ ]]; then
		log "k8s.io/kubernetes $version: not a Kubernetes release version" && return 1
	fi
	major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
	[ -z "${BASH_REMATCH[4]}" ] || minor+="+"
	date=$(cd "$root" && go list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes 2>/dev/null) || date=""
	[ -n "$date" ] || date=1970-01-01T00:00:00Z
	for key in "gitVersion=$version" "gitMajor=$major" "gitMinor=$minor" gitTreeState=archive "buildDate=$date"; do
		for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
			flags+="${flags:+ }-X $pkg.$key"
		done
	done
	echo "$flags"
}

# build_in_module NAME VERSION PACKAGE: a throw-away module of ours requiring
# PACKAGE@VERSION, because `go install` refuses modules with replaces.
build_in_module() {
	local name=$1 version=$2 pkg=$3 dir="$cache/build/$1"
	rm -rf "$dir" && mkdir -p "$dir"
	(
		cd "$dir"
		go mod init "gpupack.local/build/$name" >/dev/null 2>&1
		# k8s.io/kubernetes pins its staging modules at v0.0.0: reuse our replaces.
		if [ "$name" = kube-apiserver ]; then
			sed -n '/^replace (/,/^)/p' "$root/go.mod" >>go.mod
		fi
		go get "$pkg@$version" >/dev/null 2>&1
		local ldflags=""
		if [ "$name" = kube-apiserver ]; then
			ldflags=$KUBE_LDFLAGS
		fi
		if [ "$name" = helm ]; then
			# As helm's release builds: its version, and the Kubernetes
			# version of its client libraries as the default for templates
			# and lint (else v1.20, older than the chart's kubeVersion).
			local k8s minor
			k8s=$(go list -m -f '{{.Version}}' k8s.io/client-go)
			minor=$(echo "$k8s" | cut -d. -f2)
			ldflags="-X helm.sh/helm/v3/internal/version.version=$version"
			for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
				ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
			done
		fi
		go build -ldflags "$ldflags" -o "$bin/$name" "$pkg"
	)
}

build_one() {
	local name=$1 version start
	case "$name" in
	etcd) version=$ETCD_VERSION ;;
	kwok) version=$KWOK_VERSION ;;
	# Keyed on the version stamp too: a binary cached before the stamp (or
	# with another one) is rebuilt.
	kube-apiserver)
		KUBE_LDFLAGS=$(kube_ldflags "$K8S_VERSION") || return 2
		version=$K8S_VERSION+ldflags.$(printf %s "$KUBE_LDFLAGS" | sha256sum | cut -c1-12)
		;;
	helm) version=$HELM_VERSION+k8s-defaults ;;
	*) log "unknown binary $name" && return 2 ;;
	esac
	if stamp_ok "$name" "$version"; then
		log "$name $version: cached"
		if [ "$name" = kwok ] && [ ! -s "$bin/kwok-stages.yaml" ]; then kwok_stages; fi
		return 0
	fi
	start=$(date +%s)
	log "$name $version: building (this can take minutes)..."
	case "$name" in
	etcd) build_in_module etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ;;
	kwok) build_in_module kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
	kube-apiserver) build_in_module kube-apiserver "$K8S_VERSION" k8s.io/kubernetes/cmd/kube-apiserver ;;
	helm) build_in_module helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
	esac
	if [ "$name" = kwok ]; then kwok_stages; fi
	# -X of a symbol that does not exist is silently ignored: check the stamp.
	if [ "$name" = kube-apiserver ] && [ "$("$bin/kube-apiserver" --version)" != "Kubernetes $K8S_VERSION" ]; then
		log "kube-apiserver reports $("$bin/kube-apiserver" --version), want Kubernetes $K8S_VERSION: the version stamp did not take"
		return 1
	fi
	echo "$version" >"$bin/.$name.version"
	log "$name $version: built in $(($(date +%s) - start))s"
}

# kwok v0.8.0 ships no built-in stages: gather node (ready, heartbeat) and pod
# (ready, complete, delete) stages from its module into one --config file.
kwok_stages() {
	local dir
	dir="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
	: >"$bin/kwok-stages.yaml"
	for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		printf -- '---\n' >>"$bin/kwok-stages.yaml"
		cat "$dir/$f" >>"$bin/kwok-stages.yaml"
	done
}

# Progress for the long build: a line every 30 s while compiling.
progress() {
	while sleep 30; do log "still building..."; done
}

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(etcd kwok kube-apiserver helm)
progress &
progress_pid=$!
trap 'kill "$progress_pid" 2>/dev/null || true' EXIT
for t in "${targets[@]}"; do
	build_one "$t"
done
