package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// historyCluster is a Kubernetes executor with one Deployment, prod/web, at revision 3 of three; it
// records the rollbacks it is asked for. The real history is proven by the e2e tests.
type historyCluster struct {
	mu        sync.Mutex
	rollbacks []executor.RollbackRequest
}

var webHistory = []executor.Revision{
	{Revision: 3, Image: "web:v3", Version: "v3", Created: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), Current: true},
	{Revision: 2, Image: "web:v2", Version: "v2", ChangeCause: "deploy v2", Created: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
	{Revision: 1, Image: "web:v1", Version: "v1", Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
}

func (k *historyCluster) Revisions(_ context.Context, w executor.Workload) ([]executor.Revision, error) {
	switch {
	case w.Name != "web":
		return nil, fmt.Errorf("%s %s: %w", w.Kind, w.Host(), executor.ErrNoSuchWorkload)
	case w.Container != "" && w.Container != "app":
		return nil, &executor.ValidationError{Field: "container", Reason: fmt.Sprintf("no container %q (the pod has [app])", w.Container)}
	}
	return webHistory, nil
}

func (k *historyCluster) Rollback(_ context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	k.mu.Lock()
	k.rollbacks = append(k.rollbacks, req)
	k.mu.Unlock()
	var out []executor.NodeResult
	for _, w := range req.Workloads {
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: w.Host(), Service: req.Service, CurrentVersion: "v1",
			PrevVersion: "v3", Platform: executor.PlatformK8s, State: executor.StateRolledBack}, Changed: true})
	}
	return out, nil
}

func (k *historyCluster) Deploy(context.Context, executor.DeployRequest) ([]executor.NodeResult, error) {
	return nil, fmt.Errorf("not here")
}

func (k *historyCluster) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

func (k *historyCluster) asked() []executor.RollbackRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]executor.RollbackRequest(nil), k.rollbacks...)
}

func TestRevisionsListAWorkloadsHistoryAndRefuseWhatIsNotThere(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.K8s = &historyCluster{} })
	code, body := f.do(t, "GET", "/api/v1/workloads/prod/Deployment/web/revisions", "")
	if code != http.StatusOK {
		t.Fatalf("revisions = %d %v", code, body)
	}
	revs := body["revisions"].([]any)
	if len(revs) != 3 || body["workload"].(map[string]any)["name"] != "web" {
		t.Fatalf("revisions = %v", body)
	}
	first := revs[0].(map[string]any)
	if first["revision"] != 3.0 || first["image"] != "web:v3" || first["current"] != true || first["created"] != "2026-12-03T00:00:00Z" {
		t.Errorf("newest revision = %v", first)
	}
	if second := revs[1].(map[string]any); second["change_cause"] != "deploy v2" || second["current"] != false {
		t.Errorf("revision 2 = %v", second)
	}
	for _, tc := range []struct {
		name, path string
		status     int
		code, says string
	}{
		{"a workload that is gone", "/api/v1/workloads/prod/Deployment/gone/revisions", http.StatusNotFound, "not_found", "prod/gone"},
		{"a kind that is not a workload", "/api/v1/workloads/prod/DaemonSet/web/revisions", http.StatusBadRequest, "invalid", "kind"},
		{"a name no workload can have", "/api/v1/workloads/prod/Deployment/Web;id/revisions", http.StatusBadRequest, "invalid", "name"},
		{"a container the workload lacks", "/api/v1/workloads/prod/Deployment/web/revisions?container=nope", http.StatusBadRequest, "invalid", `no container "nope"`},
	} {
		code, body := f.do(t, "GET", tc.path, "")
		if code != tc.status || body["code"] != tc.code || !strings.Contains(fmt.Sprint(body["error"]), tc.says) {
			t.Errorf("%s: %d %v, want %d %s saying %q", tc.name, code, body, tc.status, tc.code, tc.says)
		}
	}
}

func TestAServerWithNoClusterRefusesRevisionsAsItRefusesAScale(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/workloads/prod/Deployment/web/revisions", ""},
		{"POST", "/api/v1/workloads/prod/Deployment/web/rollback", `{"service":"web","to_revision":1}`},
	} {
		code, body := f.do(t, c.method, c.path, c.body)
		if code != http.StatusBadRequest || body["field"] != "platform" || !strings.Contains(fmt.Sprint(body["error"]), "k8s is not configured") {
			t.Errorf("%s %s = %d %v, want 400 on platform", c.method, c.path, code, body)
		}
	}
}

func TestARollbackToARevisionThatIsNotThereRecordsNothingAndNamesTheRevisions(t *testing.T) {
	k := &historyCluster{}
	f := newFixture(t, func(c *Config) { c.K8s = k })
	for _, tc := range []struct {
		name, body string
		status     int
		code, says string
	}{
		{"no such revision", `{"service":"web","to_revision":99}`, http.StatusConflict, "no_such_revision", "no revision 99 (there are [3 2 1])"},
		{"the current revision", `{"service":"web","to_revision":3}`, http.StatusConflict, "current_revision", "revision 3 is the current one"},
		{"no revision", `{"service":"web"}`, http.StatusBadRequest, "invalid", "to_revision"},
		{"no service", `{"to_revision":1}`, http.StatusBadRequest, "invalid", "service"},
		{"a field it does not know", `{"service":"web","to_revision":1,"to_version":"v1"}`, http.StatusBadRequest, "bad_json", "to_version"},
	} {
		code, body := f.do(t, "POST", "/api/v1/workloads/prod/Deployment/web/rollback", tc.body)
		if code != tc.status || body["code"] != tc.code || !strings.Contains(fmt.Sprint(body["error"]), tc.says) {
			t.Errorf("%s: %d %v, want %d %s saying %q", tc.name, code, body, tc.status, tc.code, tc.says)
		}
	}
	if code, body := f.do(t, "POST", "/api/v1/workloads/prod/Deployment/gone/rollback", `{"service":"web","to_revision":1}`); code != http.StatusNotFound {
		t.Errorf("rollback of a workload that is gone = %d %v, want 404", code, body)
	}
	if _, list := f.do(t, "GET", "/api/v1/deployments", ""); len(list["deployments"].([]any)) != 0 {
		t.Errorf("refused rollbacks were recorded: %v", list)
	}
	if got := k.asked(); len(got) != 0 {
		t.Errorf("refused rollbacks reached the cluster: %+v", got)
	}
}

func TestARollbackToARevisionIsRecordedAndRunAsOneCallForThatRevision(t *testing.T) {
	k := &historyCluster{}
	f := newFixture(t, func(c *Config) { c.K8s = k })
	code, d, e := f.post(t, "/api/v1/workloads/prod/Deployment/web/rollback", `{"service":"web","to_revision":1,"requested_by":"ops","idempotency_key":"rb-1"}`)
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %+v", code, e)
	}
	end := f.waitState(t, d.ID)
	if end["state"] != "rolled_back" || end["kind"] != "rollback" || end["version"] != "v1" || end["requested_by"] != "ops" {
		t.Errorf("record = %v", end)
	}
	nodes := end["nodes"].([]any)
	if n := nodes[0].(map[string]any); len(nodes) != 1 || n["host"] != "prod/web" || n["target_version"] != "v1" {
		t.Errorf("nodes = %v, want prod/web to v1", nodes)
	}
	got := k.asked()
	if len(got) != 1 || got[0].ToRevision != 1 || got[0].ToVersion != "" || got[0].DeploymentID != d.ID {
		t.Errorf("the cluster was asked %+v, want one rollback to revision 1 and no version", got)
	}
}
