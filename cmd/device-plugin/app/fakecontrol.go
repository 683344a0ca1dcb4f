package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// Fault injection into a --fake machine, for the end-to-end tests and the
// demo: with --fake-control=<unix socket>, the plugin serves
//
//	POST /xid?gpu=N&xid=M       an XID critical error event on GPU N
//	POST /ecc?gpu=N&double=B    an ECC event (double-bit when B is true)
//	POST /lose?gpu=N            GPU N falls off the bus
//	POST /restore?gpu=N         GPU N is back
//	POST /reset?gpu=N           GPU N is reset (nvidia-smi -r): its volatile
//	                            ECC counts and pending page retirement or row
//	                            remapping are cleared
//	POST /retire-pending?gpu=N  a memory page of GPU N waits for a reset to be
//	                            retired (GPUs before Ampere)
//	POST /remap-pending?gpu=N   a memory row of GPU N waits for a reset to be
//	                            remapped (Ampere and later)
//	POST /remap-failure?gpu=N   a row remapping of GPU N failed (Ampere and
//	                            later; no reset clears it)
//
// on a unix socket only (created 0600), never on a network address. A
// double-bit /ecc also leaves the GPU needing a reset, as real hardware.
// A GPU index out of range, or a fault the GPU's generation cannot have,
// is answered 400.
func fakeControlHandler(m *fake.Machine) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /xid", func(w http.ResponseWriter, r *http.Request) {
		gpu, err := gpuParam(r, m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		xid, err := strconv.ParseUint(r.URL.Query().Get("xid"), 10, 64)
		if err != nil {
			http.Error(w, fmt.Sprintf("xid: want a number: %v", err), http.StatusBadRequest)
			return
		}
		m.InjectXID(gpu, xid)
	})
	mux.HandleFunc("POST /ecc", func(w http.ResponseWriter, r *http.Request) {
		gpu, err := gpuParam(r, m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		double, err := strconv.ParseBool(r.URL.Query().Get("double"))
		if err != nil {
			http.Error(w, fmt.Sprintf("double: want true or false: %v", err), http.StatusBadRequest)
			return
		}
		m.InjectECC(gpu, double)
	})
	mux.HandleFunc("POST /lose", gpuAction(m, m.LoseGPU))
	mux.HandleFunc("POST /restore", gpuAction(m, m.RestoreGPU))
	mux.HandleFunc("POST /reset", gpuAction(m, m.ResetGPU))
	mux.HandleFunc("POST /retire-pending", gpuFault(m, m.SetRetirementPending))
	mux.HandleFunc("POST /remap-pending", gpuFault(m, m.SetRemapPending))
	mux.HandleFunc("POST /remap-failure", gpuFault(m, m.SetRemapFailure))
	return mux
}

// gpuFault sets a memory fault of the GPU named; a fault the GPU cannot
// have (the other generation's) is a bad request.
func gpuFault(m *fake.Machine, set func(gpu int, on bool) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gpu, err := gpuParam(r, m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := set(gpu, true); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}
}

func gpuAction(m *fake.Machine, act func(int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gpu, err := gpuParam(r, m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		act(gpu)
	}
}

func gpuParam(r *http.Request, m *fake.Machine) (int, error) {
	s := r.URL.Query().Get("gpu")
	gpu, err := strconv.Atoi(s)
	if err != nil || gpu < 0 || gpu >= m.NumGPUs() {
		return 0, fmt.Errorf("gpu=%q: want an index in [0, %d)", s, m.NumGPUs())
	}
	return gpu, nil
}

// listenFakeControl opens the control socket, replacing a stale socket;
// anything else at path (a file, a directory, a link) is left alone and is
// an error.
func listenFakeControl(path string) (net.Listener, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	case fi.Mode().Type() != os.ModeSocket:
		return nil, fmt.Errorf("control socket %s: a %s is there, not a socket: not removing it", path, kindOf(fi.Mode()))
	default:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing stale control socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("restricting control socket %s: %w", path, err)
	}
	return l, nil
}

func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m.IsRegular():
		return "regular file"
	default:
		return "file of mode " + m.Type().String()
	}
}

// serveFakeControl serves fault injection on l until ctx ends.
func serveFakeControl(ctx context.Context, l net.Listener, m *fake.Machine) {
	logger := klog.FromContext(ctx)
	srv := &http.Server{Handler: fakeControlHandler(m), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.Info("Serving fake-machine fault injection", "socket", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error(err, "Fault-injection server failed")
	}
}
