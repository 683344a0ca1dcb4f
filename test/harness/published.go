package harness

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Errors of Topology and InUse: the node could not be read, or it lacks
// the annotation (the device plugin has not published it yet).
var (
	ErrNodeRead     = errors.New("reading the node failed")
	ErrNotPublished = errors.New("not published")
)

// Topology reads the node's gpupack.io/topology annotation.
func Topology(ctx context.Context, client kubernetes.Interface, node string) (*topology.Node, error) {
	s, err := annotation(ctx, client, node, protocol.TopologyAnnotation)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeTopology(s)
}

// InUse reads the node's gpupack.io/in-use report.
func InUse(ctx context.Context, client kubernetes.Interface, node string) (*protocol.InUse, error) {
	s, err := annotation(ctx, client, node, protocol.InUseAnnotation)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeInUse(s)
}

func annotation(ctx context.Context, client kubernetes.Interface, node, key string) (string, error) {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("node %s: %w: %w", node, ErrNodeRead, err)
	}
	s, ok := n.Annotations[key]
	if !ok {
		return "", fmt.Errorf("node %s: %s %w", node, key, ErrNotPublished)
	}
	return s, nil
}
