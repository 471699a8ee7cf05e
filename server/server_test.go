package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// gatedExecutor deploys nothing: it reports every node on the requested version once its gate opens,
// so a test decides when a deployment ends. Real deploys are proven by the e2e suite.
type gatedExecutor struct {
	gate    chan struct{}
	started chan string

	// failing hosts end failed; with panics, Deploy panics once it may go on.
	failing map[string]bool
	panics  bool
	// unreachable hosts fail as unreachable (transient) this many more times, then succeed.
	unreachable map[string]int
	// rollbackGate, when set, holds every rollback until it opens, as gate holds deploys.
	rollbackGate chan struct{}

	mu       sync.Mutex
	done     []string // rollbacks, "host->version"
	batches  []int    // the node count of each Deploy call
	requests []executor.DeployRequest
}

// deployed is the request of each Deploy call so far.
func (g *gatedExecutor) deployed() []executor.DeployRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]executor.DeployRequest(nil), g.requests...)
}

func (g *gatedExecutor) calls() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := fmt.Sprint(g.batches)
	g.batches = nil
	return out
}

func (g *gatedExecutor) rollbacks() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.done, ",")
}

func (g *gatedExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	g.started <- req.DeploymentID
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if g.panics {
		panic("executor bug")
	}
	g.mu.Lock()
	g.batches = append(g.batches, len(req.Nodes))
	g.requests = append(g.requests, req)
	g.mu.Unlock()
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		st := executor.NodeStatus{Host: n.Host, Service: req.Service, CurrentVersion: req.Version, State: executor.StateSuccess}
		if g.failing[n.Host] {
			st.State, st.CurrentVersion, st.LastError = executor.StateFailed, "", "Download the package: 404"
		}
		g.mu.Lock()
		down := g.unreachable[n.Host] > 0
		if down {
			g.unreachable[n.Host]--
		}
		g.mu.Unlock()
		if down {
			st.State, st.CurrentVersion, st.LastError = executor.StateFailed, "", "host unreachable: Take the node lock: no route to host\r\n" // as ssh ends it
		}
		out = append(out, executor.NodeResult{NodeStatus: st, Changed: !g.failing[n.Host] && !down, Transient: down})
	}
	return out, nil
}

func (g *gatedExecutor) Rollback(ctx context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	if g.rollbackGate != nil {
		g.started <- req.DeploymentID
		select {
		case <-g.rollbackGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		g.mu.Lock()
		g.done = append(g.done, n.Host+"->"+req.ToVersion)
		g.mu.Unlock()
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service,
			CurrentVersion: req.ToVersion, State: executor.StateRolledBack}, Changed: true})
	}
	return out, ctx.Err()
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
	// dataDir is the embedded database's, to start it again after a test stopped it.
	dataDir string
}

func newFixture(t *testing.T, opts ...func(*Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	db, err := store.StartEmbedded(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	// A short server selection keeps the database-down tests quick.
	st, err := store.Open(ctx, db.URI+"?serverSelectionTimeoutMS=1500", "nodeexec")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	g := &gatedExecutor{gate: make(chan struct{}), started: make(chan string, 16)}
	cfg := Config{Executor: g, Store: st, Logger: log, MaxBody: 4096}
	for _, o := range opts {
		o(&cfg)
	}
	srv := New(cfg)
	f := &fixture{srv: srv, http: httptest.NewServer(srv.Handler()), st: st, db: db, exec: g, dataDir: dataDir}
	t.Cleanup(func() {
		f.http.Close()
		srv.Shutdown()
		_ = st.Close(context.Background())
		f.db.Stop()
	})
	return f
}

// withEngine tunes the engine the fixture's server builds: its hooks and waits.
func withEngine(tune func(*engine.Config)) func(*Config) {
	return func(c *Config) { c.TuneEngine = tune }
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

// waitState follows the deployment's event stream to its end and returns the final deployment.
func (f *fixture) waitState(t *testing.T, id string) map[string]any {
	t.Helper()
	_, end := f.follow(t, id, nil)
	return end
}

type sseEvent struct {
	id, event string
	data      map[string]any
}

// follow reads the deployment's server-sent events until "end"; onEvent (if set) sees each one as it
// arrives. It returns the events and the end event's deployment.
func (f *fixture) follow(t *testing.T, id string, onEvent func(sseEvent)) ([]sseEvent, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.http.URL+"/api/v1/deployments/"+id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event == "end" {
				return evs, cur.data
			}
			if cur.event != "" {
				evs = append(evs, cur)
				if onEvent != nil {
					onEvent(cur)
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
				t.Fatalf("event data is not JSON: %q", line)
			}
		}
	}
	t.Fatalf("event stream of %s ended without an end event (%v); got %d events", id, sc.Err(), len(evs))
	return nil, nil
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

// While a deployment holds a node, the node's record names the version being put there (a rollback's:
// the one it goes back to), and only until the node's run ends.
func TestANodeShowsTheVersionBeingDeployedUntilItsRunEnds(t *testing.T) {
	f := newFixture(t)
	f.exec.rollbackGate = make(chan struct{})
	deploying := func(when, want string) {
		t.Helper()
		if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["deploying_version"] != want && (want != "" || n["deploying_version"] != nil) {
			t.Errorf("%s: deploying_version = %v, want %q (node %v)", when, n["deploying_version"], want, n)
		}
	}
	_, d1 := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"v2"`, `"v1"`, 1))
	<-f.exec.started
	deploying("deploying v1", "v1")
	close(f.exec.gate)
	f.waitState(t, d1["id"].(string))
	deploying("after v1", "")
	_, d2 := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, "")) // the gate is open: no look mid-run
	<-f.exec.started
	f.waitState(t, d2["id"].(string))
	deploying("after v2", "")
	code, rb := f.do(t, "POST", "/api/v1/deployments/"+d2["id"].(string)+"/rollback", "")
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %v", code, rb)
	}
	<-f.exec.started
	deploying("rolling back", "v1")
	close(f.exec.rollbackGate)
	if end := f.waitState(t, rb["id"].(string)); end["state"] != "rolled_back" {
		t.Fatalf("rollback = %v", end)
	}
	deploying("after the rollback", "")
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

// A retry sent while the first request is between its claims and its record gets the first one's
// deployment, not a 409 and not a second run.
func TestConcurrentRetryOfTheSameKeyGetsTheSameDeployment(t *testing.T) {
	inClaim, proceed, waiting := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	f := newFixture(t, withEngine(func(e *engine.Config) {
		e.Hooks.AfterClaim = func() { once.Do(func() { close(inClaim); <-proceed }) }
		e.Hooks.KeyWaiting = func() { close(waiting) }
	}))
	close(f.exec.gate)
	body := deployJSON(`"10.0.0.1"`, `,"idempotency_key":"plan-9-batch-1"`)
	type answer struct {
		code int
		body map[string]any
	}
	first, second := make(chan answer, 1), make(chan answer, 1)
	go func() { c, b := f.do(t, "POST", "/api/v1/deployments", body); first <- answer{c, b} }()
	<-inClaim // the first holds the node and the key, and has not recorded its deployment
	go func() { c, b := f.do(t, "POST", "/api/v1/deployments", body); second <- answer{c, b} }()
	<-waiting // the retry waits for that record
	close(proceed)
	a, b := <-first, <-second
	if a.code != http.StatusAccepted || b.code != http.StatusAccepted || a.body["id"] != b.body["id"] {
		t.Fatalf("first = %d %v, retry = %d %v; want 202 and the same id", a.code, a.body, b.code, b.body)
	}
	f.waitState(t, a.body["id"].(string))
	if _, list := f.do(t, "GET", "/api/v1/deployments", ""); len(list["deployments"].([]any)) != 1 {
		t.Errorf("deployments = %v, want exactly one", list)
	}
}

// A key whose request recorded nothing (nodeexec and its database failed in between) is held for a
// while, answered 409 key_in_flight naming its holder, then taken over by the next retry.
func TestAnOrphanedKeyIsTakenOverByALaterRetry(t *testing.T) {
	f := newFixture(t, withEngine(func(e *engine.Config) { e.KeyWait = 100 * time.Millisecond }))
	close(f.exec.gate)
	ctx := context.Background()
	if _, err := f.st.ReserveKey(ctx, "young", "d-lost-young", "", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	code, b := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, `,"idempotency_key":"young"`))
	if code != http.StatusConflict || b["code"] != "key_in_flight" || b["deployment_id"] != "d-lost-young" {
		t.Errorf("retry of a key still held = %d %v", code, b)
	}
	if _, err := f.st.ReserveKey(ctx, "old", "d-lost-old", "", time.Now().UTC().Add(-2*engine.DefaultKeyOrphanAfter)); err != nil {
		t.Fatal(err)
	}
	code, b = f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, `,"idempotency_key":"old"`))
	if code != http.StatusAccepted || b["id"] == "d-lost-old" {
		t.Fatalf("retry of an orphaned key = %d %v", code, b)
	}
	if end := f.waitState(t, b["id"].(string)); end["state"] != "success" {
		t.Errorf("deployment of the taken-over key = %v", end)
	}
	if code, again := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, `,"idempotency_key":"old"`)); code != http.StatusAccepted || again["id"] != b["id"] {
		t.Errorf("the next retry = %d %v, want %v", code, again, b["id"])
	}
}

// A request refused because its node is busy gives its key back: the same key works once the node is free.
func TestARefusedRequestGivesItsKeyBack(t *testing.T) {
	f := newFixture(t)
	_, holder := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	code, b := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, `,"idempotency_key":"after-busy"`))
	if code != http.StatusConflict || b["code"] != "node_busy" {
		t.Fatalf("deploy to a busy node = %d %v", code, b)
	}
	close(f.exec.gate)
	f.waitState(t, holder["id"].(string))
	code, b = f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, `,"idempotency_key":"after-busy"`))
	if code != http.StatusAccepted || b["id"] == holder["id"] {
		t.Fatalf("the same key once the node is free = %d %v", code, b)
	}
	f.waitState(t, b["id"].(string))
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
		{"path traversal in host", deployJSON(`"../../etc"`, ""), 400, "nodes[0].host"},
		{"path traversal in version", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"v2"`, `"1/../../x"`, 1), 400, "version"},
		{"shell in service", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"demo"`, `"demo;id"`, 1), 400, "service"},
		{"k8s on a server without a cluster", deployJSON(``, `,"platform":"k8s"`), 400, "platform"},
		{"missing sha256", strings.Replace(deployJSON(`"10.0.0.1"`, ""), strings.Repeat("ab", 32), "", 1), 400, "sha256"},
		{"malformed sha256", strings.Replace(deployJSON(`"10.0.0.1"`, ""), strings.Repeat("ab", 32), "xyz", 1), 400, "sha256"},
		{"non-http package url", strings.Replace(deployJSON(`"10.0.0.1"`, ""), "https://pkgs.example/demo-v2.tgz", "ftp://h/p.tgz", 1), 400, "package_url"},
		{"unknown platform", deployJSON(`"10.0.0.1"`, `,"platform":"mainframe"`), 400, "platform"},
		{"empty node list", deployJSON(``, ""), 400, "nodes"},
		{"health polled faster than 50 ms", deployJSON(`"10.0.0.1"`, `,"health":{"http_port":8080,"interval_ms":10}`), 400, "health.interval_ms"},
		{"health held steady past an hour", deployJSON(`"10.0.0.1"`, `,"health":{"http_port":8080,"stable_seconds":99999}`), 400, "health.stable_seconds"},
		{"unknown field", deployJSON(`"10.0.0.1"`, `,"surprise":1`), 400, ""},
		{"bad json", `{"service":`, 400, ""},
		{"oversized body", big, 413, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each carries an idempotency key, which must not be kept either.
			req := c.body
			if c.code == 400 && c.name != "bad json" {
				req = strings.TrimSuffix(req, "}") + fmt.Sprintf(`,"idempotency_key":"bad-%d"}`, i)
			}
			code, body := f.do(t, "POST", "/api/v1/deployments", req)
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
	if code, list := f.do(t, "GET", "/api/v1/deployments", ""); code != 200 || len(list["deployments"].([]any)) != 0 {
		t.Errorf("bad requests left deployments: %v", list)
	}
	for i := range cases {
		if _, err := f.st.KeyReservedAt(context.Background(), fmt.Sprintf("bad-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("bad request %d kept its idempotency key: %v", i, err)
		}
	}
	select {
	case id := <-f.exec.started:
		t.Fatalf("a bad request ran (%s)", id)
	default:
	}
}

// Every 404 says what was not there: the record and its id, or the route.
func TestNotFoundSaysWhatWasNotFound(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/api/v1/deployments/d-nope", "deployment d-nope not found"},
		{"GET", "/api/v1/deployments/d-nope/events", "deployment d-nope not found"},
		{"POST", "/api/v1/deployments/d-nope/rollback", "deployment d-nope not found"},
		{"POST", "/api/v1/deployments/d-nope/cancel", "deployment d-nope not found"},
		{"GET", "/internal/v1/deploy/info/d-nope", "deployment d-nope not found"},
		{"GET", "/internal/v1/deploy/health/d-nope", "deployment d-nope not found"},
		{"GET", "/internal/v1/deploy/logs/d-nope", "deployment d-nope not found"},
		{"GET", "/api/v1/nodes/demo/h9", "node h9 of service demo not found"},
		{"GET", "/api/v1/cleanups/c-nope", "cleanup pass c-nope not found"},
		{"GET", "/nope", "no such route: GET /nope"},
	} {
		code, b := f.do(t, c.method, c.path, "")
		if code != 404 || b["code"] != "not_found" || b["error"] != c.want {
			t.Errorf("%s %s = %d %v, want 404 %q", c.method, c.path, code, b, c.want)
		}
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

// The event stream is live: it shows nodes deploying while the run is held, then each node's end and
// the deployment's, and closes with the final deployment.
func TestEventsStreamLiveUntilTheDeploymentEnds(t *testing.T) {
	f := newFixture(t)
	_, created := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	id := created["id"].(string)
	<-f.exec.started
	deploying := 0
	evs, end := f.follow(t, id, func(ev sseEvent) {
		if ev.event == "node" && ev.data["state"] == "deploying" {
			if deploying++; deploying == 2 {
				close(f.exec.gate) // both nodes seen deploying, live: now let the run end
			}
		}
	})
	if end["state"] != "success" || end["id"] != id {
		t.Fatalf("end = %v", end)
	}
	var trail []string
	for i, ev := range evs {
		if ev.id != fmt.Sprint(i+1) {
			t.Errorf("event %d has id %s", i, ev.id)
		}
		trail = append(trail, ev.event+":"+fmt.Sprint(ev.data["node"], "/", ev.data["state"]))
	}
	want := "deployment:<nil>/pending deployment:<nil>/deploying node:10.0.0.1/deploying node:10.0.0.2/deploying " +
		"node:10.0.0.1/success node:10.0.0.2/success deployment:<nil>/success"
	if got := strings.Join(trail, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	// Resuming after event 5 replays only what came later.
	req, _ := http.NewRequest("GET", f.http.URL+"/api/v1/deployments/"+id+"/events?after=5", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(data), "id: 5\n") || !strings.Contains(string(data), "id: 6\n") || !strings.Contains(string(data), "event: end") {
		t.Errorf("resumed stream:\n%s", data)
	}
	// A client reconnecting as SSE does names the last event it saw in Last-Event-ID: the same.
	req, _ = http.NewRequest("GET", f.http.URL+"/api/v1/deployments/"+id+"/events", nil)
	req.Header.Set("Last-Event-ID", "6")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(data), "id: 6\n") || !strings.Contains(string(data), "id: 7\n") || !strings.Contains(string(data), "event: end") {
		t.Errorf("stream resumed with Last-Event-ID: 6:\n%s", data)
	}
	req.Header.Set("Last-Event-ID", "six")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Last-Event-ID: six = %d, want 400", resp.StatusCode)
	}
}

// A rollback touches only the nodes the deployment changed, each back to what it ran before.
func TestRollbackReturnsChangedNodesToTheirEarlierVersion(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	_, d1 := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(`"10.0.0.1","10.0.0.2"`, ""), `"v2"`, `"v1"`, 1))
	f.waitState(t, d1["id"].(string))
	_, d1b := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.2"`, "")) // 10.0.0.2 is on v2 already
	f.waitState(t, d1b["id"].(string))
	_, d2 := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3"`, ""))
	id := d2["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" {
		t.Fatalf("d2 = %v", end)
	}
	code, rb := f.do(t, "POST", "/api/v1/deployments/"+id+"/rollback", "")
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %v", code, rb)
	}
	end := f.waitState(t, rb["id"].(string))
	if end["state"] != "rolled_back" || end["kind"] != "rollback" || end["rollback_of"] != id {
		t.Fatalf("rollback deployment = %v", end)
	}
	// Only 10.0.0.1 was switched from v1: 10.0.0.2 was not changed, 10.0.0.3 had nothing before.
	nodes := end["nodes"].([]any)
	if len(nodes) != 1 || nodes[0].(map[string]any)["host"] != "10.0.0.1" || nodes[0].(map[string]any)["current_version"] != "v1" {
		t.Errorf("rolled back nodes = %v", nodes)
	}
	if got := f.exec.rollbacks(); got != "10.0.0.1->v1" {
		t.Errorf("executor rollbacks = %q", got)
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["state"] != "rolled_back" || n["current_version"] != "v1" {
		t.Errorf("node after rollback = %v", n)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+d1["id"].(string)+"/rollback", ""); code != http.StatusConflict || b["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of a first install = %d %v", code, b)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/d-nope/rollback", ""); code != http.StatusNotFound {
		t.Errorf("rollback of nothing = %d %v", code, b)
	}
}

func TestRollbackOfARunningDeploymentIs409(t *testing.T) {
	f := newFixture(t)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+d["id"].(string)+"/rollback", ""); code != http.StatusConflict || b["code"] != "not_finished" {
		t.Errorf("rollback while running = %d %v", code, b)
	}
	close(f.exec.gate)
	f.waitState(t, d["id"].(string))
}

// Cancel stops a running deployment (the executor sees its context end) and one still waiting for a
// slot, which never touches its nodes.
func TestCancelStopsRunningAndWaitingDeployments(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConcurrent = 1 })
	_, running := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	_, waiting := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.2"`, ""))
	for _, id := range []string{waiting["id"].(string), running["id"].(string)} {
		if code, b := f.do(t, "POST", "/api/v1/deployments/"+id+"/cancel", ""); code != http.StatusAccepted {
			t.Fatalf("cancel %s = %d %v", id, code, b)
		}
		end := f.waitState(t, id)
		if end["state"] != "failed" || !strings.Contains(end["error"].(string), "cancelled on request") {
			t.Errorf("cancelled deployment = %v", end)
		}
	}
	// The waiting one never ran: its node record, created by the claim, is gone again.
	if code, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.2", ""); code != http.StatusNotFound {
		t.Errorf("node of the cancelled waiting deployment = %d %v", code, n)
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["state"] != "failed" {
		t.Errorf("node of the cancelled running deployment = %v", n)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+running["id"].(string)+"/cancel", ""); code != http.StatusConflict || b["code"] != "finished" {
		t.Errorf("cancel after the end = %d %v", code, b)
	}
}

func TestListDeploymentsFiltersAndPages(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	var ids []string
	for _, h := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"`+h+`"`, ""))
		ids = append(ids, d["id"].(string))
		f.waitState(t, d["id"].(string))
	}
	code, page := f.do(t, "GET", "/api/v1/deployments?service=demo&limit=2", "")
	list := page["deployments"].([]any)
	if code != 200 || len(list) != 2 || list[0].(map[string]any)["id"] != ids[2] || page["next_cursor"] == "" {
		t.Fatalf("page 1 = %d %v", code, page)
	}
	_, page2 := f.do(t, "GET", "/api/v1/deployments?service=demo&limit=2&cursor="+page["next_cursor"].(string), "")
	if list := page2["deployments"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != ids[0] || page2["next_cursor"] != "" {
		t.Errorf("page 2 = %v", page2)
	}
	// ?node= picks the deployments that had the node, newest first.
	if _, byNode := f.do(t, "GET", "/api/v1/deployments?service=demo&node=10.0.0.2", ""); len(byNode["deployments"].([]any)) != 1 ||
		byNode["deployments"].([]any)[0].(map[string]any)["id"] != ids[1] {
		t.Errorf("?node=10.0.0.2 = %v", byNode)
	}
	if _, none := f.do(t, "GET", "/api/v1/deployments?node=10.9.9.9", ""); len(none["deployments"].([]any)) != 0 {
		t.Errorf("?node of no deployment = %v", none)
	}
	for q, field := range map[string]string{"limit=0": "limit", "limit=x": "limit", "state=bogus": "state", "cursor=zzz": "cursor", "service=../x": "service",
		"node=a%20b": "node"} {
		if code, b := f.do(t, "GET", "/api/v1/deployments?"+q, ""); code != 400 || b["field"] != field {
			t.Errorf("%s = %d %v", q, code, b)
		}
	}
}

func TestTokensNeedTheirScope(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Tokens = []Token{{Name: "viewer", Token: "read-token-0123456789", Scopes: []Scope{ScopeRead}},
			{Name: "plan", Token: "deploy-token-0123456789", Scopes: []Scope{ScopeDeploy}}}
	})
	call := func(method, path, token, body string) int {
		req, _ := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := deployJSON(`"10.0.0.1"`, "")
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/deployments", "", 401},
		{"GET", "/api/v1/deployments", "wrong-token-0123456789", 401},
		{"GET", "/api/v1/deployments", "read-token-0123456789", 200},
		{"POST", "/api/v1/deployments", "read-token-0123456789", 403},
		{"GET", "/api/v1/nodes?service=demo", "deploy-token-0123456789", 200},
		{"GET", "/healthz", "", 200},
		{"POST", "/api/v1/deployments", "deploy-token-0123456789", 202},
	} {
		if got := call(c.method, c.path, c.token, body); got != c.want {
			t.Errorf("%s %s with %q = %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
	close(f.exec.gate)
	// The deployment records which token asked.
	list, _, err := f.st.ListDeployments(context.Background(), store.DeploymentFilter{Limit: 10})
	if err != nil || len(list) != 1 || list[0].Token != "plan" {
		t.Errorf("the deployment's token = %+v %v, want plan", list, err)
	}
}

// The management endpoints: info summarises in the specification's words, health checks the record
// and probes the node's health URL now, logs serves the deployment's events line by line (this
// executor cannot read the service's journal, and says so).
func TestManagementInfoHealthLogs(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	port := probe.Listener.Addr().(*net.TCPAddr).Port
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"127.0.0.1"`, fmt.Sprintf(`,"health":{"http_port":%d,"http_path":"/health"}`, port)))
	id := d["id"].(string)
	end := f.waitState(t, id)

	code, info := f.do(t, "GET", "/internal/v1/deploy/info/"+id, "")
	summary, _ := info["summary"].(map[string]any)
	pods, _ := info["details"].(map[string]any)["pods"].([]any)
	if code != 200 || info["status"] != "succeeded" || info["state"] != "success" || summary["success"] != 1.0 || summary["total"] != 1.0 ||
		info["duration_seconds"] == nil || info["replicas"] != 1.0 || info["ready_replicas"] != 1.0 || info["updated_at"] != end["finished_at"] || len(pods) != 1 {
		t.Errorf("info = %d %v", code, info)
	}
	// This executor reads no unit: the node is as the deployment's record has it, and says so.
	if pod, _ := pods[0].(map[string]any); pod["name"] != "127.0.0.1" || pod["phase"] != "Running" || pod["ready"] != true || pod["phase_source"] != "record" {
		t.Errorf("the node as a pod = %v", pod)
	}
	code, health := f.do(t, "GET", "/internal/v1/deploy/health/"+id, "")
	checks := map[string]any{}
	for _, raw := range health["checks"].([]any) {
		ch := raw.(map[string]any)
		checks[ch["name"].(string)] = ch["status"]
	}
	if code != 200 || health["healthy"] != true || len(health["details"].([]any)) != 2 || checks["pod_status"] != "healthy" ||
		checks["http_endpoint"] != "healthy" || checks["process"] != "unknown" || checks["resource_usage"] != "unknown" ||
		!strings.HasPrefix(health["message"].(string), "All replicas are healthy; not checked: ") {
		t.Errorf("health while serving = %d %v", code, health)
	}
	probe.Close()
	if _, health := f.do(t, "GET", "/internal/v1/deploy/health/"+id, ""); health["healthy"] != false || !strings.Contains(health["message"].(string), "0/1 nodes answer HTTP 200: 127.0.0.1: GET ") {
		t.Errorf("health with the node's service down = %v", health)
	}

	code, logs := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?lines=1&pod_name=127.0.0.1&source=events", "")
	entries, _ := logs["logs"].([]any)
	if code != 200 || len(entries) != 1 || logs["source"] != "events" {
		t.Fatalf("logs = %d %v", code, logs)
	}
	if e := entries[0].(map[string]any); e["pod_name"] != "127.0.0.1" || e["container"] != "nodeexec" || e["message"] != "node success runs v2" || e["timestamp"] == "" {
		t.Errorf("newest line = %v", e)
	}
	if code, logs := f.do(t, "GET", "/internal/v1/deploy/logs/"+id, ""); code != 200 || logs["source"] != "service" || len(logs["logs"].([]any)) != 0 ||
		!strings.Contains(logs["error"].(string), "cannot read the service's journal") {
		t.Errorf("the service's log from an executor that cannot read it = %d %v", code, logs)
	}
	for _, bad := range []struct{ query, field string }{{"lines=0", "lines"}, {"lines=10001", "lines"}, {"lines=ten", "lines"}, {"source=syslog", "source"}} {
		if code, b := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?"+bad.query, ""); code != 400 || b["field"] != bad.field || b["code"] != "invalid" {
			t.Errorf("%s = %d %v", bad.query, code, b)
		}
	}
	if code, b := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?pod_name=10.9.9.9", ""); code != 404 || b["field"] != "pod_name" || !strings.Contains(b["error"].(string), "its nodes: 127.0.0.1") {
		t.Errorf("unknown pod_name = %d %v", code, b)
	}
	if code, _ := f.do(t, "GET", "/internal/v1/deploy/info/d-nope", ""); code != 404 {
		t.Errorf("info of nothing = %d", code)
	}
}

// The database stops between the claim of the nodes and the record of the deployment: the request
// answers 503, and once the database is back the claims are given back, so nothing half-written stays:
// no node record, no deployment, and the next request for the node runs.
func TestDatabaseFailingMidRequestLeavesNothingHalfWritten(t *testing.T) {
	released, forgotten := make(chan string, 1), make(chan string, 1)
	var f *fixture
	var stopOnce sync.Once // the first request's claim only
	f = newFixture(t, withEngine(func(e *engine.Config) {
		e.Hooks.AfterClaim = func() { stopOnce.Do(f.db.Stop) }
		e.Hooks.Released = func(id string) { released <- id }
		e.Hooks.KeyForgotten = func(key string) { forgotten <- key }
	}))
	close(f.exec.gate)
	addr := strings.TrimSuffix(strings.TrimPrefix(f.db.URI, "mongodb://"), "/")
	withKey := deployJSON(`"10.0.0.1","10.0.0.2"`, `,"idempotency_key":"plan-3-batch-2"`)

	code, body := f.do(t, "POST", "/api/v1/deployments", withKey)
	if code != http.StatusServiceUnavailable || body["code"] != "database_unavailable" {
		t.Fatalf("POST with the database failing = %d %v, want 503", code, body)
	}
	db, err := store.StartEmbeddedAt(context.Background(), f.dataDir, addr)
	if err != nil {
		t.Fatal(err)
	}
	f.db = db
	for _, c := range []chan string{released, forgotten} {
		select {
		case <-c:
		case <-time.After(60 * time.Second):
			t.Fatal("the claims and the key of the failed request were not given back after the database returned")
		}
	}
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		if code, n := f.do(t, "GET", "/api/v1/nodes/demo/"+h, ""); code != http.StatusNotFound {
			t.Errorf("node %s after the failed request = %d %v", h, code, n)
		}
	}
	if _, list := f.do(t, "GET", "/api/v1/deployments", ""); len(list["deployments"].([]any)) != 0 {
		t.Errorf("deployments after the failed request = %v", list)
	}
	code, d := f.do(t, "POST", "/api/v1/deployments", withKey) // the retry of the failed request runs
	if code != http.StatusAccepted {
		t.Fatalf("POST after the database returned = %d %v", code, d)
	}
	if end := f.waitState(t, d["id"].(string)); end["state"] != "success" {
		t.Errorf("deployment after the database returned = %v", end)
	}
}

// batch_size runs the nodes a batch at a time; with stop_on_failure, the batches after one with a failed
// node never start, and their nodes are given back untouched.
func TestBatchesRunInTurnAndStopOnFailure(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	f.exec.failing = map[string]bool{"10.0.0.3": true}
	hosts := `"10.0.0.1","10.0.0.2","10.0.0.3","10.0.0.4","10.0.0.5"`
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(hosts, `,"batch_size":2,"stop_on_failure":true`))
	end := f.waitState(t, d["id"].(string))
	if end["state"] != "failed" || fmt.Sprint(end["batch"]) != "map[size:2 stop_on_failure:true]" {
		t.Fatalf("deployment = %v", end)
	}
	if calls := f.exec.calls(); calls != "[2 2]" {
		t.Errorf("executor calls = %v, want two batches of 2", calls)
	}
	states := map[string]string{}
	for _, raw := range end["nodes"].([]any) {
		n := raw.(map[string]any)
		states[n["host"].(string)] = fmt.Sprint(n["state"], " ", n["last_error"])
	}
	if !strings.HasPrefix(states["10.0.0.5"], "failed not started: node 10.0.0.3 failed in an earlier batch") ||
		states["10.0.0.4"] != "success <nil>" || !strings.HasPrefix(states["10.0.0.3"], "failed Download") {
		t.Errorf("node states = %v", states)
	}
	// The node never started was given back: its record, created by the claim, is gone.
	if code, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.5", ""); code != http.StatusNotFound {
		t.Errorf("10.0.0.5 = %d %v", code, n)
	}
	// Without stop_on_failure every batch runs.
	_, d2 := f.do(t, "POST", "/api/v1/deployments", deployJSON(hosts, `,"batch_size":2`))
	f.waitState(t, d2["id"].(string))
	if calls := f.exec.calls(); calls != "[2 2 1]" {
		t.Errorf("executor calls = %v, want 2, 2, 1", calls)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments", deployJSON(hosts, `,"batch_size":-1`)); code != 400 || b["field"] != "batch_size" {
		t.Errorf("negative batch = %d %v", code, b)
	}
}

// A handler that panics answers 500 with a JSON body, and the server goes on serving.
// Draining: new deployments are refused, one still waiting for a slot never starts, and the running
// one finishes on its own within the grace period, then Drain returns.
func TestDrainLetsRunningDeploymentsFinishAndRefusesNewOnes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConcurrent = 1 })
	_, running := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	_, queued := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.2"`, "")) // waits for the one slot
	f.srv.stopTaking()
	drained := make(chan struct{})
	go func() { f.srv.Drain(context.Background(), time.Minute); close(drained) }()

	if code, b := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.3"`, "")); code != http.StatusServiceUnavailable || b["code"] != "shutting_down" {
		t.Errorf("a new deployment while draining = %d %v", code, b)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+running["id"].(string)+"/rollback", ""); code != http.StatusServiceUnavailable {
		t.Errorf("a rollback while draining = %d %v", code, b)
	}
	if code, b := f.do(t, "GET", "/readyz", ""); code != http.StatusServiceUnavailable || b["code"] != "shutting_down" {
		t.Errorf("readyz while draining = %d %v", code, b)
	}
	end := f.waitState(t, queued["id"].(string))
	if n := end["nodes"].([]any)[0].(map[string]any); end["state"] != "failed" || !strings.Contains(fmt.Sprint(n["last_error"]), "not started: nodeexec is shutting down") {
		t.Errorf("the queued deployment = %v", end)
	}
	if code, _ := f.do(t, "GET", "/api/v1/deployments/"+running["id"].(string), ""); code != 200 {
		t.Errorf("reads while draining = %d", code)
	}
	close(f.exec.gate)
	<-drained
	if end := f.waitState(t, running["id"].(string)); end["state"] != "success" {
		t.Errorf("the running deployment = %v, want it finished, not cancelled", end)
	}
}

// A run that outlives the grace period is cancelled, and its record says so.
func TestDrainCancelsWhatOutlivesTheGracePeriod(t *testing.T) {
	f := newFixture(t)
	_, running := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	f.srv.Drain(context.Background(), 50*time.Millisecond)
	end := f.waitState(t, running["id"].(string))
	if end["state"] != "failed" || !strings.Contains(fmt.Sprint(end["error"]), "did not finish within the 50ms grace period") {
		t.Errorf("deployment after the grace period = %v", end)
	}
}

// Nodes that fail on a transient fault are tried again after a backoff, and only they; a node that
// stays unreachable ends failed after the last retry; a failure that is not transient is not retried.
func TestTransientFailuresAreRetriedWithBackoff(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Retry = retry.Policy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond, Factor: 2}
	})
	close(f.exec.gate)
	f.exec.failing = map[string]bool{"10.0.0.4": true}
	f.exec.unreachable = map[string]int{"10.0.0.2": 2, "10.0.0.3": 100}
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3","10.0.0.4"`, ""))
	evs, end := f.follow(t, d["id"].(string), nil)
	states := map[string]any{}
	for _, n := range end["nodes"].([]any) {
		n := n.(map[string]any)
		states[n["host"].(string)] = n["state"]
	}
	if states["10.0.0.1"] != "success" || states["10.0.0.2"] != "success" || states["10.0.0.3"] != "failed" || states["10.0.0.4"] != "failed" {
		t.Errorf("node states = %v", states)
	}
	retries := map[string][]string{}
	for _, ev := range evs {
		if msg := fmt.Sprint(ev.data["message"]); strings.Contains(msg, "; retry ") {
			host := fmt.Sprint(ev.data["node"])
			retries[host] = append(retries[host], msg[strings.Index(msg, "retry "):])
		}
	}
	if got := strings.Join(retries["10.0.0.2"], ","); got != "retry 1 of 3 in 1ms,retry 2 of 3 in 2ms" {
		t.Errorf("retries of the host that came back: %s", got)
	}
	if got := strings.Join(retries["10.0.0.3"], ","); got != "retry 1 of 3 in 1ms,retry 2 of 3 in 2ms,retry 3 of 3 in 4ms" {
		t.Errorf("retries of the host that never came back: %s", got)
	}
	if len(retries["10.0.0.1"])+len(retries["10.0.0.4"]) != 0 {
		t.Errorf("retried a node that succeeded or failed for good: %v", retries)
	}
	// ssh's "\r\n" reaches neither the retry announcements nor the records.
	for _, ev := range evs {
		if msg := fmt.Sprint(ev.data["message"]); strings.Contains(msg, "\r") || strings.Contains(msg, "host\n") {
			t.Errorf("event message %q keeps ssh's line end", msg)
		}
	}
	want := "host unreachable: Take the node lock: no route to host"
	for _, n := range end["nodes"].([]any) {
		if n := n.(map[string]any); n["host"] == "10.0.0.3" && n["last_error"] != want {
			t.Errorf("the deployment's last_error of 10.0.0.3 = %q, want %q", n["last_error"], want)
		}
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.3", ""); n["last_error"] != want {
		t.Errorf("the node record's last_error = %q, want %q", n["last_error"], want)
	}
	if got := f.exec.calls(); got != "[4 2 2 1]" {
		t.Errorf("executor calls (nodes each) = %s, want the 4, then only the unreachable ones", got)
	}
}

// A cancel that comes while a node waits for its retry ends the deployment there: cancelled, in one
// sentence, and the waiting node says it was cancelled while it waited, with what its last try found.
// (Before, the cancel was answered 202 and lost: the deployment ended failed with no error.)
func TestACancelDuringARetryWaitEndsTheDeployment(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Retry = retry.Policy{MaxRetries: 2, InitialDelay: time.Hour, MaxDelay: time.Hour, Factor: 2}
	})
	close(f.exec.gate)
	f.exec.unreachable = map[string]int{"10.0.0.2": 100}
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	id := d["id"].(string)
	cancelled := false
	_, end := f.follow(t, id, func(ev sseEvent) {
		if msg := fmt.Sprint(ev.data["message"]); !cancelled && strings.Contains(msg, "; retry 1 of 2 in 1h") {
			cancelled = true
			if code, b := f.do(t, "POST", "/api/v1/deployments/"+id+"/cancel", ""); code != http.StatusAccepted {
				t.Errorf("cancel = %d %v", code, b)
			}
		}
	})
	if !cancelled {
		t.Fatal("the deployment ended without waiting to retry")
	}
	if end["state"] != "failed" || end["error"] != "cancelled on request" {
		t.Errorf("deployment = %v %q, want failed with the error \"cancelled on request\"", end["state"], end["error"])
	}
	nodes := map[string]map[string]any{}
	for _, n := range end["nodes"].([]any) {
		nodes[n.(map[string]any)["host"].(string)] = n.(map[string]any)
	}
	if nodes["10.0.0.1"]["state"] != "success" {
		t.Errorf("the node that was done = %v", nodes["10.0.0.1"])
	}
	want := "cancelled on request while it waited to retry; the last try: host unreachable: Take the node lock: no route to host"
	if n := nodes["10.0.0.2"]; n["state"] != "failed" || n["last_error"] != want {
		t.Errorf("the waiting node = %v %q, want failed with %q", n["state"], n["last_error"], want)
	}
	if got := f.exec.calls(); got != "[2]" {
		t.Errorf("executor calls (nodes each) = %s: the retry must not run after the cancel", got)
	}
}

// batchCancelling is the gated executor, cancelling its deployment through the API as its first batch
// ends: the cancel arrives between two batches.
type batchCancelling struct {
	*gatedExecutor
	cancel func(deploymentID string)
	once   sync.Once
}

func (b *batchCancelling) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	res, err := b.gatedExecutor.Deploy(ctx, req)
	b.once.Do(func() { b.cancel(req.DeploymentID) })
	return res, err
}

// A cancel between batches: the batch that ran keeps its results, the later ones never start and say
// so, and the deployment ends cancelled, in one sentence.
func TestACancelBetweenBatchesStartsNoFurtherBatch(t *testing.T) {
	var f *fixture
	canceller := &batchCancelling{cancel: func(id string) {
		if code, b := f.do(t, "POST", "/api/v1/deployments/"+id+"/cancel", ""); code != http.StatusAccepted {
			t.Errorf("cancel = %d %v", code, b)
		}
	}}
	f = newFixture(t, func(c *Config) {
		canceller.gatedExecutor = c.Executor.(*gatedExecutor)
		c.Executor = canceller
	})
	close(f.exec.gate)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3"`, `,"batch_size":1`))
	end := f.waitState(t, d["id"].(string))
	if end["state"] != "failed" || end["error"] != "cancelled on request" {
		t.Errorf("deployment = %v %q, want failed: cancelled on request", end["state"], end["error"])
	}
	for _, n := range end["nodes"].([]any) {
		n := n.(map[string]any)
		switch n["host"] {
		case "10.0.0.1":
			if n["state"] != "success" {
				t.Errorf("the first batch's node = %v", n)
			}
		default:
			if n["state"] != "failed" || n["last_error"] != "not started: cancelled on request; the node was not touched" {
				t.Errorf("a later batch's node = %v", n)
			}
		}
	}
	if got := f.exec.calls(); got != "[1]" {
		t.Errorf("executor calls (nodes each) = %s, want the first batch only", got)
	}
}

// The database stops while a run is under way: the run's records are written once it is back, and
// the deployment still gets its true end without a restart.
func TestARunOutlastsADatabaseBlip(t *testing.T) {
	failing := make(chan struct{})
	var once sync.Once
	f := newFixture(t, withEngine(func(e *engine.Config) {
		e.StoreRetry = retry.Policy{MaxRetries: 100, InitialDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Factor: 2}
		e.Hooks.PersistFailed = func() { once.Do(func() { close(failing) }) }
	}))
	addr := strings.TrimSuffix(strings.TrimPrefix(f.db.URI, "mongodb://"), "/")
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	f.db.Stop()
	close(f.exec.gate) // the run ends while the database is gone
	<-failing          // and fails to record it
	db, err := store.StartEmbeddedAt(context.Background(), f.dataDir, addr)
	if err != nil {
		t.Fatal(err)
	}
	f.db = db
	if end := f.waitState(t, d["id"].(string)); end["state"] != "success" {
		t.Errorf("deployment after the blip = %v", end)
	}
	if code, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); code != 200 || n["state"] != "success" || n["current_version"] != "v2" {
		t.Errorf("node after the blip = %d %v", code, n)
	}
}

// A run whose executor panics ends failed, its nodes are not left held, and the server goes on.
func TestAPanicInARunEndsItAndTheServerLives(t *testing.T) {
	f := newFixture(t)
	f.exec.panics = true
	close(f.exec.gate)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	end := f.waitState(t, d["id"].(string))
	if end["state"] != "failed" || !strings.Contains(fmt.Sprint(end["error"]), "internal error: the run stopped (executor bug)") {
		t.Fatalf("deployment whose run panicked = %v", end)
	}
	if code, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); code != 200 || n["state"] != "failed" || n["deployment_id"] != d["id"] {
		t.Errorf("node after the panic = %d %v", code, n)
	}
	f.exec.panics = false
	_, again := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	if end := f.waitState(t, again["id"].(string)); end["state"] != "success" {
		t.Errorf("the next deploy to the node = %v", end)
	}
}

func TestAPanicInAHandlerIsA500AndTheServerLives(t *testing.T) {
	f := newFixture(t)
	f.srv.router.GET("/test/panic", func(*gin.Context) { panic("boom") })
	if code, b := f.do(t, "GET", "/test/panic", ""); code != http.StatusInternalServerError || b["code"] != "internal" {
		t.Errorf("panic = %d %v", code, b)
	}
	if code, _ := f.do(t, "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("after the panic, healthz = %d", code)
	}
}
