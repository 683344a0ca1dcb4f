package deviceplugin

import (
	"maps"
	"time"

	"github.com/fsnotify/fsnotify"
)

// LoseDirEvents makes m's Run lose the device-plugin directory's events for
// which lose returns true, as a full inotify queue loses them, and returns a
// channel whose errors Run reads as its watch's own (a full queue is
// fsnotify.ErrEventOverflow). Call it before Run.
func LoseDirEvents(m *Manager, lose func(fsnotify.Event) bool) chan<- error {
	inject := make(chan error)
	m.watchDir = func(dir string) (*dirWatch, error) {
		w, err := watchDirFS(dir)
		if err != nil {
			return nil, err
		}
		events := make(chan fsnotify.Event)
		errs := make(chan error)
		go func() {
			defer close(events)
			for ev := range w.Events {
				if !lose(ev) {
					events <- ev
				}
			}
		}()
		go func() {
			defer close(errs)
			for {
				select {
				case err, ok := <-w.Errors:
					if !ok {
						return
					}
					errs <- err
				case err := <-inject:
					errs <- err
				}
			}
		}()
		return &dirWatch{Events: events, Errors: errs, Close: w.Close}, nil
	}
	return inject
}

// AllocatedOf flattens a PodResources List answer as PodResources.Allocated does.
var AllocatedOf = allocatedOf

// SetHeldWaits sets how long m's PodResources reads may take, and how long
// a refresh waits for one once a read failed (heldReadTimeout,
// heldStalledWait).
func SetHeldWaits(m *Manager, read, stalled time.Duration) {
	m.held.mu.Lock()
	defer m.held.mu.Unlock()
	m.held.readTimeout, m.held.stalledWait = read, stalled
}

// OpenStreams is the number of ListAndWatch streams open on each of p's
// servers, by the server's generation (its socket name's last number).
func OpenStreams(p *Plugin) map[uint64]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.streams)
}
