//go:build e2e

package k8s

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
)

// The API server is stopped and started again in the middle of a rollout (a real fault): with
// retries, the executor's requests wait it out and the rollout is seen to its true end.
func TestARolloutOutlastsAnAPIServerRestart(t *testing.T) {
	k := newCluster(t)
	ctx := context.Background()
	w := k.createDeployment("web", "registry.example/demo:v1")
	// Slow enough to be in flight when the API server goes: each new pod must stay ready 2 s.
	if _, err := k.c.AppsV1().Deployments(k.ns).Patch(ctx, "web", "application/merge-patch+json",
		[]byte(`{"spec":{"minReadySeconds":2,"progressDeadlineSeconds":120}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	k.waitDone(w)
	cfg := rest.CopyConfig(k.rest)
	log := logrus.New()
	log.SetOutput(testWriter{t})
	WithRetries(cfg, retry.Policy{MaxRetries: 20, InitialDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second, Factor: 2}, log)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Client: c, Logger: log, RolloutTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	imageSet := make(chan struct{})
	done := make(chan executor.NodeResult, 1)
	go func() {
		res, err := e.Deploy(ctx, executor.DeployRequest{
			Service: "demo",
			Version: "v2",
			Progress: func(_ string, st executor.Step) {
				if st.Name == "Set the image" {
					close(imageSet)
				}
			},
			K8sDeploy: executor.K8sDeploy{Image: "registry.example/demo:v2", Workloads: []executor.Workload{w}},
		})
		if err != nil || len(res) != 1 {
			t.Errorf("deploy: %v %v", res, err)
			done <- executor.NodeResult{}
			return
		}
		done <- res[0]
	}()
	<-imageSet
	if out, err := exec.Command("../../hack/kube", "restart-apiserver").CombinedOutput(); err != nil {
		t.Fatalf("restart the API server: %v\n%s", err, out)
	}
	select {
	case res := <-done:
		if res.State != executor.StateSuccess || res.CurrentVersion != "v2" {
			t.Fatalf("deploy across the restart = %+v", res)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the deploy never ended")
	}
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready, want 3", n)
	}
	d, _ := k.c.AppsV1().Deployments(k.ns).Get(ctx, "web", metav1.GetOptions{})
	if r := DeploymentRollout((*appsv1.Deployment)(d)); !r.Done {
		t.Errorf("the rollout is not done: %s", r.Message)
	}
}
