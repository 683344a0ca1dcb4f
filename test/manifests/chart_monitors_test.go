package manifests

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// monitors lists the prometheus-operator objects of objs as kind/name, sorted.
func monitors(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if o.GetAPIVersion() == "monitoring.coreos.com/v1" {
			out = append(out, o.GetKind()+"/"+o.GetName())
		}
	}
	slices.Sort(out)
	return out
}

// The chart's metrics reader: what it renders when the scheduler's
// ServiceMonitor uses the chart's token.
var metricsReader = []string{
	"ServiceAccount/gpupack-metrics-reader", "Secret/gpupack-metrics-reader-token",
	"ClusterRole/gpupack-metrics-reader", "ClusterRoleBinding/gpupack-metrics-reader",
}

// readerObjects lists which of metricsReader objs holds.
func readerObjects(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if slices.Contains(metricsReader, o.GetKind()+"/"+o.GetName()) {
			out = append(out, o.GetKind()+"/"+o.GetName())
		}
	}
	return out
}

// Monitors: the device plugin's ServiceMonitor or its PodMonitor, one at a
// time (both select the same pods: every target would be scraped twice, and
// the chart refuses it, chart_schema_test.go), and the scheduler's
// ServiceMonitor presenting a bearer token from a Secret (prometheus-
// operator's authorization.credentials, not the deprecated bearerTokenFile):
// the token of the chart's gpupack-metrics-reader, which may get /metrics
// and nothing else, or a Secret the values name (then the chart makes no
// reader).
func TestChartMonitors(t *testing.T) {
	require.Empty(t, monitors(renderChart(t, "")), "no monitor by default")
	require.Empty(t, readerObjects(renderChart(t, "")), "no metrics reader by default")
	for want, values := range map[string]string{
		"ServiceMonitor/gpupack-device-plugin": "devicePlugin: {metrics: {serviceMonitor: {enabled: true}}}",
		"PodMonitor/gpupack-device-plugin":     "devicePlugin: {metrics: {podMonitor: {enabled: true}}}",
	} {
		require.Equal(t, []string{want}, monitors(renderChart(t, values)), values)
	}

	endpoint := func(objs []*unstructured.Unstructured) map[string]any {
		t.Helper()
		sm := find(objs, "ServiceMonitor", "gpupack-scheduler")
		require.NotNil(t, sm)
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		require.Len(t, eps, 1)
		ep := eps[0].(map[string]any)
		for _, deprecated := range []string{"bearerTokenFile", "bearerTokenSecret"} {
			require.NotContains(t, ep, deprecated)
		}
		require.Equal(t, "https", ep["scheme"])
		return ep
	}

	objs := renderChart(t, "scheduler: {metrics: {serviceMonitor: {enabled: true}}}")
	require.Equal(t, map[string]any{"type": "Bearer", "credentials": map[string]any{"name": "gpupack-metrics-reader-token", "key": "token"}},
		endpoint(objs)["authorization"])
	require.ElementsMatch(t, metricsReader, readerObjects(objs))
	// A service-account token Secret the token controller fills, in the
	// ServiceMonitor's namespace (where prometheus-operator reads it).
	secret := find(objs, "Secret", "gpupack-metrics-reader-token")
	require.Equal(t, "kubernetes.io/service-account-token", secret.Object["type"])
	require.Equal(t, "gpupack-metrics-reader", secret.GetAnnotations()["kubernetes.io/service-account.name"])
	require.Equal(t, find(objs, "ServiceMonitor", "gpupack-scheduler").GetNamespace(), secret.GetNamespace())
	require.Equal(t, "kube-system", secret.GetNamespace())

	// The reader gets /metrics, and nothing else the other roles do not
	// already give every authenticated user.
	authz := offlineAuthorizer(t, objs)
	reader := &user.DefaultInfo{
		Name:   "system:serviceaccount:kube-system:gpupack-metrics-reader",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
	}
	allowed := func(a authorizer.AttributesRecord) bool {
		t.Helper()
		a.User = reader
		d, _, err := authz.Authorize(context.Background(), a)
		require.NoError(t, err)
		return d == authorizer.DecisionAllow
	}
	require.True(t, allowed(authorizer.AttributesRecord{Verb: "get", Path: "/metrics"}), "get /metrics")
	require.False(t, allowed(authorizer.AttributesRecord{Verb: "get", Path: "/debug/pprof/profile"}), "get /debug/pprof/profile")
	require.False(t, allowed(authorizer.AttributesRecord{Verb: "post", Path: "/metrics"}), "post /metrics")
	for _, r := range []struct{ verb, resource, namespace string }{
		{"get", "secrets", "kube-system"}, {"list", "pods", ""}, {"get", "nodes", ""}, {"create", "tokenreviews", ""},
	} {
		require.False(t, allowed(authorizer.AttributesRecord{Verb: r.verb, APIVersion: "*", Resource: r.resource, Namespace: r.namespace, ResourceRequest: true}),
			"%s %s", r.verb, r.resource)
	}

	// A Secret of one's own (e.g. of Prometheus' ServiceAccount): used as is,
	// and the chart makes no reader.
	objs = renderChart(t, "scheduler: {namespace: gpu-ops, metrics: {serviceMonitor: {enabled: true, credentials: {name: prometheus-scrape, key: bearer}}}}")
	require.Equal(t, map[string]any{"type": "Bearer", "credentials": map[string]any{"name": "prometheus-scrape", "key": "bearer"}},
		endpoint(objs)["authorization"])
	require.Empty(t, readerObjects(objs))
	// The reader follows the scheduler's namespace.
	objs = renderChart(t, "scheduler: {namespace: gpu-ops, metrics: {serviceMonitor: {enabled: true}}}")
	require.Equal(t, "gpu-ops", find(objs, "Secret", "gpupack-metrics-reader-token").GetNamespace())
	crb := find(objs, "ClusterRoleBinding", "gpupack-metrics-reader")
	subjects, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	require.Equal(t, []any{map[string]any{"kind": "ServiceAccount", "name": "gpupack-metrics-reader", "namespace": "gpu-ops"}}, subjects)
	// The scheduler off: no monitor, no reader.
	objs = renderChart(t, "scheduler: {enabled: false, metrics: {serviceMonitor: {enabled: true}}}")
	require.Empty(t, monitors(objs))
	require.Empty(t, readerObjects(objs))
}
