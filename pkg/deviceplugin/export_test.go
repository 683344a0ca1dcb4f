package deviceplugin

import "github.com/fsnotify/fsnotify"

// KubeletResyncPeriod is how often Run checks its registrations without a
// directory event (resync).
const KubeletResyncPeriod = kubeletResyncPeriod

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
