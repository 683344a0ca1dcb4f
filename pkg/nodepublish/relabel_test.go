package nodepublish_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/topology"
)

// source is a running device plugin as the publisher reads it; its health
// never changes.
type source struct {
	node *topology.Node
	gfd  *gfd.Node
}

func (s source) Node() *topology.Node           { return s.node }
func (s source) GFD() *gfd.Node                 { return s.gfd }
func (s source) ResourceNames() []string        { return []string{"nvidia.com/gpu"} }
func (s source) HealthChanged() <-chan struct{} { return nil }

// applies counts the server-side applies the publisher made.
func applies(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "nodes" {
			n++
		}
	}
	return n
}

// TestRelabel: the labels are republished every RelabelInterval, as GFD
// relabels every --sleep-interval, with nvidia.com/gfd.timestamp moving
// with the clock, and written to the label file (NFD's local source) each
// time; with RelabelInterval 0 (GFD's --oneshot) they are published once.
func TestRelabel(t *testing.T) {
	const t0 = 1764500000
	for _, tc := range []struct {
		name     string
		interval time.Duration
		step     time.Duration // how far the clock moves at each step
		// after each step: the timestamp on the node and in the file, and
		// the applies made so far (the first at start)
		wantStamps  []string
		wantApplies []int
	}{
		// 1764500000 + 60 = 1764500060, + 60 = 1764500120
		{"every 60s", time.Minute, time.Minute, []string{"1764500060", "1764500120"}, []int{2, 3}},
		// 1764500000 + 30 = 1764500030, + 30 = 1764500060
		{"every 30s", 30 * time.Second, 30 * time.Second, []string{"1764500030", "1764500060"}, []int{2, 3}},
		// never relabelled: the start's stamp stays however far the clock moves
		{"oneshot", 0, time.Hour, []string{"1764500000", "1764500000"}, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
			clk := testingclock.NewFakeClock(time.Unix(t0, 0))
			file := filepath.Join(t.TempDir(), "gfd")
			p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Labels: true, Clock: clk})
			p.Reconfigure(nodepublish.Settings{Labels: true, RelabelInterval: tc.interval, LabelFile: file})
			src := source{
				node: &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}}, Links: links(1, nil)},
				gfd:  gfdNode("none", false),
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { p.Run(ctx, src); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			published := func(stamp string) func() bool {
				return func() bool {
					b, err := os.ReadFile(file)
					return err == nil && strings.Contains(string(b), "nvidia.com/gfd.timestamp="+stamp+"\n")
				}
			}
			require.Eventually(t, published("1764500000"), 10*time.Second, time.Millisecond)
			require.Equal(t, 1, applies(client))
			for i, stamp := range tc.wantStamps {
				if tc.interval > 0 {
					// Run has its ticker before it waits on it.
					require.Eventually(t, clk.HasWaiters, 10*time.Second, time.Millisecond)
				}
				clk.Step(tc.step)
				require.Eventually(t, published(stamp), 10*time.Second, time.Millisecond, "step %d", i)
				require.Equal(t, stamp, getNode(t, client, "n1").Labels[gfd.LabelTimestamp], "step %d", i)
				if tc.interval == 0 {
					time.Sleep(50 * time.Millisecond) // time for a wrong apply to show
				}
				require.Equal(t, tc.wantApplies[i], applies(client), "step %d", i)
			}
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Contains(t, string(b), "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB\n")
		})
	}
}

// TestWriteLabelFile: sorted key=value lines, the file replaced whole
// (no temporary file left beside it); a directory that does not exist is a
// clear error naming the file.
func TestWriteLabelFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gfd")
	require.NoError(t, nodepublish.WriteLabelFile(file, map[string]string{"b": "2", "a": "1", "nvidia.com/gpu.count": "8"}))
	require.NoError(t, nodepublish.WriteLabelFile(file, map[string]string{"b": "3", "a": "1"}))
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "a=1\nb=3\n", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	err = nodepublish.WriteLabelFile(filepath.Join(dir, "missing", "gfd"), map[string]string{"a": "1"})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "label file "+filepath.Join(dir, "missing", "gfd")), err.Error())
}

// TestRelabelFileErrorIsRetried: a label file that cannot be written makes
// the publication fail (the labels were applied), so Run retries it; the
// apply itself is never held back by the file.
func TestRelabelFileErrorIsRetried(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	clk := testingclock.NewFakeClock(time.Unix(1764500000, 0))
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Clock: clk})
	p.Reconfigure(nodepublish.Settings{Labels: true, LabelFile: filepath.Join(t.TempDir(), "missing", "gfd")})
	err := p.PublishNode(context.Background(), &topology.Node{Links: links(0, nil)}, gfdNode("none", false))
	require.ErrorContains(t, err, "label file")
	require.Equal(t, "1764500000", getNode(t, client, "n1").Labels[gfd.LabelTimestamp])
}
