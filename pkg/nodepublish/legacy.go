package nodepublish

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// takeOverLegacy hands to the apply what gpupack's earlier versions wrote
// with merge patches: they left an Update entry of FieldManager in the
// node's managedFields owning its labels and the topology annotation, and
// a field an Update entry owns stays when the apply no longer sets it (a
// label gpupack stopped writing, publish.labels turned off). Those fields
// move from the Update entry to the apply's entry (one JSON patch of
// managedFields, guarded by the node's resourceVersion, as client-go's
// csaupgrade does for whole managers); the in-use annotation, still a
// merge patch, stays with the Update entry. It reports whether it moved
// anything: the caller then applies again, which removes what the apply
// does not hold. Without such an entry it sends nothing.
func (p *Publisher) takeOverLegacy(ctx context.Context, node *v1.Node) (bool, error) {
	legacy, applied := -1, -1
	for i, mf := range node.ManagedFields {
		if mf.Manager != FieldManager || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		switch mf.Operation {
		case metav1.ManagedFieldsOperationUpdate:
			legacy = i
		case metav1.ManagedFieldsOperationApply:
			applied = i
		}
	}
	if legacy < 0 {
		return false, nil
	}
	rest, moved, err := splitPublished(node.ManagedFields[legacy].FieldsV1.Raw)
	if err != nil || moved == nil {
		return false, err
	}
	entries := slices.Clone(node.ManagedFields)
	if applied < 0 {
		// An empty apply (nothing published) leaves no entry: make it.
		now := metav1.Now()
		entries = append(entries, metav1.ManagedFieldsEntry{
			Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
			Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte("{}")},
		})
		applied = len(entries) - 1
	}
	var into map[string]any
	if err := json.Unmarshal(entries[applied].FieldsV1.Raw, &into); err != nil {
		return false, fmt.Errorf("reading managedFields: %w", err)
	}
	mergeFields(into, moved)
	intoRaw, err := json.Marshal(into)
	if err != nil {
		return false, fmt.Errorf("writing managedFields: %w", err)
	}
	entries[applied].FieldsV1 = &metav1.FieldsV1{Raw: intoRaw}
	if rest == nil {
		entries = slices.Delete(entries, legacy, legacy+1)
	} else {
		entries[legacy].FieldsV1 = &metav1.FieldsV1{Raw: rest}
	}
	ops := []map[string]any{{"op": "replace", "path": "/metadata/managedFields", "value": entries}}
	if node.ResourceVersion != "" { // always, but with client-go's fake clientset
		ops = append([]map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": node.ResourceVersion}}, ops...)
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return false, fmt.Errorf("encoding the managedFields patch: %w", err)
	}
	if _, err := p.opts.Client.CoreV1().Nodes().Patch(ctx, p.opts.NodeName, types.JSONPatchType, body, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return false, fmt.Errorf("handing an earlier gpupack's labels to the apply on node %s: %w", p.opts.NodeName, err)
	}
	return true, nil
}

// splitPublished splits a managedFields entry's field set into what stays
// (nil when nothing) and its labels and topology annotation (nil when it
// has none).
func splitPublished(raw []byte) (rest, moved []byte, err error) {
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nil, fmt.Errorf("reading managedFields: %w", err)
	}
	meta, _ := fields["f:metadata"].(map[string]any)
	if meta == nil {
		return nil, nil, nil
	}
	// Only the keys ("f:<key>") move; "." (the map itself) stays: the
	// apply owning it would remove the whole map with its last key.
	take := map[string]any{}
	if labels, ok := meta["f:labels"].(map[string]any); ok {
		keys := map[string]any{}
		for k, v := range labels {
			if strings.HasPrefix(k, "f:") {
				keys[k] = v
				delete(labels, k)
			}
		}
		if len(keys) > 0 {
			take["f:labels"] = keys
		}
		if len(labels) == 0 {
			delete(meta, "f:labels")
		}
	}
	topo := "f:" + protocol.TopologyAnnotation
	if ann, ok := meta["f:annotations"].(map[string]any); ok {
		if v, ok := ann[topo]; ok {
			take["f:annotations"] = map[string]any{topo: v}
			delete(ann, topo)
		}
		if len(ann) == 0 {
			delete(meta, "f:annotations")
		}
	}
	if len(take) == 0 {
		return nil, nil, nil
	}
	if len(meta) == 0 {
		delete(fields, "f:metadata")
	}
	if moved, err = json.Marshal(map[string]any{"f:metadata": take}); err != nil {
		return nil, nil, err
	}
	if len(fields) == 0 {
		return nil, moved, nil
	}
	rest, err = json.Marshal(fields)
	return rest, moved, err
}

// mergeFields adds the field set src (FieldsV1 JSON) to dst.
func mergeFields(dst map[string]any, src []byte) {
	var s map[string]any
	if json.Unmarshal(src, &s) != nil {
		return
	}
	var merge func(d, s map[string]any)
	merge = func(d, s map[string]any) {
		for k, v := range s {
			sv, sok := v.(map[string]any)
			dv, dok := d[k].(map[string]any)
			if sok && dok {
				merge(dv, sv)
				continue
			}
			if _, ok := d[k]; !ok {
				d[k] = v
			}
		}
	}
	merge(dst, s)
}
