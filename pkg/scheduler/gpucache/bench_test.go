package gpucache_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// BenchmarkViewNodeInfo is the per-node hot path of Filter and Score
// (ViewNodeInfo on a node whose view is kept) as kube-scheduler runs it:
// its parallelizer's workers take nodes of one list in turn, every worker
// looking nodes up at once. Run with -cpu 1,2,... to see how it scales
// with the workers (kube-scheduler's default parallelism is 16).
func BenchmarkViewNodeInfo(b *testing.B) {
	const n = 5000
	c := gpucache.New()
	infos := make([]fwk.NodeInfo, n)
	for i := range infos {
		name := fmt.Sprintf("n%d", i)
		node := annotated(&testing.T{}, name, "96", fixture.PCIe(name, "A100", 8))
		if _, err := c.UpdateNode(node); err != nil {
			b.Fatal(err)
		}
		infos[i] = nodeInfo(node)
		if _, err := c.ViewNodeInfo(infos[i]); err != nil { // warm: the view is kept
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each worker walks the list from its own place (a shared counter
		// would be a contended line of its own).
		i := int(next.Add(1)) * 997
		for pb.Next() {
			i = (i + 1) % n
			if _, err := c.ViewNodeInfo(infos[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkViewNodeInfoUnreadable is the per-node path of Filter on nodes
// whose annotations do not decode (readable ones as the baseline in the
// same run): Filter asks every such node of every cycle, so its answer,
// made once per annotation value, must cost about a readable node's.
func BenchmarkViewNodeInfoUnreadable(b *testing.B) {
	const n = 1000
	for _, tc := range []struct {
		name        string
		topo, inUse string
	}{
		{name: "readable"},
		{name: "topology", topo: `{"version":"v9"}`},
		{name: "in-use", inUse: `{"version":"v9"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := gpucache.New()
			infos := make([]fwk.NodeInfo, n)
			for i := range infos {
				name := fmt.Sprintf("n%d", i)
				node := annotated(&testing.T{}, name, "96", fixture.PCIe(name, "A100", 8))
				if tc.topo != "" {
					node.Annotations[protocol.TopologyAnnotation] = tc.topo
				}
				if tc.inUse != "" {
					node.Annotations[protocol.InUseAnnotation] = tc.inUse
				}
				_, _ = c.UpdateNode(node)
				infos[i] = nodeInfo(node)
				_, _ = c.ViewNodeInfo(infos[i])
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 997
				for pb.Next() {
					i = (i + 1) % n
					_, err := c.ViewNodeInfo(infos[i])
					if (err != nil) != (tc.name != "readable") {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
