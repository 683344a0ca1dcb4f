package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// openbDir is where the openb traces ship, relative to this package
// (testdata/openb from the repository root).
var openbDir = filepath.Join("..", "..", "testdata", "openb")

func loadOpenb(b *testing.B, pods string) (*Cluster, *Workload) {
	b.Helper()
	nodesPath := filepath.Join(openbDir, "openb_node_list_gpu_node.csv")
	if _, err := os.Stat(nodesPath); err != nil {
		b.Skipf("openb traces not found at %s", openbDir)
	}
	nodes, err := ReadNodesFile(nodesPath)
	if err != nil {
		b.Fatal(err)
	}
	tasks, err := ReadTasksFile(filepath.Join(openbDir, pods))
	if err != nil {
		b.Fatal(err)
	}
	cl, err := NewCluster(nodes, DefaultShapes())
	if err != nil {
		b.Fatal(err)
	}
	wl, err := NewWorkload(tasks, cl)
	if err != nil {
		b.Fatal(err)
	}
	return cl, wl
}

// BenchmarkRun replays the default trace once per policy (seed 42, one
// worker), with the gpupack memo cold at every iteration.
func BenchmarkRun(b *testing.B) {
	cl, wl := loadOpenb(b, "openb_pod_list_default.csv")
	for _, pol := range []string{PolicyGPUPack, PolicyFGD, PolicyBestFit, PolicyRandom} {
		b.Run(pol, func(b *testing.B) {
			for b.Loop() {
				_, err := Run(context.Background(), Config{Cluster: cl, Workload: wl, Policies: []string{pol},
					Seeds: []uint64{42}, Target: 1.3, Checkpoints: []float64{1.3}, Workers: 1})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
