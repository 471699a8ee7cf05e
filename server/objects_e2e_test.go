//go:build e2e

package server

// Applies, deletes and pod listings through the API, on the real control plane (hack/kube up: a real
// API server and controllers, KWOK nodes whose pods really go Running and Ready) and the embedded
// database. Each test works in a namespace of its own, kobj-<random>, deleted after it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor/k8s"
	"github.com/nodeexec/nodeexec/internal/contract"
	"github.com/nodeexec/nodeexec/store"
)

// objectsFixture is a server whose Kubernetes executor is the one `nodeexec serve --kubeconfig` builds
// (k8s.Connect: with the dynamic client), and a namespace of the test's own.
func objectsFixture(t *testing.T) (*fixture, kubernetes.Interface, string) {
	t.Helper()
	path := os.Getenv("NODEEXEC_TEST_KUBECONFIG")
	if path == "" {
		t.Skip("set NODEEXEC_TEST_KUBECONFIG (hack/kube up; or `make e2e`)")
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	kexec, err := k8s.Connect(path, k8s.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	client, _, err := k8s.NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.K8s, c.MaxBody = kexec, 1<<20 })
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "kobj-" + hex.EncodeToString(b)
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return f, client, ns
}

// webManifest is a ConfigMap, a Deployment of two pods on the KWOK nodes and a Service, all labelled
// app=kobj-web; data is the ConfigMap's one value.
func webManifest(data string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, labels: {app: kobj-web}}
data: {greeting: "` + data + `"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: kobj-web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: kobj-web}}
  template:
    metadata: {labels: {app: kobj-web}}
    spec:
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: app, image: registry.example/web:v1}]
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: kobj-web}}
spec:
  selector: {app: kobj-web}
  ports: [{port: 80, targetPort: 8080}]
`
}

// postObjects sends an apply or a delete and decodes the record (or the error's fields).
func (f *fixture) postObjects(t *testing.T, path string, body any) (int, api.Deployment, api.Error) {
	t.Helper()
	data, _ := json.Marshal(body)
	return f.post(t, path, string(data))
}

// exists says which of the namespace's web objects the API server has.
func exists(t *testing.T, c kubernetes.Interface, ns string) string {
	t.Helper()
	ctx := context.Background()
	var out []string
	check := func(kind string, err error) {
		switch {
		case err == nil:
			out = append(out, kind)
		case !apierrors.IsNotFound(err):
			t.Fatalf("read %s: %v", kind, err)
		}
	}
	_, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
	check("ConfigMap", err)
	_, err = c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	check("Deployment", err)
	_, err = c.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	check("Service", err)
	return strings.Join(out, " ")
}

// readyPods waits, on a watch, until want pods selected by selector are ready.
func readyPods(t *testing.T, c kubernetes.Interface, ns, selector string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for i := range list.Items {
		ready[list.Items[i].Name] = isReady(&list.Items[i])
	}
	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for countTrue(ready) < want {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch of the pods ended")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod {
				ready[p.Name] = isReady(p) && p.DeletionTimestamp == nil
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d pods ready after 90s", countTrue(ready), want)
		}
	}
}

func storeFilter(service string) store.DeploymentFilter {
	return store.DeploymentFilter{Service: service, Limit: 100}
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

func TestObjectsApplyListPodsAndDeleteOnTheRealControlPlane(t *testing.T) {
	f, c, ns := objectsFixture(t)
	apply := func(manifest string, dryRun bool) api.Deployment {
		t.Helper()
		code, d, e := f.postObjects(t, "/api/v1/apply", api.ApplyRequest{Namespace: ns, Manifest: manifest, DryRun: dryRun})
		if code != http.StatusCreated {
			t.Fatalf("apply (dry run %v) = %d %+v", dryRun, code, e)
		}
		return d
	}

	// A dry run: the API server checks every object and stores none.
	d := apply(webManifest("hello"), true)
	if got := outcomes(d); d.State != "success" || !d.DryRun || got != "ConfigMap/web-config=would_create Deployment/web=would_create Service/web=would_create" {
		t.Fatalf("dry run = %s %s (%s)", d.State, got, d.Error)
	}
	if got := exists(t, c, ns); got != "" {
		t.Fatalf("after the dry run the cluster has %s", got)
	}

	// For real: created; the same again: unchanged.
	if d = apply(webManifest("hello"), false); outcomes(d) != "ConfigMap/web-config=created Deployment/web=created Service/web=created" || d.State != "success" {
		t.Fatalf("apply = %s %s (%s)", d.State, outcomes(d), d.Error)
	}
	if got := exists(t, c, ns); got != "ConfigMap Deployment Service" {
		t.Fatalf("after the apply the cluster has %q", got)
	}
	if d = apply(webManifest("hello"), false); outcomes(d) != "ConfigMap/web-config=unchanged Deployment/web=unchanged Service/web=unchanged" {
		t.Errorf("the same manifest again = %s", outcomes(d))
	}
	// A change: a dry run says what would change and changes nothing; then it is configured.
	if d = apply(webManifest("bonjour"), true); outcomes(d) != "ConfigMap/web-config=would_configure Deployment/web=unchanged Service/web=unchanged" {
		t.Errorf("dry run of a change = %s", outcomes(d))
	}
	if cm, _ := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "web-config", metav1.GetOptions{}); cm.Data["greeting"] != "hello" {
		t.Errorf("the dry run changed the ConfigMap: %v", cm.Data)
	}
	if d = apply(webManifest("bonjour"), false); outcomes(d) != "ConfigMap/web-config=configured Deployment/web=unchanged Service/web=unchanged" {
		t.Errorf("a change = %s", outcomes(d))
	}

	// The pods, with exactly their fields, in the contract's shape.
	readyPods(t, c, ns, "app=kobj-web", 2)
	list := f.conforms(t, contract.Pods, "/api/v1/pods?namespace="+ns+"&selector="+url.QueryEscape("app=kobj-web"))
	pods := list["pods"].([]any)
	if len(pods) != 2 || list["truncated"] != nil {
		t.Fatalf("pods = %v", list)
	}
	for _, p := range pods {
		p := p.(map[string]any)
		if p["phase"] != "Running" || p["ready"] != true || p["node"] == "" || !strings.HasPrefix(p["name"].(string), "web-") {
			t.Errorf("pod = %v", p)
		}
	}

	// A kind the cluster lacks: 400 naming the document, and nothing applied or recorded.
	before, _, _ := f.st.ListDeployments(context.Background(), storeFilter(ns))
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: never}\n---\napiVersion: example.com/v1\nkind: Frobnicator\nmetadata: {name: x}\n"
	code, _, e := f.postObjects(t, "/api/v1/apply", api.ApplyRequest{Namespace: ns, Manifest: bad})
	if code != http.StatusBadRequest || e.Field != "manifest" || !strings.Contains(e.Error, "document 2 (Frobnicator x): the cluster has no kind Frobnicator") {
		t.Errorf("a bad kind = %d %+v", code, e)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "never", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ConfigMap before the bad kind: %v, want not found", err)
	}
	if after, _, _ := f.st.ListDeployments(context.Background(), storeFilter(ns)); len(after) != len(before) {
		t.Errorf("a bad kind recorded something: %d records, were %d", len(after), len(before))
	}

	// An object the API server refuses mid-way: those before it went in, those after it did not.
	refused := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec: {replicas: -1, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}}\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: last}\n"
	d = apply(refused, false)
	if d.State != "failed" || outcomes(d) != "ConfigMap/first=created Deployment/broken=failed ConfigMap/last=not_applied" || !strings.Contains(d.Objects[1].Error, "replicas") {
		t.Errorf("refused mid-way = %s %s: %+v", d.State, outcomes(d), d.Objects)
	}
	_, errFirst := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "first", metav1.GetOptions{})
	_, errLast := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "last", metav1.GetOptions{})
	if errFirst != nil || !apierrors.IsNotFound(errLast) {
		t.Errorf("after the refusal: first %v (want there), last %v (want not found)", errFirst, errLast)
	}

	// Deletes: an empty selector is refused; a dry run lists and deletes nothing; then they go.
	if code, _, e := f.postObjects(t, "/api/v1/delete", api.DeleteRequest{Namespace: ns}); code != http.StatusBadRequest || e.Field != "selector" {
		t.Errorf("an empty selector = %d %+v", code, e)
	}
	code, d, _ = f.postObjects(t, "/api/v1/delete", api.DeleteRequest{Namespace: ns, Selector: "app=kobj-web", DryRun: true})
	if code != http.StatusCreated || outcomes(d) != "Deployment/web=would_delete Service/web=would_delete ConfigMap/web-config=would_delete" {
		t.Errorf("delete dry run = %d %s", code, outcomes(d))
	}
	if got := exists(t, c, ns); got != "ConfigMap Deployment Service" {
		t.Errorf("after the delete dry run the cluster has %q", got)
	}
	code, d, _ = f.postObjects(t, "/api/v1/delete", api.DeleteRequest{Namespace: ns, Selector: "app=kobj-web"})
	if code != http.StatusCreated || d.State != "success" || outcomes(d) != "Deployment/web=deleted Service/web=deleted ConfigMap/web-config=deleted" {
		t.Errorf("delete = %d %s %s", code, d.State, outcomes(d))
	}
	if got := exists(t, c, ns); got != "" {
		t.Errorf("after the delete the cluster has %q", got)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "first", metav1.GetOptions{}); err != nil {
		t.Errorf("the delete took an object its selector does not pick: %v", err)
	}

	// Every apply and delete is recorded under the namespace, newest first.
	_, page := f.do(t, "GET", "/api/v1/deployments?service="+ns, "")
	var kinds []string
	for _, r := range page["deployments"].([]any) {
		kinds = append(kinds, r.(map[string]any)["kind"].(string))
	}
	if got := strings.Join(kinds, ","); got != "delete,delete,apply,apply,apply,apply,apply,apply" {
		t.Errorf("records = %s", got)
	}
}
