//go:build e2e

package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/executor/k8s"
	"github.com/nodeexec/nodeexec/internal/contract"
)

// The management endpoints of a Kubernetes deployment on the real control plane (hack/kube up) answer
// the Plan Layer's specified shapes (docs/contract). KWOK's pods run without a kubelet: their logs
// come back as errors, and the answer still conforms.
func TestK8sManagementAnswersTheSpecifiedShapes(t *testing.T) {
	path := os.Getenv("NODEEXEC_TEST_KUBECONFIG")
	if path == "" {
		t.Skip("set NODEEXEC_TEST_KUBECONFIG (hack/kube up; or `make e2e`)")
	}
	client, _, err := k8s.NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	kexec, err := k8s.New(k8s.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.K8s = kexec })
	ctx := context.Background()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "contract-" + hex.EncodeToString(b)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	two := int32(2)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"type": "kwok"},
			Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers:   []corev1.Container{{Name: "app", Image: "registry.example/web:v1"}}}}}}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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
