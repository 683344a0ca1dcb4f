package gpupack

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/score"
)

// gpuFamily is the compute class of a node's GPUs, score.Ranked.Family: the
// CUDA compute capability "<major>.<minor>" of GPU Feature Discovery's
// labels nvidia.com/gpu.compute.major and nvidia.com/gpu.compute.minor
// (gpupack's device plugin writes them unless its config's publish.labels
// is false; NVIDIA's GFD writes the same). "" when the node has either
// label missing, empty or not a decimal number, or a major of 0 (GFD's
// unknown, for which it writes no labels): the unknown family, whose
// nodes are compared with every node as before families existed (a node
// whose labels are not written yet, in a rolling upgrade or without a GFD,
// keeps DESIGN.md's any-shape comparison), and which does not count in a
// known family's best. The numbers are
// read, not the text, so "08"/"0" is family 8.0 too, and a value GFD never
// writes ("eight") does not make a family of one, whose node would be
// exempt from the across-shape ratio.
func gpuFamily(node *v1.Node) string {
	if node == nil {
		return ""
	}
	major, err := strconv.ParseUint(node.Labels[gfd.LabelComputeMajor], 10, 16)
	if err != nil || major == 0 {
		return ""
	}
	minor, err := strconv.ParseUint(node.Labels[gfd.LabelComputeMinor], 10, 16)
	if err != nil {
		return ""
	}
	return strconv.FormatUint(major, 10) + "." + strconv.FormatUint(minor, 10)
}

// setFamilies fills ranked[i].Family from the scheduling snapshot's node
// of scores[i], for a request whose link quality counts on some node
// (NormalizeScore compares rings across shapes only within a family). A
// node the snapshot does not have keeps "". When every such node offers
// the same capped ideal ring, families change nothing and are not read
// (a cluster of one shape).
func (pl *GPUPack) setFamilies(ranked []score.Ranked, scores fwk.NodeScoreList) {
	if pl.handle == nil || !score.FamiliesMatter(ranked) {
		return
	}
	lister := pl.handle.SnapshotSharedLister()
	if lister == nil {
		return
	}
	infos := lister.NodeInfos()
	for i, ns := range scores {
		if ni, err := infos.Get(ns.Name); err == nil && ni != nil {
			ranked[i].Family = gpuFamily(ni.Node())
		}
	}
}
