//go:build e2e

package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/drift"
)

// On the real control plane: a Deployment deployed to v2 through nodeexec has its image changed with
// client-go behind nodeexec's back; a drift pass finds image_changed and the node's record takes the
// live version (the version nodeexec deployed becomes its previous). A second pass clears the drift.
func TestDriftFindsAnImageChangedBehindNodeexecsBack(t *testing.T) {
	f, client, ns := kubeFixture(t, "drift", 2)
	ctx := context.Background()
	runner := drift.New(drift.Config{Store: f.st, Workloads: f.srv.cfg.K8s, Metrics: f.srv.metrics, Notify: f.srv.notifier, Logger: f.srv.cfg.Logger})
	t.Cleanup(runner.Stop)
	f.srv.cfg.Drift = runner
	for _, version := range []string{"v1", "v2"} {
		body := fmt.Sprintf(`{"service":"web","version":%q,"platform":"k8s","image":"registry.example/web:%s",`+
			`"workloads":[{"namespace":%q,"kind":"Deployment","name":"web","container":"app"}]}`, version, version, ns)
		code, res := f.do(t, "POST", "/api/v1/deployments", body)
		if code != http.StatusAccepted {
			t.Fatalf("POST %s = %d %v", version, code, res)
		}
		if end := f.waitState(t, res["id"].(string)); end["state"] != "success" {
			t.Fatalf("deploy %s = %v", version, end)
		}
	}
	d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/web:v3" // kubectl set image, in effect
	if _, err := client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	pass := func() map[string]any {
		t.Helper()
		start := time.Now()
		code, p := f.do(t, "POST", "/api/v1/drift", `{"service":"web"}`)
		if code != http.StatusAccepted {
			t.Fatalf("POST /api/v1/drift = %d %v", code, p)
		}
		runner.Wait()
		code, p = f.do(t, "GET", "/api/v1/drift/"+p["id"].(string), "")
		t.Logf("drift pass: %s", time.Since(start).Round(time.Millisecond))
		nodes, _ := p["nodes"].([]any)
		if code != 200 || p["state"] != "success" || len(nodes) != 1 {
			t.Fatalf("drift pass = %d %v", code, p)
		}
		return nodes[0].(map[string]any)
	}
	n := pass()
	dr, _ := n["drift"].(map[string]any)
	if n["host"] != ns+"/web" || n["change"] != "found" || dr["kind"] != "image_changed" || dr["recorded"] != "v2" || dr["observed"] != "v3" {
		t.Errorf("the workload in the pass = %v", n)
	}
	code, rec := f.do(t, "GET", "/api/v1/nodes/web/"+url.PathEscape(ns+"/web"), "")
	if code != 200 || rec["current_version"] != "v3" || rec["prev_version"] != "v2" || rec["drift"] == nil {
		t.Errorf("the workload's record = %d %v, want v3 (prev v2) with its drift", code, rec)
	}
	if code, list := f.do(t, "GET", "/api/v1/nodes?drifted=true", ""); code != 200 || len(list["nodes"].([]any)) != 1 {
		t.Errorf("drifted nodes = %d %v", code, list)
	}
	if n := pass(); n["change"] != "cleared" || n["drift"] != nil {
		t.Errorf("the second pass = %v, want the drift cleared (the record took the live version)", n)
	}
}
