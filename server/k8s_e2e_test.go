//go:build e2e

package server

// Platform k8s through the API, on a real API server (hack/kube up) and the embedded database.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeexec/nodeexec/executor/k8s"
)

// kubeFixture is a server with the Kubernetes executor on the real control plane (hack/kube up), and a
// namespace of the test's own (prefix-<random>, deleted after it) holding a Deployment "web" of replicas
// pods of registry.example/web:v1 on the KWOK nodes.
func kubeFixture(t *testing.T, prefix string, replicas int32) (*fixture, kubernetes.Interface, string) {
	t.Helper()
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
	ns := prefix + "-" + hex.EncodeToString(b)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"type": "kwok"},
			Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers:   []corev1.Container{{Name: "app", Image: "registry.example/web:v1"}}}}}}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return f, client, ns
}

func TestK8sDeployEventsStatusRollbackThroughTheAPI(t *testing.T) {
	f, client, ns := kubeFixture(t, "api", 3)
	ctx := context.Background()
	deploy := func(version string) map[string]any {
		body := fmt.Sprintf(`{"service":"web","version":%q,"platform":"k8s","image":"registry.example/web:%s",`+
			`"workloads":[{"namespace":%q,"kind":"Deployment","name":"web","container":"app"}]}`, version, version, ns)
		code, res := f.do(t, "POST", "/api/v1/deployments", body)
		if code != http.StatusAccepted {
			t.Fatalf("POST %s = %d %v", version, code, res)
		}
		return res
	}
	first := deploy("v1") // already runs v1: recorded, nothing changes
	if end := f.waitState(t, first["id"].(string)); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	second := deploy("v2")
	evs, end := f.follow(t, second["id"].(string), nil)
	if end["state"] != "success" || end["platform"] != "k8s" {
		t.Fatalf("deploy v2 = %v", end)
	}
	var steps []string
	for _, ev := range evs {
		if ev.event == "step" {
			steps = append(steps, fmt.Sprint(ev.data["message"]))
		}
	}
	if got := strings.Join(steps, " | "); !strings.Contains(got, "Set the image: changed") || !strings.Contains(got, "Wait for the rollout: ok") {
		t.Errorf("steps: %s", got)
	}
	code, n := f.do(t, "GET", "/api/v1/nodes/web/"+url.PathEscape(ns+"/web"), "")
	if code != 200 || n["current_version"] != "v2" || n["prev_version"] != "v1" || n["platform"] != "k8s" {
		t.Errorf("node %s/web = %d %v", ns, code, n)
	}
	code, rb := f.do(t, "POST", "/api/v1/deployments/"+second["id"].(string)+"/rollback", "")
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %v", code, rb)
	}
	if end := f.waitState(t, rb["id"].(string)); end["state"] != "rolled_back" {
		t.Fatalf("rollback = %v", end)
	}
	got, _ := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if img := got.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v1" {
		t.Errorf("image after the rollback = %s", img)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments", `{"service":"web","version":"v3","platform":"k8s","image":"x y",`+
		`"workloads":[{"namespace":"`+ns+`","kind":"Deployment","name":"web"}]}`); code != 400 || b["field"] != "image" {
		t.Errorf("bad image = %d %v", code, b)
	}

	// The management endpoints show the pods as they are now.
	id := second["id"].(string)
	code, info := f.do(t, "GET", "/internal/v1/deploy/info/"+id, "")
	nodes, _ := info["nodes"].([]any)
	if code != 200 || len(nodes) != 1 {
		t.Fatalf("info = %d %v", code, info)
	}
	pods, _ := nodes[0].(map[string]any)["pods"].([]any)
	if len(pods) != 3 {
		t.Fatalf("info pods = %v", nodes[0])
	}
	for _, p := range pods {
		pod := p.(map[string]any)
		if pod["phase"] != "Running" || pod["ready"] != true || !strings.HasPrefix(fmt.Sprint(pod["node"]), "kwok-node-") || pod["image"] != "registry.example/web:v1" {
			t.Errorf("pod = %v", pod)
		}
	}
	if info["status"] != "succeeded" || info["replicas"] != 3.0 || info["ready_replicas"] != 3.0 {
		t.Errorf("info's replicas = %v", info)
	}
	code, health := f.do(t, "GET", "/internal/v1/deploy/health/"+id, "")
	details, _ := health["details"].([]any)
	podChecks := 0
	for _, c := range details {
		if ch := c.(map[string]any); ch["type"] == "pod" {
			podChecks++
			if ch["status"] != "pass" {
				t.Errorf("pod check = %v", ch)
			}
		}
	}
	if code != 200 || podChecks != 3 || health["healthy"] != true || !strings.HasPrefix(fmt.Sprint(health["message"]), "All replicas are healthy") {
		t.Errorf("health = %d %v", code, health)
	}
	// KWOK has no kubelet: each pod's log is named in errors with the reason, alone or with the others.
	code, logs := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?lines=5", "")
	errs, _ := logs["errors"].([]any)
	if code != 200 || len(logs["logs"].([]any)) != 0 || len(errs) != 3 {
		t.Fatalf("logs = %d %v", code, logs)
	}
	if podErr := errs[0].(map[string]any); !strings.Contains(fmt.Sprint(podErr["error"]), "no kubelet serving the logs") {
		t.Errorf("a pod's log error = %v", podErr)
	}
	podName := pods[0].(map[string]any)["name"].(string)
	if code, b := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?pod_name="+podName, ""); code != 200 || len(b["errors"].([]any)) != 1 ||
		b["errors"].([]any)[0].(map[string]any)["pod_name"] != podName {
		t.Errorf("one pod's log = %d %v", code, b)
	}

	// Scale through the API: recorded like a deployment, waited for, version unchanged.
	code, sc := f.do(t, "POST", "/api/v1/scale", `{"service":"web","replicas":5,"workloads":[{"namespace":"`+ns+`","kind":"Deployment","name":"web"}]}`)
	if code != http.StatusAccepted {
		t.Fatalf("scale = %d %v", code, sc)
	}
	end = f.waitState(t, sc["id"].(string))
	if end["state"] != "success" || end["kind"] != "scale" || fmt.Sprint(end["replicas"]) != "5" {
		t.Fatalf("scale = %v", end)
	}
	got, _ = client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if got.Status.ReadyReplicas != 5 || got.Spec.Template.Spec.Containers[0].Image != "registry.example/web:v1" {
		t.Errorf("after the scale: %d ready, image %s", got.Status.ReadyReplicas, got.Spec.Template.Spec.Containers[0].Image)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+sc["id"].(string)+"/rollback", ""); code != 409 || b["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of a scale = %d %v", code, b)
	}

	// Blue-green through the API: the Service's selector moves to the new color.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, bg := f.do(t, "POST", "/api/v1/deployments", `{"service":"web","version":"v4","platform":"k8s","image":"registry.example/web:v4",`+
		`"strategy":{"type":"blue-green","verify_seconds":1},"workloads":[{"namespace":"`+ns+`","kind":"Deployment","name":"web"}]}`)
	if code != http.StatusAccepted {
		t.Fatalf("blue-green = %d %v", code, bg)
	}
	if end := f.waitState(t, bg["id"].(string)); end["state"] != "success" {
		t.Fatalf("blue-green = %v", end)
	}
	live, _ := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if live.Spec.Selector["nodeexec.io/color"] != "green" {
		t.Errorf("service selector after blue-green = %v", live.Spec.Selector)
	}
	code, n = f.do(t, "GET", "/api/v1/nodes/web/"+url.PathEscape(ns+"/web"), "")
	if code != 200 || n["current_version"] != "v4" || n["prev_version"] != "v1" {
		t.Errorf("node after blue-green = %d %v", code, n)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments", `{"service":"web","version":"v5","platform":"physical","nodes":["10.0.0.1"],`+
		`"package_url":"http://h/x.tgz","sha256":"`+strings.Repeat("a", 64)+`","strategy":{"type":"blue-green"}}`); code != 400 || b["field"] != "workloads" {
		t.Errorf("a strategy on physical nodes = %d %v", code, b)
	}
}

// A workload made outside nodeexec (kubectl, Helm) at web:v1: nodeexec's first deploy onto it records
// what ran before, so its rollback goes back there (issue 17 part 1); likewise for a StatefulSet.
func TestK8sRollbackOfTheFirstDeployOntoAWorkloadMadeElsewhere(t *testing.T) {
	f, client, ns := kubeFixture(t, "first", 3)
	ctx := context.Background()
	dbBesideWeb(t, client, ns)
	for _, w := range []struct{ kind, name string }{{"Deployment", "web"}, {"StatefulSet", "db"}} {
		body := fmt.Sprintf(`{"service":%q,"version":"v2","platform":"k8s","image":"registry.example/web:v2",`+
			`"workloads":[{"namespace":%q,"kind":%q,"name":%q}]}`, w.name, ns, w.kind, w.name)
		code, acc := f.do(t, "POST", "/api/v1/deployments", body)
		if code != http.StatusAccepted {
			t.Fatalf("%s: deploy = %d %v", w.kind, code, acc)
		}
		end := f.waitState(t, acc["id"].(string))
		node := end["nodes"].([]any)[0].(map[string]any)
		if end["state"] != "success" || node["from_version"] != "v1" || node["prev_version"] != "v1" {
			t.Fatalf("%s: first deploy = %v", w.kind, end)
		}
		code, rb := f.do(t, "POST", "/api/v1/deployments/"+acc["id"].(string)+"/rollback", "")
		if code != http.StatusAccepted {
			t.Fatalf("%s: rollback of the first deploy = %d %v", w.kind, code, rb)
		}
		if back := f.waitState(t, rb["id"].(string)); back["state"] != "rolled_back" {
			t.Fatalf("%s: rollback = %v", w.kind, back)
		}
		var image string
		var ready int32
		if w.kind == "Deployment" {
			d, _ := client.AppsV1().Deployments(ns).Get(ctx, w.name, metav1.GetOptions{})
			image, ready = d.Spec.Template.Spec.Containers[0].Image, d.Status.ReadyReplicas
		} else {
			s, _ := client.AppsV1().StatefulSets(ns).Get(ctx, w.name, metav1.GetOptions{})
			image, ready = s.Spec.Template.Spec.Containers[0].Image, s.Status.ReadyReplicas
		}
		if image != "registry.example/web:v1" || ready != 3 {
			t.Errorf("%s after the rollback: image %s, %d ready", w.kind, image, ready)
		}
	}
}

// GET of a workload's node reads the cluster: one nodeexec never deployed answers from the cluster
// (live image, replicas, ready replicas) instead of 404; one changed behind nodeexec's back shows the
// live image and says it drifted from the record, in the drift pass's words; the next deploy's rollback
// goes back to what really ran, not to the stale record (issue 17 part 3).
func TestK8sNodeReadsTheClusterAsTheTruth(t *testing.T) {
	f, client, ns := kubeFixture(t, "live", 3)
	ctx := context.Background()
	rolledOut(t, client, ns, "web")
	path := "/api/v1/nodes/web/" + url.PathEscape(ns+"/web")
	code, n := f.do(t, "GET", path, "")
	live, _ := n["live"].(map[string]any)
	if code != 200 || n["current_version"] != "v1" || n["state"] != "" || live["image"] != "registry.example/web:v1" ||
		live["kind"] != "Deployment" || live["replicas"] != 3.0 || live["ready_replicas"] != 3.0 || live["rollout_done"] != true {
		t.Fatalf("a workload nodeexec never deployed = %d %v", code, n)
	}
	body := fmt.Sprintf(`{"service":"web","version":"v2","platform":"k8s","image":"registry.example/web:v2",`+
		`"workloads":[{"namespace":%q,"kind":"Deployment","name":"web"}]}`, ns)
	_, acc := f.do(t, "POST", "/api/v1/deployments", body)
	if end := f.waitState(t, acc["id"].(string)); end["state"] != "success" {
		t.Fatalf("deploy v2 = %v", end)
	}
	if _, n := f.do(t, "GET", path, ""); n["drift"] != nil || n["current_version"] != "v2" || n["live"].(map[string]any)["version"] != "v2" {
		t.Errorf("after the deploy = %v", n)
	}
	// kubectl set image, behind nodeexec's back.
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/web:v3"}]}}}}`
	if _, err := client.AppsV1().Deployments(ns).Patch(ctx, "web", "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, n = f.do(t, "GET", path, "")
	drift, _ := n["drift"].(map[string]any)
	if n["live"].(map[string]any)["image"] != "registry.example/web:v3" || drift["kind"] != "image_changed" || drift["recorded"] != "v2" || drift["observed"] != "v3" {
		t.Errorf("after a change behind nodeexec's back = %v", n)
	}
	// The next deploy's rollback goes back to what really ran before it (v3), not to the record (v2).
	_, acc = f.do(t, "POST", "/api/v1/deployments", strings.ReplaceAll(body, "v2", "v4"))
	end := f.waitState(t, acc["id"].(string))
	if node := end["nodes"].([]any)[0].(map[string]any); end["state"] != "success" || node["from_version"] != "v3" {
		t.Fatalf("deploy v4 after the change by hand = %v", end)
	}
	code, rb := f.do(t, "POST", "/api/v1/deployments/"+acc["id"].(string)+"/rollback", "")
	if code != http.StatusAccepted {
		t.Fatalf("rollback of v4 = %d %v", code, rb)
	}
	if back := f.waitState(t, rb["id"].(string)); back["state"] != "rolled_back" {
		t.Fatalf("rollback of v4 = %v", back)
	}
	if d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil ||
		d.Spec.Template.Spec.Containers[0].Image != "registry.example/web:v3" || d.Status.ReadyReplicas != 3 {
		t.Errorf("after the rollback of v4: %v %v, want web:v3 with 3 ready", d, err)
	}
	if code, b := f.do(t, "GET", "/api/v1/nodes/web/"+url.PathEscape(ns+"/gone"), ""); code != 404 || !strings.Contains(fmt.Sprint(b["error"]), "no Deployment or StatefulSet") {
		t.Errorf("a workload the cluster lacks = %d %v", code, b)
	}
	if code, b := f.do(t, "GET", path+"?kind=DaemonSet", ""); code != 400 || b["field"] != "kind" {
		t.Errorf("kind=DaemonSet = %d %v", code, b)
	}
}

// rolledOut waits (a watch, up to 90 s) until the Deployment's rollout is done by the executor's rule.
func rolledOut(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w, err := c.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch of the deployment ended")
			}
			if d, isDeployment := ev.Object.(*appsv1.Deployment); isDeployment && k8s.DeploymentRollout(d).Done {
				return
			}
		case <-ctx.Done():
			t.Fatalf("deployment %s/%s not rolled out after 90s", ns, name)
		}
	}
}

// A release whose pods cannot start (the simulated kubelet backs off pulling its image) is found failed
// from the pods, long before the workload's 600 s progress deadline, and rolled back in the same run:
// the API's node says why, and the event stream carries the failed step (issue 17 part 4).
func TestK8sStuckRolloutIsRolledBackThroughTheAPI(t *testing.T) {
	f, client, ns := kubeFixture(t, "stuck", 2)
	rolledOut(t, client, ns, "web")
	body := fmt.Sprintf(`{"service":"web","version":"v2","platform":"k8s","image":"registry.example/web:v2-imagepullbackoff",`+
		`"workloads":[{"namespace":%q,"kind":"Deployment","name":"web","container":"app"}]}`, ns)
	code, acc := f.do(t, "POST", "/api/v1/deployments", body)
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, acc)
	}
	evs, end := f.follow(t, acc["id"].(string), nil)
	node := end["nodes"].([]any)[0].(map[string]any)
	if node["state"] != "rolled_back" || node["current_version"] != "v1" || !strings.Contains(fmt.Sprint(node["last_error"]), "container app is in ImagePullBackOff") {
		t.Fatalf("the workload after a deploy whose pods cannot pull = %v", node)
	}
	stuck := false
	for _, ev := range evs {
		if step, _ := ev.data["step"].(map[string]any); step["name"] == "Wait for the rollout" && step["failed"] == true &&
			strings.HasPrefix(fmt.Sprint(step["message"]), "stuck: pod web-") {
			stuck = true
		}
	}
	if !stuck {
		t.Errorf("no failed step naming the stuck pod in the events: %v", evs)
	}
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example/web:v1" || d.Status.ReadyReplicas != 2 {
		t.Errorf("the workload after the rollback: %v %v, want web:v1 with 2 ready", d, err)
	}
}

// Bad input on the real control plane says what is wrong and changes nothing: a container the workload
// lacks, a workload that is gone, a revision that does not exist (issue 17).
func TestK8sBadInputSaysWhatIsWrongAndChangesNothing(t *testing.T) {
	f, client, ns := kubeFixture(t, "bad", 1)
	rolledOut(t, client, ns, "web")
	deploy := func(name, container string) map[string]any {
		body := fmt.Sprintf(`{"service":"web","version":"v2","platform":"k8s","image":"registry.example/web:v2",`+
			`"workloads":[{"namespace":%q,"kind":"Deployment","name":%q,"container":%q}]}`, ns, name, container)
		code, acc := f.do(t, "POST", "/api/v1/deployments", body)
		if code != http.StatusAccepted {
			t.Fatalf("POST = %d %v", code, acc)
		}
		return f.waitState(t, acc["id"].(string))["nodes"].([]any)[0].(map[string]any)
	}
	if n := deploy("web", "nope"); n["state"] != "failed" || !strings.Contains(fmt.Sprint(n["last_error"]), `no container "nope" (the pod has [app])`) {
		t.Errorf("a container the workload lacks = %v", n)
	}
	if n := deploy("gone", "app"); n["state"] != "failed" || !strings.Contains(fmt.Sprint(n["last_error"]), "Deployment "+ns+"/gone not found") {
		t.Errorf("a workload that is gone = %v", n)
	}
	if code, b := f.do(t, "GET", "/api/v1/workloads/"+ns+"/Deployment/gone/revisions", ""); code != http.StatusNotFound {
		t.Errorf("revisions of a workload that is gone = %d %v", code, b)
	}
	if code, b := f.do(t, "POST", "/api/v1/workloads/"+ns+"/Deployment/web/rollback", `{"service":"web","to_revision":99}`); code != http.StatusConflict || b["code"] != "no_such_revision" {
		t.Errorf("a revision that does not exist = %d %v", code, b)
	}
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example/web:v1" || d.Generation != 1 {
		t.Errorf("the workload after bad input: %v %v, want web:v1 untouched (generation 1)", d, err)
	}
}

// A dry run of a Kubernetes deploy reads each workload's live image and changes nothing.
func TestK8sDryRunReadsTheLiveImageAndChangesNothing(t *testing.T) {
	f, client, ns := kubeFixture(t, "dry", 1)
	rolledOut(t, client, ns, "web")
	plan := func(version string) map[string]string {
		t.Helper()
		body := fmt.Sprintf(`{"service":"web","version":%q,"platform":"k8s","image":"registry.example/web:%s",`+
			`"workloads":[{"namespace":%q,"kind":"Deployment","name":"web"},{"namespace":%q,"kind":"Deployment","name":"gone"}]}`, version, version, ns, ns)
		code, p := f.do(t, "POST", "/api/v1/deployments?dry_run=true", body)
		if code != http.StatusOK || p["platform"] != "k8s" {
			t.Fatalf("dry run of %s = %d %v", version, code, p)
		}
		out := map[string]string{}
		for _, raw := range p["nodes"].([]any) {
			n := raw.(map[string]any)
			out[n["host"].(string)] = fmt.Sprintf("%v %v->%v %v", n["action"], n["from"], n["to"], n["error"])
		}
		return out
	}
	web, gone := ns+"/web", ns+"/gone"
	got := plan("v2")
	if got[web] != "change v1->v2 <nil>" || !strings.Contains(got[gone], "unreachable <nil>->v2 Deployment "+gone+" not found") {
		t.Errorf("dry run of v2 = %v", got)
	}
	if got := plan("v1"); got[web] != "unchanged v1->v1 <nil>" {
		t.Errorf("dry run of v1 = %v", got)
	}
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example/web:v1" || d.Generation != 1 {
		t.Errorf("the workload after the dry runs: %v %v, want web:v1 untouched", d, err)
	}
}

// dbBesideWeb makes a StatefulSet "db" with the "web" Deployment's pod template and size (app=db),
// made outside nodeexec.
func dbBesideWeb(t *testing.T, client kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	web, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: appsv1.StatefulSetSpec{
		Replicas: web.Spec.Replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, ServiceName: "db",
		Template: *web.Spec.Template.DeepCopy()}}
	sts.Spec.Template.Labels = map[string]string{"app": "db"}
	if _, err := client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
