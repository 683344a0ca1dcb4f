package v1_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const manifests = "../../../../../manifests/scheduler/"

// TestDeploymentIsLockedDown checks the scheduler Deployment's security
// settings and that it mounts the config that kustomization.yaml builds.
func TestDeploymentIsLockedDown(t *testing.T) {
	data, err := os.ReadFile(manifests + "deployment.yaml")
	require.NoError(t, err)
	var d appsv1.Deployment
	require.NoError(t, yaml.UnmarshalStrict(data, &d))
	spec := d.Spec.Template.Spec
	require.Equal(t, "gpupack-scheduler", spec.ServiceAccountName)
	require.True(t, *spec.SecurityContext.RunAsNonRoot)
	require.Equal(t, v1.SeccompProfileTypeRuntimeDefault, spec.SecurityContext.SeccompProfile.Type)
	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.Equal(t, []v1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.Contains(t, c.Args, "--config=/etc/gpupack/config.yaml")
	var cm string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			cm = v.ConfigMap.Name
		}
	}
	k, err := os.ReadFile(manifests + "kustomization.yaml")
	require.NoError(t, err)
	require.Contains(t, string(k), "name: "+cm)
	for _, f := range []string{"serviceaccount.yaml", "rbac.yaml", "deployment.yaml", "config.yaml"} {
		require.Contains(t, string(k), f)
	}
}

// TestRBACIsMinimal: no binding to system:kube-scheduler (it may update
// the default scheduler's Lease); our ClusterRole never writes a pod (only
// pods/status, pods/binding, pods/finalizers subresources and delete for
// preemption), grants nothing with a wildcard and no lease; the Role gets
// and updates our Lease only. The full can-i table is in test/manifests.
func TestRBACIsMinimal(t *testing.T) {
	data, err := os.ReadFile(manifests + "rbac.yaml")
	require.NoError(t, err)
	bound := map[string]bool{}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta struct{ Kind string }
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta))
		switch meta.Kind {
		case "": // comments only
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.RoleBinding
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &b))
			require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "gpupack-scheduler", Namespace: "kube-system"}}, b.Subjects)
			bound[b.RoleRef.Kind+"/"+b.RoleRef.Name] = true
		case "ClusterRole":
			var r rbacv1.ClusterRole
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &r))
			require.NotEmpty(t, r.Rules)
			for _, rule := range r.Rules {
				for _, f := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs} {
					require.NotContains(t, f, "*", "%+v", rule)
				}
				require.NotContains(t, rule.Resources, "leases")
				require.NotContains(t, rule.Resources, "leasecandidates")
				if slices.Contains(rule.Resources, "pods") {
					require.Equal(t, []string{"get", "list", "watch", "delete"}, rule.Verbs, "pods are never written")
				}
			}
		case "Role":
			var r rbacv1.Role
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &r))
			require.Equal(t, "kube-system", r.Namespace)
			for _, rule := range r.Rules {
				require.Equal(t, []string{"leases"}, rule.Resources)
				if !slicesEqual(rule.Verbs, []string{"create"}) {
					require.Equal(t, []string{"gpupack-scheduler"}, rule.ResourceNames)
					require.Equal(t, []string{"get", "update"}, rule.Verbs)
				}
			}
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
	}
	require.Equal(t, map[string]bool{"ClusterRole/system:volume-scheduler": true,
		"Role/extension-apiserver-authentication-reader": true, "ClusterRole/gpupack-scheduler": true,
		"Role/gpupack-scheduler:leader-election": true}, bound, "no binding to system:kube-scheduler")
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
