#!/usr/bin/env bash
# Regenerates the deep copies and conversions of the scheduler plugin's args
# (pkg/scheduler/apis/config and its v1) with k8s.io/code-generator, at the
# version of the module's k8s.io staging libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(go list -m -f '{{.Version}}' k8s.io/apimachinery)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin GOFLAGS= go install "k8s.io/code-generator/cmd/deepcopy-gen@$version" "k8s.io/code-generator/cmd/conversion-gen@$version"
"$bin/deepcopy-gen" --go-header-file hack/boilerplate.go.txt --output-file zz_generated.deepcopy.go \
	./pkg/scheduler/apis/config ./pkg/scheduler/apis/config/v1
"$bin/conversion-gen" --go-header-file hack/boilerplate.go.txt --output-file zz_generated.conversion.go \
	./pkg/scheduler/apis/config/v1
