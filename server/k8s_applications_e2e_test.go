//go:build e2e

package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/internal/contract"
)

// Two Kubernetes workloads as two applications of one deployment, on the real control plane: each gets
// its image and its environment in its container; the deployment's info counts both workloads' pods.
func TestK8sApplicationsDeployAsOneDeploymentWithTheirEnvironment(t *testing.T) {
	f, client, ns := kubeFixture(t, "apps", 2)
	ctx := context.Background()
	web, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := web.DeepCopy()
	other.ObjectMeta = metav1.ObjectMeta{Name: "api", Namespace: ns}
	other.Spec.Selector.MatchLabels = map[string]string{"app": "api"}
	other.Spec.Template.Labels = map[string]string{"app": "api"}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := func(service, version, env string) string {
		return fmt.Sprintf(`{"service":%q,"version":%q,"image":"registry.example/%s:%s","workloads":[{"namespace":%q,"kind":"Deployment","name":%q}],%s}`,
			service, version, service, version, ns, service, env)
	}
	code, acc := f.do(t, "POST", "/api/v1/deployments", `{"platform":"k8s","applications":[`+
		app("web", "v2", `"environment":{"MODE":"prod"}`)+","+app("api", "v3", `"config":{"LEVEL":"debug"}`)+`]}`)
	if code != http.StatusAccepted {
		t.Fatalf("deploy = %d %v", code, acc)
	}
	id := acc["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" || len(end["applications"].([]any)) != 2 {
		t.Fatalf("end = %v", end)
	}
	for _, want := range []struct{ name, image, env string }{
		{"web", "registry.example/web:v2", "MODE=prod"},
		{"api", "registry.example/api:v3", "LEVEL=debug"},
	} {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, want.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if got := fmt.Sprint(c.Env); c.Image != want.image || len(c.Env) != 1 || c.Env[0].Name+"="+c.Env[0].Value != want.env {
			t.Errorf("%s: image %s env %s, want %s %s", want.name, c.Image, got, want.image, want.env)
		}
	}
	info := f.conforms(t, contract.Info, "/internal/v1/deploy/info/"+id)
	if info["replicas"] != 4.0 || info["ready_replicas"] != 4.0 {
		t.Errorf("info = %v", info)
	}
}
