package deviceplugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// listing stands in for the kubelet's PodResources: allocs (devices per
// container) and the pods it lists, with devices or without (PodNames).
type listing struct {
	allocs
	pods  []string
	errs  []error // the error of each read in turn (none past the end)
	reads int
}

func (l *listing) ListedPods(context.Context) ([]types.NamespacedName, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if l.reads <= len(l.errs) && l.errs[l.reads-1] != nil {
		return nil, l.errs[l.reads-1]
	}
	out := make([]types.NamespacedName, 0, len(l.pods))
	for _, p := range l.pods {
		out = append(out, types.NamespacedName{Namespace: "default", Name: p})
	}
	return out, nil
}

// initOnlyPod is a pod whose only GPU request is its regular init
// container "init"'s (or a sidecar's), one GPU, the scheduler's choice id.
func initOnlyPod(t *testing.T, name string, sidecar bool, at int, id string) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{gpu: {id}},
		Containers: map[string]map[string][]string{"init": {gpu: {id}}},
	})
	require.NoError(t, err)
	p := fixture.MakePod().Named(name).Node("node").
		Annotations(protocol.DevicesAnnotation, s, protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(time.Unix(int64(at), 0)))
	if sidecar {
		p.Sidecar("init")
	} else {
		p.InitContainer("init")
	}
	return p.Limit(gpu, 1).Container("main").Obj()
}

// started marks pod as the kubelet marks a pod it admitted and started.
func started(p *v1.Pod) *v1.Pod {
	p.Status.Phase = v1.PodRunning
	p.Status.StartTime = &metav1.Time{Time: time.Unix(2, 0)}
	return p
}

// After this process restarted, a pod whose only GPU request is an init
// container's is served when the kubelet listed it in the read made before
// this process first registered (beforeRegistration), it was created
// before that read's second and the kubelet started it: its admission was
// over (no pod asking the plugin's resource is admitted while no plugin of
// it is registered). Otherwise its entry stays pending (the kubelet may be
// about to ask for it), as before.
//
// A read that failed (the kubelet restarting while the plugin starts) is
// made again by the next Manager of the process (a rebuild, a retry) as
// long as no plugin of the process has registered with a kubelet: none
// could have served an admission yet. Once one has, no read is made again
// (the process may have served since), nor after a read that succeeded.
func TestHandoffInitOnlyPodListedBeforeRegistration(t *testing.T) {
	later := int(time.Now().Add(time.Hour).Unix()) // created an hour after the read
	down := errors.New("kubelet down")
	tests := []struct {
		name       string
		sidecar    bool
		listed     []string // pods the kubelet lists before registration
		errs       []error  // the error of each read in turn
		registered bool     // a plugin registered between the two Managers
		reads      int      // reads the two Managers made
		notRun     bool     // the kubelet did not start "run" (no status.startTime)
		created    int      // run's creation second (the read is now)
		served     bool     // run's init entry is served: next gets its own set
	}{
		{name: "listed, started, created before the read", listed: []string{"run"}, reads: 1, created: 1, served: true},
		{name: "sidecar not listed with devices (an older kubelet)", sidecar: true, listed: []string{"run"}, reads: 1, created: 1, served: true},
		{name: "listed while its admission was under way (not started)", listed: []string{"run"}, reads: 1, notRun: true, created: 1},
		{name: "started but not listed (kwok's startTime, admission after registration)", listed: []string{"other"}, reads: 1, created: 1},
		{name: "created again under the name after the read", listed: []string{"run"}, reads: 1, created: later},
		{name: "listed, then a plugin registered: the next Manager reads nothing", listed: []string{"run"}, registered: true, reads: 1, created: 1, served: true},
		// 1 failed read + 1 by the next Manager, which fails too = 2.
		{name: "both Managers' reads failed", listed: []string{"run"}, errs: []error{down, down}, reads: 2, created: 1},
		// 1 failed read + 1 by the next Manager, none registered = 2.
		{name: "the read failed, the next Manager's read succeeded", listed: []string{"run"}, errs: []error{down}, reads: 2, created: 1, served: true},
		// 1 failed read + 0: a plugin registered before the next Manager = 1.
		{name: "the read failed, then a plugin registered: the next Manager reads nothing", listed: []string{"run"}, errs: []error{down}, registered: true, reads: 1, created: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pods := &fixture.PodLister{}
			run := created(initOnlyPod(t, "run", tc.sidecar, 1, "g2"), tc.created)
			if !tc.notRun {
				run = started(run)
			}
			pods.Add(run)
			l := &listing{pods: tc.listed, errs: tc.errs}
			a := &allocs{} // PodResources lists no device: run's init container is never listed
			h := NewHandoff(pods, WithUnsynced(), WithAllocations(a))
			h.beforeRegistration(context.Background(), l)
			if tc.registered {
				h.pluginRegistered()
			}
			h.beforeRegistration(context.Background(), l) // a rebuild's Manager
			require.Equal(t, tc.reads, l.reads, "reads before a plugin of the process first registered")
			h.Observe(run)
			h.Synced()

			// 8 GPUs, g2 held by run: 7 available to next, which asks 1.
			next := created(boundPod(t, "next", 1, 10, "g5"), 10)
			pods.Add(next)
			h.Observe(next)
			ids, pod, ok := h.ScheduledSet(context.Background(), gpu, without(all8, "g2"), nil, 1)
			if tc.served {
				require.True(t, ok)
				require.Equal(t, "next", pod.Name, "run's init entry was served before the restart")
				require.Equal(t, []string{"g5"}, ids)
				return
			}
			require.False(t, ok, "run's set g2 is not available")
			require.Equal(t, "run", pod.Name, "run's entry is still pending, ahead of next")
			require.Nil(t, ids)
		})
	}
}

// A registration the kubelet refused leaves the handoff reading again before
// the next Manager registers (after a failed read); one it accepted
// (Plugin.Register) stops every later read.
func TestHandoffReadsUntilAPluginRegistered(t *testing.T) {
	tests := []struct {
		name   string
		accept bool // the kubelet accepts the registration
		reads  int
	}{
		// 1 failed read + 1 by the next Manager (no registration got through) = 2.
		{name: "registration refused", reads: 2},
		// 1 failed read + 0 (a plugin registered) = 1.
		{name: "registration accepted", accept: true, reads: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "gp-") // short: a unix socket's path is at most 107 bytes
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			gate := &registrationGate{}
			gate.open.Store(tc.accept)
			fakeKubelet(t, dir, gate)
			kubeletSocket := filepath.Join(dir, KubeletSocketName)

			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			l := &listing{pods: []string{"run"}, errs: []error{errors.New("kubelet restarting")}}
			h := NewHandoff(&fixture.PodLister{})
			p := &Plugin{resource: sharing.Resource{Name: "nvidia.com/gpu"}, instance: "0badc0de", handoff: h}
			t.Cleanup(p.Stop)
			require.NoError(t, p.Serve(ctx, dir))

			h.beforeRegistration(ctx, l) // fails
			err = p.Register(ctx, kubeletSocket)
			require.Equal(t, tc.accept, err == nil, "registration: %v", err)
			h.beforeRegistration(ctx, l) // the next Manager's
			require.Equal(t, tc.reads, l.reads)
		})
	}
}
