//go:build e2e

package k8s

// The deployer's operations beside deploy and rollback, on the real API server (hack/kube up).

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"

	"github.com/nodeexec/nodeexec/executor"
)

func TestRollingSettingsGoInWithTheImage(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	res, err := k.e.Deploy(context.Background(), executor.DeployRequest{
		DeploymentID: "d-v2",
		Service:      "demo",
		Version:      "v2",
		K8sDeploy:    executor.K8sDeploy{Image: "registry.example/demo:v2", Workloads: []executor.Workload{w}, Strategy: executor.Strategy{MaxSurge: "0", MaxUnavailable: "34%", MinReadySeconds: ptr(int32(1)), ProgressDeadlineSeconds: ptr(int32(30))}},
	})
	if err != nil || res[0].State != executor.StateSuccess {
		t.Fatalf("deploy = %+v %v", res, err)
	}
	d, _ := k.c.AppsV1().Deployments(k.ns).Get(context.Background(), "web", metav1.GetOptions{})
	ru := d.Spec.Strategy.RollingUpdate
	if ru.MaxSurge.String() != "0" || ru.MaxUnavailable.String() != "34%" || d.Spec.MinReadySeconds != 1 || *d.Spec.ProgressDeadlineSeconds != 30 {
		t.Errorf("rolling settings = surge %s unavailable %s minReady %d deadline %d", ru.MaxSurge.String(), ru.MaxUnavailable.String(), d.Spec.MinReadySeconds, *d.Spec.ProgressDeadlineSeconds)
	}
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready, want 3", n)
	}
	// One patch, one rollout: the settings did not cost a revision of their own.
	if rev := d.Annotations[revisionAnnotation]; rev != "2" {
		t.Errorf("revision = %s, want 2", rev)
	}
}

func TestScaleWaitsForTheReplicasAndKeepsTheVersion(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	res := k.scale(w, 5)
	if res.State != executor.StateSuccess || res.CurrentVersion != "v1" || !res.Changed {
		t.Fatalf("scale to 5 = %+v", res)
	}
	if n := k.readyPods("registry.example/demo:v1"); n != 5 {
		t.Errorf("%d pods ready after scaling to 5", n)
	}
	if res = k.scale(w, 1); res.State != executor.StateSuccess {
		t.Fatalf("scale to 1 = %+v", res)
	}
	pods, err := k.e.WorkloadPods(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, p := range pods {
		if p.Phase != "Terminating" {
			live++
		}
	}
	if live != 1 {
		t.Errorf("%d pods left after scaling to 1: %+v", live, pods)
	}
	if again := k.scale(w, 1); again.State != executor.StateSuccess || again.Changed {
		t.Errorf("scale to the same size = %+v", again)
	}
	if _, err := k.e.Scale(context.Background(), executor.ScaleRequest{Service: "demo", Workloads: []executor.Workload{w}, Replicas: executor.MaxReplicas + 1}); err == nil || !strings.Contains(err.Error(), "replicas: must be between") {
		t.Errorf("scale too far = %v", err)
	}
	missing := executor.Workload{Namespace: k.ns, Kind: executor.KindStatefulSet, Name: "nope"}
	if res := k.scale(missing, 2); res.State != executor.StateFailed || !strings.Contains(res.LastError, "StatefulSet "+k.ns+"/nope not found") {
		t.Errorf("scale of nothing = %+v", res)
	}
}

func (k *cluster) scale(w executor.Workload, replicas int32) executor.NodeResult {
	k.t.Helper()
	res, err := k.e.Scale(context.Background(), executor.ScaleRequest{Service: "demo", Workloads: []executor.Workload{w}, Replicas: replicas})
	if err != nil || len(res) != 1 {
		k.t.Fatalf("scale to %d: %v %v", replicas, res, err)
	}
	return res[0]
}

func TestPodStatusReportsEveryPod(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	pods, err := k.e.WorkloadPods(context.Background(), w)
	if err != nil || len(pods) != 3 {
		t.Fatalf("pods = %+v %v", pods, err)
	}
	for _, p := range pods {
		if p.Phase != "Running" || !p.Ready || p.Restarts != 0 || !strings.HasPrefix(p.Node, "kwok-node-") ||
			p.Image != "registry.example/demo:v1" || p.Created.IsZero() || !strings.HasPrefix(p.Name, "web-") {
			t.Errorf("pod = %+v", p)
		}
	}
}

// KWOK's nodes have no kubelet, so the API server cannot serve a pod's log: that is an error that
// says so, at once, not a hang.
func TestPodLogsUnavailableIsAClearErrorNotAHang(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	pods, err := k.e.WorkloadPods(context.Background(), w)
	if err != nil || len(pods) == 0 {
		t.Fatalf("pods = %v %v", pods, err)
	}
	start := time.Now()
	lines, err := k.e.PodLogs(context.Background(), k.ns, pods[0].Name, "app", 100)
	took := time.Since(start)
	if !errors.Is(err, ErrLogsUnavailable) || !strings.Contains(err.Error(), "no kubelet serving the logs of pod "+k.ns+"/"+pods[0].Name) {
		t.Errorf("logs = %v, %v", lines, err)
	}
	if took >= LogsTimeout {
		t.Errorf("the answer took %s", took)
	}
	if _, err := k.e.PodLogs(context.Background(), k.ns, "nope", "", 10); err == nil || !strings.Contains(err.Error(), "pod "+k.ns+"/nope not found") {
		t.Errorf("logs of a missing pod = %v", err)
	}
}

func TestApplyManifestThenDeleteByLabels(t *testing.T) {
	k := newCluster(t)
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Client: k.c, Dynamic: dyn})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	manifest := `apiVersion: v1
kind: ConfigMap
metadata: {name: shop-config, labels: {app: shop}}
data: {mode: "blue"}
---
# a comment-only document between objects is skipped
---
apiVersion: v1
kind: Service
metadata: {name: shop, labels: {app: shop}}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, labels: {app: shop}}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      nodeSelector: {type: kwok, "nodeexec-test/` + k.pool + `": "` + k.pool + `"}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: app, image: "registry.example/shop:v1"}]
`
	applied, err := e.Apply(ctx, k.ns, []byte(manifest))
	if err != nil || len(applied) != 3 || applied[2].String() != "Deployment "+k.ns+"/shop" {
		t.Fatalf("apply = %v %v", applied, err)
	}
	k.waitDone(executor.Workload{Namespace: k.ns, Kind: executor.KindDeployment, Name: "shop"})
	// Applying the same manifest again changes nothing and is no error; a changed field goes in.
	if _, err := e.Apply(ctx, k.ns, []byte(strings.Replace(manifest, `mode: "blue"`, `mode: "green"`, 1))); err != nil {
		t.Fatalf("apply again: %v", err)
	}
	cm, err := k.c.CoreV1().ConfigMaps(k.ns).Get(ctx, "shop-config", metav1.GetOptions{})
	if err != nil || cm.Data["mode"] != "green" {
		t.Errorf("configmap after the second apply = %v %v", cm.Data, err)
	}
	// A manifest that cannot be applied whole applies nothing: its first object is not created.
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: early}\n---\napiVersion: example.com/v1\nkind: Frobnicator\nmetadata: {name: x}\n"
	if _, err := e.Apply(ctx, k.ns, []byte(bad)); err == nil || !strings.Contains(err.Error(), "document 2 (Frobnicator x): the cluster has no kind Frobnicator") {
		t.Errorf("apply of an unknown kind = %v", err)
	}
	if _, err := k.c.CoreV1().ConfigMaps(k.ns).Get(ctx, "early", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the first object of a refused manifest exists: %v", err)
	}
	for manifest, want := range map[string]string{
		"kind: ConfigMap\nmetadata: {name: x}\n":              "apiVersion and kind are required",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n":     "metadata.name is required",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x": "document 1",
		"": "no objects",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: other}\n": `its namespace "other" is not the requested`,
	} {
		if _, err := e.Apply(ctx, k.ns, []byte(manifest)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("apply %q = %v, want %q", manifest, err, want)
		}
	}

	if _, err := e.DeleteByLabels(ctx, k.ns, ""); err == nil || !strings.Contains(err.Error(), "would delete everything") {
		t.Errorf("delete with no selector = %v", err)
	}
	if _, err := e.DeleteByLabels(ctx, k.ns, "app in (shop"); err == nil {
		t.Errorf("delete with a broken selector passed")
	}
	k.createDeployment("other", "registry.example/demo:v1") // labelled app=demo: must survive
	deleted, err := e.DeleteByLabels(ctx, k.ns, "app=shop")
	if err != nil || len(deleted) != 3 {
		t.Fatalf("delete = %v %v", deleted, err)
	}
	if _, err := k.c.AppsV1().Deployments(k.ns).Get(ctx, "shop", metav1.GetOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
	} else if err == nil {
		// Background propagation: the object may linger with a deletion timestamp, never without one.
		d, _ := k.c.AppsV1().Deployments(k.ns).Get(ctx, "shop", metav1.GetOptions{})
		if d != nil && d.DeletionTimestamp == nil {
			t.Errorf("deployment shop still there after the delete")
		}
	}
	if _, err := k.c.AppsV1().Deployments(k.ns).Get(ctx, "other", metav1.GetOptions{}); err != nil {
		t.Errorf("a deployment the selector did not pick is gone: %v", err)
	}
	if _, err := k.e.Apply(ctx, k.ns, []byte(manifest)); !errors.Is(err, errNoDynamic) {
		t.Errorf("apply without a dynamic client = %v", err)
	}
}

// createService makes a Service that selects the test's pods (app=demo).
func (k *cluster) createService(name string) {
	k.t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "demo"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := k.c.CoreV1().Services(k.ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		k.t.Fatal(err)
	}
}

func (k *cluster) serviceColor(name string) string {
	k.t.Helper()
	svc, err := k.c.CoreV1().Services(k.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	return svc.Spec.Selector[labelColor]
}

// podNames are the names of the ready pods of one color running image.
func (k *cluster) podNames(color, image string) map[string]bool {
	k.t.Helper()
	pods, err := k.c.CoreV1().Pods(k.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=demo," + labelColor + "=" + color})
	if err != nil {
		k.t.Fatal(err)
	}
	out := map[string]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && podReady(p) && p.Spec.Containers[0].Image == image {
			out[p.Name] = true
		}
	}
	return out
}

func (k *cluster) deployBlueGreen(w executor.Workload, version string) executor.NodeResult {
	k.t.Helper()
	res, err := k.e.Deploy(context.Background(), executor.DeployRequest{
		DeploymentID: "d-" + version,
		Service:      "demo",
		Version:      version,
		K8sDeploy:    executor.K8sDeploy{Image: "registry.example/demo:" + version, Workloads: []executor.Workload{w}, Strategy: executor.Strategy{Type: executor.StrategyBlueGreen, Service: "web-svc", VerifySeconds: 1}},
	})
	if err != nil || len(res) != 1 {
		k.t.Fatalf("deploy %s: %v %v", version, res, err)
	}
	return res[0]
}

func TestBlueGreenSwitchesTheServiceAndSwitchesBackInstantly(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	k.createService("web-svc")
	ctx := context.Background()

	res := k.deployBlueGreen(w, "v2")
	if res.State != executor.StateSuccess || res.CurrentVersion != "v2" || res.PrevVersion != "v1" || !res.Changed {
		t.Fatalf("blue-green v2 = %+v", res)
	}
	if c := k.serviceColor("web-svc"); c != colorGreen {
		t.Fatalf("service color after the switch = %q", c)
	}
	green := k.podNames(colorGreen, "registry.example/demo:v2")
	blue := k.podNames(colorBlue, "registry.example/demo:v1")
	if len(green) != 3 || len(blue) != 3 {
		t.Fatalf("ready pods: green v2 %d, blue v1 %d; want 3 and 3 (blue keeps running)", len(green), len(blue))
	}
	var names []string
	for _, st := range res.Steps {
		names = append(names, st.Name)
	}
	if got := strings.Join(names, " | "); got != "Make the running Deployment blue | Bring up green | Wait for green | Verify green for 1s | Switch the Service to green" {
		t.Errorf("steps = %s", got)
	}
	st, err := k.e.Status(ctx, executor.StatusRequest{Service: "demo", Workloads: []executor.Workload{w}})
	if err != nil || st[0].State != executor.StateSuccess || st[0].CurrentVersion != "v2" || st[0].PrevVersion != "v1" {
		t.Errorf("status = %+v %v", st, err)
	}
	// A plain deploy now is refused by name: it would bypass the switch.
	rolling, _ := k.e.Deploy(ctx, executor.DeployRequest{
		Service:   "demo",
		Version:   "v9",
		K8sDeploy: executor.K8sDeploy{Image: "registry.example/demo:v9", Workloads: []executor.Workload{w}, Strategy: executor.Strategy{Type: executor.StrategyRolling}},
	})
	if rolling[0].State != executor.StateFailed || !strings.Contains(rolling[0].LastError, "is deployed blue-green") {
		t.Errorf("rolling deploy of a blue-green workload = %+v", rolling[0])
	}

	// Rollback: the Service points at blue again, whose pods never stopped: the same pods serve.
	start := time.Now()
	rb, err := k.e.Rollback(ctx, executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	took := time.Since(start)
	if err != nil || rb[0].State != executor.StateRolledBack || rb[0].CurrentVersion != "v1" || rb[0].PrevVersion != "v2" {
		t.Fatalf("rollback = %+v %v", rb, err)
	}
	if c := k.serviceColor("web-svc"); c != colorBlue {
		t.Errorf("service color after the rollback = %q", c)
	}
	if after := k.podNames(colorBlue, "registry.example/demo:v1"); len(after) != 3 || !sameKeys(after, blue) {
		t.Errorf("blue pods after the switch back = %v, before %v: the switch must not replace them", after, blue)
	}
	t.Logf("switch back took %s", took)

	// The next deploy goes to the idle color (green) and the Service follows it.
	if res := k.deployBlueGreen(w, "v3"); res.State != executor.StateSuccess || res.CurrentVersion != "v3" || res.PrevVersion != "v1" {
		t.Fatalf("blue-green v3 = %+v", res)
	}
	if c := k.serviceColor("web-svc"); c != colorGreen || len(k.podNames(colorGreen, "registry.example/demo:v3")) != 3 {
		t.Errorf("after v3: service color %q, green v3 pods %d", c, len(k.podNames(colorGreen, "registry.example/demo:v3")))
	}
	rb, _ = k.e.Rollback(ctx, executor.RollbackRequest{Service: "demo", ToVersion: "v7", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	if rb[0].State != executor.StateFailed || !strings.Contains(rb[0].LastError, "switches back to blue, which runs v1, not v7") {
		t.Errorf("rollback to a version the other color does not run = %+v", rb[0])
	}
	// The same version again changes nothing.
	if again := k.deployBlueGreen(w, "v3"); again.State != executor.StateSuccess || again.Changed {
		t.Errorf("v3 again = %+v", again)
	}
	// Scaling acts on the serving color.
	if sc := k.scale(w, 2); sc.State != executor.StateSuccess || len(k.podNames(colorGreen, "registry.example/demo:v3")) != 2 {
		t.Errorf("scale of the serving color = %+v, green pods %d", sc, len(k.podNames(colorGreen, "registry.example/demo:v3")))
	}
}

// A new version that never becomes ready on the idle color never gets the traffic: the Service stays
// where it was, and the idle color goes back to what it ran, still ready for an instant rollback.
func TestBlueGreenThatNeverBecomesReadyKeepsTheTraffic(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	k.createService("web-svc")
	if res := k.deployBlueGreen(w, "v2"); res.State != executor.StateSuccess {
		t.Fatalf("blue-green v2 = %+v", res)
	}
	blue := k.podNames(colorBlue, "registry.example/demo:v1")
	k.labelNodes(false)               // new pods fit nowhere now; the running ones stay
	res := k.deployBlueGreen(w, "v3") // to blue, the idle color
	if res.State != executor.StateRolledBack || res.CurrentVersion != "v2" || !strings.Contains(res.LastError, "the Service stayed on green (v2)") {
		t.Fatalf("blue-green v3 = %+v", res)
	}
	if c := k.serviceColor("web-svc"); c != colorGreen {
		t.Errorf("service color = %q, want green", c)
	}
	d, _ := k.c.AppsV1().Deployments(k.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/demo:v1" {
		t.Errorf("blue's image after the failure = %s, want v1 back", img)
	}
	// With no node to take a new pod, the rollback still works: blue's pods never went away.
	rb, err := k.e.Rollback(context.Background(), executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	if err != nil || rb[0].State != executor.StateRolledBack || rb[0].CurrentVersion != "v1" {
		t.Fatalf("rollback = %+v %v", rb, err)
	}
	if after := k.podNames(colorBlue, "registry.example/demo:v1"); k.serviceColor("web-svc") != colorBlue || !sameKeys(after, blue) {
		t.Errorf("after the rollback: color %q, blue pods %v, before %v", k.serviceColor("web-svc"), after, blue)
	}
}

// A color the deploy created and gave up on is scaled to zero and never switched to.
func TestBlueGreenNewColorThatFailsIsNeverSwitchedTo(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	k.createService("web-svc")
	// Room for blue's 3 pods and one surge pod: green can never have its 3.
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: k.ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("4")}}}
	if _, err := k.c.CoreV1().ResourceQuotas(k.ns).Create(context.Background(), quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res := k.deployBlueGreen(w, "v2")
	if res.State != executor.StateRolledBack || res.CurrentVersion != "v1" || !strings.Contains(res.LastError, "the Service stayed on blue (v1)") {
		t.Fatalf("blue-green v2 = %+v", res)
	}
	g, err := k.c.AppsV1().Deployments(k.ns).Get(context.Background(), "web-green", metav1.GetOptions{})
	if err != nil || *g.Spec.Replicas != 0 || g.Annotations[annAbandoned] == "" {
		t.Fatalf("green after the failure: %v %v", g, err)
	}
	if c := k.serviceColor("web-svc"); c != colorBlue || len(k.podNames(colorBlue, "registry.example/demo:v1")) != 3 {
		t.Errorf("service color %q, %d blue pods", c, len(k.podNames(colorBlue, "registry.example/demo:v1")))
	}
	rb, _ := k.e.Rollback(context.Background(), executor.RollbackRequest{Service: "demo", K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}}})
	if rb[0].State != executor.StateFailed || !strings.Contains(rb[0].LastError, "green never served") {
		t.Errorf("rollback to a color that never served = %+v", rb[0])
	}
}

func TestBlueGreenWithoutAServiceIsAClearError(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	res := k.deployBlueGreen(w, "v2")
	if res.State != executor.StateFailed || !strings.Contains(res.LastError, "Service "+k.ns+"/web-svc not found") {
		t.Errorf("blue-green without a service = %+v", res)
	}
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
