package deviceplugin

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/types"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// PodResources reads the kubelet's PodResources API
// (/var/lib/kubelet/pod-resources/kubelet.sock on a node): which devices the
// kubelet gave to which container. It is the record of allocations that
// survives this plugin's restarts.
type PodResources struct {
	socket string

	once sync.Once
	conn *grpc.ClientConn
	err  error
}

var (
	_ Allocations = (*PodResources)(nil)
	_ PodNames    = (*PodResources)(nil)
)

// NewPodResources returns a client of the PodResources API on socket; it
// connects on first use.
func NewPodResources(socket string) *PodResources { return &PodResources{socket: socket} }

func (p *PodResources) client() (podresourcesv1.PodResourcesListerClient, error) {
	p.once.Do(func() {
		p.conn, p.err = grpc.NewClient("unix://"+p.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if p.err != nil {
			p.err = fmt.Errorf("connecting to PodResources at %s: %w", p.socket, p.err)
		}
	})
	if p.err != nil {
		return nil, p.err
	}
	return podresourcesv1.NewPodResourcesListerClient(p.conn), nil
}

// List is the kubelet's List answer.
func (p *PodResources) List(ctx context.Context) (*podresourcesv1.ListPodResourcesResponse, error) {
	c, err := p.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	resp, err := c.List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing pod resources at %s: %w", p.socket, err)
	}
	return resp, nil
}

// Allocated returns pod -> container -> resource -> device IDs.
func (p *PodResources) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	resp, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	return allocatedOf(resp), nil
}

// ListedPods names every pod the kubelet lists, with devices or without:
// a pod whose only requests are regular init containers' is listed, its
// containers without devices (Allocated leaves it out).
func (p *PodResources) ListedPods(ctx context.Context) ([]types.NamespacedName, error) {
	resp, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]types.NamespacedName, 0, len(resp.GetPodResources()))
	for _, pr := range resp.GetPodResources() {
		out = append(out, types.NamespacedName{Namespace: pr.GetNamespace(), Name: pr.GetName()})
	}
	return out, nil
}

func allocatedOf(resp *podresourcesv1.ListPodResourcesResponse) map[types.NamespacedName]map[string]map[string][]string {
	out := map[types.NamespacedName]map[string]map[string][]string{}
	for _, pr := range resp.GetPodResources() {
		key := types.NamespacedName{Namespace: pr.GetNamespace(), Name: pr.GetName()}
		for _, c := range pr.GetContainers() {
			for _, d := range c.GetDevices() {
				if len(d.GetDeviceIds()) == 0 {
					continue
				}
				if out[key] == nil {
					out[key] = map[string]map[string][]string{}
				}
				if out[key][c.GetName()] == nil {
					out[key][c.GetName()] = map[string][]string{}
				}
				out[key][c.GetName()][d.GetResourceName()] = append(out[key][c.GetName()][d.GetResourceName()], d.GetDeviceIds()...)
			}
		}
	}
	return out
}

// Close closes the connection.
func (p *PodResources) Close() error {
	if p.conn == nil {
		return nil
	}
	return p.conn.Close()
}
