package deviceplugin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/sharing"
)

// registrationGate is a kubelet's Registration service that refuses every
// registration until it is opened, as a kubelet that cannot reach the
// plugin's new socket does.
type registrationGate struct {
	pluginapi.UnimplementedRegistrationServer
	open  atomic.Bool
	calls atomic.Int32
}

func (g *registrationGate) Register(context.Context, *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	g.calls.Add(1)
	if !g.open.Load() {
		return nil, status.Error(codes.Unavailable, "cannot reach the plugin's socket")
	}
	return &pluginapi.Empty{}, nil
}

// answers reports whether a device plugin server answers on socket.
func answers(t *testing.T, socket string) bool {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = pluginapi.NewDevicePluginClient(conn).GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	return err == nil
}

// TestRefusedRegistrationKeepsPreviousServer: serving again (our socket
// was removed) while the kubelet refuses the new server's registration
// leaves the previous server serving through every retry, and stops it
// once a retry is accepted. Before, the previous server stopped after the
// first attempt whatever its answer, and the kubelet was left with no
// endpoint for the resource until a retry got through.
func TestRefusedRegistrationKeepsPreviousServer(t *testing.T) {
	dir := t.TempDir()
	gate := &registrationGate{}
	lis, err := net.Listen("unix", filepath.Join(dir, KubeletSocketName))
	require.NoError(t, err)
	kubelet := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(kubelet, gate)
	go func() { _ = kubelet.Serve(lis) }()
	t.Cleanup(kubelet.Stop)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &Plugin{resource: sharing.Resource{Name: "nvidia.com/gpu"}, instance: "0badc0de"}
	t.Cleanup(p.Stop)
	require.NoError(t, p.Serve(ctx, dir))
	prev := p.Socket()
	m := &Manager{opts: Options{PluginDir: dir}}

	require.NoError(t, m.start(ctx, p), "a refused registration is retried, not an error")
	require.NotEqual(t, prev, p.Socket())
	// calls: 1 (start's) + 2 retries (after 50 and 100 ms), all refused.
	require.Eventually(t, func() bool { return gate.calls.Load() >= 3 }, 10*time.Second, time.Millisecond)
	require.FileExists(t, prev)
	require.True(t, answers(t, prev), "the previous server serves while the new one is refused")
	require.False(t, p.RegisteredWith(filepath.Join(dir, KubeletSocketName)))

	gate.open.Store(true)
	require.Eventually(t, func() bool {
		_, err := os.Stat(prev)
		return p.RegisteredWith(filepath.Join(dir, KubeletSocketName)) && os.IsNotExist(err)
	}, 10*time.Second, time.Millisecond, "registered, and the previous server retired")
	require.False(t, answers(t, prev))
	require.True(t, answers(t, p.Socket()))
}

// fakeKubelet serves a kubelet's Registration service through gate on
// dir's kubelet.sock.
func fakeKubelet(t *testing.T, dir string, gate *registrationGate) *grpc.Server {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(dir, KubeletSocketName))
	require.NoError(t, err)
	kubelet := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(kubelet, gate)
	go func() { _ = kubelet.Serve(lis) }()
	t.Cleanup(kubelet.Stop)
	return kubelet
}

// registeredPlugin is a plugin whose first server (generation 1) the
// kubelet behind gate has registered.
func registeredPlugin(t *testing.T, dir string, gate *registrationGate) (*Plugin, *Manager, context.Context, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &Plugin{resource: sharing.Resource{Name: "nvidia.com/gpu"}, instance: "0badc0de"}
	t.Cleanup(p.Stop)
	m := &Manager{opts: Options{PluginDir: dir}}
	gate.open.Store(true)
	require.NoError(t, m.start(ctx, p))
	require.True(t, p.RegisteredWith(filepath.Join(dir, KubeletSocketName)))
	return p, m, ctx, cancel
}

// TestChainedRefusalsKeepRegisteredServer: the kubelet has registered
// generation 1; it refuses generation 2, and generation 3 replaces 2
// while refused too. Generation 1 must serve on through both (the
// kubelet's only endpoint) and stop once a registration of 3 is accepted,
// together with 2. Before, 2's retry, overtaken by 3, stopped 1 (found by
// review).
func TestChainedRefusalsKeepRegisteredServer(t *testing.T) {
	dir := t.TempDir()
	gate := &registrationGate{}
	fakeKubelet(t, dir, gate)
	p, m, ctx, _ := registeredPlugin(t, dir, gate)
	gen1 := p.Socket()
	gate.open.Store(false)
	require.NoError(t, m.start(ctx, p)) // 2: refused, retried
	gen2 := p.Socket()
	calls := gate.calls.Load()
	require.Eventually(t, func() bool { return gate.calls.Load() >= calls+1 }, 10*time.Second, time.Millisecond, "2 retried")
	require.NoError(t, m.start(ctx, p)) // 3: refused, retried; 2's retry ends
	calls = gate.calls.Load()
	// 3's retries after 50, 100 and 200 ms; 2's retry saw 3 and ended.
	require.Eventually(t, func() bool { return gate.calls.Load() >= calls+3 }, 10*time.Second, time.Millisecond, "3 retried")
	require.True(t, answers(t, gen1), "the registered server serves while newer ones are refused")

	gate.open.Store(true)
	require.Eventually(t, func() bool {
		_, err1 := os.Stat(gen1)
		_, err2 := os.Stat(gen2)
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	}, 10*time.Second, time.Millisecond, "3 registered: 1 and 2 retired")
	require.False(t, answers(t, gen1))
	require.False(t, answers(t, gen2))
	require.True(t, answers(t, p.Socket()))
}

// TestPreviousServersRetired: the previous servers held while a newer
// one's registration is refused stop when the plugin serves again with
// Serve (which replaces them at once), when a newer server is registered
// by the kubelet, or when the plugin stops.
func TestPreviousServersRetired(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, ctx context.Context, m *Manager, p *Plugin, gate *registrationGate, dir string)
	}{
		{"served again", func(t *testing.T, ctx context.Context, _ *Manager, p *Plugin, _ *registrationGate, dir string) {
			require.NoError(t, p.Serve(ctx, dir))
		}},
		{"a newer server registered", func(t *testing.T, ctx context.Context, m *Manager, p *Plugin, gate *registrationGate, _ string) {
			gate.open.Store(true)
			require.NoError(t, m.start(ctx, p))
		}},
		{"plugin stopped", func(*testing.T, context.Context, *Manager, *Plugin, *registrationGate, string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			gate := &registrationGate{}
			fakeKubelet(t, dir, gate)
			p, m, ctx, cancel := registeredPlugin(t, dir, gate)
			prev := p.Socket()
			gate.open.Store(false)
			require.NoError(t, m.start(ctx, p))
			refused := p.Socket()
			require.True(t, answers(t, prev))

			tc.end(t, ctx, m, p, gate, dir)
			if tc.name == "plugin stopped" {
				cancel()
				p.Stop()
			}
			require.Eventually(t, func() bool {
				_, err := os.Stat(prev)
				return os.IsNotExist(err)
			}, 10*time.Second, time.Millisecond, "the previous server retired")
			require.False(t, answers(t, prev))
			if tc.name != "a newer server registered" {
				require.NotEqual(t, refused, p.Socket())
			}
		})
	}
}

// TestDirectoryGoneStopsEveryServer: when the device-plugin directory is
// removed while a registration is retried (so a previous server is still
// held), serving again fails and every server of the plugin stops: the
// directory's removal event, which a bound socket in it holds back,
// arrives. Before, only the current server stopped, and the event never
// came while the kubelet kept refusing (found by review).
func TestDirectoryGoneStopsEveryServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dp")
	require.NoError(t, os.Mkdir(dir, 0o755))
	gate := &registrationGate{}
	kubelet := fakeKubelet(t, dir, gate)
	p, m, ctx, _ := registeredPlugin(t, dir, gate)
	gate.open.Store(false)
	require.NoError(t, m.start(ctx, p)) // refused: generation 1 held
	w, err := fsnotify.NewWatcher()
	require.NoError(t, err)
	defer func() { _ = w.Close() }()
	require.NoError(t, w.Add(dir))
	kubelet.Stop()
	require.NoError(t, os.RemoveAll(dir))
	require.Error(t, m.start(ctx, p), "nowhere to listen")
	require.Empty(t, p.Socket())
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.Events:
			if filepath.Clean(ev.Name) == dir && ev.Has(fsnotify.Remove) {
				return
			}
		case <-deadline:
			t.Fatal("no removal event for the directory: a server still holds it")
		}
	}
}

// TestFailedListenKeepsRegisteredServer: serving again when the new socket
// cannot be listened on (a non-empty directory is in its place) fails and
// changes nothing: the registered server still serves and is still the
// plugin's, and a later start that can listen replaces it.
// TestFailedServeKeepsPreviousServer runs the same through a Manager's Run
// and a real kubelet.
func TestFailedListenKeepsRegisteredServer(t *testing.T) {
	dir := t.TempDir()
	gate := &registrationGate{}
	fakeKubelet(t, dir, gate)
	p, m, ctx, _ := registeredPlugin(t, dir, gate)
	prev := p.Socket()
	// A connection made before the removal, as the kubelet's is.
	conn, err := grpc.NewClient("unix://"+prev, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	client := pluginapi.NewDevicePluginClient(conn)
	_, err = client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	require.NoError(t, err)
	block := socketPath(dir, p.resource.Name, p.instance, 2)
	require.NoError(t, os.MkdirAll(filepath.Join(block, "x"), 0o700))
	require.NoError(t, os.Remove(prev)) // the removal that asks for a new server

	require.ErrorContains(t, m.start(ctx, p), "removing stale socket")
	require.Equal(t, prev, p.Socket())
	require.True(t, p.RegisteredWith(filepath.Join(dir, KubeletSocketName)))
	require.False(t, p.serving(), "a resync will serve again")
	_, err = client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	require.NoError(t, err, "the registered server still serves its connection")

	require.NoError(t, os.RemoveAll(block))
	require.NoError(t, m.start(ctx, p))
	require.NotEqual(t, prev, p.Socket())
	require.True(t, answers(t, p.Socket()))
	_, err = client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	require.Error(t, err, "the previous server retired once the new one registered")
}
