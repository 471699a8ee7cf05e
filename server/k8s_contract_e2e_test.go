//go:build e2e

package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/nodeexec/nodeexec/internal/contract"
)

// The management endpoints of a Kubernetes deployment on the real control plane (hack/kube up) answer
// the Plan Layer's specified shapes (docs/contract). KWOK's pods run without a kubelet: their logs
// come back as errors, and the answer still conforms.
func TestK8sManagementAnswersTheSpecifiedShapes(t *testing.T) {
	f, _, ns := kubeFixture(t, "contract", 2)
	code, res := f.do(t, "POST", "/api/v1/deployments", fmt.Sprintf(`{"service":"web","version":"v2","platform":"k8s","image":"registry.example/web:v2",`+
		`"workloads":[{"namespace":%q,"kind":"Deployment","name":"web","container":"app"}]}`, ns))
	if code != http.StatusAccepted {
		t.Fatalf("deploy = %d %v", code, res)
	}
	id := res["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" {
		t.Fatalf("deploy ended %v", end)
	}

	info := f.conforms(t, contract.Info, "/internal/v1/deploy/info/"+id)
	pods := info["details"].(map[string]any)["pods"].([]any)
	if info["status"] != "succeeded" || info["replicas"] != 2.0 || info["ready_replicas"] != 2.0 || len(pods) != 2 {
		t.Errorf("info = %v", info)
	}
	health := f.conforms(t, contract.Health, "/internal/v1/deploy/health/"+id)
	if health["healthy"] != true || checkStatuses(health)["pod_status"] != "healthy" || checkStatuses(health)["resource_usage"] != "unknown" {
		t.Errorf("health = %v", health)
	}
	logs := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?lines=10")
	if errs, _ := logs["errors"].([]any); len(errs) != 2 {
		t.Errorf("logs without a kubelet = %v", logs)
	}
	f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?pod_name="+pods[0].(map[string]any)["name"].(string))
	f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?source=events")
}
