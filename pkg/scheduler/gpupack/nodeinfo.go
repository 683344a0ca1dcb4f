package gpupack

import (
	fwk "k8s.io/kube-scheduler/framework"
)

// cycleNodeInfo is the NodeInfo Filter, Score and Reserve give the cache
// (gpucache.Cache.ViewNodeInfo) in a cycle of cs. The cache reads a
// NodeInfo's free CPU and memory again only when its generation is not the
// one it read them at, which holds in a pod's own cycle: every change gets
// a new generation. In a pod group scheduling cycle kube-scheduler adds
// the group's pods to the snapshot's NodeInfos and removes them again
// (backend/cache Snapshot.AssumePod, ForgetPod) keeping their generation,
// so there one generation names different free CPU and memory: the cache
// is given no generation, and reads them every time.
func cycleNodeInfo(cs fwk.CycleState, ni fwk.NodeInfo) fwk.NodeInfo {
	if cs != nil && ni != nil && cs.IsPodGroupSchedulingCycle() {
		return ungenerated{ni}
	}
	return ni
}

// ungenerated is a NodeInfo that reports no generation (0: the cache reads
// its free resources every time).
type ungenerated struct{ fwk.NodeInfo }

func (ungenerated) GetGeneration() int64 { return 0 }
