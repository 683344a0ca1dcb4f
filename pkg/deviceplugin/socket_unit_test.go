package deviceplugin

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSocketNameIsPerServe: every Serve of every plugin process gets a
// socket path of its own, so that the kubelet never sees a registration on
// a path it still holds for a server that has gone (socketName).
func TestSocketNameIsPerServe(t *testing.T) {
	a, b := newInstanceID(), newInstanceID()
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{8}$`), a)
	require.NotEqual(t, a, b, "two processes (or plugins) draw different instances")
	tests := []struct {
		resource, instance string
		gen                uint64
		want               string
	}{
		{"nvidia.com/gpu", "3f9a1c2e", 1, "gpupack-nvidia_com-gpu-3f9a1c2e-1.sock"},
		{"nvidia.com/gpu", "3f9a1c2e", 2, "gpupack-nvidia_com-gpu-3f9a1c2e-2.sock"},
		{"nvidia.com/gpu", "00000001", 1, "gpupack-nvidia_com-gpu-00000001-1.sock"},
		{"nvidia.com/mig-1g.5gb", "3f9a1c2e", 7, "gpupack-nvidia_com-mig-1g_5gb-3f9a1c2e-7.sock"},
		{"nvidia.com/gpu.shared", "3f9a1c2e", 1, "gpupack-nvidia_com-gpu_shared-3f9a1c2e-1.sock"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := socketName(tt.resource, tt.instance, tt.gen)
		require.Equal(t, tt.want, got)
		require.False(t, seen[got], "names are unique per (resource, instance, generation)")
		seen[got] = true
	}
}

// TestRemoveStaleSockets: at start the plugin removes the sockets an
// earlier gpupack process left (nothing listens on them), and keeps a live
// gpupack server's (another process still serving), other vendors' sockets and
// files that are not sockets.
func TestRemoveStaleSockets(t *testing.T) {
	dir, err := os.MkdirTemp("", "gp-stale-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	// listen serves a unix socket at name; stale ones are closed with
	// their file left behind, as a killed process leaves them.
	listen := func(name string, stale bool) string {
		path := filepath.Join(dir, name)
		l, err := net.Listen("unix", path)
		require.NoError(t, err)
		if stale {
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			require.NoError(t, l.Close())
		} else {
			t.Cleanup(func() { _ = l.Close() })
		}
		return path
	}
	staleOld := listen("gpupack-nvidia_com-gpu.sock", true) // a build before per-Serve names
	staleNew := listen("gpupack-nvidia_com-gpu-0badc0de-3.sock", true)
	live := listen("gpupack-nvidia_com-gpu-0feedbee-1.sock", false)
	otherVendor := listen("nvidia-gpu.sock", true)
	kubelet := listen("kubelet.sock", true)
	notSocket := filepath.Join(dir, "gpupack-notes.sock")
	require.NoError(t, os.WriteFile(notSocket, []byte("x"), 0o600))

	removed, err := removeStaleSockets(dir)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{staleOld, staleNew}, removed)
	for _, gone := range []string{staleOld, staleNew} {
		_, err := os.Lstat(gone)
		require.ErrorIs(t, err, os.ErrNotExist, gone)
	}
	for _, kept := range []string{live, otherVendor, kubelet, notSocket} {
		_, err := os.Lstat(kept)
		require.NoError(t, err, kept)
	}

	// Nothing left to remove; a directory that is not there is no error.
	removed, err = removeStaleSockets(dir)
	require.NoError(t, err)
	require.Empty(t, removed)
	removed, err = removeStaleSockets(filepath.Join(dir, "missing"))
	require.NoError(t, err)
	require.Empty(t, removed)
}

// TestSocketPathFitsAUnixAddress: a resource name too long for a unix
// socket address in the directory (107 bytes on Linux) is replaced by a
// hash in the name, and the plugin can still listen there; distinct
// resources keep distinct paths.
func TestSocketPathFitsAUnixAddress(t *testing.T) {
	dir, err := os.MkdirTemp("", "gp-path-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	long := "example.com/" + strings.Repeat("a", 63) // a valid extended resource name
	longer := "example.com/" + strings.Repeat("b", 63)
	tests := []struct {
		name, resource string
		hashed         bool
	}{
		{"short name as it is", "nvidia.com/gpu", false},
		{"long name hashed", long, true},
		{"another long name", longer, true},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := socketPath(dir, tt.resource, "3f9a1c2e", 1)
			require.LessOrEqual(t, len(path), maxSocketPath)
			require.Equal(t, tt.hashed, !strings.Contains(path, strings.NewReplacer("/", "-", ".", "_").Replace(tt.resource)))
			require.True(t, strings.HasPrefix(filepath.Base(path), socketPrefix))
			require.False(t, seen[path])
			seen[path] = true
			l, err := net.Listen("unix", path)
			require.NoError(t, err)
			require.NoError(t, l.Close())
		})
	}
	// The unhashed path of the long name would not fit:
	// len(dir) + 1 + len("gpupack-example_com-" + 63 x "a" + "-3f9a1c2e-1.sock") > 107.
	require.Greater(t, len(filepath.Join(dir, socketName(long, "3f9a1c2e", 1))), maxSocketPath)
}
