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

// An idempotency key sent again with another request is 422 key_reused naming the first deployment;
// nothing is recorded or run for it. The same request with the key still gets the first deployment.
func TestAKeyReusedForAnotherRequestIs422NamingTheFirstDeployment(t *testing.T) {
	f := newFixture(t, withOps)
	close(f.exec.gate)
	key := `,"idempotency_key":"plan-11-batch-1"`
	body := deployJSON(`"10.0.0.1"`, key)
	code, first := f.do(t, "POST", "/api/v1/deployments", body)
	if code != http.StatusAccepted {
		t.Fatalf("first = %d %v", code, first)
	}
	<-f.exec.started
	id := first["id"].(string)
	f.waitState(t, id)
	for _, c := range []struct{ name, body string }{
		{"another version", strings.Replace(body, `"v2"`, `"v3"`, 1)},
		{"another service", strings.Replace(body, `"demo"`, `"billing"`, 1)},
		{"another node", deployJSON(`"10.0.0.2"`, key)},
		{"one node more", deployJSON(`"10.0.0.1","10.0.0.2"`, key)},
		{"another package", strings.Replace(body, strings.Repeat("ab", 32), strings.Repeat("cd", 32), 1)},
		{"a health check added", deployJSON(`"10.0.0.1"`, key+`,"health":{"http_port":8080}`)},
		{"another batch size", deployJSON(`"10.0.0.1"`, key+`,"batch_size":1`)},
	} {
		code, b := f.do(t, "POST", "/api/v1/deployments", c.body)
		if code != http.StatusUnprocessableEntity || b["code"] != "key_reused" || b["deployment_id"] != id ||
			!strings.Contains(b["error"].(string), id) {
			t.Errorf("%s: = %d %v, want 422 key_reused naming %s", c.name, code, b, id)
		}
	}
	// Another kind of request: a restart sent with the deploy's key.
	code, b := f.do(t, "POST", "/api/v1/restart", `{"service":"demo","nodes":["10.0.0.1"],"idempotency_key":"plan-11-batch-1"}`)
	if code != http.StatusUnprocessableEntity || b["code"] != "key_reused" || b["deployment_id"] != id {
		t.Errorf("a restart with the deploy's key = %d %v", code, b)
	}
	// Who asks is not part of the request: the same one with another requested_by is a retry.
	if code, again := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, key+`,"requested_by":"someone else"`)); code != http.StatusAccepted || again["id"] != id {
		t.Errorf("the same request = %d %v, want 202 %s", code, again, id)
	}
	if _, list := f.do(t, "GET", "/api/v1/deployments", ""); len(list["deployments"].([]any)) != 1 {
		t.Errorf("deployments = %v, want only the first", list)
	}
	select {
	case got := <-f.exec.started:
		t.Fatalf("a reused key started a run (%s)", got)
	case got := <-f.ops().restartStarted:
		t.Fatalf("a reused key started a restart (%s)", got)
	default:
	}
}

// A key reserved before fingerprints existed has none: any request with it gets its deployment, as
// before.
func TestAKeyWithoutAFingerprintKeepsTodaysAnswer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := f.st.ReserveKey(ctx, "from-last-year", "d-old", "", now); err != nil {
		t.Fatal(err)
	}
	old := &store.Deployment{ID: "d-old", Kind: store.KindDeploy, Service: "demo", Version: "v1", Platform: executor.PlatformPhysical,
		IdempotencyKey: "from-last-year", State: executor.StateSuccess, CreatedAt: now, Nodes: []store.DeploymentNode{{Host: "10.0.0.9", State: executor.StateSuccess}}}
	if _, created, err := f.st.CreateDeployment(ctx, old); err != nil || !created {
		t.Fatalf("record the old deployment: %v %v", created, err)
	}
	code, b := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, `,"idempotency_key":"from-last-year"`))
	if code != http.StatusAccepted || b["id"] != "d-old" {
		t.Errorf("a request with a key that has no fingerprint = %d %v, want 202 d-old", code, b)
	}
}
