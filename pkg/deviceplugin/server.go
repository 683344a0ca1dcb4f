package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registerTimeout bounds one registration call to the kubelet.
const registerTimeout = 10 * time.Second

// Serve starts the plugin's gRPC server on a socket of its own in dir
// (socketPath: a new name every time), replacing a previous server and
// removing its socket file. When the new server cannot listen, the previous
// one (if any) keeps serving and the error says why.
func (p *Plugin) Serve(ctx context.Context, dir string) error {
	gen, err := p.serveNext(ctx, dir)
	if err == nil {
		p.retireBefore(gen)
	}
	return err
}

// serveNext is Serve that leaves the previous servers running, and returns
// the new server's generation. They stop (and lose their sockets) when a
// registration of this server or a newer one is accepted (Register calls
// retireBefore), when the plugin stops, or at Serve's retireBefore: make
// before break. A kubelet whose last endpoint of a resource disconnects
// marks all its devices unhealthy and refuses pods asking for it until the
// next endpoint's devices arrive, and a previous server's stream ends when
// that server stops; while a new server's registration is refused and
// retried, and even when a newer server replaces that one, the server the
// kubelet has registered keeps serving.
//
// On an error the previous server is still the plugin's (its streams go
// on; a resync serves again since its socket is gone), unless the
// directory dir is gone: then every server of the plugin is stopped, since
// a bound socket holds its directory and inotify reports the directory's
// removal (IN_DELETE_SELF, which ends the Manager's Run) only once nothing
// holds it.
func (p *Plugin) serveNext(ctx context.Context, dir string) (gen uint64, err error) {
	p.serveMu.Lock()
	defer p.serveMu.Unlock()
	p.mu.Lock()
	gen = p.gen + 1
	p.mu.Unlock()
	socket := socketPath(dir, p.resource.Name, p.instance, gen)
	lis, err := listen(socket)
	if err != nil {
		if _, serr := os.Stat(dir); serr != nil {
			p.Stop()
		}
		return 0, err
	}
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(servedBy(gen)))
	pluginapi.RegisterDevicePluginServer(srv, p)
	p.mu.Lock()
	if p.server != nil {
		p.previous = append(p.previous, previousServer{p.gen, p.server, p.socket})
	}
	p.server, p.socket, p.gen = srv, socket, gen
	p.mu.Unlock()
	logger := klog.FromContext(ctx).WithValues("resource", p.resource.Name, "socket", socket)
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			logger.Error(err, "Device plugin server stopped")
		}
	}()
	logger.V(2).Info("Serving device plugin")
	return gen, nil
}

// retireBefore stops the previous servers older than generation gen and
// removes their sockets.
func (p *Plugin) retireBefore(gen uint64) {
	p.mu.Lock()
	var retired []previousServer
	kept := p.previous[:0]
	for _, ps := range p.previous {
		if ps.gen < gen {
			retired = append(retired, ps)
		} else {
			kept = append(kept, ps)
		}
	}
	clear(p.previous[len(kept):])
	p.previous = kept
	p.mu.Unlock()
	for _, ps := range retired {
		stopServer(ps.server, ps.socket)
	}
}

// generationKey is the context key of the generation of the server a
// stream came in on (servedBy).
type generationKey struct{}

// servedBy tags every stream of the server of generation gen with it, so
// that a stream on a previous server that still runs (make before break)
// is counted as that server's, not as the current one's (Connected).
func servedBy(gen uint64) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, taggedStream{ss, context.WithValue(ss.Context(), generationKey{}, gen)})
	}
}

// taggedStream is a server stream with a context of its own.
type taggedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s taggedStream) Context() context.Context { return s.ctx }

// listen listens on the unix socket path, removing a stale file there.
func listen(socket string) (net.Listener, error) {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", socket, err)
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", socket, err)
	}
	return lis, nil
}

// Stop stops the server and the previous ones still serving (ending their
// ListAndWatch streams) and removes their sockets.
func (p *Plugin) Stop() {
	p.mu.Lock()
	all := append(p.previous, previousServer{p.gen, p.server, p.socket})
	p.server, p.socket, p.previous = nil, "", nil
	p.mu.Unlock()
	for _, ps := range all {
		stopServer(ps.server, ps.socket)
	}
}

// stopServer stops srv, when there is one, and removes its socket file.
func stopServer(srv *grpc.Server, socket string) {
	if srv == nil {
		return
	}
	srv.Stop()
	_ = os.Remove(socket)
}

// removeStaleSockets removes the sockets gpupack left in the device-plugin
// directory dir that no server listens on any more (a plugin process that
// was killed cannot remove its own), keeping those another gpupack
// process still serves and every other vendor's. It returns
// the paths it removed; a socket it cannot read or probe is left.
func removeStaleSockets(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, socketPrefix+"*.sock"))
	if err != nil {
		return nil, fmt.Errorf("listing sockets in %s: %w", dir, err)
	}
	var removed []string
	for _, path := range paths {
		if st, err := os.Lstat(path); err != nil || st.Mode().Type() != os.ModeSocket {
			continue
		}
		conn, err := net.DialTimeout("unix", path, staleProbeTimeout)
		if err == nil {
			_ = conn.Close()
			continue // served
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
		removed = append(removed, path)
	}
	return removed, nil
}

// staleProbeTimeout bounds the connect that tells a stale socket from a
// served one (a refused connect answers at once).
const staleProbeTimeout = time.Second

// generation identifies the current Serve.
func (p *Plugin) generation() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// Socket is the path the plugin serves on ("" when stopped).
func (p *Plugin) Socket() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.socket
}

// Register announces the plugin's current server to the kubelet's
// Registration service, once per server and kubelet instance: it returns nil
// without a second registration when that server is registered with the
// kubelet listening there now (RegisteredWith).
func (p *Plugin) Register(ctx context.Context, kubeletSocket string) error {
	p.regMu.Lock()
	defer p.regMu.Unlock()
	p.mu.Lock()
	socket, gen, done := p.socket, p.gen, p.registeredLocked(kubeletSocket)
	p.mu.Unlock()
	if socket == "" {
		return fmt.Errorf("resource %s: not serving", p.resource.Name)
	}
	if done {
		return nil
	}
	// The kubelet instance registered with is the one the connection went
	// to: its socket's identity read around the connect (a kubelet
	// restarting meanwhile replaces the socket, and the identity read after
	// the RPC would name the next kubelet, which then never got us).
	var dialed atomic.Pointer[string]
	logger := klog.FromContext(ctx)
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		id := kubeletIdentity(kubeletSocket)
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", kubeletSocket)
		if err != nil {
			return nil, err
		}
		if id == "" || kubeletIdentity(kubeletSocket) != id {
			_ = c.Close()
			return nil, fmt.Errorf("the kubelet's socket %s was replaced while connecting", kubeletSocket)
		}
		// Before the kubelet hears of us, and so before it can ask us
		// for an allocation.
		if p.kubeletDialed != nil {
			p.kubeletDialed(logger, id)
		}
		key := keyOf(id, gen)
		dialed.Store(&key)
		return c, nil
	}
	conn, err := grpc.NewClient("passthrough:///kubelet", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dial))
	if err != nil {
		return fmt.Errorf("connecting to the kubelet at %s: %w", kubeletSocket, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	// The kubelet dials our socket before it answers. A kubelet that stops
	// meanwhile, or one that removed our socket when it started, holds the
	// call until registerTimeout, and with it everything behind it (the
	// next kubelet's registration, serving a removed socket again): the
	// call is given up as soon as another kubelet listens or our socket
	// is gone.
	go abandonRegistration(ctx, cancel, kubeletSocket, socket, gen, &dialed)
	opts, _ := p.GetDevicePluginOptions(ctx, nil)
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(socket),
		ResourceName: p.resource.Name,
		Options:      opts,
	})
	if err != nil {
		return fmt.Errorf("registering %s with the kubelet at %s: %w", p.resource.Name, kubeletSocket, err)
	}
	p.mu.Lock()
	if key := dialed.Load(); p.gen == gen && key != nil {
		p.registered = *key
	}
	p.mu.Unlock()
	// The kubelet may admit pods with our devices from now on: the
	// handoff reads no more what it admitted before.
	p.handoff.pluginRegistered()
	// The kubelet connected to this server before it answered: the
	// servers before it are no longer the only endpoint it has.
	p.retireBefore(gen)
	klog.FromContext(ctx).Info("Registered with the kubelet", "resource", p.resource.Name, "endpoint", filepath.Base(socket))
	return nil
}

// registrationPoll is how often a registration in flight checks that the
// kubelet it talks to still listens and our socket is still there
// (abandonRegistration).
const registrationPoll = 50 * time.Millisecond

// abandonRegistration cancels a registration in flight (ctx) once the
// kubelet socket is another kubelet's than the one dialed, or our own
// socket is gone or replaced, until ctx ends.
func abandonRegistration(ctx context.Context, cancel context.CancelFunc, kubeletSocket, ours string, gen uint64, dialed *atomic.Pointer[string]) {
	own := registrationKey(ours, gen)
	moved := func(context.Context) (bool, error) {
		k := dialed.Load()
		return (k != nil && registrationKey(kubeletSocket, gen) != *k) || own == "" || registrationKey(ours, gen) != own, nil
	}
	if wait.PollUntilContextCancel(ctx, registrationPoll, false, moved) == nil {
		cancel()
	}
}

// RegisteredWith reports whether the plugin's current server is registered
// with the kubelet now listening on kubeletSocket.
func (p *Plugin) RegisteredWith(kubeletSocket string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.registeredLocked(kubeletSocket)
}

// registeredLocked is RegisteredWith with p.mu held.
func (p *Plugin) registeredLocked(kubeletSocket string) bool {
	return p.registered != "" && p.registered == registrationKey(kubeletSocket, p.gen)
}

// registrationKey names one kubelet instance (kubeletIdentity) and our
// serving generation; "" when there is no kubelet socket.
func registrationKey(kubeletSocket string, gen uint64) string {
	id := kubeletIdentity(kubeletSocket)
	if id == "" {
		return ""
	}
	return keyOf(id, gen)
}

// keyOf is the registration key of the kubelet instance id and our serving
// generation gen.
func keyOf(id string, gen uint64) string { return fmt.Sprintf("%s/%d", id, gen) }

// kubeletIdentity names the kubelet instance listening on kubeletSocket by
// its socket's inode and change time (a restarted kubelet creates a new
// socket, which may reuse the inode number); "" when there is none.
func kubeletIdentity(kubeletSocket string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(kubeletSocket, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d.%d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
}

// serving reports whether the plugin serves and its socket file is still
// there (someone may have removed it).
func (p *Plugin) serving() bool {
	socket := p.Socket()
	if socket == "" {
		return false
	}
	_, err := os.Lstat(socket)
	return err == nil
}

// Connected reports whether a kubelet streams ListAndWatch from the
// plugin's current server: that kubelet has it registered.
func (p *Plugin) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams[p.gen] > 0
}

// streamStarted counts a ListAndWatch stream of the server of generation
// gen until the returned func is called.
func (p *Plugin) streamStarted(gen uint64) (done func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streams == nil {
		p.streams = map[uint64]int{}
	}
	p.streams[gen]++
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.streams[gen]--; p.streams[gen] <= 0 {
			delete(p.streams, gen)
		}
	}
}

// streamGeneration is the generation of the server the stream with context
// ctx came in on (servedBy); the current one for a stream not served by
// serveNext's servers (a direct call).
func (p *Plugin) streamGeneration(ctx context.Context) uint64 {
	if gen, ok := ctx.Value(generationKey{}).(uint64); ok {
		return gen
	}
	return p.generation()
}
