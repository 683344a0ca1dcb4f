# gpupack — build, test and demo entry points.
#
# Keep build flags identical across build, test and vet: the build cache is
# only shared between commands that use the same flags.

SHELL := /usr/bin/env bash
GO ?= go
export GOTOOLCHAIN := local
export CGO_ENABLED ?= 1

BIN := bin
# Semantic version stamped into every binary (pkg/version): the nearest v* tag,
# else the CHANGELOG's upcoming release with a -dev suffix.
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo v0.1.0-dev)
GIT_COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/gpupack/gpupack/pkg/version
LDFLAGS := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).gitCommit=$(GIT_COMMIT) -X $(VERSION_PKG).buildDate=$(BUILD_DATE)
CLUSTER_BIN := $(CURDIR)/.cache/bin
PKGS := ./...
FAKE_MACHINES := dgx-a100 dgx-h100 dgx-1-v100 pcie-4gpu-2socket a100-pcie-8gpu-nvbridge nvswitch-16gpu gb200-4gpu

.PHONY: all build codegen images lint-dockerfiles test cluster-bins chart verify fmt vet logcheck demo topology bench fuzz gpu-smoke gpu-smoke-bundle bench-throughput clean

all: build

## build: every program under cmd/ into bin/: device-plugin, scheduler-plugin,
## gpusim and kubectl-gpupack (the kubectl plugin: put it on PATH).
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## test: everything CI runs: unit, integration, fuzz-corpus and end-to-end
## tests. The control-plane binaries are built once and cached (~15 min cold);
## when they cannot be built the end-to-end tests skip and say why.
test: cluster-bins lint-dockerfiles
	GPUPACK_BIN=$(CLUSTER_BIN) $(GO) test -count=1 $(PKGS)

## lint-dockerfiles: BuildKit's parser and `docker build --check` rules over
## both Dockerfiles, plus the multi-arch rules (build stage on $$BUILDPLATFORM,
## TARGETARCH declared, base images pinned). Its own module under hack/tools,
## so BuildKit stays out of go.mod; no container runtime needed.
lint-dockerfiles:
	cd hack/tools/dockerfile-lint && $(GO) run . ../../../Dockerfile.plugin ../../../Dockerfile.scheduler

## images: multi-arch (amd64, arm64) images of both programs, tagged $(VERSION),
## with docker buildx (not needed for anything else here). PUSH=1 pushes.
IMAGE_REGISTRY ?= ghcr.io/gpupack
PLATFORMS ?= linux/amd64,linux/arm64
images:
	@command -v docker >/dev/null || { echo "make images needs docker with buildx"; exit 1; }
	for c in device-plugin:Dockerfile.plugin scheduler-plugin:Dockerfile.scheduler; do \
		docker buildx build --platform $(PLATFORMS) -f $${c#*:} \
			--build-arg VERSION=$(VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) \
			-t $(IMAGE_REGISTRY)/$${c%%:*}:$(VERSION) $(if $(PUSH),--push,) . || exit 1; \
	done

## codegen: regenerate the scheduler args' deep copies and conversions
## (k8s.io/code-generator at the module's k8s.io version).
codegen:
	hack/update-codegen.sh

## cluster-bins: etcd, kube-apiserver, kwok and helm under .cache/bin.
cluster-bins:
	@hack/cluster/build.sh || echo "WARNING: control-plane binaries could not be built; end-to-end tests will skip"

## chart: helm lint and the default render of charts/gpupack (make test also
## checks it against manifests/ and on a real apiserver: test/manifests).
chart:
	@hack/cluster/build.sh helm
	$(CLUSTER_BIN)/helm lint --strict charts/gpupack
	$(CLUSTER_BIN)/helm template gpupack charts/gpupack --namespace gpupack-system

## verify: formatting, vet and the structured-logging check.
verify: fmt vet logcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

logcheck:
	$(GO) run sigs.k8s.io/logtools/logcheck -config hack/logcheck.conf -check-structured -check-contextual -check-parameters $(PKGS)

## demo: a real control plane with two pools of fake GPU nodes (kubelet
## device manager + our device plugin each), our scheduler with the
## manifests' config and the default profile, one mixed workload per pool,
## and the side-by-side placement report. Stops everything it started.
demo: cluster-bins build
	$(GO) run ./test/demo --bin-dir=$(CLUSTER_BIN) --scheduler-bin=$(BIN)/scheduler-plugin --plugin-bin=$(BIN)/device-plugin

## topology: the GPU map of every fake machine in the catalog.

topology:
	@for m in $(FAKE_MACHINES); do \
		echo "=== $$m ==="; \
		$(GO) run ./cmd/device-plugin --fake=$$m --print-topology || exit 1; \
		echo; \
	done

## bench: micro-benchmarks (best-set search, score, decode, allocate).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./pkg/...

## bench-throughput: scheduling throughput on a real apiserver, gpupack vs default.
bench-throughput: cluster-bins
	$(GO) run ./test/throughput --bin-dir=$(CLUSTER_BIN) --nodes=1000,5000 --pods=2000 --rounds=2

## fuzz: one minute of fuzzing on the annotation decoder.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeTopology$$' -fuzztime=60s ./pkg/protocol/

## gpu-smoke: real-NVML checks (discovery, a health watch, the device plugin's
## resources served to the in-process kubelet); run on a machine with an NVIDIA
## GPU. Read-only: never changes MIG mode or resets a GPU.
gpu-smoke:
	$(GO) test -count=1 -tags realgpu -run RealGPU -v ./pkg/nvml/ ./pkg/deviceplugin/
	$(GO) run ./cmd/device-plugin --print-topology --mig-strategy=mixed

## gpu-smoke-bundle: the same checks as binaries in _output/gpu-smoke (for a GPU
## machine without Go: copy the folder there and run its smoke.sh; about 170 MB,
## 30 MB after `xz` of each binary, which smoke.sh unpacks itself).
gpu-smoke-bundle:
	mkdir -p _output/gpu-smoke
	$(GO) test -c -tags realgpu -ldflags="-s -w" -o _output/gpu-smoke/nvml.test ./pkg/nvml/
	$(GO) test -c -tags realgpu -ldflags="-s -w" -o _output/gpu-smoke/deviceplugin.test ./pkg/deviceplugin/
	$(GO) test -c -tags realgpu -ldflags="-s -w" -o _output/gpu-smoke/mps.test ./pkg/mps/
	$(GO) build -ldflags="-s -w" -o _output/gpu-smoke/device-plugin ./cmd/device-plugin
	cp test/gpu/smoke.sh _output/gpu-smoke/

clean:
	rm -rf $(BIN)
