package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// scriptedExecutor stands in for Ansible under the real server and database: each node streams two
// steps, then ends on the version ("v-bad" fails and is rolled back). A hold channel, when set, keeps
// a deploy running until it is closed. Real deploys are proven by the e2e suite.
type scriptedExecutor struct {
	hold chan struct{}
}

func (e *scriptedExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	if e.hold != nil {
		select {
		case <-e.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		req.Progress(n.Host, executor.Step{Name: "Download the package", Changed: true})
		st := executor.NodeStatus{Host: n.Host, Service: req.Service, CurrentVersion: req.Version, State: executor.StateSuccess}
		if req.Version == "v-bad" {
			req.Progress(n.Host, executor.Step{Name: "Check health", Failed: true, Message: "health check failed"})
			st.State, st.CurrentVersion, st.LastError = executor.StateRolledBack, "v1", "Check health: health check failed"
		} else {
			req.Progress(n.Host, executor.Step{Name: "Check health"})
		}
		out = append(out, executor.NodeResult{NodeStatus: st, Changed: true})
	}
	return out, nil
}

func (e *scriptedExecutor) Rollback(_ context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service,
			CurrentVersion: req.ToVersion, State: executor.StateRolledBack}, Changed: true})
	}
	return out, nil
}

func (e *scriptedExecutor) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

// apiServer runs the real server on the embedded database.
func apiServer(t *testing.T, exec executor.Executor, tokens ...server.Token) string {
	t.Helper()
	st := storetest.Open(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := server.New(server.Config{Executor: exec, Store: st, Logger: log, Tokens: tokens})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Shutdown()
	})
	return hs.URL
}

func deployArgs(url, version string, extra ...string) []string {
	return append([]string{"deploy", "--server", url, "--service", "demo", "--version", version, "--nodes", "10.0.0.1,10.0.0.2",
		"--package-url", "http://pkgs.example/demo-" + version + ".tgz", "--sha256", strings.Repeat("ab", 32)}, extra...)
}

// deploy follows the deployment live (plain lines when not on a terminal), prints the final table, and
// exits by the outcome.
func TestDeployFollowsTheDeploymentAndExitsByItsOutcome(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	code, out, errOut := runCaptured(t, deployArgs(url, "v1"))
	if code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"10.0.0.1 step Download the package: changed", "10.0.0.2 success runs v1", "deployment success", "FROM  CURRENT  PREVIOUS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "accepted; following it") {
		t.Errorf("stderr: %q", errOut)
	}
	code, out, _ = runCaptured(t, deployArgs(url, "v-bad"))
	if code != 1 || !strings.Contains(out, "Check health: failed: health check failed") || !strings.Contains(out, ": failed") {
		t.Errorf("deploy v-bad: exit %d\n%s", code, out)
	}
}

// --json prints every event as one JSON object per line, then the final deployment.
func TestDeployJSONIsOneObjectPerLineThenTheDeployment(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	code, out, _ := runCaptured(t, deployArgs(url, "v1", "--json"))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var events []store.Event
	var final store.Deployment
	for dec.More() {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		data, _ := json.Marshal(raw)
		if _, ok := raw["seq"]; ok {
			var ev store.Event
			_ = json.Unmarshal(data, &ev)
			events = append(events, ev)
		} else {
			_ = json.Unmarshal(data, &final)
		}
	}
	if len(events) < 8 || final.State != executor.StateSuccess || len(final.Nodes) != 2 {
		t.Errorf("%d events, final %+v", len(events), final)
	}
}

// The other commands against the real server: status, rollback, list, nodes, logs, cancel.
func TestStatusRollbackListNodesLogsCancel(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	runOK := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCaptured(t, args)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return out
	}
	runOK(deployArgs(url, "v1")...)
	id := strings.TrimSpace(runOK(deployArgs(url, "v2", "--detach")...))
	if !strings.HasPrefix(id, "d-") {
		t.Fatalf("--detach printed %q", id)
	}
	if out := runOK("status", id, "--watch", "--server", url); !strings.Contains(out, "deploy of demo v2: success") {
		t.Errorf("status --watch:\n%s", out)
	}
	if out := runOK("rollback", "--server", url, id); !strings.Contains(out, "rollback of demo v2: rolled_back") || !strings.Contains(out, "10.0.0.1  rolled_back") {
		t.Errorf("rollback:\n%s", out)
	}
	if out := runOK("list", "--server", url, "--service", "demo", "--limit", "2"); !strings.Contains(out, "rollback") || !strings.Contains(out, "more: nodeexec list --cursor ") {
		t.Errorf("list:\n%s", out)
	}
	if out := runOK("nodes", "--server", url, "--service", "demo"); !strings.Contains(out, "10.0.0.2  rolled_back  v1") {
		t.Errorf("nodes:\n%s", out)
	}
	if out := runOK("nodes", "--server", url, "--service", "demo", "--host", "10.0.0.1", "--json"); !strings.Contains(out, `"current_version":"v1"`) {
		t.Errorf("nodes --host --json:\n%s", out)
	}
	if out := runOK("logs", id, "--server", url, "--node", "10.0.0.2", "--lines", "2", "--source", "events"); !strings.HasPrefix(out, "== 10.0.0.2 (nodeexec)\n") || strings.Count(out, "\n") != 3 {
		t.Errorf("logs --source events:\n%s", out)
	}
	if out := runOK("logs", id, "--server", url); !strings.Contains(out, "!! this server's executor cannot read the service's journal") {
		t.Errorf("logs of the service from an executor that cannot read it:\n%s", out)
	}
	code, _, errOut := runCaptured(t, []string{"cancel", id, "--server", url})
	if code != 1 || !strings.Contains(errOut, "already ended success (HTTP 409)") {
		t.Errorf("cancel of an ended deployment: exit %d %q", code, errOut)
	}
}

// Errors from the server reach the user as sentences with the right exit status: 409 names the
// deployment that holds the node; 400 (bad input) exits 2 naming the field.
func TestServerErrorsAreClearMessages(t *testing.T) {
	hold := make(chan struct{})
	url := apiServer(t, &scriptedExecutor{hold: hold})
	defer close(hold)
	code, first, _ := runCaptured(t, deployArgs(url, "v1", "--detach"))
	if code != 0 {
		t.Fatalf("first deploy: exit %d", code)
	}
	code, _, errOut := runCaptured(t, deployArgs(url, "v2"))
	if code != 1 || !strings.Contains(errOut, "is being deployed by deployment "+strings.TrimSpace(first)) || !strings.Contains(errOut, "HTTP 409") {
		t.Errorf("busy node: exit %d %q", code, errOut)
	}
	code, _, errOut = runCaptured(t, []string{"list", "--server", url, "--state", "bogus"})
	if code != 2 || !strings.Contains(errOut, "state:") {
		t.Errorf("bad state: exit %d %q", code, errOut)
	}
	code, _, errOut = runCaptured(t, []string{"status", "d-nope", "--server", url})
	if code != 1 || !strings.Contains(errOut, "not found (HTTP 404)") {
		t.Errorf("unknown deployment: exit %d %q", code, errOut)
	}
	code, _, errOut = runCaptured(t, []string{"status", "--server", url})
	if code != 2 || !strings.Contains(errOut, "want one deployment id") {
		t.Errorf("missing id: exit %d %q", code, errOut)
	}
}

// Bad input is refused before anything is sent: the server is never asked.
func TestClientValidatesBeforeSending(t *testing.T) {
	var hits atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer hs.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{deployArgs(hs.URL, "{{ lookup('pipe','id') }}"), "version"},
		{deployArgs(hs.URL, "v1", "--nodes", "h1;reboot"), "nodes[0].host"},
		{deployArgs(hs.URL, "v1", "--sha256", "abc"), "sha256"},
		{deployArgs(hs.URL, "v1", "--package-url", "file:///etc/passwd"), "package_url"},
		{[]string{"nodes", "--server", hs.URL, "--service", "../etc"}, "service"},
		{deployArgs("ftp://x", "v1"), "--server"},
	} {
		code, _, errOut := runCaptured(t, c.args)
		if code != 2 && !(c.want == "--server" && code == 1) {
			t.Errorf("%v: exit %d", c.args, code)
		}
		if !strings.Contains(errOut, c.want) {
			t.Errorf("%v: stderr %q does not name %q", c.args, errOut, c.want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server was asked %d times", n)
	}
}

func TestUnreachableServerSaysWhatToDo(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close() // nothing listens there now
	code, _, errOut := runCaptured(t, []string{"list", "--server", url})
	if code != 1 || !strings.Contains(errOut, "cannot reach nodeexec at "+url) || !strings.Contains(errOut, "NODEEXEC_SERVER") {
		t.Errorf("exit %d %q", code, errOut)
	}
}

// The token goes in the Authorization header and appears in no output, not even in errors.
func TestTokenIsSentAndNeverPrinted(t *testing.T) {
	const secret = "s3cret-token-0123456789"
	url := apiServer(t, &scriptedExecutor{}, server.Token{Name: "ops", Token: secret, Scopes: []server.Scope{server.ScopeDeploy}})
	t.Setenv("NODEEXEC_TOKEN", secret)
	code, out, errOut := runCaptured(t, deployArgs(url, "v1"))
	if code != 0 {
		t.Fatalf("with the token: exit %d %s %s", code, out, errOut)
	}
	t.Setenv("NODEEXEC_TOKEN", secret+"-wrong")
	code, out2, errOut2 := runCaptured(t, []string{"list", "--server", url})
	if code != 1 || !strings.Contains(errOut2, "unknown bearer token") {
		t.Errorf("wrong token: exit %d %q", code, errOut2)
	}
	for _, s := range []string{out, errOut, out2, errOut2} {
		if strings.Contains(s, secret) {
			t.Fatalf("the token was printed: %q", s)
		}
	}
}

// A server that wants a token says how to give one: no token, an unknown one, an empty token file.
func TestMissingTokenSaysHowToGiveOne(t *testing.T) {
	const secret = "s3cret-token-0123456789"
	url := apiServer(t, &scriptedExecutor{}, server.Token{Name: "ops", Token: secret, Scopes: []server.Scope{server.ScopeRead}})
	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, env string
		args      []string
		code      int
		want      []string
	}{
		{"no token", "", nil, 1, []string{"missing bearer token", "--token-file", "NODEEXEC_TOKEN"}},
		{"an unknown token", "not-" + secret, nil, 1, []string{"unknown bearer token", "--token-file", "NODEEXEC_TOKEN"}},
		{"an empty token file", "", []string{"--token-file", empty}, 2, []string{empty + " is empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("NODEEXEC_TOKEN", c.env)
			code, _, stderr := runCaptured(t, append([]string{"list", "--server", url}, c.args...))
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// The live table is a function of the events seen.
func TestBoardShowsEachNodesStateAndLatestStep(t *testing.T) {
	d := &api.Deployment{ID: "d-1", Kind: "deploy", Service: "demo", Version: "v2", State: api.StatePending,
		Nodes: []api.DeploymentNode{{Host: "h1", TargetVersion: "v2", State: api.StatePending}, {Host: "h2", TargetVersion: "v2", State: api.StatePending}}}
	b := newBoard(d)
	for _, ev := range []api.Event{
		{Type: api.EventDeployment, State: api.StateDeploying},
		{Type: api.EventNode, Node: "h1", State: api.StateDeploying},
		{Type: api.EventNode, Node: "h2", State: api.StateDeploying},
		{Type: api.EventStep, Node: "h1", Step: &api.Step{Name: "Download the package", Changed: true}},
		{Type: api.EventStep, Node: "h2", Step: &api.Step{Name: "Check health", Failed: true}},
		{Type: api.EventNode, Node: "h2", State: api.StateRolledBack, Message: "Check health: 503"},
	} {
		b.apply(ev)
	}
	got := strings.Join(b.lines(), "\n")
	want := "d-1 deploy demo v2: deploying\n" +
		"NODE  STATE        VERSION  LAST STEP                       ERROR\n" +
		"h1    deploying    v2       Download the package (changed)  \n" +
		"h2    rolled_back  v2       -                               Check health: 503"
	if got != want {
		t.Errorf("board:\n%s\nwant:\n%s", got, want)
	}
}

// Kubernetes deploys and scales send the workloads, image and strategy the flags name.
func TestKubernetesDeployAndScaleSendWhatTheFlagsSay(t *testing.T) {
	var got []map[string]any
	var paths []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		got, paths = append(got, body), append(paths, r.URL.Path)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"d-1","state":"pending"}`))
	}))
	defer hs.Close()
	if code := run([]string{"deploy", "--server", hs.URL, "--detach", "--service", "web", "--version", "v2", "--image", "reg.example/web:v2",
		"--workloads", "prod/Deployment/web:app, prod/Deployment/api", "--max-surge", "25%", "--min-ready-seconds", "5"}); code != 0 {
		t.Fatalf("deploy exit %d", code)
	}
	if code := run([]string{"deploy", "--server", hs.URL, "--detach", "--service", "web", "--version", "v3", "--image", "reg.example/web:v3",
		"--workloads", "prod/Deployment/web", "--strategy", "blue-green", "--switch-service", "web-svc", "--verify-seconds", "30"}); code != 0 {
		t.Fatalf("blue-green deploy exit %d", code)
	}
	if code := run([]string{"scale", "--server", hs.URL, "--detach", "--service", "web", "--workloads", "prod/Deployment/web", "--replicas", "0"}); code != 0 {
		t.Fatalf("scale exit %d", code)
	}
	if len(got) != 3 || paths[0] != "/api/v1/deployments" || paths[2] != "/api/v1/scale" {
		t.Fatalf("requests = %v %v", paths, got)
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	if s := enc(got[0]); !strings.Contains(s, `"platform":"k8s"`) || !strings.Contains(s, `"image":"reg.example/web:v2"`) ||
		enc(got[0]["workloads"]) != `[{"container":"app","kind":"Deployment","name":"web","namespace":"prod"},{"kind":"Deployment","name":"api","namespace":"prod"}]` ||
		!strings.Contains(s, `"strategy":{"max_surge":"25%","min_ready_seconds":5}`) || strings.Contains(s, "package_url") {
		t.Errorf("rolling deploy body = %s", s)
	}
	if s := enc(got[1]["strategy"]); s != `{"service":"web-svc","type":"blue-green","verify_seconds":30}` {
		t.Errorf("blue-green strategy = %s", s)
	}
	if s := enc(got[2]); !strings.Contains(s, `"replicas":0`) || !strings.Contains(s, `"workloads":[{"kind":"Deployment","name":"web","namespace":"prod"}]`) {
		t.Errorf("scale body = %s", s)
	}
	// Bad input never reaches the server.
	for _, args := range [][]string{
		{"deploy", "--server", hs.URL, "--service", "web", "--version", "v2", "--image", "web:v2", "--workloads", "prod/web"},
		{"deploy", "--server", hs.URL, "--service", "web", "--version", "v2", "--image", "web v2", "--workloads", "prod/Deployment/web"},
		{"deploy", "--server", hs.URL, "--service", "web", "--version", "v2", "--image", "web:v2", "--workloads", "prod/Deployment/web", "--strategy", "blue-green", "--max-surge", "1"},
		{"scale", "--server", hs.URL, "--service", "web", "--workloads", "prod/Deployment/web"},
		{"scale", "--server", hs.URL, "--service", "web", "--workloads", "prod/DaemonSet/web", "--replicas", "2"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if len(got) != 3 {
		t.Errorf("bad input reached the server: %d requests", len(got))
	}
}

// rollback --to takes each node back to the version the target deployment left it on.
func TestRollbackToTakesTheNodesToTheTargetsVersion(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCaptured(t, args)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	v1 := run(deployArgs(url, "v1", "--detach")...)
	run("status", v1, "--watch", "--server", url)
	run(deployArgs(url, "v2")...)
	v3 := run(deployArgs(url, "v3", "--detach")...)
	run("status", v3, "--watch", "--server", url)
	rb := run("rollback", "--server", url, "--to", v1, "--detach", v3)
	if out := run("status", rb, "--watch", "--server", url, "--json"); !strings.Contains(out, `"target_deployment_id":"`+v1+`"`) || !strings.Contains(out, `"rollback_of":"`+v3+`"`) {
		t.Errorf("rollback --to:\n%s", out)
	}
	if out := run("nodes", "--server", url, "--service", "demo"); strings.Count(out, "rolled_back  v1") != 2 {
		t.Errorf("nodes after rollback --to:\n%s", out)
	}
	code, _, errOut := runCaptured(t, []string{"rollback", "--server", url, "--to", v1, v3})
	if code == 0 || !strings.Contains(errOut, "already runs the version deployment "+v1+" left it on") {
		t.Errorf("rollback --to again: exit %d\n%s", code, errOut)
	}
}
