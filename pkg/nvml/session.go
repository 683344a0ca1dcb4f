package nvml

import (
	"errors"
	"fmt"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// ErrSessionLost is wrapped by the errors of calls that met an NVML session
// the driver no longer serves (ERROR_UNINITIALIZED, ERROR_DRIVER_NOT_LOADED
// or ERROR_LIB_RM_VERSION_MISMATCH on a session that was open: the driver
// was unloaded, reloaded or upgraded under the plugin) and could not open a
// new one: the driver is not back yet. The next call past the backoff
// tries again.
var ErrSessionLost = errors.New("NVML session lost (the NVIDIA driver was unloaded or reloaded) and not opened again yet")

// Bounds of the wait between two re-inits of NVML that fail.
const (
	minReinitBackoff = time.Second
	maxReinitBackoff = 2 * time.Minute
)

// IsSessionError reports whether err is about the NVML session as a whole,
// not one GPU: the driver is not loaded, was reloaded under the session
// (ERROR_UNINITIALIZED on a session that was open), or no longer matches
// the library (ERROR_LIB_RM_VERSION_MISMATCH); or a lost session was not
// opened again yet (ErrSessionLost). A new session (Shutdown, then Init)
// is the way out, which the library does itself (withSession).
func IsSessionError(err error) bool {
	if err == nil {
		return false
	}
	for _, ret := range []gonvml.Return{gonvml.ERROR_UNINITIALIZED, gonvml.ERROR_DRIVER_NOT_LOADED,
		gonvml.ERROR_LIB_RM_VERSION_MISMATCH} {
		if errors.Is(err, ret) {
			return true
		}
	}
	return errors.Is(err, ErrSessionLost)
}

// acquire holds the session for one NVML call sequence: release ends it.
// gen is the session the sequence runs on. errNotInitialized when Init did
// not succeed (or Shutdown was called); ErrSessionLost (wrapped) when a
// re-init failed and none succeeded since.
func (l *lib) acquire() (release func(), gen uint64, err error) {
	l.calls.RLock()
	l.mu.Lock()
	initialized, session, gen, initErr := l.initialized, l.session, l.gen, l.initErr
	l.mu.Unlock()
	switch {
	case !initialized:
		l.calls.RUnlock()
		return nil, gen, errNotInitialized
	case !session:
		l.calls.RUnlock()
		return nil, gen, fmt.Errorf("%w: %w", ErrSessionLost, initErr)
	}
	return l.calls.RUnlock, gen, nil
}

// withSession runs f on the session; when f (or the session) answers a
// session-level error (IsSessionError), it opens a new session (reinit,
// paced) and runs f once more on it. f must not call acquire itself.
func (l *lib) withSession(logger klog.Logger, f func() error) error {
	gen, err := l.onSession(f)
	if !IsSessionError(err) {
		return err
	}
	if rerr := l.reinit(logger, gen, err); rerr != nil {
		return rerr
	}
	_, err = l.onSession(f)
	return err
}

// onSession runs f holding the session, with the session's generation.
func (l *lib) onSession(f func() error) (uint64, error) {
	release, gen, err := l.acquire()
	if err != nil {
		return gen, err
	}
	defer release()
	return gen, f()
}

// reinit replaces session gen, which answered cause (a session-level
// error), by a new one: the event sets of the old one are freed, it is shut
// down (NVML and go-nvml count Inits: an Init while the old session is held
// would join it, stale, so the counts must balance) and NVML is initialised
// again. nil when a new session is open, also one another caller opened
// since gen. While Init fails (the driver is not loaded yet) the tries are
// spaced by a backoff (minReinitBackoff doubling to maxReinitBackoff), so
// that a missing driver does not spin: a call before the next try answers
// ErrSessionLost (wrapped) without one. No NVML call runs meanwhile.
func (l *lib) reinit(logger klog.Logger, gen uint64, cause error) error {
	l.calls.Lock()
	defer l.calls.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !l.initialized:
		return errNotInitialized
	case l.session && l.gen != gen:
		return nil // replaced since the call began: try on the new one
	}
	now := l.clock.Now()
	if l.initErr != nil && now.Before(l.retryAt) {
		return fmt.Errorf("%w (next try in %s): %w", ErrSessionLost, l.retryAt.Sub(now), l.initErr)
	}
	if l.session {
		logger.Info("NVML session lost (driver unloaded or reloaded?); initialising NVML again", "err", cause)
		l.freeSetsLocked() // the old session's event sets are void
		l.session = false
		if ret := l.iface.Shutdown(); ret != gonvml.SUCCESS {
			// Its reference may be left counted; Init is tried anyway.
			logger.Error(ret, "Shutting down the lost NVML session failed")
		}
	}
	if ret := l.iface.Init(); ret != gonvml.SUCCESS {
		l.backoff = min(max(2*l.backoff, minReinitBackoff), maxReinitBackoff)
		l.retryAt = now.Add(l.backoff)
		l.initErr = fmt.Errorf("nvml Init: %w", ret)
		logger.Info("NVML cannot be initialised again yet", "err", ret, "retryIn", l.backoff)
		return fmt.Errorf("%w (next try in %s): %w", ErrSessionLost, l.backoff, l.initErr)
	}
	l.session = true
	l.gen++ // a call that met the old session (or none) tries on this one
	l.retryAt, l.backoff, l.initErr = time.Time{}, 0, nil
	logger.Info("NVML initialised again", "session", l.gen)
	return nil
}

// eventSet is an event set of one session (gen); freed once it was freed,
// by its watcher or because its session ended.
type eventSet struct {
	set   gonvml.EventSet
	gen   uint64
	freed bool
}

// addSet records a set created on session gen (under acquire).
func (l *lib) addSet(set gonvml.EventSet, gen uint64) *eventSet {
	s := &eventSet{set: set, gen: gen}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sets[s] = struct{}{}
	return s
}

// freeSetsLocked frees the session's event sets before it ends; l.mu must
// be held, and calls for writing.
func (l *lib) freeSetsLocked() {
	for s := range l.sets {
		if !s.freed {
			s.freed = true
			_ = s.set.Free()
		}
	}
	clear(l.sets)
}

// freeSet frees s unless its session ended (which freed it).
func (l *lib) freeSet(s *eventSet) {
	l.calls.RLock()
	defer l.calls.RUnlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.freed {
		return
	}
	s.freed = true
	delete(l.sets, s)
	_ = s.set.Free()
}

// wait is s's Wait, on its session: ERROR_UNINITIALIZED without a call once
// the session ended (a re-init freed s).
func (l *lib) wait(s *eventSet, timeoutMs uint32) (gonvml.EventData, gonvml.Return) {
	l.calls.RLock()
	defer l.calls.RUnlock()
	l.mu.Lock()
	freed := s.freed
	l.mu.Unlock()
	if freed {
		return gonvml.EventData{}, gonvml.ERROR_UNINITIALIZED
	}
	return s.set.Wait(timeoutMs)
}
