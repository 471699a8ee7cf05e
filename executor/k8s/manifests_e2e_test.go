//go:build e2e

package k8s

// deploy/*.yaml, which run nodeexec itself on Kubernetes, are applied to the real API server, and the
// executor then works with nothing but the permissions they give its service account: every operation
// it serves succeeds, and what it does not need (deleting, reading Secrets) is forbidden.

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeexec/nodeexec/executor"
)

func TestDeployManifestsGiveTheExecutorWhatItNeedsAndNoMore(t *testing.T) {
	k := newCluster(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := New(Config{Client: k.c, Dynamic: dyn})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"../../deploy/nodeexec.yaml", "../../deploy/rbac.yaml"} {
		manifest, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		applied, err := admin.Apply(ctx, "", manifest)
		if err != nil {
			t.Fatalf("apply %s: %v (applied %v)", file, err, applied)
		}
		t.Logf("%s: %v", file, applied)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = k.c.CoreV1().Namespaces().Delete(bg, "nodeexec", metav1.DeleteOptions{})
		_ = k.c.RbacV1().ClusterRoleBindings().Delete(bg, "nodeexec-deployer", metav1.DeleteOptions{})
		_ = k.c.RbacV1().ClusterRoles().Delete(bg, "nodeexec-deployer", metav1.DeleteOptions{})
	})
	d, err := k.c.AppsV1().Deployments("nodeexec").Get(ctx, "nodeexec", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" || d.Spec.Template.Spec.ServiceAccountName != "nodeexec" {
		t.Errorf("nodeexec's deployment: probes %s %s, service account %q", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, d.Spec.Template.Spec.ServiceAccountName)
	}

	// The executor as the service account, and nothing more.
	cfg := rest.CopyConfig(k.rest)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:nodeexec:nodeexec",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:nodeexec", "system:authenticated"}}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Client: sa, RolloutTimeout: k.e.cfg.RolloutTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Ping(ctx); err != nil {
		t.Errorf("ping as the service account: %v", err)
	}
	w := k.createDeployment("web", "registry.example/demo:v1")
	k.createService("web-svc")
	ok := func(what string, res []executor.NodeResult, err error, want executor.State) {
		t.Helper()
		if err != nil || len(res) != 1 || res[0].State != want {
			t.Errorf("%s as the service account = %+v %v, want %s", what, res, err, want)
		}
	}
	res, err := e.Deploy(ctx, executor.DeployRequest{Service: "demo", Version: "v2", K8sDeploy: executor.K8sDeploy{Image: "registry.example/demo:v2", Workloads: []executor.Workload{w}}})
	ok("deploy", res, err, executor.StateSuccess)
	res, err = e.Rollback(ctx, executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	ok("rollback", res, err, executor.StateRolledBack)
	res, err = e.Deploy(ctx, executor.DeployRequest{
		Service:   "demo",
		Version:   "v3",
		K8sDeploy: executor.K8sDeploy{Image: "registry.example/demo:v3", Workloads: []executor.Workload{w}, Strategy: executor.Strategy{Type: executor.StrategyBlueGreen, Service: "web-svc", VerifySeconds: 1}},
	})
	ok("blue-green deploy", res, err, executor.StateSuccess)
	res, err = e.Rollback(ctx, executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	ok("blue-green rollback", res, err, executor.StateRolledBack)
	res, err = e.Scale(ctx, executor.ScaleRequest{Service: "demo", Workloads: []executor.Workload{w}, Replicas: 2})
	ok("scale", res, err, executor.StateSuccess)
	res, err = e.Status(ctx, executor.StatusRequest{Service: "demo", Workloads: []executor.Workload{w}})
	ok("status", res, err, executor.StateSuccess)
	pods, err := e.WorkloadPods(ctx, w)
	if err != nil || len(pods) == 0 {
		t.Fatalf("pods as the service account = %v %v", pods, err)
	}
	// Allowed to ask for a log: the answer is that no kubelet serves it, not that it is forbidden.
	if _, err := e.PodLogs(ctx, k.ns, pods[0].Name, "", 10); err == nil || strings.Contains(err.Error(), "forbidden") {
		t.Errorf("logs as the service account = %v", err)
	}

	// What it does not need, it cannot do.
	if err := sa.AppsV1().Deployments(k.ns).Delete(ctx, "web", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the service account may delete a deployment: %v", err)
	}
	if _, err := sa.CoreV1().Secrets(k.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the service account may read secrets: %v", err)
	}
	if _, err := sa.CoreV1().ConfigMaps(k.ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the service account may create configmaps: %v", err)
	}
}

// deploy/rbac-objects.yaml, opt-in beside rbac.yaml, is what apply and delete need for the common kinds:
// without it the service account's apply is refused at the first object; with it, the apply and the
// delete by labels go through.
func TestTheObjectsRoleLetsTheServiceAccountApplyAndDelete(t *testing.T) {
	k := newCluster(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := New(Config{Client: k.c, Dynamic: dyn})
	if err != nil {
		t.Fatal(err)
	}
	install := func(file string) {
		t.Helper()
		manifest, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if applied, err := admin.Apply(ctx, "", manifest); err != nil {
			t.Fatalf("apply %s: %v (applied %v)", file, err, applied)
		}
	}
	install("../../deploy/nodeexec.yaml")
	install("../../deploy/rbac.yaml")
	t.Cleanup(func() {
		bg := context.Background()
		_ = k.c.CoreV1().Namespaces().Delete(bg, "nodeexec", metav1.DeleteOptions{})
		for _, name := range []string{"nodeexec-deployer", "nodeexec-objects"} {
			_ = k.c.RbacV1().ClusterRoleBindings().Delete(bg, name, metav1.DeleteOptions{})
			_ = k.c.RbacV1().ClusterRoles().Delete(bg, name, metav1.DeleteOptions{})
		}
	})
	cfg := rest.CopyConfig(k.rest)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:nodeexec:nodeexec",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:nodeexec", "system:authenticated"}}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	saDyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Client: sa, Dynamic: saDyn})
	if err != nil {
		t.Fatal(err)
	}
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, labels: {app: kept}}\ndata: {mode: prod}\n---\n" +
		"apiVersion: v1\nkind: Service\nmetadata: {name: kept, labels: {app: kept}}\nspec: {ports: [{port: 80}], selector: {app: kept}}\n"
	apply := func() []executor.Object {
		t.Helper()
		objs, err := e.ApplyManifest(ctx, executor.ApplyRequest{Namespace: k.ns, Manifest: manifest})
		if err != nil {
			t.Fatalf("apply as the service account: %v", err)
		}
		return objs
	}
	if objs := apply(); len(objs) != 2 || objs[0].Outcome != executor.ObjectFailed || !strings.Contains(objs[0].Error, "forbidden") {
		t.Errorf("apply with rbac.yaml alone = %+v", objs)
	}
	install("../../deploy/rbac-objects.yaml")
	if objs := apply(); len(objs) != 2 || objs[0].Outcome != executor.ObjectCreated || objs[1].Outcome != executor.ObjectCreated {
		t.Errorf("apply with rbac-objects.yaml = %+v", objs)
	}
	deleted, err := e.DeleteSelected(ctx, executor.DeleteRequest{Namespace: k.ns, Selector: "app=kept"})
	if err != nil || len(deleted) != 2 {
		t.Fatalf("delete as the service account = %+v, %v", deleted, err)
	}
	for _, o := range deleted {
		if o.Outcome != executor.ObjectDeleted {
			t.Errorf("%s: %s %s", o, o.Outcome, o.Error)
		}
	}
}
