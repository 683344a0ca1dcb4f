package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU
// times (100 on every Linux the benchmark runs on).
const clockTicks = 100

// probe reads the scheduler process's CPU time and, with GPUPACK_PPROF,
// takes CPU profiles and metrics of it per phase. The CPU time is the
// figure that the other processes on the machine (etcd, the apiserver, the
// benchmark's own clients and whatever else shares the cores) disturb
// least: pods/s depends on who else runs, scheduler CPU seconds per pod
// much less.
type probe struct {
	pid        int    // the scheduler's PID, 0 when not found
	pprofPort  string // GPUPACK_PPROF, "" when off
	profileDir string
	seconds    int
	client     *http.Client
}

// findProcess returns the PID of the process running bin (the scheduler
// binary this run built into a fresh temporary directory, so the path is
// unique to this run), or 0.
func findProcess(bin string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if arg0, _, _ := bytes.Cut(cmdline, []byte{0}); string(arg0) == bin {
			return pid
		}
	}
	return 0
}

// cpuSeconds is the process's user plus system CPU time; false when it
// cannot be read.
func (p *probe) cpuSeconds() (float64, bool) {
	if p == nil || p.pid == 0 {
		return 0, false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / clockTicks, true
}

// settle waits until the scheduler is idle: its CPU time grows by less
// than idleCores of a core over each of two consecutive idleWindow
// windows, or until maxSettle has passed (it then says so). Each phase
// starts from an idle scheduler, so that its CPU and pods/s do not include
// the work left from before it: the informer's sync of the nodes after the
// start, and the pod deletions of the phase before. (In the runs of
// 2026-12-02 every wait was the 2 s minimum: the scheduler was already
// idle.) It returns how long it waited.
func (p *probe) settle(ctx context.Context) time.Duration {
	start := time.Now()
	if p == nil || p.pid == 0 {
		select { // no CPU figures: a fixed pause instead
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return time.Since(start)
	}
	last, ok := p.cpuSeconds()
	quiet := 0
	for quiet < 2 && ok && time.Since(start) < maxSettle {
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(idleWindow):
		}
		var now float64
		now, ok = p.cpuSeconds()
		if now-last < idleCores*idleWindow.Seconds() {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
	switch {
	case !ok:
		fmt.Fprintln(os.Stderr, "the scheduler's CPU time could not be read; measuring without waiting for it to go idle")
	case quiet < 2:
		fmt.Fprintf(os.Stderr, "the scheduler did not go idle within %s; measuring anyway\n", maxSettle)
	}
	return time.Since(start)
}

// settle's bounds: idle is under idleCores of a core over idleWindow.
const (
	idleCores  = 0.05
	idleWindow = time.Second
	maxSettle  = time.Minute
)

// profile takes a CPU profile of the scheduler for p.seconds into
// profileDir/name.pprof, in the background; wait for it with the returned
// function. It does nothing without GPUPACK_PPROF and --profile-dir.
func (p *probe) profile(ctx context.Context, name string) (wait func()) {
	if p == nil || p.pprofPort == "" || p.profileDir == "" || p.seconds <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("https://127.0.0.1:%s/debug/pprof/profile?seconds=%d", p.pprofPort, p.seconds)
		if err := p.fetch(ctx, url, filepath.Join(p.profileDir, name+".pprof")); err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
		}
	}()
	return func() { <-done }
}

// metrics saves the scheduler's /metrics into profileDir/name.metrics.
func (p *probe) metrics(ctx context.Context, name string) {
	if p == nil || p.pprofPort == "" || p.profileDir == "" {
		return
	}
	url := fmt.Sprintf("https://127.0.0.1:%s/metrics", p.pprofPort)
	if err := p.fetch(ctx, url, filepath.Join(p.profileDir, name+".metrics")); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
	}
}

func (p *probe) fetch(ctx context.Context, url, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.seconds+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", url, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func newProbe(bin, profileDir string, seconds int) *probe {
	return &probe{
		pid: findProcess(bin), pprofPort: os.Getenv("GPUPACK_PPROF"), profileDir: profileDir, seconds: seconds,
		// The scheduler serves a self-signed certificate on loopback.
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}, //nolint:gosec // loopback only
	}
}
