package deviceplugin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestRunStopsStartedPluginsWhenOneFails: when a plugin cannot start (its
// socket cannot be listened on), Run returns the error with every plugin
// it started before stopped: no server of this Run is left serving (and
// registered with a kubelet) while the caller starts over. Before, the
// servers started before the failing one were left running.
func TestRunStopsStartedPluginsWhenOneFails(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	// GPU 0 is time-shared under its own name: two resources, two plugins.
	cfg, err := configv1.Parse([]byte(`version: v1
sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0]}]}}`))
	require.NoError(t, err)
	dir := t.TempDir()
	mgr, err := New(Options{Lib: m.Lib(t), Config: cfg, PluginDir: dir})
	require.NoError(t, err)
	require.Len(t, mgr.plugins, 2)
	last := mgr.plugins[1]
	// A non-empty directory where the last plugin's first socket goes.
	block := socketPath(dir, last.resource.Name, last.instance, 1)
	require.NoError(t, os.MkdirAll(filepath.Join(block, "x"), 0o700))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = mgr.Run(ctx)
	require.ErrorContains(t, err, "serving "+last.Name())
	for _, p := range mgr.plugins {
		require.Empty(t, p.Socket(), "%s stopped", p.Name())
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotEqual(t, os.ModeSocket, e.Type()&os.ModeSocket, "no socket left: %s", e.Name())
	}
}
