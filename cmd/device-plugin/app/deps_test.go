package app

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A binary that imports Go's plugin package is linked with BIND_NOW, so
// go-nvml's lazily bound NVML symbols would have to resolve at load and the
// device plugin would die on a node without the driver instead of reporting
// ErrLibraryNotFound. No dependency may bring plugin in.
func TestDevicePluginDoesNotImportPlugin(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/gpupack/gpupack/cmd/device-plugin").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/NVIDIA/go-nvml/pkg/nvml", "the check must see the real dependency list")
	require.False(t, slices.Contains(deps, "plugin"), "cmd/device-plugin depends on Go's plugin package")
}
