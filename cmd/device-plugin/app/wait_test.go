package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

// With the apiserver unreachable the plugin serves the kubelet anyway (its
// socket appears in the device-plugin directory) and logs that it waits for
// the pod informer, first as progress and then as an error.
func TestServesTheKubeletWhileTheAPIServerIsUnreachable(t *testing.T) {
	oldEvery, oldWarn := informerSyncLogEvery, informerSyncWarnAfter
	informerSyncLogEvery, informerSyncWarnAfter = 200*time.Millisecond, 600*time.Millisecond
	t.Cleanup(func() { informerSyncLogEvery, informerSyncWarnAfter = oldEvery, oldWarn })

	dir, err := os.MkdirTemp("", "gpdp-") // short: unix socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// A kubeconfig naming a loopback port nothing listens on.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600))

	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := NewCommand()
	cmd.SetArgs([]string{"--fake", "dgx-1-v100", "--device-plugin-dir", dir, "--node-name", "n1",
		"--kubeconfig", kubeconfig, "--metrics-bind-address=", "--pod-resources-socket", filepath.Join(dir, "pr.sock")})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(klog.NewContext(ctx, logger)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the plugin did not stop")
		}
	})

	// gpupack-nvidia_com-gpu-<instance>-<n>.sock: the plugin's own gRPC
	// socket, served without the apiserver.
	require.Eventually(t, func() bool {
		m, err := filepath.Glob(filepath.Join(dir, "gpupack-nvidia_com-gpu-*.sock"))
		return err == nil && len(m) == 1
	}, 20*time.Second, 20*time.Millisecond, "the plugin must serve the kubelet before its informer syncs")
	buf := logger.GetSink().(ktesting.Underlier).GetBuffer()
	require.Eventually(t, func() bool {
		s := buf.String()
		return strings.Contains(s, "Waiting for the pod informer to sync") &&
			strings.Contains(s, "The pod informer has not synced: is the apiserver reachable?")
	}, 20*time.Second, 50*time.Millisecond, "the wait must be logged")
}

// waitForPodInformer calls done once synced, and never when ctx ends first.
func TestWaitForPodInformer(t *testing.T) {
	var synced atomic.Bool
	var calls atomic.Int32
	ctx := context.Background()
	go func() { time.Sleep(300 * time.Millisecond); synced.Store(true) }()
	waitForPodInformer(ctx, synced.Load, func() { calls.Add(1) }, 50*time.Millisecond, time.Hour)
	require.Equal(t, int32(1), calls.Load())

	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	waitForPodInformer(ctx, func() bool { return false }, func() { calls.Add(1) }, 50*time.Millisecond, time.Hour)
	require.Equal(t, int32(1), calls.Load(), "not synced: done is not called")
}
