package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// gatedExecutor deploys nothing: it reports every node on the requested version once its gate opens,
// so a test decides when a deployment ends. Real deploys are proven by the e2e suite.
type gatedExecutor struct {
	gate    chan struct{}
	started chan string
}

func (g *gatedExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	g.started <- req.DeploymentID
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service,
			CurrentVersion: req.Version, State: executor.StateSuccess}, Changed: true})
	}
	return out, nil
}

func (g *gatedExecutor) Rollback(context.Context, executor.RollbackRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

func (g *gatedExecutor) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

type fixture struct {
	srv  *Server
	http *httptest.Server
	st   *store.Store
	db   *store.Embedded
	exec *gatedExecutor
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, db.URI, "nodeexec")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	g := &gatedExecutor{gate: make(chan struct{}), started: make(chan string, 16)}
	srv := New(Config{Executor: g, Store: st, Logger: log, MaxBody: 4096})
	f := &fixture{srv: srv, http: httptest.NewServer(srv.Handler()), st: st, db: db, exec: g}
	t.Cleanup(func() {
		f.http.Close()
		srv.Shutdown()
		_ = st.Close(context.Background())
		db.Stop()
	})
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, data)
	}
	return resp.StatusCode, out
}

func deployJSON(nodes string, extra string) string {
	return `{"service":"demo","version":"v2","nodes":[` + nodes + `],"package_url":"https://pkgs.example/demo-v2.tgz",` +
		`"sha256":"` + strings.Repeat("ab", 32) + `"` + extra + `}`
}

// waitState polls the deployment until it reaches a terminal state.
func (f *fixture) waitState(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, d := f.do(t, "GET", "/api/v1/deployments/"+id, "")
		if s, _ := d["state"].(string); executor.State(s).Terminal() {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s did not finish: %v", id, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeployRunsAndRecordsEveryNode(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, body)
	}
	id := body["id"].(string)
	<-f.exec.started
	_, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", "")
	if n["state"] != "deploying" || n["deployment_id"] != id {
		t.Errorf("node while deploying = %v", n)
	}
	close(f.exec.gate)
	d := f.waitState(t, id)
	if d["state"] != "success" {
		t.Fatalf("deployment = %v", d)
	}
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		code, n := f.do(t, "GET", "/api/v1/nodes/demo/"+h, "")
		if code != 200 || n["state"] != "success" || n["current_version"] != "v2" {
			t.Errorf("node %s = %d %v", h, code, n)
		}
	}
	code, list := f.do(t, "GET", "/api/v1/nodes?service=demo", "")
	if nodes, _ := list["nodes"].([]any); code != 200 || len(nodes) != 2 {
		t.Errorf("node list = %d %v", code, list)
	}
}

func TestSecondDeployToABusyNodeGets409NamingTheHolder(t *testing.T) {
	f := newFixture(t)
	_, first := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	code, second := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.2","10.0.0.1"`, ""))
	if code != http.StatusConflict || second["deployment_id"] != first["id"] || second["code"] != "node_busy" {
		t.Fatalf("second = %d %v; want 409 naming %v", code, second, first["id"])
	}
	// All or nothing: the free node the refused request listed was not left claimed.
	if code, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.2", ""); code != http.StatusNotFound {
		t.Errorf("10.0.0.2 after the refused request = %d %v", code, n)
	}
	close(f.exec.gate)
	f.waitState(t, first["id"].(string))
}

func TestSameIdempotencyKeyReturnsTheSameDeployment(t *testing.T) {
	f := newFixture(t)
	body := deployJSON(`"10.0.0.1"`, `,"idempotency_key":"plan-7-batch-1"`)
	_, first := f.do(t, "POST", "/api/v1/deployments", body)
	<-f.exec.started
	code, retry := f.do(t, "POST", "/api/v1/deployments", body) // while it runs
	if code != http.StatusAccepted || retry["id"] != first["id"] {
		t.Fatalf("retry while running = %d %v, want %v", code, retry, first["id"])
	}
	close(f.exec.gate)
	f.waitState(t, first["id"].(string))
	code, later := f.do(t, "POST", "/api/v1/deployments", body) // after it ended
	if code != http.StatusAccepted || later["id"] != first["id"] {
		t.Fatalf("retry after the end = %d %v, want %v", code, later, first["id"])
	}
	select {
	case id := <-f.exec.started:
		t.Fatalf("a retry started a second run (%s)", id)
	default:
	}
}

func TestBadInputIs4xxAndWritesNothing(t *testing.T) {
	f := newFixture(t)
	big := `{"service":"demo","pad":"` + strings.Repeat("x", 5000) + `"}`
	cases := []struct {
		name, body string
		code       int
		field      string
	}{
		{"path traversal in service", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"demo"`, `"../etc"`, 1), 400, "service"},
		{"shell in version", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"v2"`, `"v2;reboot"`, 1), 400, "version"},
		{"template in version", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"v2"`, `"{{ lookup('pipe','id') }}"`, 1), 400, "version"},
		{"shell in host", deployJSON(`"h1$(id)"`, ""), 400, "nodes[0].host"},
		{"missing sha256", strings.Replace(deployJSON(`"10.0.0.1"`, ""), strings.Repeat("ab", 32), "", 1), 400, "sha256"},
		{"malformed sha256", strings.Replace(deployJSON(`"10.0.0.1"`, ""), strings.Repeat("ab", 32), "xyz", 1), 400, "sha256"},
		{"non-http package url", strings.Replace(deployJSON(`"10.0.0.1"`, ""), "https://pkgs.example/demo-v2.tgz", "ftp://h/p.tgz", 1), 400, "package_url"},
		{"unknown platform", deployJSON(`"10.0.0.1"`, `,"platform":"mainframe"`), 400, "platform"},
		{"empty node list", deployJSON(``, ""), 400, "nodes"},
		{"unknown field", deployJSON(`"10.0.0.1"`, `,"surprise":1`), 400, ""},
		{"bad json", `{"service":`, 400, ""},
		{"oversized body", big, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := f.do(t, "POST", "/api/v1/deployments", c.body)
			if code != c.code || body["error"] == nil || body["code"] == nil {
				t.Fatalf("= %d %v, want %d with an error body", code, body, c.code)
			}
			if c.field != "" && body["field"] != c.field {
				t.Errorf("field = %v, want %s", body["field"], c.field)
			}
		})
	}
	if code, list := f.do(t, "GET", "/api/v1/nodes?service=demo", ""); code != 200 || len(list["nodes"].([]any)) != 0 {
		t.Errorf("bad requests left node records: %v", list)
	}
	select {
	case id := <-f.exec.started:
		t.Fatalf("a bad request ran (%s)", id)
	default:
	}
}

func TestErrorsAndHealthEndpoints(t *testing.T) {
	f := newFixture(t)
	if code, b := f.do(t, "GET", "/api/v1/deployments/d-nope", ""); code != 404 || b["code"] != "not_found" {
		t.Errorf("missing deployment = %d %v", code, b)
	}
	if code, b := f.do(t, "GET", "/api/v1/nodes/demo/h9", ""); code != 404 {
		t.Errorf("missing node = %d %v", code, b)
	}
	if code, b := f.do(t, "GET", "/api/v1/nodes/..%2Fetc/h1", ""); code != 400 && code != 404 {
		t.Errorf("traversal in path = %d %v", code, b)
	}
	if code, b := f.do(t, "GET", "/nope", ""); code != 404 || b["code"] != "not_found" {
		t.Errorf("unknown route = %d %v", code, b)
	}
	if code, _ := f.do(t, "GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, _ := f.do(t, "GET", "/readyz", ""); code != 200 {
		t.Errorf("readyz = %d", code)
	}
	// The database stops: not ready, and reads answer 503 rather than hanging or 500.
	f.db.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.http.URL+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with the database down = %d", resp.StatusCode)
	}
	if code, b := f.do(t, "GET", "/api/v1/nodes/demo/h1", ""); code != http.StatusServiceUnavailable || b["code"] != "database_unavailable" {
		t.Errorf("read with the database down = %d %v", code, b)
	}
}

// testWriter sends the server's log lines to the test's log, shown only when a test fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
