package manifests

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	rbacregistryvalidation "k8s.io/kubernetes/pkg/registry/rbac/validation"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

// The scheduler's RBAC, checked without a cluster: kube-apiserver's own
// RBAC authorizer over the rendered manifests/ and the bootstrap roles
// they refer to answers every question of schedulerAccess (the same table
// TestManifestsApplyAndDevicePluginRBAC asks a real apiserver).
func TestSchedulerRBACOffline(t *testing.T) {
	authz := offlineAuthorizer(t, renderManifests(t))
	sa := &user.DefaultInfo{Name: schedulerSA, Groups: schedulerSAGroups}
	for _, a := range schedulerAccess {
		d, reason, err := authz.Authorize(context.Background(), authorizer.AttributesRecord{
			User: sa, Verb: a.verb, APIGroup: a.group, APIVersion: "*", Resource: a.resource, Subresource: a.subresource,
			Namespace: a.namespace, Name: a.name, ResourceRequest: true,
		})
		require.NoError(t, err)
		require.Equal(t, a.allowed, d == authorizer.DecisionAllow, "can-i %s %s/%s (group %q) in %q named %q: %s",
			a.verb, a.resource, a.subresource, a.group, a.namespace, a.name, reason)
	}
}

// offlineAuthorizer is kube-apiserver's RBAC authorizer over the Roles,
// ClusterRoles and bindings of objs and the bootstrap roles the apiserver
// creates at start.
func offlineAuthorizer(t *testing.T, objs []*unstructured.Unstructured) authorizer.Authorizer {
	t.Helper()
	var roles []*rbacv1.Role
	var roleBindings []*rbacv1.RoleBinding
	var clusterRoles []*rbacv1.ClusterRole
	var clusterRoleBindings []*rbacv1.ClusterRoleBinding
	for _, o := range objs {
		conv := func(out any) {
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out), "%s %s", o.GetKind(), o.GetName())
		}
		switch o.GetKind() {
		case "Role":
			r := &rbacv1.Role{}
			conv(r)
			roles = append(roles, r)
		case "RoleBinding":
			b := &rbacv1.RoleBinding{}
			conv(b)
			roleBindings = append(roleBindings, b)
		case "ClusterRole":
			r := &rbacv1.ClusterRole{}
			conv(r)
			clusterRoles = append(clusterRoles, r)
		case "ClusterRoleBinding":
			b := &rbacv1.ClusterRoleBinding{}
			conv(b)
			clusterRoleBindings = append(clusterRoleBindings, b)
		}
	}
	// The bootstrap roles the apiserver creates at start.
	for _, r := range bootstrappolicy.ClusterRoles() {
		clusterRoles = append(clusterRoles, &r)
	}
	for _, r := range bootstrappolicy.ClusterRoleBindings() {
		clusterRoleBindings = append(clusterRoleBindings, &r)
	}
	for ns, rs := range bootstrappolicy.NamespaceRoles() {
		for _, r := range rs {
			r.Namespace = ns
			roles = append(roles, &r)
		}
	}
	_, static := rbacregistryvalidation.NewTestRuleResolver(roles, roleBindings, clusterRoles, clusterRoleBindings)
	return rbac.New(static, static, static, static)
}
