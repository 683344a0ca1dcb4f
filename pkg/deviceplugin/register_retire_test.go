package deviceplugin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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

// TestRetiredWhenNoRegistrationIsDue: a previous server held while the
// new one's registration is retried stops when no registration is due any
// more: a newer server replaced the one being retried, or the Manager's
// context ended.
func TestRetiredWhenNoRegistrationIsDue(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(ctx context.Context, cancel context.CancelFunc, p *Plugin, dir string) error
	}{
		{"served again", func(ctx context.Context, _ context.CancelFunc, p *Plugin, dir string) error {
			return p.Serve(ctx, dir)
		}},
		{"context ended", func(_ context.Context, cancel context.CancelFunc, _ *Plugin, _ string) error {
			cancel()
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lis, err := net.Listen("unix", filepath.Join(dir, KubeletSocketName))
			require.NoError(t, err)
			kubelet := grpc.NewServer()
			pluginapi.RegisterRegistrationServer(kubelet, &registrationGate{}) // never opens
			go func() { _ = kubelet.Serve(lis) }()
			t.Cleanup(kubelet.Stop)

			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			p := &Plugin{resource: sharing.Resource{Name: "nvidia.com/gpu"}, instance: "0badc0de"}
			t.Cleanup(p.Stop)
			require.NoError(t, p.Serve(ctx, dir))
			prev := p.Socket()
			m := &Manager{opts: Options{PluginDir: dir}}
			require.NoError(t, m.start(ctx, p))
			require.True(t, answers(t, prev))

			require.NoError(t, tc.end(ctx, cancel, p, dir))
			require.Eventually(t, func() bool {
				_, err := os.Stat(prev)
				return os.IsNotExist(err)
			}, 10*time.Second, time.Millisecond, "the previous server retired")
			require.False(t, answers(t, prev))
		})
	}
}
