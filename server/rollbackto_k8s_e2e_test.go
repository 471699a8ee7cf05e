//go:build e2e

package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Rollback to a target deployment on the real control plane: v1 (an image by digest) on two
// Deployments, v2 on both, v3 on one. The v3 deploy rolled back to the v1 deploy puts v1's exact image
// on its workload; the v2 deploy rolled back to the v1 deploy then changes only the workload still on
// v2 (the other's template is not touched: same generation).
func TestK8sRollbackToATargetDeploymentThroughTheAPI(t *testing.T) {
	f, client, ns := kubeFixture(t, "rbt", 1)
	ctx := context.Background()
	web, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api := web.DeepCopy()
	api.ObjectMeta = metav1.ObjectMeta{Name: "api", Namespace: ns}
	api.Spec.Selector.MatchLabels = map[string]string{"app": "api"}
	api.Spec.Template.Labels = map[string]string{"app": "api"}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, api, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v1Image := "registry.example/web@sha256:" + strings.Repeat("ab12", 16)
	deploy := func(version, image string, names ...string) string {
		t.Helper()
		var workloads []string
		for _, n := range names {
			workloads = append(workloads, fmt.Sprintf(`{"namespace":%q,"kind":"Deployment","name":%q,"container":"app"}`, ns, n))
		}
		code, res := f.do(t, "POST", "/api/v1/deployments", fmt.Sprintf(`{"service":"web","version":%q,"platform":"k8s","image":%q,"workloads":[%s]}`,
			version, image, strings.Join(workloads, ",")))
		if code != http.StatusAccepted {
			t.Fatalf("deploy %s = %d %v", version, code, res)
		}
		if end := f.waitState(t, res["id"].(string)); end["state"] != "success" {
			t.Fatalf("deploy %s = %v", version, end)
		}
		return res["id"].(string)
	}
	rollbackTo := func(orig, target string) []string {
		t.Helper()
		code, rb := f.do(t, "POST", "/api/v1/deployments/"+orig+"/rollback", `{"target_deployment_id":"`+target+`"}`)
		if code != http.StatusAccepted {
			t.Fatalf("rollback of %s to %s = %d %v", orig, target, code, rb)
		}
		end := f.waitState(t, rb["id"].(string))
		if end["state"] != "rolled_back" || end["rollback_of"] != orig || end["target_deployment_id"] != target {
			t.Errorf("rollback of %s to %s = %v", orig, target, end)
		}
		return rolledBackNodes(end)
	}
	image := func(name string) (string, int64) {
		t.Helper()
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Spec.Containers[0].Image, d.Generation
	}

	v1 := deploy("v1", v1Image, "web", "api")
	v2 := deploy("v2", "registry.example/web:v2", "web", "api")
	v3 := deploy("v3", "registry.example/web:v3", "web")

	if got := strings.Join(rollbackTo(v3, v1), " "); got != ns+"/web@v1" {
		t.Errorf("rollback of v3 to v1: nodes %s, want %s/web@v1", got, ns)
	}
	webImage, webGen := image("web")
	if apiImage, _ := image("api"); webImage != v1Image || apiImage != "registry.example/web:v2" {
		t.Errorf("after the first rollback: web %s, api %s; want web on v1's exact image, api on v2", webImage, apiImage)
	}

	if got := strings.Join(rollbackTo(v2, v1), " "); got != ns+"/api@v1" {
		t.Errorf("rollback of v2 to v1: nodes %s, want only %s/api@v1", got, ns)
	}
	for _, name := range []string{"web", "api"} {
		img, gen := image(name)
		if img != v1Image || (name == "web" && gen != webGen) {
			t.Errorf("%s after the second rollback: %s, generation %d (web was %d)", name, img, gen, webGen)
		}
		code, n := f.do(t, "GET", "/api/v1/nodes/web/"+ns+"%2F"+name, "")
		if code != 200 || n["current_version"] != "v1" {
			t.Errorf("node %s/%s = %d %v", ns, name, code, n)
		}
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+v2+"/rollback", `{"target_deployment_id":"`+v1+`"}`); code != http.StatusConflict || b["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of v2 to v1 again = %d %v", code, b)
	}
}
