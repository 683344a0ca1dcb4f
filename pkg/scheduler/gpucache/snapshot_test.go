package gpucache_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A view of an older Node object (the cycle's snapshot, taken before the
// informer delivered the node's newer report) must not make the cache
// forget what the newer report says: a GPU the newer in-use report lists
// (another scheduler's pod) stays used, an unhealthy GPU stays unusable,
// an unreadable report keeps the node off. DGX-1 (8 GPUs) idle in the
// old object; the newer one takes GPU 0 (8 - 1 = 7 free at most).
func TestOlderNodeObjectKeepsNewerReport(t *testing.T) {
	topo := fixture.DGX1V100("o")
	for _, tc := range []struct {
		name    string
		newer   func(n *v1.Node)
		wantErr bool
	}{
		{name: "in-use report", newer: func(n *v1.Node) {
			u, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "x", Name: "f", UID: "f"}, Devices: []string{topo.GPUs[0].UUID}}})
			require.NoError(t, err)
			n.Annotations[protocol.InUseAnnotation] = u
		}},
		{name: "unhealthy", newer: func(n *v1.Node) {
			sick := fixture.DGX1V100("o")
			sick.GPUs[0].Healthy = false
			raw, err := protocol.EncodeTopology(sick)
			require.NoError(t, err)
			n.Annotations[protocol.TopologyAnnotation] = raw
		}},
		{name: "unreadable report", wantErr: true, newer: func(n *v1.Node) {
			n.Annotations[protocol.InUseAnnotation] = "{not json"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			older := annotated(t, "o", "64", topo)
			c := gpucache.New()
			_, _ = c.UpdateNode(older)
			snapshot := nodeInfo(older) // the cycle's
			_, err := c.ViewNodeInfo(snapshot)
			require.NoError(t, err)
			newer := older.DeepCopy()
			tc.newer(newer)
			_, _ = c.UpdateNode(newer)         // the informer, during the cycle
			v, err := c.ViewNodeInfo(snapshot) // Reserve
			if tc.wantErr {
				require.Error(t, err, "the newest in-use report is unreadable")
				return
			}
			require.NoError(t, err)
			require.False(t, v.State.FreeGPUs().Has(0), "GPU 0 is taken or unhealthy in the newest report")
			require.Equal(t, 7, v.State.FreeGPUs().Len())
			// ... and the informer's view of the node afterwards too.
			after, err := c.ViewNode(newer)
			require.NoError(t, err)
			require.False(t, after.State.FreeGPUs().Has(0))
		})
	}
}

// The other way round: the informer's handler lags the scheduler's own, so
// the cycle's snapshot holds a newer Node object (a higher resourceVersion)
// than the cache has: the view takes the snapshot's annotations, and the
// entry keeps them (the informer's next delivery is the same object). A
// snapshot whose resourceVersion is lower, equal or not a number is not
// known newer and gets the informer's.
func TestNewerSnapshotObjectIsTaken(t *testing.T) {
	topo := fixture.DGX1V100("r")
	inUse, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "x", Name: "f", UID: "f"}, Devices: []string{topo.GPUs[0].UUID}}})
	require.NoError(t, err)
	for _, tc := range []struct {
		name          string
		cached, snap  string // resourceVersions
		snapshotTaken bool   // the view shows the snapshot's report (GPU 0 in use)
	}{
		{"snapshot newer", "5", "7", true},
		{"snapshot older", "7", "5", false},
		{"same version", "5", "5", false},
		{"no versions", "", "", false},
		{"not a number", "5", "x7", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cached := annotated(t, "r", "64", topo)
			cached.ResourceVersion = tc.cached
			c := gpucache.New()
			_, _ = c.UpdateNode(cached)
			snap := cached.DeepCopy()
			snap.ResourceVersion = tc.snap
			snap.Annotations[protocol.InUseAnnotation] = inUse
			v, err := c.ViewNodeInfo(nodeInfo(snap))
			require.NoError(t, err)
			want := 8 // 8 GPUs, none in use in the cached object's report
			if tc.snapshotTaken {
				want = 7 // 8 - GPU 0 of the snapshot's report
			}
			require.Equal(t, want, v.State.FreeGPUs().Len())
			again, err := c.ViewNode(cached)
			require.NoError(t, err)
			require.Equal(t, want, again.State.FreeGPUs().Len(), "the entry keeps what it has taken")
		})
	}
}

// The informer delivering an older version than one a snapshot brought
// first (its handler lagging) does not roll the entry back either.
func TestInformerDoesNotRollBackANewerSnapshot(t *testing.T) {
	topo := fixture.DGX1V100("q")
	older := annotated(t, "q", "64", topo)
	older.ResourceVersion = "5"
	c := gpucache.New()
	_, _ = c.UpdateNode(older)
	newer := older.DeepCopy()
	newer.ResourceVersion = "7"
	inUse, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "x", Name: "f", UID: "f"}, Devices: []string{topo.GPUs[0].UUID}}})
	require.NoError(t, err)
	newer.Annotations[protocol.InUseAnnotation] = inUse
	v, err := c.ViewNodeInfo(nodeInfo(newer)) // the snapshot's, newer
	require.NoError(t, err)
	require.Equal(t, 7, v.State.FreeGPUs().Len()) // 8 - GPU 0
	_, _ = c.UpdateNode(older.DeepCopy())         // the informer, late (RV 5 again)
	after, err := c.ViewNode(newer)
	require.NoError(t, err)
	require.Equal(t, 7, after.State.FreeGPUs().Len(), "not rolled back to the older report")
	require.Equal(t, []string{topo.GPUs[0].UUID}, keys(c.Used("q")))
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The informer delivering the node without its GPU annotations (the device
// plugin gone, the annotations removed) is newer than a cycle's snapshot of
// the node that still has them: viewing that snapshot afterwards must not
// bring the node's topology and usage back into the cache (its entry, the
// supply, Topology), whether or not a pod still holds devices on the node.
// A snapshot newer than the removal (the annotations written again, the
// informer's handler lagging) is taken; versions that are not numbers are
// not known newer, so the informer's removal stands.
func TestOlderSnapshotDoesNotRestoreRemovedAnnotations(t *testing.T) {
	topo := fixture.DGX1V100("g")
	for _, tc := range []struct {
		name                  string
		annotated, bare, snap string // resourceVersions: the informer's two deliveries, then the cycle's snapshot
		podHeld               bool   // a pod holds devices on the node throughout
		snapshotTaken         bool
	}{
		{name: "older snapshot", annotated: "5", bare: "7", snap: "5"},
		{name: "older snapshot, pod held", annotated: "5", bare: "7", snap: "5", podHeld: true},
		{name: "same version as the removal", annotated: "5", bare: "7", snap: "7"},
		{name: "no versions", annotated: "", bare: "", snap: ""},
		{name: "not a number", annotated: "5", bare: "7", snap: "x9"},
		{name: "snapshot newer than the removal", annotated: "5", bare: "7", snap: "9", snapshotTaken: true},
		{name: "snapshot newer than the removal, pod held", annotated: "5", bare: "7", snap: "9", podHeld: true, snapshotTaken: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withGPUs := annotated(t, "g", "64", topo)
			withGPUs.ResourceVersion = tc.annotated
			c := gpucache.New()
			_, _ = c.UpdateNode(withGPUs)
			if tc.podHeld {
				c.Assume("p", "g", []string{topo.GPUs[0].UUID})
			}
			d, err := score.NewDistribution([]score.Weighted{{Type: score.TaskType{Kind: score.KindWhole, Count: 1, Model: "A100"}, Weight: 1}})
			require.NoError(t, err)
			require.Positive(t, c.Fragmentation(d), "the node counts while annotated (its free V100s are stranded for A100 tasks)")

			bare := withGPUs.DeepCopy()
			bare.ResourceVersion = tc.bare
			delete(bare.Annotations, protocol.TopologyAnnotation)
			_, _ = c.UpdateNode(bare) // the informer: the annotations are gone
			require.Nil(t, c.Topology("g"))

			snap := withGPUs.DeepCopy() // the cycle's snapshot
			snap.ResourceVersion = tc.snap
			_, err = c.ViewNodeInfo(nodeInfo(snap))
			if tc.snapshotTaken {
				require.NoError(t, err)
				require.NotNil(t, c.Topology("g"), "a newer snapshot's annotations are taken")
				return
			}
			require.Error(t, err, "the node has no GPU annotation since the informer's newer delivery")
			require.Nil(t, c.Topology("g"), "the snapshot's older topology came back")
			require.Zero(t, c.Fragmentation(d), "the cluster's figures count the older snapshot's node")
			wantNodes := 0
			if tc.podHeld {
				wantNodes = 1 // the pod's entry
			}
			require.Equal(t, wantNodes, c.Nodes())
			_, err = c.ViewNode(bare)
			require.Error(t, err)
		})
	}
}
