package nvml

import (
	"errors"
	"fmt"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpupack/gpupack/pkg/topology"
)

// DefaultEventTimeout is how long one EventSet.Wait call blocks; it bounds
// how late WatchEvents notices that its context is done.
const DefaultEventTimeout = time.Second

// maxGPUs bounds the GPU count NVML may report: the topology model keeps GPU
// sets in a uint64 bit mask.
const maxGPUs = topology.MaxGPUs

// errNotInitialized is returned by calls made before Init succeeded. The real
// go-nvml resolves its symbols at Init; calling it before would crash.
var errNotInitialized = errors.New("NVML is not initialised: call Init first")

// Option configures the library returned by New.
type Option func(*lib)

// WithEventTimeout sets how long one EventSet.Wait blocks (default
// DefaultEventTimeout). Shorter timeouts make WatchEvents stop sooner after
// its context is done, at the price of more NVML calls.
func WithEventTimeout(d time.Duration) Option {
	return func(l *lib) {
		if d > 0 {
			l.eventTimeout = d
		}
	}
}

// WithLogger sets the logger that discovery writes its warnings to: NVML
// answers it works around instead of failing (default klog.Background()).
func WithLogger(logger klog.Logger) Option {
	return func(l *lib) { l.logger = logger }
}

// WithClock sets the clock that paces the re-inits of NVML after its
// session was lost (default the real clock; a fake one in tests).
func WithClock(c clock.PassiveClock) Option {
	return func(l *lib) {
		if c != nil {
			l.clock = c
		}
	}
}

// lib implements Lib over a go-nvml Interface: the real library
// (gonvml.New()) or a mock server (pkg/nvml/fake).
type lib struct {
	iface        gonvml.Interface
	eventTimeout time.Duration
	logger       klog.Logger
	clock        clock.PassiveClock

	// calls is held for reading by each NVML call sequence (acquire) and
	// for writing while the session is replaced (reinit) or ended
	// (Shutdown): no call runs on a session being torn down, nor on a
	// library go-nvml may have unloaded in between.
	calls sync.RWMutex

	mu sync.Mutex
	// initialized: Init succeeded and Shutdown was not called; the owner's
	// reference. session: an NVML session is held on its behalf (false
	// after a re-init whose Init failed, until one succeeds).
	initialized, session bool
	// gen counts the sessions opened: a call that met session gen (or
	// no session, after gen ended) and finds a later one tries on it.
	gen uint64
	// retryAt, backoff and initErr pace re-inits while Init fails (a
	// driver not loaded): the next try, the wait after it fails, and the
	// last failure.
	retryAt time.Time
	backoff time.Duration
	initErr error
	// sets are the event sets of the session, freed before it is shut
	// down.
	sets map[*eventSet]struct{}
}

var _ Lib = (*lib)(nil)

// New returns a Lib over iface, typically New(gonvml.New()) on a node, or
// New(machine.Interface()) over a fake machine. It does not call Init.
func New(iface gonvml.Interface, opts ...Option) Lib {
	l := &lib{iface: iface, eventTimeout: DefaultEventTimeout, logger: klog.Background(), clock: clock.RealClock{},
		sets: map[*eventSet]struct{}{}}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// Init loads and initialises NVML.
func (l *lib) Init() error {
	if l.iface == nil {
		return errors.New("nvml: no go-nvml interface given")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.initialized {
		return nil
	}
	ret := l.iface.Init()
	switch ret {
	case gonvml.SUCCESS:
		l.initialized, l.session = true, true
		l.gen++
		l.retryAt, l.backoff, l.initErr = time.Time{}, 0, nil
		return nil
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return fmt.Errorf("nvml Init: %w (%w)", ErrLibraryNotFound, ret)
	default:
		return fmt.Errorf("nvml Init: %w", ret)
	}
}

// Shutdown releases NVML. It is a no-op when Init did not succeed. It waits
// for the NVML calls under way (an event watch's Wait: one event timeout),
// frees the event sets left and shuts the session down (none when a re-init
// failed to open one).
func (l *lib) Shutdown() error {
	l.calls.Lock()
	defer l.calls.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.initialized {
		return nil
	}
	l.initialized = false
	if !l.session {
		return nil
	}
	l.freeSetsLocked()
	l.session = false
	if ret := l.iface.Shutdown(); ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml Shutdown: %w", ret)
	}
	return nil
}

// CheckGPU takes a fresh handle for the GPU, asks it a basic question, and
// then whether it needs a reset or service before it is served again
// (checkMemory: ErrResetRequired, ErrNeedsService).
func (l *lib) CheckGPU(uuid string) error {
	return l.withSession(l.logger, func() error { return l.checkGPU(uuid) })
}

// checkGPU is CheckGPU on the session held.
func (l *lib) checkGPU(uuid string) error {
	dev, ret := l.iface.DeviceGetHandleByUUID(uuid)
	if ret != gonvml.SUCCESS {
		return callError(uuid, "DeviceGetHandleByUUID", ret)
	}
	if _, ret := dev.GetMemoryInfo(); ret != gonvml.SUCCESS {
		return callError(uuid, "GetMemoryInfo", ret)
	}
	return checkMemory(uuid, dev)
}

// callError wraps an NVML return code with the GPU and the call that failed.
// ERROR_GPU_IS_LOST also wraps ErrGPULost, ERROR_LIBRARY_NOT_FOUND
// ErrLibraryNotFound and ERROR_RESET_REQUIRED ErrResetRequired; the Return
// itself is always wrapped, so callers can test errors.Is(err, gonvml.ERROR_X).
func callError(gpu, call string, ret gonvml.Return) error {
	switch ret {
	case gonvml.ERROR_GPU_IS_LOST:
		return fmt.Errorf("GPU %s: %s: %w: %w", gpu, call, ErrGPULost, ret)
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return fmt.Errorf("GPU %s: %s: %w: %w", gpu, call, ErrLibraryNotFound, ret)
	case gonvml.ERROR_RESET_REQUIRED:
		return fmt.Errorf("GPU %s: %s: %w: %w", gpu, call, ErrResetRequired, ret)
	default:
		return fmt.Errorf("GPU %s: %s: %w", gpu, call, ret)
	}
}

// gpuName names GPU i for error messages.
func gpuName(i int, uuid string) string {
	if uuid == "" {
		return fmt.Sprintf("%d", i)
	}
	return fmt.Sprintf("%d (%s)", i, uuid)
}
