package gpucache_test

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// BenchmarkForeignRebuild is the usage State rebuilt on a time-shared node
// (8 GPUs x 48 replicas) holding foreign pods of 1 replica each, none
// reported yet (stand-ins chosen for each) or all reported: a pod assumed
// and forgotten on the node, then the node viewed (Reserve's cost after
// every change on the node).
func BenchmarkForeignRebuild(b *testing.B) {
	for _, pods := range []int{0, 50, 300} {
		for _, reported := range []bool{false, true} {
			b.Run(fmt.Sprintf("pods=%d/reported=%v", pods, reported), func(b *testing.B) {
				topo := fixture.Shared(fixture.PCIe("s", "T4", 8), 48)
				t := &testing.T{}
				node := annotated(t, "n", "96", topo)
				c := gpucache.New()
				c.AddArgsNames(argsNames)
				_, _ = c.UpdateNode(node)
				report := map[string][]string{}
				for i := range pods {
					p := fixture.MakePod().Named(fmt.Sprintf("f%d", i)).GPUs("nvidia.com/gpu.shared", 1).Node("n").Obj()
					_ = c.AddPod(p)
					report[string(p.UID)] = []string{fmt.Sprintf("%s::%d", topo.GPUs[i%8].UUID, i/8)}
				}
				if reported && pods > 0 {
					node = withInUse(t, node, report)
					_, _ = c.UpdateNode(node)
				}
				if _, err := c.ViewNode(node); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					c.Assume(types.UID("new"), "n", []string{topo.GPUs[7].UUID + "::47"})
					c.Forget(types.UID("new"))
					if _, err := c.ViewNode(node); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUsedParallel is NodeView.Used (Filter on a node with nominated
// pods or preemption victims, Reserve) and HeldBy (the framework's AddPod
// of a nominated pod) asked by many workers at once on nodes whose usage
// State is current, with foreign pods' stand-ins on them.
func BenchmarkUsedParallel(b *testing.B) {
	const n = 64
	c := gpucache.New()
	c.AddArgsNames(argsNames)
	views := make([]gpucache.NodeView, n)
	for i := range views {
		name := fmt.Sprintf("n%d", i)
		node := annotated(&testing.T{}, name, "96", fixture.PCIe(name, "A100", 8))
		_, _ = c.UpdateNode(node)
		_ = c.AddPod(fixture.MakePod().Named("f"+name).GPUs("nvidia.com/gpu", 2).Node(name).Obj())
		v, err := c.ViewNode(node)
		if err != nil {
			b.Fatal(err)
		}
		views[i] = v
	}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i + 1) % n
			if len(views[i].Used(nil)) != 2 {
				b.Error("stand-ins not counted")
				return
			}
			_ = c.HeldBy(fmt.Sprintf("n%d", i), types.UID("nominated"))
		}
	})
}
