package app

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func TestFakeControl(t *testing.T) {
	m, err := fake.New("dgx-1-v100")
	require.NoError(t, err)
	h := fakeControlHandler(m)
	for _, tc := range []struct {
		method, url string
		code        int
		body        string
	}{
		{http.MethodPost, "/xid?gpu=3&xid=48", http.StatusOK, ""},
		{http.MethodPost, "/ecc?gpu=0&double=true", http.StatusOK, ""},
		{http.MethodPost, "/lose?gpu=7", http.StatusOK, ""},
		{http.MethodPost, "/restore?gpu=7", http.StatusOK, ""},
		// DGX-1 has GPUs 0..7: 8 is out of range.
		{http.MethodPost, "/xid?gpu=8&xid=48", http.StatusBadRequest, "want an index in [0, 8)"},
		{http.MethodPost, "/xid?gpu=-1&xid=48", http.StatusBadRequest, "want an index"},
		{http.MethodPost, "/xid?gpu=one&xid=48", http.StatusBadRequest, "want an index"},
		{http.MethodPost, "/xid?gpu=1&xid=", http.StatusBadRequest, "xid: want a number"},
		{http.MethodPost, "/ecc?gpu=1&double=maybe", http.StatusBadRequest, "double: want true or false"},
		{http.MethodGet, "/xid?gpu=1&xid=48", http.StatusMethodNotAllowed, ""},
		{http.MethodPost, "/reset?gpu=1", http.StatusOK, ""},
		{http.MethodPost, "/reset?gpu=8", http.StatusBadRequest, "want an index in [0, 8)"},
		{http.MethodPost, "/reset?gpu=-1", http.StatusBadRequest, "want an index"},
		{http.MethodPost, "/reset", http.StatusBadRequest, "want an index"},
		{http.MethodGet, "/reset?gpu=1", http.StatusMethodNotAllowed, ""},
		// A DGX-1's V100s retire pages; they have no row remapping.
		{http.MethodPost, "/retire-pending?gpu=2", http.StatusOK, ""},
		{http.MethodPost, "/retire-pending?gpu=9", http.StatusBadRequest, "want an index"},
		{http.MethodPost, "/remap-pending?gpu=2", http.StatusBadRequest, "does not remap rows"},
		{http.MethodPost, "/remap-failure?gpu=2", http.StatusBadRequest, "does not remap rows"},
		{http.MethodPost, "/unknown?gpu=1", http.StatusNotFound, ""},
	} {
		t.Run(tc.method+tc.url, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.body)
		})
	}
}

// An injected XID reaches what the plugin's health watcher reads: NVML's
// event set.
func TestFakeControlXIDReachesNVML(t *testing.T) {
	m, err := fake.New("dgx-1-v100")
	require.NoError(t, err)
	lib := m.Lib(t)
	inv, err := lib.Discover()
	require.NoError(t, err)
	uuids := make([]string, len(inv.GPUs))
	for i, g := range inv.GPUs {
		uuids[i] = g.UUID
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, err := lib.WatchEvents(ctx, uuids)
	require.NoError(t, err)

	rec := httptest.NewRecorder()
	fakeControlHandler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/xid?gpu=5&xid=79", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	select {
	case ev := <-events:
		require.Equal(t, inv.GPUs[5].UUID, ev.UUID)
		require.Equal(t, uint64(79), ev.XID)
	case <-time.After(10 * time.Second):
		t.Fatal("no event from NVML")
	}
}

// What the memory-fault endpoints and /reset set is what the plugin's
// recovery check reads: a double-bit /ecc or /remap-pending leaves the GPU
// needing a reset until /reset; /remap-failure needs service, /reset or not.
func TestFakeControlResetReachesNVML(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	lib := m.Lib(t)
	h := fakeControlHandler(m)
	post := func(url string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, url, nil))
		require.Equal(t, http.StatusOK, rec.Code, "%s: %s", url, rec.Body.String())
	}
	post("/ecc?gpu=3&double=true")
	require.ErrorIs(t, lib.CheckGPU(m.UUID(3)), nvml.ErrResetRequired)
	post("/reset?gpu=3")
	require.NoError(t, lib.CheckGPU(m.UUID(3)))

	post("/remap-pending?gpu=4")
	require.ErrorIs(t, lib.CheckGPU(m.UUID(4)), nvml.ErrResetRequired)
	post("/reset?gpu=4")
	require.NoError(t, lib.CheckGPU(m.UUID(4)))

	post("/remap-failure?gpu=5")
	require.ErrorIs(t, lib.CheckGPU(m.UUID(5)), nvml.ErrNeedsService)
	post("/reset?gpu=5")
	require.ErrorIs(t, lib.CheckGPU(m.UUID(5)), nvml.ErrNeedsService)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/retire-pending?gpu=1", nil))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "does not retire pages")
}

func TestFakeControlNeedsFake(t *testing.T) {
	o := &options{fakeControl: "/tmp/x.sock"}
	_, _, err := o.lib(klog.Background())
	require.ErrorContains(t, err, "--fake-control needs --fake")
}

// --fake-control replaces a stale socket, and removes nothing else: a
// regular file, a directory or a link at the path is an error and stays.
func TestListenFakeControlRemovesOnlyASocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "gpfc-") // short: unix socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	// A stale socket (left by a killed plugin) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	require.NoError(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	l, err = listenFakeControl(stale)
	require.NoError(t, err)
	require.NoError(t, l.Close())

	// Nothing there: created.
	l, err = listenFakeControl(filepath.Join(dir, "new.sock"))
	require.NoError(t, err)
	require.NoError(t, l.Close())

	file := filepath.Join(dir, "precious.txt")
	require.NoError(t, os.WriteFile(file, []byte("keep me"), 0o600))
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o700))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(file, link))
	for path, kind := range map[string]string{file: "regular file", sub: "directory", link: "symbolic link"} {
		_, err := listenFakeControl(path)
		require.ErrorContains(t, err, "a "+kind+" is there, not a socket", path)
		_, err = os.Lstat(path)
		require.NoError(t, err, "%s must still be there", path)
	}
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "keep me", string(b))
}
