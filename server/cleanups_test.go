package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/cleanup"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
	"github.com/nodeexec/nodeexec/store"
)

// heldCleaner stands in for Ansible's cleanup: it reports the hosts it got, then waits for hold to be
// closed; each node keeps v2 and v3 and removes v1.
type heldCleaner struct {
	hold    chan struct{}
	running chan []string
}

func (h *heldCleaner) Cleanup(ctx context.Context, req ansible.CleanupRequest) ([]ansible.CleanupResult, error) {
	var hosts []string
	for _, n := range req.Nodes {
		hosts = append(hosts, n.Host)
	}
	h.running <- hosts
	select {
	case <-h.hold:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var out []ansible.CleanupResult
	for _, n := range req.Nodes {
		out = append(out, ansible.CleanupResult{NodeResult: executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service}},
			Kept: []string{"v2", "v3"}, Removed: []string{"v1"}})
	}
	return out, nil
}

// cleanupFixture is the API with a cleanup runner over its database, and tokens of both scopes.
func cleanupFixture(t *testing.T) (*fixture, *heldCleaner, func(method, path, token string, body ...string) (int, map[string]any)) {
	t.Helper()
	cl := &heldCleaner{hold: make(chan struct{}), running: make(chan []string, 4)}
	var runner *cleanup.Runner
	f := newFixture(t, func(c *Config) {
		c.Tokens = []Token{{Name: "viewer", Token: "read-token-0123456789", Scopes: []Scope{ScopeRead}},
			{Name: "plan", Token: "deploy-token-0123456789", Scopes: []Scope{ScopeDeploy}}}
		runner = cleanup.New(cleanup.Config{Store: c.Store, Cleaner: cl, Keep: 3, Logger: c.Logger, Holder: "replica-a"})
		c.Cleanups = runner
	})
	t.Cleanup(runner.Stop) // before the fixture's database stops
	call := func(method, path, token string, body ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, f.http.URL+path, strings.NewReader(strings.Join(body, "")))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: %q is not JSON", method, path, data)
		}
		return resp.StatusCode, out
	}
	return f, cl, call
}

// POST /api/v1/cleanups runs a pass now and answers with it; the pass holds its nodes from deploys
// (409 naming it) and skips a node a deployment holds (naming it); a second pass is refused while it
// runs; GET reads it, to its end.
func TestCleanupPassThroughTheAPI(t *testing.T) {
	f, cl, call := cleanupFixture(t)
	ctx := context.Background()
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, err := f.st.Claim(ctx, "demo", h, executor.PlatformPhysical, "d-old", "v3"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Finish(ctx, "d-old", executor.NodeStatus{Service: "demo", Host: h, State: executor.StateSuccess, CurrentVersion: "v3", PrevVersion: "v2"}); err != nil {
			t.Fatal(err)
		}
	}
	// A deployment is running on 10.0.0.3.
	if _, err := f.st.Claim(ctx, "demo", "10.0.0.3", executor.PlatformPhysical, "d-running", "v4"); err != nil {
		t.Fatal(err)
	}

	if code, b := call("POST", "/api/v1/cleanups", "read-token-0123456789"); code != http.StatusForbidden {
		t.Errorf("a read token starts a pass: %d %v", code, b)
	}
	code, pass := call("POST", "/api/v1/cleanups", "deploy-token-0123456789")
	if code != http.StatusAccepted || pass["state"] != "running" || pass["trigger"] != "api" || pass["token"] != "plan" || pass["runner"] != "replica-a" {
		t.Fatalf("POST /api/v1/cleanups = %d %v", code, pass)
	}
	id := pass["id"].(string)
	if got := <-cl.running; fmt.Sprint(got) != "[10.0.0.1 10.0.0.2]" {
		t.Errorf("the cleanup runs on %v, want the two free nodes", got)
	}
	// While it cleans: a deploy to its nodes is refused, naming the pass; so is a second pass.
	code, busy := call("POST", "/api/v1/deployments", "deploy-token-0123456789", deployJSON(`"10.0.0.1"`, ""))
	if code != http.StatusConflict || busy["code"] != "node_busy" || busy["deployment_id"] != id || !strings.Contains(busy["error"].(string), "cleanup pass "+id) {
		t.Errorf("a deploy to a node being cleaned = %d %v", code, busy)
	}
	code, again := call("POST", "/api/v1/cleanups", "deploy-token-0123456789")
	if code != http.StatusConflict || again["code"] != "cleanup_running" || !strings.Contains(again["error"].(string), id) {
		t.Errorf("a second pass = %d %v", code, again)
	}
	if code, now := call("GET", "/api/v1/cleanups/"+id, "read-token-0123456789"); code != 200 || now["state"] != "running" {
		t.Errorf("GET while it runs = %d %v", code, now)
	}
	close(cl.hold)
	f.srv.cfg.Cleanups.(*cleanup.Runner).Wait()

	code, done := call("GET", "/api/v1/cleanups/"+id, "read-token-0123456789")
	if code != 200 || done["state"] != "success" || done["finished_at"] == nil {
		t.Fatalf("GET after the pass = %d %v", code, done)
	}
	nodes := map[string]map[string]any{}
	for _, raw := range done["nodes"].([]any) {
		n := raw.(map[string]any)
		nodes[n["host"].(string)] = n
	}
	if n := nodes["10.0.0.1"]; n["state"] != "cleaned" || fmt.Sprint(n["removed"]) != "[v1]" || fmt.Sprint(n["kept"]) != "[v2 v3]" || n["keep"] != 3.0 {
		t.Errorf("10.0.0.1 in the pass = %v", n)
	}
	if n := nodes["10.0.0.3"]; n["state"] != "skipped" || !strings.Contains(fmt.Sprint(n["error"]), "held by deployment d-running") {
		t.Errorf("10.0.0.3 in the pass = %v", n)
	}
	if _, ok := done["nodes"].([]any)[0].(map[string]any)["prior"]; ok {
		t.Error("the pass shows the nodes' prior records")
	}
	// The nodes are free again.
	if n, err := f.st.Node(ctx, "demo", "10.0.0.1"); err != nil || n.State != executor.StateSuccess || n.DeploymentID != "d-old" {
		t.Errorf("10.0.0.1 after the pass = %+v %v", n, err)
	}
}

func TestCleanupsListNewestFirstInPages(t *testing.T) {
	f, _, call := cleanupFixture(t)
	t0 := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	for i := range 3 {
		if err := f.st.CreateCleanup(context.Background(), &store.Cleanup{ID: fmt.Sprintf("c-%d", i), State: store.CleanupSuccess,
			Trigger: store.TriggerSchedule, StartedAt: t0.Add(time.Duration(i) * time.Hour), Nodes: []store.CleanupNode{}}); err != nil {
			t.Fatal(err)
		}
	}
	code, page1 := call("GET", "/api/v1/cleanups?limit=2", "read-token-0123456789")
	list, _ := page1["cleanups"].([]any)
	if code != 200 || len(list) != 2 || list[0].(map[string]any)["id"] != "c-2" || list[1].(map[string]any)["id"] != "c-1" || page1["next_cursor"] == "" {
		t.Fatalf("page 1 = %d %v", code, page1)
	}
	code, page2 := call("GET", "/api/v1/cleanups?limit=2&cursor="+page1["next_cursor"].(string), "read-token-0123456789")
	list, _ = page2["cleanups"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != "c-0" || page2["next_cursor"] != "" {
		t.Errorf("page 2 = %d %v", code, page2)
	}
	for q, field := range map[string]string{"limit=0": "limit", "limit=201": "limit", "cursor=zzz": "cursor"} {
		if code, b := call("GET", "/api/v1/cleanups?"+q, "read-token-0123456789"); code != 400 || b["field"] != field {
			t.Errorf("%s = %d %v", q, code, b)
		}
	}
	if code, b := call("GET", "/api/v1/cleanups/c-nope", "read-token-0123456789"); code != 404 {
		t.Errorf("an unknown pass = %d %v", code, b)
	}
}

func TestCleanupsNeedARunner(t *testing.T) {
	f := newFixture(t)
	if code, b := f.do(t, "POST", "/api/v1/cleanups", ""); code != http.StatusNotFound || !strings.Contains(fmt.Sprint(b["error"]), "no cleanup passes") {
		t.Errorf("POST without a runner = %d %v", code, b)
	}
	if code, b := f.do(t, "GET", "/api/v1/cleanups", ""); code != 200 || len(b["cleanups"].([]any)) != 0 {
		t.Errorf("GET without passes = %d %v", code, b)
	}
}
