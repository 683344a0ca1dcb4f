//go:build tools

// Package hack pins modules that gpupack's tests and tools build from the
// module proxy, so `go mod tidy` keeps them.
package hack

import (
	_ "github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	_ "github.com/stretchr/testify/require"
	_ "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	_ "k8s.io/kubelet/pkg/apis/podresources/v1"
	_ "k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	_ "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	_ "sigs.k8s.io/logtools/logcheck"
)
