package gpucache_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// argsNames are the default GPUPackArgs' names, for nodes without a
// resource table (fixture shapes publish none).
var argsNames = gpucache.Names{Whole: "nvidia.com/gpu", Shared: "nvidia.com/gpu.shared", MIGPrefix: "nvidia.com/mig-"}

// withInUse is node with an in-use report of the pods given (uid -> IDs).
func withInUse(t *testing.T, node *v1.Node, pods map[string][]string) *v1.Node {
	t.Helper()
	n := node.DeepCopy()
	var pds []protocol.PodDevices
	for uid, ids := range pods {
		pds = append(pds, protocol.PodDevices{PodRef: protocol.PodRef{Namespace: "other", Name: uid, UID: uid}, Devices: ids})
	}
	raw, err := protocol.EncodeInUse(pds)
	require.NoError(t, err)
	n.Annotations[protocol.InUseAnnotation] = raw
	n.ResourceVersion = ""
	return n
}

// disjointCount is how many distinct IDs the lists hold in all.
func disjointCount(lists ...[]string) int {
	seen := map[string]bool{}
	for _, l := range lists {
		for _, id := range l {
			seen[id] = true
		}
	}
	return len(seen)
}

// A pod bound to a GPU node without gpupack.io/devices (spec.nodeName set
// by hand, another scheduler, the default scheduler) holds its container
// requests' count of devices from the moment the informer reports it bound,
// not only once the node's in-use report names its devices seconds later.
// Until then the cache counts that many of the node's free devices as taken
// (stand-ins: the devices the device plugin would choose for it); once the
// report names them the stand-ins go (no double counting), and everything
// goes with the pod. Old: nothing was counted until the report, so Filter
// saw the node's GPUs free and Reserve could choose a device the kubelet
// had just given the foreign pod, or overcommit the node.
func TestForeignPodHoldsItsCount(t *testing.T) {
	dgx := fixture.DGX1V100("x") // 8 whole GPUs, no resource table
	tabled := fixture.DGX1V100("t")
	tabled.Resources = []topology.Resource{{Name: "example.com/gpu", Kind: topology.KindGPU}}
	shared := fixture.Shared(fixture.PCIe("s", "T4", 2), 4) // 2 GPUs x 4 replicas
	mig := fixture.WithMIG(fixture.PCIe("m", "A100", 2), 0, 1, "1g.5gb", "1g.5gb", "2g.10gb")
	for _, tc := range []struct {
		name string
		topo *topology.Node
		pod  *v1.Pod
		// report: the node's in-use report of the pod (nil: none yet).
		report []string
		// wantUsed is how many distinct device IDs count as used;
		// wantFree the free capacity (GPUs) of the node's State.
		wantUsed int
		wantFree float64
		// mustUse are IDs that must be among the used ones.
		mustUse []string
	}{
		// 8 - 3 = 5 free.
		{name: "whole GPUs, no report yet", topo: dgx, pod: fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 3).Obj(),
			wantUsed: 3, wantFree: 5},
		// The report names the 3: exactly those, no stand-in beside them.
		{name: "whole GPUs, reported", topo: dgx, pod: fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 3).Obj(),
			report: []string{dgx.GPUs[5].UUID, dgx.GPUs[6].UUID, dgx.GPUs[7].UUID}, wantUsed: 3, wantFree: 5,
			mustUse: []string{dgx.GPUs[5].UUID, dgx.GPUs[6].UUID, dgx.GPUs[7].UUID}},
		// A report that names 1 of the 3 (the kubelet mid-admission): 1 + 2 stand-ins.
		{name: "whole GPUs, partly reported", topo: dgx, pod: fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 3).Obj(),
			report: []string{dgx.GPUs[7].UUID}, wantUsed: 3, wantFree: 5, mustUse: []string{dgx.GPUs[7].UUID}},
		// Init container 2, app 1: the kubelet reuses the init
		// container's devices, the pod holds max(2, 1) = 2.
		{name: "init container's devices reused", topo: dgx,
			pod:      fixture.MakePod().Named("f").InitContainer("init").Limit("nvidia.com/gpu", 2).Container("main").Limit("nvidia.com/gpu", 1).Obj(),
			wantUsed: 2, wantFree: 6},
		// A sidecar keeps its 1, the app takes 2 more: 3.
		{name: "sidecar and app", topo: dgx,
			pod:      fixture.MakePod().Named("f").Sidecar("side").Limit("nvidia.com/gpu", 1).Container("main").Limit("nvidia.com/gpu", 2).Obj(),
			wantUsed: 3, wantFree: 5},
		// A name the node's table publishes (not the args').
		{name: "table name", topo: tabled, pod: fixture.MakePod().Named("f").GPUs("example.com/gpu", 2).Obj(),
			wantUsed: 2, wantFree: 6},
		// 3 replicas of 8: 2 - 3/4 = 1.25 free.
		{name: "replicas", topo: shared, pod: fixture.MakePod().Named("f").GPUs("nvidia.com/gpu.shared", 3).Obj(),
			wantUsed: 3, wantFree: 1.25},
		// One 1g.5gb MIG device of 2: GPU 0 is in MIG mode, GPU 1 free: 1.
		{name: "MIG device", topo: mig, pod: fixture.MakePod().Named("f").GPUs("nvidia.com/mig-1g.5gb", 1).Obj(),
			wantUsed: 1, wantFree: 1},
		// A resource no node serves as GPUs holds nothing here.
		{name: "other extended resource", topo: dgx, pod: fixture.MakePod().Named("f").GPUs("example.com/fpga", 2).Obj(),
			wantUsed: 0, wantFree: 8},
		// More than the node has: every device taken, no more.
		{name: "more than the node has", topo: dgx, pod: fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 12).Obj(),
			wantUsed: 8, wantFree: 0},
		// A gpupack.io/devices that does not decode: the device plugin
		// handles the pod as one without a choice; its count holds.
		{name: "malformed devices annotation", topo: dgx,
			pod:      fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 2).Annotations(protocol.DevicesAnnotation, "{not json").Obj(),
			wantUsed: 2, wantFree: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := annotated(t, "n", "96", tc.topo)
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			_, _ = c.UpdateNode(node)
			pod := tc.pod.DeepCopy()
			pod.Spec.NodeName = "n"
			_ = c.AddPod(pod) // a malformed annotation is reported, the pod still counted
			if tc.report != nil {
				node = withInUse(t, node, map[string][]string{string(pod.UID): tc.report})
				_, _ = c.UpdateNode(node)
			}
			check := func(what string) {
				used := c.Used("n")
				require.Len(t, used, tc.wantUsed, "%s: used %v", what, used)
				for _, id := range tc.mustUse {
					require.True(t, used[id], "%s: %s is reported in use", what, id)
				}
				v, err := c.ViewNode(node)
				require.NoError(t, err)
				require.InDelta(t, tc.wantFree, v.State.FreeCapacity(), 1e-9, what)
				require.Len(t, v.Used(nil), tc.wantUsed, what)
				// A preemption victim's devices, stand-ins included, count free.
				require.Len(t, c.UsedWithout("n", []types.UID{pod.UID}), 0, what)
			}
			check("bound")
			_ = c.AddPod(pod) // an update of the same pod changes nothing
			check("updated")

			// Once the pod goes, only what the node's report still names
			// (until the device plugin reports again) counts.
			left := map[string]bool{}
			for _, id := range tc.report {
				left[id] = true
			}
			done := pod.DeepCopy()
			done.Status.Phase = v1.PodSucceeded
			require.NoError(t, c.AddPod(done))
			require.Equal(t, left, c.Used("n"), "a finished pod holds nothing")
			_ = c.AddPod(pod)
			c.Forget(pod.UID)
			require.Equal(t, left, c.Used("n"), "a deleted pod holds nothing")
		})
	}
}

// Two foreign pods, each 1 GPU: the report names one of them on the GPU the
// other's stand-in stood on. The count stays 2 (the stand-in moves), never
// 1. DGX-1: 8 - 2 = 6 free.
func TestForeignStandInsNeverOverlapReportedDevices(t *testing.T) {
	topo := fixture.DGX1V100("x")
	node := annotated(t, "n", "96", topo)
	c := gpucache.New()
	c.AddArgsNames(argsNames)
	_, _ = c.UpdateNode(node)
	a := fixture.MakePod().Named("a").GPUs("nvidia.com/gpu", 1).Node("n").Obj()
	b := fixture.MakePod().Named("b").GPUs("nvidia.com/gpu", 1).Node("n").Obj()
	require.NoError(t, c.AddPod(a))
	require.NoError(t, c.AddPod(b))
	used := c.Used("n")
	require.Len(t, used, 2)
	for id := range used {
		// a got the device b's stand-in (or its own) stood on.
		n := withInUse(t, node, map[string][]string{string(a.UID): {id}})
		_, _ = c.UpdateNode(n)
		require.Len(t, c.Used("n"), 2, "a on %s, b still pending", id)
		v, err := c.ViewNode(n)
		require.NoError(t, err)
		require.Equal(t, 6, v.State.FreeGPUs().Len())
	}
	// Both reported: exactly the report.
	n := withInUse(t, node, map[string][]string{string(a.UID): {topo.GPUs[0].UUID}, string(b.UID): {topo.GPUs[1].UUID}})
	_, _ = c.UpdateNode(n)
	require.Equal(t, map[string]bool{topo.GPUs[0].UUID: true, topo.GPUs[1].UUID: true}, c.Used("n"))
	// The report goes (pods gone from the kubelet) before the informer's
	// delete: the pods still hold their count.
	_, _ = c.UpdateNode(annotated(t, "n", "96", topo))
	require.Equal(t, 2, disjointCount(mapKeys(c.Used("n"))))
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A device plugin reconfigured under the same resource name (NVIDIA's
// time-slicing switched on or off without renaming nvidia.com/gpu) serves
// the name as another kind of device than the one a running foreign pod
// was given: the in-use report names the pod's old device (a whole GPU's
// UUID, or a replica ID), the node's table now says replicas (or whole
// GPUs). The reported device is the pod's request, whatever its kind: no
// stand-in beside it. Old: the stand-ins were matched to the report by
// kind only, so the pod held its reported device and a stand-in of the new
// kind for as long as it ran (a replica, or a whole GPU, lost).
func TestForeignPodReportedUnderAnotherKind(t *testing.T) {
	replicas := fixture.Shared(fixture.PCIe("r", "T4", 2), 4) // 2 GPUs x 4 replicas
	replicas.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked}}
	whole := fixture.DGX1V100("w")
	whole.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindGPU}}
	mig := fixture.WithMIG(fixture.PCIe("m", "A100", 2), 0, 1, "1g.5gb", "1g.5gb")
	mig.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
		{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIG, Profile: "1g.5gb"}}
	migShared := fixture.WithMIG(fixture.PCIe("s", "A100", 2), 0, 1, "1g.5gb", "1g.5gb")
	migShared.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
		{Name: "nvidia.com/mig-1g.5gb.shared", Kind: topology.KindMIGReplica, Profile: "1g.5gb", Replicas: 2, Policy: topology.PolicyPacked}}
	for _, tc := range []struct {
		name   string
		topo   *topology.Node
		pod    *v1.Pod
		report []string
		// wantFree is the node's free capacity in GPUs; standIns how
		// many devices count beside the reported ones.
		wantFree float64
		standIns int
	}{
		// Whole GPU 0 reported (given before time-slicing): GPU 0's 4
		// replicas taken, GPU 1 free: 2 - 1 = 1 (old: a stand-in replica
		// on GPU 1 too, 0.75).
		{name: "whole GPU reported, replicas served", topo: replicas,
			pod:    fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 1).Obj(),
			report: []string{replicas.GPUs[0].UUID}, wantFree: 1},
		// Replica GPU-0::0 reported (given while time-sliced), whole GPUs
		// served now: GPU 0 taken, 8 - 1 = 7 (old: a stand-in whole GPU
		// too, 6).
		{name: "replica reported, whole GPUs served", topo: whole,
			pod:    fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 1).Obj(),
			report: []string{whole.GPUs[0].UUID + "::0"}, wantFree: 7},
		// 2 whole GPUs asked, one whole and one replica ID reported: both
		// are the request's, 8 - 2 = 6 (old: 5).
		{name: "one of each reported", topo: whole,
			pod:    fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 2).Obj(),
			report: []string{whole.GPUs[0].UUID, whole.GPUs[1].UUID + "::0"}, wantFree: 6},
		// A whole GPU and a MIG device asked, each reported as asked:
		// matched by kind first, nothing left over: GPU 1 whole, GPU 0 in
		// MIG mode: 0 free.
		{name: "two kinds, each reported as asked", topo: mig,
			pod: fixture.MakePod().Named("f").Container("main").Limit("nvidia.com/gpu", 1).
				Limit("nvidia.com/mig-1g.5gb", 1).Obj(),
			report: []string{mig.GPUs[1].UUID, mig.MIG[0].UUID}, wantFree: 0},
		// A whole GPU and a MIG replica (a kind gpupack does not place)
		// asked, only the MIG replica reported yet: it is the MIG
		// request's, the whole GPU's stand-in stays (GPU 1): 0 free.
		{name: "unplaced kind reported, placed kind not yet", topo: migShared,
			pod: fixture.MakePod().Named("f").Container("main").Limit("nvidia.com/gpu", 1).
				Limit("nvidia.com/mig-1g.5gb.shared", 1).Obj(),
			report: []string{migShared.MIG[0].UUID + "::0"}, wantFree: 0, standIns: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := annotated(t, "n", "96", tc.topo)
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			_, _ = c.UpdateNode(node)
			pod := tc.pod.DeepCopy()
			pod.Spec.NodeName = "n"
			require.NoError(t, c.AddPod(pod))
			node = withInUse(t, node, map[string][]string{string(pod.UID): tc.report})
			_, _ = c.UpdateNode(node)
			v, err := c.ViewNode(node)
			require.NoError(t, err)
			require.InDelta(t, tc.wantFree, v.State.FreeCapacity(), 1e-9)
			used := c.Used("n")
			require.Len(t, used, len(tc.report)+tc.standIns)
			for _, id := range tc.report {
				require.True(t, used[id], "%s is reported", id)
			}
		})
	}
}

// A foreign pod's stand-ins are read by Used and HeldBy (under the read
// lock while current) while other goroutines assume and forget pods on
// its node and replace the Node object: every answer holds the pod's 2
// GPUs, never 0 (stand-ins of a State since replaced) or more. DGX-1, a
// foreign pod of 2 GPUs, no report. Run with -race.
func TestForeignStandInsReadWhileRebuilt(t *testing.T) {
	topo := fixture.DGX1V100("x")
	c := gpucache.New()
	c.AddArgsNames(argsNames)
	_, _ = c.UpdateNode(annotated(t, "n", "96", topo))
	f := fixture.MakePod().Named("f").GPUs("nvidia.com/gpu", 2).Node("n").Obj()
	require.NoError(t, c.AddPod(f))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // Reserve and the informer
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			uid := types.UID(fmt.Sprint("p", i%3))
			c.Assume(uid, "n", []string{topo.GPUs[i%8].UUID})
			if i%2 == 0 {
				c.Forget(uid)
			}
			if i%5 == 0 {
				_, _ = c.UpdateNode(annotated(t, "n", []string{"96", "64"}[i%2], topo))
			}
		}
	}()
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if held := c.HeldBy("n", f.UID); len(held) != 2 {
					errs <- fmt.Errorf("HeldBy: %v, want 2 stand-ins", held)
					return
				}
				// The 2 stand-ins and at most the 3 assumed pods' GPUs.
				if used := c.UsedWithout("n", []types.UID{"p0", "p1", "p2"}); len(used) != 2 {
					errs <- fmt.Errorf("Used without the assumed pods: %v, want the 2 stand-ins", used)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// withReport is node with an in-use report of exactly these entries.
func withReport(t *testing.T, node *v1.Node, pds ...protocol.PodDevices) *v1.Node {
	t.Helper()
	n := node.DeepCopy()
	raw, err := protocol.EncodeInUse(pds)
	require.NoError(t, err)
	n.Annotations[protocol.InUseAnnotation] = raw
	n.ResourceVersion = ""
	return n
}

// An in-use entry without a UID (the device plugin's pod lister did not
// know the pod: not yet, or no longer) is never credited to a bound pod of
// the same namespace and name: it may be a deleted pod the kubelet still
// runs, and a recreated pod of that name (a StatefulSet's web-0) holds
// devices of its own. So its devices count beside the pod's stand-ins
// until a report with the UID comes: the node looks fuller for up to a
// report interval, never emptier than it is. (Crediting it by name, tried
// and reverted, made a recreated web-0's 2 GPUs count free.)
func TestForeignUIDLessEntryNeverReplacesStandIns(t *testing.T) {
	dgx := fixture.DGX1V100("x") // 8 whole GPUs
	gpu := func(i int) string { return dgx.GPUs[i].UUID }
	for _, tc := range []struct {
		name    string
		entries []protocol.PodDevices
		// wantUsed: distinct IDs in use; wantVictim: IDs still used with
		// the pod preempted.
		wantUsed, wantVictim int
	}{
		// The old web-0 holds 6 and 7; the new one's 2 stand-ins: 2 + 2 = 4.
		{name: "recreated pod of the same name", entries: []protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "default", Name: "web-0"}, Devices: []string{gpu(6), gpu(7)}}},
			wantUsed: 4, wantVictim: 2},
		// The same name in another namespace: 2 + 2 = 4.
		{name: "same name, other namespace", entries: []protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "other", Name: "web-0"}, Devices: []string{gpu(6), gpu(7)}}},
			wantUsed: 4, wantVictim: 2},
		// An entry naming no pod at all: 1 + 2 = 3.
		{name: "nameless entry", entries: []protocol.PodDevices{{Devices: []string{gpu(7)}}},
			wantUsed: 3, wantVictim: 1},
		// The pod's own entry with its UID replaces its stand-ins: 2.
		{name: "entry with the UID", entries: []protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "default", Name: "web-0", UID: "uid-new"}, Devices: []string{gpu(6), gpu(7)}}},
			wantUsed: 2, wantVictim: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := annotated(t, "n", "96", dgx)
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			_, _ = c.UpdateNode(node)
			pod := fixture.MakePod().Named("web-0").GPUs("nvidia.com/gpu", 2).Node("n").Obj()
			pod.UID = "uid-new"
			require.NoError(t, c.AddPod(pod))
			node = withReport(t, node, tc.entries...)
			_, _ = c.UpdateNode(node)

			require.Len(t, c.Used("n"), tc.wantUsed)
			v, err := c.ViewNode(node)
			require.NoError(t, err)
			require.Equal(t, 8-tc.wantUsed, v.State.FreeGPUs().Len())
			require.Len(t, c.UsedWithout("n", []types.UID{pod.UID}), tc.wantVictim)
		})
	}
}

// A pod whose gpupack.io/devices names devices another pod on the node
// holds (kubectl debug --copy-to --same-node copies the annotations and
// keeps the node) holds its requests' count as a foreign pod: the kubelet
// gave it other devices. Old: the copy counted the original's devices
// again, the node looked that much freer than it was, and more pods were
// reserved on GPUs the copy held. In either informer order the pod seen
// first keeps the annotation's devices and the second counts by its
// requests (DGX-1, 8 GPUs).
func TestCopiedDevicesAnnotationHoldsItsCount(t *testing.T) {
	const held = "names devices that pod UID holds"
	topo := fixture.DGX1V100("x")
	ids := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, topo.GPUs[i].UUID)
		}
		return out
	}
	devices := func(n int) string {
		raw, err := protocol.EncodeDevices(protocol.Devices{
			Resources:  map[string][]string{"nvidia.com/gpu": ids(0, n)},
			Containers: map[string]map[string][]string{"main": {"nvidia.com/gpu": ids(0, n)}},
		})
		require.NoError(t, err)
		return raw
	}
	for _, tc := range []struct {
		name           string
		orig, copyAsks int // GPUs; the copy carries the original's annotation
		copyFirst      bool
		wantUsed       int // distinct devices counted with both pods
		wantLeft       int // after the second pod goes
		// firstErr, secondErr: what AddPod says of each ("": nothing).
		firstErr, secondErr string
	}{
		{"copy of a 4-GPU pod", 4, 4, false, 8, 8, "", held},                 // 4 + 4; the copy's report stays
		{"copy of a 4-GPU pod, copy seen first", 4, 4, true, 8, 4, "", held}, // 4 + 4; the copy's 4
		// A copy asking another count than its annotation names is
		// counted by its requests whatever the order: the device plugin
		// gives no set of the wrong size.
		{"copy of a 3-GPU pod asking 1", 3, 1, false, 4, 4, "", "3 nvidia.com/gpu named, 1 asked"},      // 3 + 1; the copy's report stays
		{"copy asking more than the original", 2, 5, true, 7, 5, "2 nvidia.com/gpu named, 5 asked", ""}, // 5 + 2; the copy's 5
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := annotated(t, "n", "96", topo)
			c := gpucache.New()
			c.AddArgsNames(argsNames)
			_, _ = c.UpdateNode(node)
			orig := fixture.MakePod().Named("orig").GPUs("nvidia.com/gpu", int64(tc.orig)).Node("n").
				Annotations(protocol.DevicesAnnotation, devices(tc.orig)).Obj()
			cp := fixture.MakePod().Named("orig-debug").GPUs("nvidia.com/gpu", int64(tc.copyAsks)).Node("n").
				Annotations(protocol.DevicesAnnotation, devices(tc.orig)).Obj()
			first, second := orig, cp
			if tc.copyFirst {
				first, second = cp, orig
			}
			wantErr := func(err error, want string) {
				t.Helper()
				if want == "" {
					require.NoError(t, err)
					return
				}
				require.ErrorContains(t, err, strings.ReplaceAll(want, "UID", "UID "+string(first.UID)))
			}
			wantErr(c.AddPod(first), tc.firstErr)
			wantErr(c.AddPod(second), tc.secondErr)
			require.Len(t, c.Used("n"), tc.wantUsed)
			v, err := c.ViewNode(node)
			require.NoError(t, err)
			require.Equal(t, 8-tc.wantUsed, v.State.FreeGPUs().Len())
			// Updates of either change nothing.
			wantErr(c.AddPod(first), tc.firstErr)
			wantErr(c.AddPod(second), tc.secondErr)
			require.Len(t, c.Used("n"), tc.wantUsed)
			if !tc.copyFirst {
				// The kubelet's report names the copy's devices (the last
				// ones): its count holds on them, no stand-ins beside them.
				reported := ids(8-tc.copyAsks, 8)
				_, _ = c.UpdateNode(withInUse(t, node, map[string][]string{string(cp.UID): reported}))
				used := c.Used("n")
				require.Len(t, used, tc.wantUsed)
				for _, id := range reported {
					require.True(t, used[id], "%s reported for the copy", id)
				}
			}
			c.Forget(second.UID)
			require.Len(t, c.Used("n"), tc.wantLeft)
		})
	}
}
