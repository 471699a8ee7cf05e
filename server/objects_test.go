package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/contract"
	"github.com/nodeexec/nodeexec/store"
)

// objectsCluster is a Kubernetes executor for applies, deletes and pod listings: it plans a manifest of
// "kind/name" lines (a line "Frobnicator/x" is a kind the cluster lacks), answers each apply with the
// outcomes a test sets, and counts what it was asked. Real applies are proven by the e2e tests.
type objectsCluster struct {
	outcomes []executor.ObjectOutcome // of ApplyManifest, per object; default created
	pods     []executor.Pod
	// hold, when set, keeps ApplyManifest from answering until its context ends; started hears it began.
	hold    bool
	started chan string

	mu                      sync.Mutex
	applies, deletes, nodes int
	lastApply               executor.ApplyRequest
}

func (k *objectsCluster) count(n *int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	*n++
}

func (k *objectsCluster) counts() (applies, deletes, nodeRuns int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.applies, k.deletes, k.nodes
}

// The node operations: an apply or a delete must never reach them.
func (k *objectsCluster) Deploy(context.Context, executor.DeployRequest) ([]executor.NodeResult, error) {
	k.count(&k.nodes)
	return nil, fmt.Errorf("not here")
}
func (k *objectsCluster) Rollback(context.Context, executor.RollbackRequest) ([]executor.NodeResult, error) {
	k.count(&k.nodes)
	return nil, fmt.Errorf("not here")
}
func (k *objectsCluster) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	k.count(&k.nodes)
	return nil, fmt.Errorf("not here")
}

func (k *objectsCluster) PlanManifest(_ context.Context, namespace, manifest string) ([]executor.Object, error) {
	var out []executor.Object
	for i, line := range strings.Split(strings.TrimSpace(manifest), "\n") {
		kind, name, _ := strings.Cut(strings.TrimSpace(line), "/")
		if kind == "Frobnicator" {
			return nil, &executor.ValidationError{Field: "manifest", Reason: fmt.Sprintf("document %d (%s %s): the cluster has no kind %s in v1", i+1, kind, name, kind)}
		}
		out = append(out, executor.Object{Kind: kind, Namespace: namespace, Name: name, Outcome: executor.ObjectPending})
	}
	return out, nil
}

func (k *objectsCluster) ApplyManifest(ctx context.Context, req executor.ApplyRequest) ([]executor.Object, error) {
	k.mu.Lock()
	k.applies++
	k.lastApply = req
	k.mu.Unlock()
	objs, err := k.PlanManifest(ctx, req.Namespace, req.Manifest)
	if err != nil {
		return nil, err
	}
	if k.hold {
		k.started <- req.Namespace
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for i := range objs {
		objs[i].Outcome = executor.ObjectCreated
		if req.DryRun {
			objs[i].Outcome = executor.ObjectWouldCreate
		}
		if i < len(k.outcomes) {
			objs[i].Outcome = k.outcomes[i]
		}
		if objs[i].Outcome == executor.ObjectFailed {
			objs[i].Error = "admission webhook denied it"
		}
	}
	return objs, nil
}

func (k *objectsCluster) DeleteSelected(_ context.Context, req executor.DeleteRequest) ([]executor.Object, error) {
	k.count(&k.deletes)
	outcome := executor.ObjectDeleted
	if req.DryRun {
		outcome = executor.ObjectWouldDelete
	}
	return []executor.Object{
		{Kind: "Deployment", Namespace: req.Namespace, Name: "web", Outcome: outcome},
		{Kind: "Service", Namespace: req.Namespace, Name: "web", Outcome: outcome},
	}, nil
}

func (k *objectsCluster) Pods(context.Context, string, string) ([]executor.Pod, error) {
	return k.pods, nil
}

func withCluster(k *objectsCluster) func(*Config) {
	return func(c *Config) { c.K8s = k }
}

// post sends body to path and decodes the answer into a Deployment (or an Error's fields).
func (f *fixture) post(t *testing.T, path, body string) (int, api.Deployment, api.Error) {
	t.Helper()
	code, raw := f.do(t, "POST", path, body)
	data, _ := json.Marshal(raw)
	var d api.Deployment
	var e api.Error
	_ = json.Unmarshal(data, &d)
	_ = json.Unmarshal(data, &e)
	return code, d, e
}

func outcomes(d api.Deployment) string {
	var out []string
	for _, o := range d.Objects {
		out = append(out, o.Kind+"/"+o.Name+"="+o.Outcome)
	}
	return strings.Join(out, " ")
}

func TestAnApplyAnswersItsEndedRecordWithEachObjectsOutcome(t *testing.T) {
	k := &objectsCluster{outcomes: []executor.ObjectOutcome{executor.ObjectCreated, executor.ObjectUnchanged, executor.ObjectConfigured}}
	f := newFixture(t, withCluster(k))
	code, d, _ := f.post(t, "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg\nDeployment/web\nService/web","requested_by":"plan-7"}`)
	if code != http.StatusCreated {
		t.Fatalf("apply = %d %+v", code, d)
	}
	if d.Kind != api.KindApply || d.Platform != "k8s" || d.Service != "shop" || d.Namespace != "shop" || d.State != "success" || d.DryRun ||
		d.FinishedAt == nil || d.RequestedBy != "plan-7" || len(d.Nodes) != 0 {
		t.Errorf("record = %+v", d)
	}
	if got := outcomes(d); got != "ConfigMap/cfg=created Deployment/web=unchanged Service/web=configured" {
		t.Errorf("objects = %s", got)
	}
	_, read := f.do(t, "GET", "/api/v1/deployments/"+d.ID, "")
	if read["kind"] != "apply" || len(read["objects"].([]any)) != 3 || read["nodes"] == nil {
		t.Errorf("GET the record = %v", read)
	}
	_, list := f.do(t, "GET", "/api/v1/deployments?service=shop", "")
	if got := list["deployments"].([]any); len(got) != 1 || got[0].(map[string]any)["id"] != d.ID {
		t.Errorf("listing of service shop = %v", list)
	}
	if code, body := f.do(t, "POST", "/api/v1/deployments/"+d.ID+"/rollback", ""); code != http.StatusConflict || body["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of an apply = %d %v, want 409 nothing_to_roll_back", code, body)
	}
	if _, _, nodeRuns := k.counts(); nodeRuns != 0 {
		t.Errorf("the apply called the executor's node operations %d times", nodeRuns)
	}
}

func TestAnObjectTheServerRefusesFailsTheApplyAndShowsWhichWentIn(t *testing.T) {
	k := &objectsCluster{outcomes: []executor.ObjectOutcome{executor.ObjectCreated, executor.ObjectFailed, executor.ObjectNotApplied}}
	f := newFixture(t, withCluster(k))
	code, d, _ := f.post(t, "/api/v1/apply", `{"namespace":"shop","service":"web","manifest":"ConfigMap/cfg\nDeployment/web\nService/web"}`)
	if code != http.StatusCreated || d.State != "failed" || d.Service != "web" {
		t.Fatalf("apply = %d %+v", code, d)
	}
	if got := outcomes(d); got != "ConfigMap/cfg=created Deployment/web=failed Service/web=not_applied" {
		t.Errorf("objects = %s", got)
	}
	if !strings.Contains(d.Error, "1 of 3 objects failed: Deployment shop/web: admission webhook denied it") || d.Objects[1].Error == "" {
		t.Errorf("error = %q, the failed object's = %q", d.Error, d.Objects[1].Error)
	}
}

func TestDryRunsAreRecordedAsSuchAndADeleteNamesWhatWentOrWouldGo(t *testing.T) {
	k := &objectsCluster{}
	f := newFixture(t, withCluster(k))
	_, d, _ := f.post(t, "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg","dry_run":true}`)
	if !d.DryRun || outcomes(d) != "ConfigMap/cfg=would_create" || d.State != "success" {
		t.Errorf("dry-run apply = %+v", d)
	}
	code, d, _ := f.post(t, "/api/v1/delete", `{"namespace":"shop","selector":"app=web","dry_run":true}`)
	if code != http.StatusCreated || d.Kind != api.KindDelete || !d.DryRun || outcomes(d) != "Deployment/web=would_delete Service/web=would_delete" {
		t.Errorf("dry-run delete = %d %+v", code, d)
	}
	_, d, _ = f.post(t, "/api/v1/delete", `{"namespace":"shop","selector":"app=web"}`)
	if d.DryRun || outcomes(d) != "Deployment/web=deleted Service/web=deleted" || d.State != "success" {
		t.Errorf("delete = %+v", d)
	}
}

func TestBadAppliesAndDeletesAre400AndRecordNothing(t *testing.T) {
	k := &objectsCluster{}
	f := newFixture(t, withCluster(k))
	for _, c := range []struct {
		name, path, body, field, says string
	}{
		{"no namespace", "/api/v1/apply", `{"manifest":"ConfigMap/cfg"}`, "namespace", "required"},
		{"a namespace that is no name", "/api/v1/apply", `{"namespace":"Shop_1","manifest":"ConfigMap/cfg"}`, "namespace", "not a namespace name"},
		{"no manifest", "/api/v1/apply", `{"namespace":"shop","manifest":"  "}`, "manifest", "required"},
		{"a kind the cluster lacks", "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg\nFrobnicator/x"}`, "manifest", "document 2"},
		{"a service that is no name", "/api/v1/apply", `{"namespace":"shop","service":"a b","manifest":"ConfigMap/cfg"}`, "service", ""},
		{"a label with a control character", "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg","requested_by":"a\u0007"}`, "requested_by", ""},
		{"an empty selector", "/api/v1/delete", `{"namespace":"shop","selector":""}`, "selector", "every object"},
		{"no selector", "/api/v1/delete", `{"namespace":"shop"}`, "selector", "every object"},
		{"a selector that is no selector", "/api/v1/delete", `{"namespace":"shop","selector":"app in (web"}`, "selector", "not a label selector"},
		{"a delete without a namespace", "/api/v1/delete", `{"selector":"app=web"}`, "namespace", "required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, e := f.post(t, c.path, c.body)
			if code != http.StatusBadRequest || e.Code != "invalid" || e.Field != c.field || !strings.Contains(e.Error, c.says) {
				t.Errorf("= %d %+v, want 400 invalid on %s saying %q", code, e, c.field, c.says)
			}
		})
	}
	if code, _, e := f.post(t, "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg","selector":"x"}`); code != http.StatusBadRequest || e.Code != "bad_json" {
		t.Errorf("an unknown field = %d %+v, want 400 bad_json", code, e)
	}
	page, _, err := f.st.ListDeployments(context.Background(), store.DeploymentFilter{Limit: 10})
	if err != nil || len(page) != 0 {
		t.Errorf("records after bad requests: %d (%v), want none", len(page), err)
	}
	if applies, deletes, _ := k.counts(); applies+deletes != 0 {
		t.Errorf("bad requests reached the cluster: %d applies, %d deletes", applies, deletes)
	}
}

func TestWithoutAClusterAppliesDeletesAndPodsAre400NamingThePlatform(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg"}`},
		{"POST", "/api/v1/delete", `{"namespace":"shop","selector":"app=web"}`},
		{"GET", "/api/v1/pods?namespace=shop", ""},
	} {
		code, body := f.do(t, c.method, c.path, c.body)
		if code != http.StatusBadRequest || body["field"] != "platform" || !strings.Contains(body["error"].(string), "k8s is not configured") {
			t.Errorf("%s %s = %d %v, want 400 naming the platform", c.method, c.path, code, body)
		}
	}
}

func TestTheSameKeyAnswersTheSameRecordAndAnotherRequestWithItIs422(t *testing.T) {
	k := &objectsCluster{}
	f := newFixture(t, withCluster(k))
	apply := `{"namespace":"shop","manifest":"ConfigMap/cfg","idempotency_key":"plan-9-apply"}`
	code, first, _ := f.post(t, "/api/v1/apply", apply)
	if code != http.StatusCreated {
		t.Fatalf("first = %d", code)
	}
	code, again, _ := f.post(t, "/api/v1/apply", apply)
	if code != http.StatusOK || again.ID != first.ID || again.State != first.State {
		t.Errorf("the same request again = %d %s %s, want 200 with %s", code, again.ID, again.State, first.ID)
	}
	if applies, _, _ := k.counts(); applies != 1 {
		t.Errorf("applied %d times, want once", applies)
	}
	for _, c := range []struct{ name, path, body string }{
		{"another manifest", "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/other","idempotency_key":"plan-9-apply"}`},
		{"another namespace", "/api/v1/apply", `{"namespace":"shop2","service":"shop","manifest":"ConfigMap/cfg","idempotency_key":"plan-9-apply"}`},
		{"a dry run", "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg","dry_run":true,"idempotency_key":"plan-9-apply"}`},
		{"a delete", "/api/v1/delete", `{"namespace":"shop","selector":"app=web","idempotency_key":"plan-9-apply"}`},
	} {
		code, _, e := f.post(t, c.path, c.body)
		if code != http.StatusUnprocessableEntity || e.Code != "key_reused" || e.DeploymentID != first.ID {
			t.Errorf("%s with the key = %d %+v, want 422 key_reused naming %s", c.name, code, e, first.ID)
		}
	}
	del := `{"namespace":"shop","selector":"app=web","idempotency_key":"plan-9-delete"}`
	_, d1, _ := f.post(t, "/api/v1/delete", del)
	if code, d2, _ := f.post(t, "/api/v1/delete", del); code != http.StatusOK || d2.ID != d1.ID {
		t.Errorf("the same delete again = %d %s, want 200 with %s", code, d2.ID, d1.ID)
	}
	if code, _, e := f.post(t, "/api/v1/delete", `{"namespace":"shop","selector":"app=api","idempotency_key":"plan-9-delete"}`); code != http.StatusUnprocessableEntity || e.Code != "key_reused" {
		t.Errorf("another selector with the key = %d %+v, want 422", code, e)
	}
	if _, deletes, _ := k.counts(); deletes != 1 {
		t.Errorf("deleted %d times, want once", deletes)
	}
}

// nodeexec stopping mid-apply leaves the record in flight (it was written before the cluster was
// called); the next start ends it failed, saying to apply again, and runs nothing as a deploy.
func TestAnApplyLeftInFlightEndsFailedAtTheNextStartAndNeverRunsAsADeploy(t *testing.T) {
	k := &objectsCluster{hold: true, started: make(chan string, 1)}
	f := newFixture(t, withCluster(k))
	answered := make(chan int, 1)
	go func() {
		code, _ := f.do(t, "POST", "/api/v1/apply", `{"namespace":"shop","manifest":"ConfigMap/cfg\nDeployment/web"}`)
		answered <- code
	}()
	<-k.started
	ctx := context.Background()
	flight, err := f.st.InFlight(ctx)
	if err != nil || len(flight) != 1 {
		t.Fatalf("in flight while the cluster is called: %d (%v), want the apply's record", len(flight), err)
	}
	d := flight[0]
	if d.Kind != store.KindApply || d.State != executor.StateDeploying || len(d.Objects) != 2 || d.Objects[0].Outcome != executor.ObjectPending {
		t.Fatalf("record while applying = %+v", d)
	}

	// The next start, on the same database, while this one is as good as dead.
	next := New(Config{Executor: f.exec, K8s: k, Store: f.st, Logger: f.srv.cfg.Logger})
	t.Cleanup(next.Shutdown)
	if err := next.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != executor.StateFailed || !strings.Contains(got.Error, "nodeexec stopped during the apply; server-side apply is idempotent: apply again") {
		t.Errorf("after the next start: %s %q", got.State, got.Error)
	}
	for _, o := range got.Objects {
		if o.Outcome != executor.ObjectUnknown {
			t.Errorf("%s = %s, want unknown", o, o.Outcome)
		}
	}
	if applies, _, nodeRuns := k.counts(); applies != 1 || nodeRuns != 0 {
		t.Errorf("the next start applied %d times and ran %d node operations; want the one apply and none", applies, nodeRuns)
	}
	if flight, _ := f.st.InFlight(ctx); len(flight) != 0 {
		t.Errorf("still in flight: %v", flight)
	}
	f.srv.Shutdown() // the held apply ends with the server
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the held apply did not answer once its server shut down")
	}
}

func TestPodsAreListedWithExactlyTheirFieldsAndCutAtTheBound(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	k := &objectsCluster{}
	for i := range api.MaxPods + 1 {
		k.pods = append(k.pods, executor.Pod{Name: fmt.Sprintf("web-%d", i), Phase: "Running", Ready: true, Restarts: 2,
			Node: "kwok-1", Image: "web:v1", Color: "blue", Created: created})
	}
	f := newFixture(t, withCluster(k))
	list := f.conforms(t, contract.Pods, "/api/v1/pods?namespace=shop&selector=app%3Dweb")
	pods := list["pods"].([]any)
	if len(pods) != api.MaxPods || list["truncated"] != true || list["selector"] != "app=web" || list["namespace"] != "shop" {
		t.Errorf("%d pods, truncated %v, selector %v", len(pods), list["truncated"], list["selector"])
	}
	if p := pods[0].(map[string]any); p["created"] != "2026-01-02T02:04:05Z" || p["restarts"] != float64(2) || p["node"] != "kwok-1" {
		t.Errorf("first pod = %v", p)
	}
	k.pods = k.pods[:1]
	if list := f.conforms(t, contract.Pods, "/api/v1/pods?namespace=shop"); list["truncated"] != nil {
		t.Errorf("one pod: truncated = %v, want absent", list["truncated"])
	}
	for _, c := range []struct{ query, field string }{
		{"", "namespace"}, {"?namespace=Shop", "namespace"}, {"?namespace=shop&selector=app+in+%28web", "selector"},
	} {
		if code, body := f.do(t, "GET", "/api/v1/pods"+c.query, ""); code != http.StatusBadRequest || body["field"] != c.field {
			t.Errorf("pods%s = %d %v, want 400 on %s", c.query, code, body, c.field)
		}
	}
}

// Whatever a stop left of an apply or a delete, the next start ends it failed saying what to do, and
// calls nothing.
func TestEveryKindOfObjectsRecordLeftInFlightEndsFailedSayingWhatToDo(t *testing.T) {
	k := &objectsCluster{}
	f := newFixture(t, withCluster(k))
	ctx := context.Background()
	started := time.Now().UTC()
	lost := map[string]string{
		"apply":  "nodeexec stopped during the apply; server-side apply is idempotent: apply again",
		"delete": "nodeexec stopped during the delete; the objects it had not reached are still there: delete again",
	}
	ids := map[string]string{}
	for kind := range lost {
		d := engine.Apply("d-lost-"+kind, "shop", executor.ApplyRequest{Namespace: "shop", Manifest: "ConfigMap/cfg"})
		d.Objects = []executor.Object{{Kind: "ConfigMap", Namespace: "shop", Name: "cfg", Outcome: executor.ObjectPending}}
		if kind == "delete" {
			d = engine.Delete("d-lost-"+kind, "shop", executor.DeleteRequest{Namespace: "shop", Selector: "app=web"})
		}
		d.State, d.StartedAt = executor.StateDeploying, &started
		if _, _, err := f.st.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		ids[kind] = d.ID
	}
	if err := f.srv.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for kind, why := range lost {
		_, d := f.do(t, "GET", "/api/v1/deployments/"+ids[kind], "")
		if d["state"] != "failed" || !strings.Contains(d["error"].(string), why) || d["finished_at"] == nil {
			t.Errorf("%s after the next start = %v", kind, d)
		}
	}
	if applies, deletes, nodeRuns := k.counts(); applies+deletes+nodeRuns != 0 {
		t.Errorf("the next start called the cluster: %d applies, %d deletes, %d node operations", applies, deletes, nodeRuns)
	}
}
