package app

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

// labelSequence answers each read with the next label value (the last one
// again once they are used up); "!" is a failed read.
type labelSequence struct {
	mu     sync.Mutex
	values []string
	reads  int
}

func (s *labelSequence) Node(_ context.Context, name string) (*corev1.Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.values[min(s.reads, len(s.values)-1)]
	s.reads++
	if v == "!" {
		return nil, errors.New("forbidden")
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"other": "x"}}}
	if v != "" {
		n.Labels[DefaultConfigLabel] = v
	}
	return n, nil
}

func (s *labelSequence) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads > len(s.values)
}

// The chart's default DaemonSet's plugin warns (error log, Warning event)
// when its node's config label names none of the per-node configs, once
// per value: the node runs the default config (a label a100-mgi for
// a100-mig once did so silently). No label, a per-node config's name (the
// node moves to that DaemonSet) and a failed read warn of nothing.
func TestWatchConfigLabel(t *testing.T) {
	configs := []string{"a100-mig", "t4-shared"}
	tests := []struct {
		name   string
		values []string
		want   []string // events, in order
	}{
		{name: "no label", values: []string{""}},
		{name: "a per-node config's name", values: []string{"a100-mig"}},
		{name: "a typo, read again", values: []string{"a100-mgi", "a100-mgi", "a100-mgi"},
			want: []string{"nvidia.com/device-plugin.config=a100-mgi not in a100-mig,t4-shared"}},
		{name: "a typo, another, fixed, again", values: []string{"a100-mgi", "t4", "", "t4"},
			want: []string{
				"nvidia.com/device-plugin.config=a100-mgi not in a100-mig,t4-shared",
				"nvidia.com/device-plugin.config=t4 not in a100-mig,t4-shared",
				"nvidia.com/device-plugin.config=t4 not in a100-mig,t4-shared",
			}},
		{name: "a failed read", values: []string{"!", "a100-mgi"},
			want: []string{"nvidia.com/device-plugin.config=a100-mgi not in a100-mig,t4-shared"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
			defer cancel()
			r := &labelSequence{values: tc.values}
			ev := &notServedEvents{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				watchConfigLabel(ctx, r, "n1", DefaultConfigLabel, configs, ev, time.Millisecond)
			}()
			require.Eventually(t, r.done, 10*time.Second, time.Millisecond)
			cancel()
			<-done
			ev.mu.Lock()
			defer ev.mu.Unlock()
			require.Equal(t, tc.want, ev.labels)
			errors := 0
			for _, l := range logLines(logger) {
				if len(l) > 5 && l[:5] == "ERROR" {
					errors++
				}
			}
			wantErrors := len(tc.want)
			if tc.values[0] == "!" {
				wantErrors++
			}
			require.Equal(t, wantErrors, errors, "%q", logLines(logger))
		})
	}
}

// The node is read through a dry-run empty merge patch: the patch verb
// the plugin has (it has no get of Nodes), nothing written.
func TestDryRunNodeReader(t *testing.T) {
	client := k8sfake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{DefaultConfigLabel: "a100-mgi"}}})
	n, err := dryRunNodeReader{client: client}.Node(context.Background(), "n1")
	require.NoError(t, err)
	require.Equal(t, "a100-mgi", n.Labels[DefaultConfigLabel])
	var patches []k8stesting.PatchActionImpl
	for _, a := range client.Actions() {
		if p, ok := a.(k8stesting.PatchActionImpl); ok {
			patches = append(patches, p)
		}
	}
	require.Len(t, patches, 1)
	require.Equal(t, "{}", string(patches[0].GetPatch()))
	require.Equal(t, []string{metav1.DryRunAll}, patches[0].GetPatchOptions().DryRun)
	require.Len(t, client.Actions(), 1, "no get, list or watch")
}
