package mps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults of Options.
const (
	DefaultCheckInterval  = 10 * time.Second
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 2 * time.Minute
	DefaultCommandTimeout = 30 * time.Second
)

// Options configure a Runner.
type Options struct {
	// Binary is the MPS control program: a path, or a name looked up in
	// PATH. Empty means DefaultBinary.
	Binary string
	// Root is the MPS root as this process sees it (absolute).
	Root Root
	// Clock drives the checks and the restart backoff; nil is the real one.
	Clock clock.WithTicker
	// CheckInterval is how often each daemon is checked.
	CheckInterval time.Duration
	// InitialBackoff and MaxBackoff bound the wait between restarts of a
	// daemon that keeps failing (doubling from the first to the second).
	InitialBackoff, MaxBackoff time.Duration
	// CommandTimeout bounds each run of the binary.
	CommandTimeout time.Duration
	// OnHealth is told each change of a daemon's health: err nil when it
	// answers with its settings, else why not. May be nil.
	OnHealth func(ctx context.Context, gpu GPU, err error)
	// Environ is the environment the binary runs with, before the MPS
	// variables; nil means this process's.
	Environ []string
	// SetExclusiveProcess, when set, puts a GPU in the EXCLUSIVE_PROCESS
	// compute mode before its daemon starts and back to DEFAULT after it
	// quits, as NVIDIA's MPS control daemon does (through pkg/nvml). A
	// failure (NVML wants root privileges) is logged and the daemon runs in
	// the GPU's current mode.
	SetExclusiveProcess func(uuid string, exclusive bool) error
}

// daemon is the runner's state of one GPU's control daemon.
type daemon struct {
	gpu GPU
	// state: 0 unknown (not started yet), 1 healthy, -1 unhealthy.
	state    int
	failures int
	next     time.Time
	// launched: "-d" succeeded since the last quit; Stop quits it even when
	// its setup was cut short.
	launched bool
}

// Runner runs one MPS control daemon per GPU.
type Runner struct {
	opts    Options
	bin     string
	daemons []*daemon
}

// New checks the options and the GPUs and returns a Runner that has not
// started anything. A binary that cannot be found or run is an error here,
// before any device is advertised.
func New(gpus []GPU, opts Options) (*Runner, error) {
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	if !filepath.IsAbs(string(opts.Root)) {
		return nil, fmt.Errorf("MPS root %q: must be an absolute path", opts.Root)
	}
	bin, err := exec.LookPath(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("MPS control binary %q: %w (the GPUs are shared with MPS: install it or give its path)", opts.Binary, err)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff < opts.InitialBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.InitialBackoff)
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	r := &Runner{opts: opts, bin: bin}
	seen := map[string]bool{}
	for _, g := range gpus {
		switch {
		case g.UUID == "" || strings.ContainsAny(g.UUID, "/\x00") || g.UUID == "." || g.UUID == "..":
			return nil, fmt.Errorf("GPU %d: UUID %q cannot name an MPS pipe directory", g.Index, g.UUID)
		case g.Replicas < 2:
			return nil, fmt.Errorf("GPU %d (%s): %d MPS replicas, want at least 2", g.Index, g.UUID, g.Replicas)
		case seen[g.UUID]:
			return nil, fmt.Errorf("GPU %s listed twice", g.UUID)
		}
		seen[g.UUID] = true
		r.daemons = append(r.daemons, &daemon{gpu: g})
	}
	return r, nil
}

// Binary is the resolved path of the MPS control program.
func (r *Runner) Binary() string { return r.bin }

// GPUs are the GPUs the runner runs a daemon for.
func (r *Runner) GPUs() []GPU {
	out := make([]GPU, 0, len(r.daemons))
	for _, d := range r.daemons {
		out = append(out, d.gpu)
	}
	return out
}

// Start starts every daemon once and reports each one's health; a daemon
// that fails to start is reported unhealthy and retried by Supervise.
func (r *Runner) Start(ctx context.Context) {
	r.pass(ctx)
}

// Supervise checks the daemons every CheckInterval, reports changes and
// restarts dead ones with backoff, until ctx ends; then it quits them all.
func (r *Runner) Supervise(ctx context.Context) {
	t := r.opts.Clock.NewTicker(r.opts.CheckInterval)
	defer t.Stop()
	defer r.Stop(context.WithoutCancel(ctx))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			r.pass(ctx)
		}
	}
}

// Stop asks every daemon to quit; a later Start starts them afresh.
func (r *Runner) Stop(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for _, d := range r.daemons {
		if !d.launched && d.state == 0 {
			continue
		}
		d.launched, d.state, d.failures, d.next = false, 0, 0, time.Time{}
		if _, err := r.send(ctx, d.gpu, "quit"); err != nil {
			logger.Info("MPS control daemon did not quit", "gpu", d.gpu.Index, "uuid", d.gpu.UUID, "err", err)
			continue
		}
		logger.Info("MPS control daemon stopped", "gpu", d.gpu.Index, "uuid", d.gpu.UUID)
		r.computeMode(ctx, d.gpu, false)
	}
}

// pass checks each healthy daemon and (re)starts each unhealthy one whose
// backoff has passed.
func (r *Runner) pass(ctx context.Context) {
	for _, d := range r.daemons {
		if ctx.Err() != nil {
			return
		}
		now := r.opts.Clock.Now()
		if d.state == 1 {
			err := r.check(ctx, d.gpu)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			r.report(ctx, d, err)
			d.failures, d.next = 0, now // restart at once
		}
		if now.Before(d.next) {
			continue
		}
		err := r.start(ctx, d, d.state != 0)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			d.failures = 0
			r.report(ctx, d, nil)
			continue
		}
		d.failures++
		d.next = now.Add(r.backoff(d.failures))
		klog.FromContext(ctx).Info("MPS control daemon failed to start; retrying later", "gpu", d.gpu.Index, "uuid", d.gpu.UUID,
			"err", err, "failures", d.failures, "retryAt", d.next)
		r.report(ctx, d, err)
	}
}

// backoff is the wait after the n-th consecutive failure: InitialBackoff
// doubled n-1 times, at most MaxBackoff.
func (r *Runner) backoff(n int) time.Duration {
	b := r.opts.InitialBackoff
	for i := 1; i < n && b < r.opts.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, r.opts.MaxBackoff)
}

// report tells OnHealth when d's health changes.
func (r *Runner) report(ctx context.Context, d *daemon, err error) {
	state := 1
	if err != nil {
		state = -1
	}
	if state == d.state {
		return
	}
	d.state = state
	logger := klog.FromContext(ctx)
	if err != nil {
		logger.Error(err, "MPS control daemon unhealthy: its GPU's MPS replicas are unhealthy", "gpu", d.gpu.Index, "uuid", d.gpu.UUID)
	} else {
		logger.Info("MPS control daemon running", "gpu", d.gpu.Index, "uuid", d.gpu.UUID,
			"activeThreadPercentage", d.gpu.ThreadPercentage(), "pinnedMemLimitMiB", d.gpu.PinnedMemLimitMiB())
	}
	if r.opts.OnHealth != nil {
		r.opts.OnHealth(ctx, d.gpu, err)
	}
}

// start starts d's daemon and sends it its settings; again says a daemon
// ran before (a leftover one is asked to quit first).
func (r *Runner) start(ctx context.Context, d *daemon, again bool) error {
	g := d.gpu
	if again {
		_, _ = r.send(ctx, g, "quit") // a half-dead daemon would hold the pipe
	}
	r.computeMode(ctx, g, true)
	for _, dir := range []string{r.opts.Root.PipeDir(g.UUID), r.opts.Root.LogDir(g.UUID), r.opts.Root.ShmDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("MPS directory: %w", err)
		}
	}
	outPath := filepath.Join(r.opts.Root.LogDir(g.UUID), "gpupack-start.out")
	out, err := os.Create(outPath)
	if err != nil {
		return fmt.Errorf("MPS start output: %w", err)
	}
	defer func() { _ = out.Close() }()
	cctx, cancel := context.WithTimeout(ctx, r.opts.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, r.bin, "-d")
	cmd.Env = r.env(g)
	// A file, not a pipe: the daemon it forks may keep it open.
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("starting %s -d for GPU %d (%s): %w%s", r.bin, g.Index, g.UUID, err, tail(outPath))
	}
	d.launched = true
	for _, c := range g.commands() {
		if _, err := r.send(ctx, g, c); err != nil {
			return fmt.Errorf("GPU %d (%s): %q: %w", g.Index, g.UUID, c, err)
		}
	}
	return r.check(ctx, g)
}

// computeMode sets g's compute mode when the runner was given the means.
func (r *Runner) computeMode(ctx context.Context, g GPU, exclusive bool) {
	if r.opts.SetExclusiveProcess == nil {
		return
	}
	if err := r.opts.SetExclusiveProcess(g.UUID, exclusive); err != nil {
		mode := "DEFAULT"
		if exclusive {
			mode = "EXCLUSIVE_PROCESS"
		}
		klog.FromContext(ctx).Error(err, "Setting the GPU's compute mode failed; MPS runs in its current mode", "gpu", g.Index, "uuid", g.UUID, "mode", mode)
	}
}

// check asks g's daemon its default active thread percentage (NVIDIA's
// health check): no answer, or another value than ours (a daemon restarted
// without its settings), is unhealthy.
func (r *Runner) check(ctx context.Context, g GPU) error {
	out, err := r.send(ctx, g, "get_default_active_thread_percentage")
	if err != nil {
		return fmt.Errorf("GPU %d (%s): MPS control daemon does not answer: %w", g.Index, g.UUID, err)
	}
	got, perr := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if perr != nil || int(got) != g.ThreadPercentage() {
		return fmt.Errorf("GPU %d (%s): MPS control daemon's active thread percentage is %q, want %d: its settings are not ours",
			g.Index, g.UUID, strings.TrimSpace(out), g.ThreadPercentage())
	}
	return nil
}

// maxOutput bounds what is kept of one command's output.
const maxOutput = 4096

// send writes one command to g's daemon through the control program.
func (r *Runner) send(ctx context.Context, g GPU, command string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, r.bin)
	cmd.Env = r.env(g)
	cmd.Stdin = strings.NewReader(command + "\n")
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return "", fmt.Errorf("%w: %s", err, msg)
		}
		return "", err
	}
	return out.String(), nil
}

// env is the binary's environment for g: the base one without MPS or
// device variables, then g's.
func (r *Runner) env(g GPU) []string {
	base := r.opts.Environ
	if base == nil {
		base = os.Environ()
	}
	out := make([]string, 0, len(base)+3)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == "CUDA_VISIBLE_DEVICES" || strings.HasPrefix(k, "CUDA_MPS_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		"CUDA_VISIBLE_DEVICES="+g.UUID,
		"CUDA_MPS_PIPE_DIRECTORY="+r.opts.Root.PipeDir(g.UUID),
		"CUDA_MPS_LOG_DIRECTORY="+r.opts.Root.LogDir(g.UUID))
}

// tail returns the end of a file as ": <text>", or "" when it is empty.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err == nil && st.Size() > maxOutput {
		_, _ = f.Seek(-maxOutput, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxOutput))
	if s := strings.TrimSpace(string(b)); s != "" {
		return ": " + s
	}
	return ""
}

// limitedBuffer keeps the first maxOutput bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// PIDFile is where g's control daemon writes its process ID.
func (r Root) PIDFile(uuid string) string { return filepath.Join(r.PipeDir(uuid), pidFile) }
