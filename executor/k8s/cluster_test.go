//go:build e2e

package k8s

// On a real API server with real controllers (hack/kube up: etcd, kube-apiserver, controller-manager,
// scheduler, and KWOK nodes whose pods really go Running and Ready). Run with `make e2e`.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeexec/nodeexec/executor"
)

type cluster struct {
	t    *testing.T
	c    kubernetes.Interface
	rest *rest.Config
	e    *Executor
	ns   string
	pool string // the node label value this test's pods are scheduled by
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	path := os.Getenv("NODEEXEC_TEST_KUBECONFIG")
	if path == "" {
		t.Skip("set NODEEXEC_TEST_KUBECONFIG (eval \"$(hack/kube env)\" after hack/kube up, or `make e2e`)")
	}
	c, rc, err := NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	k := &cluster{t: t, c: c, rest: rc, ns: "e2e-" + hex.EncodeToString(b), pool: "p" + hex.EncodeToString(b)}
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CoreV1().Namespaces().Delete(context.Background(), k.ns, metav1.DeleteOptions{}) })
	k.labelNodes(true)
	t.Cleanup(func() { k.labelNodes(false) })
	log := logrus.New()
	log.SetOutput(testWriter{t})
	if k.e, err = New(Config{Client: c, Logger: log, RolloutTimeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return k
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// labelNodes puts this test's pool label on every node (or takes it off): without it, no new pod of
// this test can be scheduled, which is how a test makes an update that can never become ready.
func (k *cluster) labelNodes(on bool) {
	k.t.Helper()
	ctx := context.Background()
	nodes, err := k.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
	if err != nil {
		k.t.Fatal(err)
	}
	for _, n := range nodes.Items {
		value := `"` + k.pool + `"`
		if !on {
			value = "null"
		}
		patch := `{"metadata":{"labels":{"nodeexec-test/` + k.pool + `":` + value + `}}}`
		if _, err := k.c.CoreV1().Nodes().Patch(ctx, n.Name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			k.t.Fatal(err)
		}
	}
}

func (k *cluster) podSpec(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "demo"}},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"nodeexec-test/" + k.pool: k.pool, "type": "kwok"},
			Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers:   []corev1.Container{{Name: "app", Image: image}, {Name: "sidecar", Image: "registry.example/proxy:1.0"}},
		},
	}
}

// createDeployment makes a Deployment of 3 replicas whose progress deadline is 4 s, and waits until
// its rollout is done.
func (k *cluster) createDeployment(name, image string) executor.Workload {
	k.t.Helper()
	w := k.makeDeployment(name, image, ptr(int32(4)))
	k.waitDone(w)
	return w
}

// makeDeployment makes a Deployment of 3 replicas (deadline nil: the API's default, 600 s) and does
// not wait for it.
func (k *cluster) makeDeployment(name, image string, deadline *int32) executor.Workload {
	k.t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
			Template: k.podSpec(image), ProgressDeadlineSeconds: deadline,
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0))}},
		},
	}
	if _, err := k.c.AppsV1().Deployments(k.ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		k.t.Fatal(err)
	}
	return executor.Workload{Namespace: k.ns, Kind: executor.KindDeployment, Name: name, Container: "app"}
}

func (k *cluster) waitDone(w executor.Workload) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kind, err := k.e.kindOf(w)
	if err != nil {
		k.t.Fatal(err)
	}
	if r, err := waitRollout(ctx, kind); err != nil || !r.Done {
		k.t.Fatalf("%s never became ready: %+v %v", w.Host(), r, err)
	}
}

func (k *cluster) deploy(w executor.Workload, version string) executor.NodeResult {
	k.t.Helper()
	res, err := k.e.Deploy(context.Background(), executor.DeployRequest{
		DeploymentID: "d-" + version,
		Service:      "demo",
		Version:      version,
		K8sDeploy:    executor.K8sDeploy{Image: "registry.example/demo:" + version, Workloads: []executor.Workload{w}},
	})
	if err != nil || len(res) != 1 {
		k.t.Fatalf("deploy %s: %v %v", version, res, err)
	}
	return res[0]
}

// readyPods counts the workload's pods that are Ready and run image.
func (k *cluster) readyPods(image string) int {
	k.t.Helper()
	pods, err := k.c.CoreV1().Pods(k.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil {
		k.t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

func TestDeploymentUpdateEndsWhenEveryPodIsReady(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	res := k.deploy(w, "v2")
	if res.State != executor.StateSuccess || res.CurrentVersion != "v2" || res.PrevVersion != "v1" || !res.Changed {
		t.Fatalf("deploy v2 = %+v", res)
	}
	// Done means done: at the moment Deploy returned, all 3 pods run v2 and are Ready.
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready when the deploy returned, want 3", n)
	}
	if res.Host != k.ns+"/web" || res.Platform != executor.PlatformK8s {
		t.Errorf("node = %s %s", res.Host, res.Platform)
	}
	// The sidecar was not touched.
	d, _ := k.c.AppsV1().Deployments(k.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[1].Image; img != "registry.example/proxy:1.0" {
		t.Errorf("sidecar image = %s", img)
	}
	// Again: nothing changes.
	if again := k.deploy(w, "v2"); again.State != executor.StateSuccess || again.Changed {
		t.Errorf("deploy v2 again = %+v", again)
	}
	st, err := k.e.Status(context.Background(), executor.StatusRequest{Service: "demo", Workloads: []executor.Workload{w}})
	if err != nil || st[0].State != executor.StateSuccess || st[0].CurrentVersion != "v2" || st[0].PrevVersion != "v1" {
		t.Errorf("status = %+v %v", st, err)
	}
}

func TestStatefulSetUpdate(t *testing.T) {
	k := newCluster(t)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: k.ns},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(3)), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}}, Template: k.podSpec("registry.example/demo:v1"),
			PodManagementPolicy: appsv1.ParallelPodManagement},
	}
	if _, err := k.c.AppsV1().StatefulSets(k.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := executor.Workload{Namespace: k.ns, Kind: executor.KindStatefulSet, Name: "db"}
	k.waitDone(w)
	res := k.deploy(w, "v2")
	if res.State != executor.StateSuccess || res.CurrentVersion != "v2" {
		t.Fatalf("deploy v2 = %+v", res)
	}
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready, want 3", n)
	}
	rb, err := k.e.Rollback(context.Background(), executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	if err != nil || rb[0].State != executor.StateRolledBack || rb[0].CurrentVersion != "v1" {
		t.Fatalf("rollback = %+v %v", rb, err)
	}
	if n := k.readyPods("registry.example/demo:v1"); n != 3 {
		t.Errorf("%d pods of v1 ready after the rollback, want 3", n)
	}
}

// An update whose pods can never be scheduled passes its progress deadline: the deploy fails and puts
// the previous image back, and the old pods never stopped serving.
func TestUpdateThatNeverBecomesReadyIsRolledBack(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	k.labelNodes(false) // new pods fit nowhere now; the running ones stay
	res := k.deploy(w, "v2")
	if res.State != executor.StateRolledBack || res.CurrentVersion != "v1" || !strings.Contains(res.LastError, "progress deadline exceeded") {
		t.Fatalf("deploy = %+v", res)
	}
	d, _ := k.c.AppsV1().Deployments(k.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/demo:v1" {
		t.Errorf("image after the automatic rollback = %s", img)
	}
	if n := k.readyPods("registry.example/demo:v1"); n != 3 {
		t.Errorf("%d pods of v1 ready, want 3", n)
	}
}

// The caller's deadline passes before the rollout is done (here before its own progress deadline):
// the deploy says so, and the previous image is put back even though the caller's context has ended.
func TestRolloutPastTheCallersDeadlineIsRolledBack(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	k.labelNodes(false) // new pods fit nowhere now; the running ones stay
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	res, err := k.e.Deploy(ctx, executor.DeployRequest{
		DeploymentID: "d-v2",
		Service:      "demo",
		Version:      "v2",
		K8sDeploy:    executor.K8sDeploy{Image: "registry.example/demo:v2", Workloads: []executor.Workload{w}},
	})
	if err != nil || len(res) != 1 {
		t.Fatalf("deploy: %v %v", res, err)
	}
	if r := res[0]; r.State != executor.StateRolledBack || r.CurrentVersion != "v1" || !strings.Contains(r.LastError, "not done before the deadline") {
		t.Fatalf("deploy past the caller's deadline = %+v", r)
	}
	if n := k.readyPods("registry.example/demo:v1"); n != 3 {
		t.Errorf("%d pods of v1 ready, want 3", n)
	}
}

func TestExplicitRollbackAndRollbackToRevision(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	for _, v := range []string{"v2", "v3"} {
		if res := k.deploy(w, v); res.State != executor.StateSuccess {
			t.Fatalf("deploy %s = %+v", v, res)
		}
	}
	ctx := context.Background()
	rb, err := k.e.Rollback(ctx, executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	if err != nil || rb[0].State != executor.StateRolledBack || rb[0].CurrentVersion != "v2" || rb[0].PrevVersion != "v3" {
		t.Fatalf("rollback = %+v %v", rb, err)
	}
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready after the rollback", n)
	}
	// Revision 1 is v1 (2 was v2, 3 was v3; undoing to v2 made revision 4).
	rb, err = k.e.Rollback(ctx, executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}, ToRevision: 1}})
	if err != nil || rb[0].State != executor.StateRolledBack || rb[0].CurrentVersion != "v1" {
		t.Fatalf("rollback to revision 1 = %+v %v", rb, err)
	}
	if n := k.readyPods("registry.example/demo:v1"); n != 3 {
		t.Errorf("%d pods of v1 ready after the rollback to revision 1", n)
	}
	rb, _ = k.e.Rollback(ctx, executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}, ToRevision: 99}})
	if rb[0].State != executor.StateFailed || !strings.Contains(rb[0].LastError, "no revision 99") {
		t.Errorf("rollback to a missing revision = %+v", rb[0])
	}
}

func TestMissingWorkloadIsAClearError(t *testing.T) {
	k := newCluster(t)
	res := k.deploy(executor.Workload{Namespace: k.ns, Kind: executor.KindDeployment, Name: "nope"}, "v2")
	if res.State != executor.StateFailed || !strings.Contains(res.LastError, "Deployment "+k.ns+"/nope not found") {
		t.Errorf("deploy to nothing = %+v", res)
	}
}
