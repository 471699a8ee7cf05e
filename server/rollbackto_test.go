package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// deployed runs a deploy of demo version to nodes through the API and returns its id once it ended.
func (f *fixture) deployed(t *testing.T, version, nodes string) string {
	t.Helper()
	code, d := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(nodes, ""), `"v2"`, `"`+version+`"`, 1))
	if code != http.StatusAccepted {
		t.Fatalf("deploy %s = %d %v", version, code, d)
	}
	if end := f.waitState(t, d["id"].(string)); end["state"] != "success" {
		t.Fatalf("deploy %s = %v", version, end)
	}
	return d["id"].(string)
}

// rolledBackNodes are a rollback's nodes as host@current version.
func rolledBackNodes(end map[string]any) []string {
	var out []string
	for _, n := range end["nodes"].([]any) {
		n := n.(map[string]any)
		out = append(out, n["host"].(string)+"@"+n["current_version"].(string))
	}
	return out
}

// v1 on two nodes, v2 on both, v3 on one: a rollback of the v3 deploy to the v1 deploy takes its node to
// v1; then one of the v2 deploy to the v1 deploy touches only the node still on v2.
func TestRollbackToATargetTakesEachNodeToWhatTheTargetLeftItOn(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	v1 := f.deployed(t, "v1", `"10.0.0.1","10.0.0.2"`)
	v2 := f.deployed(t, "v2", `"10.0.0.1","10.0.0.2"`)
	v3 := f.deployed(t, "v3", `"10.0.0.1"`)

	for _, c := range []struct {
		orig, want, calls string
	}{
		{v3, "[10.0.0.1@v1]", "10.0.0.1->v1"},
		{v2, "[10.0.0.2@v1]", "10.0.0.1->v1,10.0.0.2->v1"}, // 10.0.0.1 is on v1 already: left alone
	} {
		code, rb := f.do(t, "POST", "/api/v1/deployments/"+c.orig+"/rollback", `{"target_deployment_id":"`+v1+`"}`)
		if code != http.StatusAccepted {
			t.Fatalf("rollback of %s to %s = %d %v", c.orig, v1, code, rb)
		}
		end := f.waitState(t, rb["id"].(string))
		if end["state"] != "rolled_back" || end["kind"] != "rollback" || end["rollback_of"] != c.orig || end["target_deployment_id"] != v1 {
			t.Errorf("rollback of %s = %v", c.orig, end)
		}
		if got := strings.Join(rolledBackNodes(end), " "); "["+got+"]" != c.want {
			t.Errorf("rollback of %s: nodes %s, want %s", c.orig, got, c.want)
		}
		if got := f.exec.rollbacks(); got != c.calls {
			t.Errorf("executor rollbacks = %q, want %q", got, c.calls)
		}
	}
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, n := f.do(t, "GET", "/api/v1/nodes/demo/"+h, ""); n["current_version"] != "v1" {
			t.Errorf("node %s after the rollbacks = %v", h, n)
		}
	}
}

// Every refusal answers its status and code, names the field, and records nothing.
func TestRollbackToRefusalsRecordNothing(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	v1 := f.deployed(t, "v1", `"10.0.0.1","10.0.0.2"`)
	v2 := f.deployed(t, "v2", `"10.0.0.1","10.0.0.2"`)
	v3 := f.deployed(t, "v3", `"10.0.0.1"`)
	ctx := context.Background()
	record := func(id, service string, platform executor.Platform, kind string, state executor.State) string {
		d := &store.Deployment{ID: id, Kind: kind, Service: service, Version: "v0", Platform: platform, State: state, CreatedAt: time.Now().UTC(),
			Nodes: []store.DeploymentNode{{Host: "10.0.0.1", CurrentVersion: "v0"}, {Host: "10.0.0.2", CurrentVersion: "v0"}}}
		if _, _, err := f.st.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		return id
	}
	running := record("d-running", "demo", executor.PlatformPhysical, store.KindDeploy, executor.StateDeploying)
	billing := record("d-billing", "billing", executor.PlatformPhysical, store.KindDeploy, executor.StateSuccess)
	k8s := record("d-k8s", "demo", executor.PlatformK8s, store.KindDeploy, executor.StateSuccess)
	restart := record("d-restart", "demo", executor.PlatformPhysical, store.KindRestart, executor.StateSuccess)
	before := f.deploymentCount(t)

	cases := []struct {
		name, orig, target string
		status             int
		code, says         string
	}{
		{"no such target", v2, "d-nope", 404, "target_not_found", "deployment d-nope not found"},
		{"a target still running", v2, running, 409, "target_not_finished", "deployment d-running is still running"},
		{"a target of another service", v2, billing, 422, "target_mismatch", "is of billing on physical, not of demo on physical"},
		{"a target of another platform", v2, k8s, 422, "target_mismatch", "is of demo on k8s, not of demo on physical"},
		{"a target that sets no version", v2, restart, 422, "target_mismatch", "is a restart, which sets no version"},
		{"a target that left a node on no version", v2, v3, 409, "target_version_unknown", "left 10.0.0.2 of deployment " + v2 + " on no known version"},
		{"every node already there", v3, v3, 409, "nothing_to_roll_back", "every node of deployment " + v3 + " already runs the version deployment " + v3 + " left it on (10.0.0.1 v3)"},
		{"a target id that is not text", v2, "d-\u0007", 400, "invalid", "target_deployment_id: "},
	}
	for _, c := range cases {
		code, b := f.do(t, "POST", "/api/v1/deployments/"+c.orig+"/rollback", `{"target_deployment_id":`+quote(c.target)+`}`)
		wantField := "target_deployment_id"
		if c.code == "nothing_to_roll_back" {
			wantField = ""
		}
		if code != c.status || b["code"] != c.code || fieldOf(b) != wantField || !strings.Contains(b["error"].(string), c.says) {
			t.Errorf("%s: %d %v, want %d %s naming %q", c.name, code, b, c.status, c.code, c.says)
		}
	}
	if got := f.deploymentCount(t); got != before {
		t.Errorf("refusals recorded %d deployments", got-before)
	}
	if got := f.exec.rollbacks(); got != "" {
		t.Errorf("refusals ran rollbacks: %q", got)
	}

	// The same key with and without a target are two requests: the second is refused, not answered
	// with the first's rollback.
	code, rb := f.do(t, "POST", "/api/v1/deployments/"+v2+"/rollback", `{"target_deployment_id":"`+v1+`","idempotency_key":"k-1"}`)
	if code != http.StatusAccepted {
		t.Fatalf("rollback to %s = %d %v", v1, code, rb)
	}
	f.waitState(t, rb["id"].(string))
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+v2+"/rollback", `{"idempotency_key":"k-1"}`); code != http.StatusUnprocessableEntity || b["code"] != "key_reused" {
		t.Errorf("plain rollback with the rollback-to's key = %d %v", code, b)
	}
	// Retried after it ran, it answers with the first, though no node would differ now.
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+v2+"/rollback", `{"target_deployment_id":"`+v1+`","idempotency_key":"k-1"}`); code != http.StatusAccepted || b["id"] != rb["id"] {
		t.Errorf("the same rollback-to again = %d %v, want %v", code, b, rb["id"])
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+v3+"/rollback", `{"target_deployment_id":"`+v1+`","idempotency_key":"k-1"}`); code != http.StatusUnprocessableEntity || b["code"] != "key_reused" || b["deployment_id"] != rb["id"] {
		t.Errorf("a rollback-to of another deployment with the key = %d %v", code, b)
	}
}

func fieldOf(b map[string]any) string {
	s, _ := b["field"].(string)
	return s
}

// deploymentCount is how many deployments the store holds.
func (f *fixture) deploymentCount(t *testing.T) int {
	t.Helper()
	page, _, err := f.st.ListDeployments(context.Background(), store.DeploymentFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page)
}
