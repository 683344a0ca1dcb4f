package fake

import (
	"reflect"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// driverState is the machine's NVIDIA driver and the NVML session on it, as
// NVML counts it: Init and Shutdown are reference-counted, and only an Init
// made while no session is held (refs 0) starts a new session; one made
// while a session is held joins it, stale or not.
type driverState struct {
	// unloaded: the kernel module is gone; Init answers
	// ERROR_DRIVER_NOT_LOADED.
	unloaded bool
	// stale: the session was opened on a driver since unloaded (or
	// reloaded); every call answers ERROR_UNINITIALIZED until a new
	// session is started.
	stale bool
	// refs counts the Inits not yet matched by a Shutdown.
	refs int
	// inits, failedInits and shutdowns count the calls that succeeded
	// (inits, shutdowns) and the Inits that failed.
	inits, failedInits, shutdowns int
}

// UnloadDriver removes the NVIDIA driver under NVML (rmmod nvidia, a driver
// container stopping): every call of the session open now answers
// ERROR_UNINITIALIZED until a new session starts, and Init answers
// ERROR_DRIVER_NOT_LOADED until LoadDriver. A new session needs the old
// one shut down first (NVML's Init is reference-counted: an Init while a
// session is held joins the stale one).
func (m *Machine) UnloadDriver() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.driver.unloaded = true
	m.driver.stale = true
}

// LoadDriver loads the driver again: the next Init made while no session
// is held starts a new one. The session open before UnloadDriver stays
// stale.
func (m *Machine) LoadDriver() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.driver.unloaded = false
}

// ReloadDriver is UnloadDriver then LoadDriver (an in-place driver upgrade,
// modprobe -r nvidia && modprobe nvidia).
func (m *Machine) ReloadDriver() {
	m.UnloadDriver()
	m.LoadDriver()
}

// NVMLSessions says how NVML was initialised on the machine: refs, the
// Inits not matched by a Shutdown (0 once every user shut NVML down);
// inits and shutdowns, the calls that succeeded; failedInits, the Inits
// that failed (the driver was not loaded).
func (m *Machine) NVMLSessions() (refs, inits, failedInits, shutdowns int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.driver
	return d.refs, d.inits, d.failedInits, d.shutdowns
}

// isStale reports whether calls answer ERROR_UNINITIALIZED now.
func (m *Machine) isStale() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.driver.stale
}

// installDriver wires Init and Shutdown to the driver state and makes every
// other call of the server, of the GPUs and of the MIG handles answer
// ERROR_UNINITIALIZED while the session is stale. It wraps whatever the
// other installers set, so it runs last (newMIGHandle and newEventSet gate
// the MIG handles and event sets they make).
func (m *Machine) installDriver() {
	m.srv.InitFunc = m.initNVML
	m.srv.InitWithFlagsFunc = func(uint32) gonvml.Return { return m.initNVML() }
	m.srv.ShutdownFunc = m.shutdownNVML
	m.gate(&m.srv.Interface)
	m.gate(&m.srv.ExtendedInterface)
	for _, d := range m.devs {
		m.gate(&d.Device)
	}
}

func (m *Machine) initNVML() gonvml.Return {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := &m.driver
	if d.unloaded {
		d.failedInits++
		return gonvml.ERROR_DRIVER_NOT_LOADED
	}
	if d.refs == 0 {
		d.stale = false // a new session, on the driver loaded now
	}
	d.refs++
	d.inits++
	return gonvml.SUCCESS
}

func (m *Machine) shutdownNVML() gonvml.Return {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := &m.driver
	if d.refs == 0 {
		return gonvml.ERROR_UNINITIALIZED
	}
	d.refs--
	d.shutdowns++
	return gonvml.SUCCESS
}

// ungated are the calls that answer whatever the session's state: Init and
// Shutdown (the driver state), and those that do not reach the driver.
var ungated = map[string]bool{
	"InitFunc": true, "InitWithFlagsFunc": true, "ShutdownFunc": true,
	"ErrorStringFunc": true, "LookupSymbolFunc": true, "ExtensionsFunc": true,
}

var returnType = reflect.TypeFor[gonvml.Return]()

// gate wraps each ...Func field of the mock struct p points to (a
// mock.Interface, mock.Device, mock.EventSet, ...) whose last result is a
// Return, so that it answers ERROR_UNINITIALIZED (and zero values) while the
// session is stale, also when it went stale during the call.
func (m *Machine) gate(p any) {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if !f.IsExported() || fv.Kind() != reflect.Func || fv.IsNil() || !strings.HasSuffix(f.Name, "Func") || ungated[f.Name] {
			continue
		}
		ft := fv.Type()
		if ft.NumOut() == 0 || ft.Out(ft.NumOut()-1) != returnType {
			continue
		}
		orig := reflect.ValueOf(fv.Interface())
		fv.Set(reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
			if !m.isStale() {
				var res []reflect.Value
				if ft.IsVariadic() {
					res = orig.CallSlice(args)
				} else {
					res = orig.Call(args)
				}
				// A call that was under way when the driver went away (an
				// EventSet.Wait blocked across the reload) answers for the
				// lost session too: no event of the old driver after it.
				if !m.isStale() {
					return res
				}
			}
			out := make([]reflect.Value, ft.NumOut())
			for k := range out {
				out[k] = reflect.Zero(ft.Out(k))
			}
			out[len(out)-1] = reflect.ValueOf(gonvml.ERROR_UNINITIALIZED)
			return out
		}))
	}
}
