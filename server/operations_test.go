package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// opsExecutor is gatedExecutor with the physical operations. Restarts wait for their own gate and report
// each node on the version it runs; status and commands answer at once, and every call is kept.
type opsExecutor struct {
	*gatedExecutor
	restartGate    chan struct{}
	restartStarted chan string
	statusErr      error

	mu       sync.Mutex
	restarts []executor.RestartRequest
	statuses [][]string
	commands []executor.CommandRequest
}

func withOps(c *Config) {
	c.Executor = &opsExecutor{gatedExecutor: c.Executor.(*gatedExecutor), restartGate: make(chan struct{}), restartStarted: make(chan string, 4)}
}

func (f *fixture) ops() *opsExecutor { return f.srv.cfg.Executor.(*opsExecutor) }

func (o *opsExecutor) Restart(ctx context.Context, req executor.RestartRequest) ([]executor.NodeResult, error) {
	o.restartStarted <- req.DeploymentID
	select {
	case <-o.restartGate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o.mu.Lock()
	o.restarts = append(o.restarts, req)
	o.mu.Unlock()
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service, CurrentVersion: "v2",
			PrevVersion: "v1", State: executor.StateSuccess}, Changed: true})
	}
	return out, nil
}

func (o *opsExecutor) ServiceStatus(_ context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.statusErr != nil {
		return nil, o.statusErr
	}
	var hosts []string
	var out []executor.ServiceStatus
	for i, n := range req.Nodes {
		hosts = append(hosts, n.Host)
		out = append(out, executor.ServiceStatus{Host: n.Host, Service: req.Service, Running: true, ActiveState: "active",
			MainPID: 100 + i, CurrentVersion: "v2", PrevVersion: "v1", RunningVersion: "v2", State: executor.StateSuccess,
			Resources: &executor.Resources{MemoryBytes: int64(i+1) << 20, CPUSeconds: 0.5, Tasks: 4}, UptimeSeconds: 90})
	}
	o.statuses = append(o.statuses, hosts)
	return out, nil
}

func (o *opsExecutor) RunCommand(_ context.Context, req executor.CommandRequest) ([]executor.CommandResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.commands = append(o.commands, req)
	var out []executor.CommandResult
	for _, n := range req.Nodes {
		out = append(out, executor.CommandResult{Host: n.Host, RC: 0, Stdout: strings.Join(req.Argv, " ") + " on " + n.Host})
	}
	return out, nil
}

// A restart is a deployment of kind restart: it holds its nodes (never beside a deploy to them, either
// way round), runs with the health check asked for, and leaves each node on the version it ran.
func TestRestartIsRecordedAndHoldsItsNodesLikeADeploy(t *testing.T) {
	f := newFixture(t, withOps)
	ops := f.ops()
	_, dep := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	<-f.exec.started
	restart := `{"service":"demo","nodes":["10.0.0.1"],"health":{"http_port":18080,"retries":3},"requested_by":"ops"}`
	if code, b := f.do(t, "POST", "/api/v1/restart", restart); code != http.StatusConflict || b["code"] != "node_busy" || b["deployment_id"] != dep["id"] {
		t.Errorf("restart of a node a deploy holds = %d %v", code, b)
	}
	close(f.exec.gate)
	if end := f.waitState(t, dep["id"].(string)); end["state"] != "success" {
		t.Fatalf("deploy = %v", end)
	}

	code, r := f.do(t, "POST", "/api/v1/restart", restart)
	if code != http.StatusAccepted {
		t.Fatalf("restart = %d %v", code, r)
	}
	id := r["id"].(string)
	<-ops.restartStarted
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["state"] != "deploying" || n["deployment_id"] != id {
		t.Errorf("node while restarting = %v", n)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, "")); code != http.StatusConflict || b["deployment_id"] != id {
		t.Errorf("deploy to a node a restart holds = %d %v", code, b)
	}
	close(ops.restartGate)
	end := f.waitState(t, id)
	nodes := end["nodes"].([]any)
	n := nodes[0].(map[string]any)
	if end["state"] != "success" || end["kind"] != "restart" || end["version"] != "" || end["requested_by"] != "ops" || len(nodes) != 1 ||
		n["target_version"] != "v2" || n["from_version"] != "v2" || n["current_version"] != "v2" || n["state"] != "success" {
		t.Errorf("restart = %v", end)
	}
	if len(ops.restarts) != 1 || ops.restarts[0].DeploymentID != id || ops.restarts[0].Health.HTTPPort != 18080 || ops.restarts[0].Health.Retries != 3 {
		t.Errorf("the executor was asked for %+v", ops.restarts)
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["state"] != "success" || n["current_version"] != "v2" || n["deployment_id"] != id {
		t.Errorf("node after the restart = %v", n)
	}
	if code, b := f.do(t, "POST", "/api/v1/deployments/"+id+"/rollback", ""); code != http.StatusConflict || b["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of a restart = %d %v", code, b)
	}
	// The deploy's node the restart did not touch is free, and was never held.
	if code, b := f.do(t, "POST", "/api/v1/restart", `{"service":"demo","nodes":["10.0.0.2"]}`); code != http.StatusAccepted {
		t.Errorf("restart of the other node = %d %v", code, b)
	} else {
		<-ops.restartStarted
		f.waitState(t, b["id"].(string))
	}
}

func TestRestartRefusesBadInputAndRecordsNothing(t *testing.T) {
	f := newFixture(t, withOps)
	for _, c := range []struct {
		body, code, field string
	}{
		{`{"service":"a/b","nodes":["10.0.0.1"]}`, "invalid", "service"},
		{`{"service":"demo;reboot","nodes":["10.0.0.1"]}`, "invalid", "service"},
		{`{"service":"demo","nodes":[]}`, "invalid", "nodes"},
		{`{"service":"demo","nodes":["a;reboot"]}`, "invalid", "nodes[0].host"},
		{`{"service":"demo","nodes":["10.0.0.1"],"health":{"http_path":"health"}}`, "invalid", "health.http_path"},
		{`{"service":"demo","nodes":["10.0.0.1"],"batch_size":-1}`, "invalid", "batch_size"},
		{`{"service":"demo","nodes":["10.0.0.1"],"command":"systemctl restart sshd"}`, "bad_json", ""},
	} {
		code, b := f.do(t, "POST", "/api/v1/restart", c.body)
		if code != http.StatusBadRequest || b["code"] != c.code || (c.field != "" && b["field"] != c.field) {
			t.Errorf("%s = %d %v, want 400 %s %s", c.body, code, b, c.code, c.field)
		}
	}
	if list, _, err := f.st.ListDeployments(context.Background(), store.DeploymentFilter{Limit: 10}); err != nil || len(list) != 0 {
		t.Errorf("refused restarts recorded %d deployments (%v)", len(list), err)
	}
	plain := newFixture(t) // an executor without restarts
	if code, b := plain.do(t, "POST", "/api/v1/restart", `{"service":"demo","nodes":["10.0.0.1"]}`); code != http.StatusBadRequest || b["field"] != "platform" {
		t.Errorf("restart on a server whose executor cannot = %d %v", code, b)
	}
}

// Service status asks the nodes now, in one run for all the nodes asked for.
func TestServiceStatusReadsTheNodesNow(t *testing.T) {
	f := newFixture(t, withOps)
	ops := f.ops()
	code, b := f.do(t, "GET", "/api/v1/services/demo/status?nodes=10.0.0.1,10.0.0.2", "")
	nodes, _ := b["nodes"].([]any)
	if code != 200 || b["service"] != "demo" || len(nodes) != 2 || nodes[1].(map[string]any)["main_pid"] != 101.0 ||
		nodes[0].(map[string]any)["current_version"] != "v2" || nodes[0].(map[string]any)["running"] != true {
		t.Errorf("status of two nodes = %d %v", code, b)
	}
	code, one := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.3/service", "")
	if code != 200 || one["host"] != "10.0.0.3" || one["main_pid"] != 100.0 || one["active_state"] != "active" {
		t.Errorf("status of one node = %d %v", code, one)
	}
	if got := fmt.Sprint(ops.statuses); got != "[[10.0.0.1 10.0.0.2] [10.0.0.3]]" {
		t.Errorf("the executor was asked %s, want one run per request", got)
	}
	var many []string
	for i := range maxBatchSize + 1 {
		many = append(many, fmt.Sprintf("10.1.%d.%d", i/250, i%250))
	}
	for _, c := range []struct{ path, field string }{
		{"/api/v1/services/demo/status", "nodes"},
		{"/api/v1/services/de;mo/status?nodes=10.0.0.1", "service"},
		{"/api/v1/services/demo/status?nodes=10.0.0.1,a%3Breboot", "nodes[1].host"},
		{"/api/v1/services/demo/status?nodes=10.0.0.1,10.0.0.1", "nodes[1].host"},
		{"/api/v1/nodes/demo/a%3Breboot/service", "nodes[0].host"},
		{"/api/v1/services/demo/status?nodes=" + strings.Join(many, ","), "nodes"},
	} {
		if code, b := f.do(t, "GET", c.path, ""); code != http.StatusBadRequest || b["field"] != c.field {
			t.Errorf("GET %.80s = %d %v, want 400 naming %s", c.path, code, b, c.field)
		}
	}
	if len(ops.statuses) != 2 {
		t.Errorf("refused requests reached the executor: %v", ops.statuses)
	}
	ops.statusErr = errors.New("ansible-playbook status.yml: exit status 4")
	if code, b := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.3/service", ""); code != http.StatusBadGateway || b["code"] != "run_failed" ||
		!strings.Contains(b["error"].(string), "exit status 4") {
		t.Errorf("status when the run fails = %d %v", code, b)
	}
}

// Ad-hoc commands: only with the admin scope (which nothing else includes, and which includes nothing
// else), only by a name on the allow-list, and only with the body's three fields; the one text a request
// adds is a service name, validated, as a whole argument.
func TestAdhocNeedsTheAdminScopeAndAnAllowListedName(t *testing.T) {
	const readT, deployT, adminT = "read-token-0123456789", "deploy-token-0123456789", "admin-token-0123456789"
	f := newFixture(t, withOps, func(c *Config) {
		c.Tokens = []Token{{Name: "viewer", Token: readT, Scopes: []Scope{ScopeRead}},
			{Name: "plan", Token: deployT, Scopes: []Scope{ScopeDeploy}}, {Name: "ops", Token: adminT, Scopes: []Scope{ScopeAdmin}}}
		c.Commands = executor.AllowList{"disk": {"df", "-h"}, "journal": {"journalctl", "-u", executor.PlaceholderService, "-n", "50"}}
		c.CommandMaxOutput = 2048
	})
	ops := f.ops()
	disk := `{"name":"disk","nodes":["10.0.0.1","10.0.0.2"]}`
	for _, c := range []struct {
		method, path, token, body string
		want                      int
		code, field               string
	}{
		{"POST", "/api/v1/adhoc", "", disk, 401, "unauthorized", ""},
		{"POST", "/api/v1/adhoc", readT, disk, 403, "forbidden", ""},
		{"POST", "/api/v1/adhoc", deployT, disk, 403, "forbidden", ""},
		{"GET", "/api/v1/adhoc", deployT, "", 403, "forbidden", ""},
		{"POST", "/api/v1/deployments", adminT, deployJSON(`"10.0.0.1"`, ""), 403, "forbidden", ""},
		{"GET", "/api/v1/deployments", adminT, "", 403, "forbidden", ""},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"nope","nodes":["10.0.0.1"]}`, 404, "not_found", ""},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"rm -rf /","nodes":["10.0.0.1"]}`, 400, "invalid", "name"},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"disk","nodes":["10.0.0.1"],"argv":["rm","-rf","/"]}`, 400, "bad_json", ""},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"disk","nodes":["10.0.0.1"],"command":"rm -rf /"}`, 400, "bad_json", ""},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"journal","nodes":["10.0.0.1"]}`, 400, "invalid", "service"},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"journal","nodes":["10.0.0.1"],"service":"demo; reboot"}`, 400, "invalid", "service"},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"journal","nodes":["10.0.0.1"],"service":"-f"}`, 400, "invalid", "service"},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"disk","nodes":["10.0.0.1;reboot"]}`, 400, "invalid", "nodes[0].host"},
		{"POST", "/api/v1/adhoc", adminT, `{"name":"disk","nodes":[]}`, 400, "invalid", "nodes"},
	} {
		code, b := f.doToken(t, c.method, c.path, c.token, c.body)
		if code != c.want || b["code"] != c.code || (c.field != "" && b["field"] != c.field) {
			t.Errorf("%s %s (%s) %s = %d %v; want %d %s %s", c.method, c.path, c.token, c.body, code, b, c.want, c.code, c.field)
		}
	}
	if len(ops.commands) != 0 {
		t.Fatalf("refused requests reached the nodes: %+v", ops.commands)
	}

	code, run := f.doToken(t, "POST", "/api/v1/adhoc", adminT, disk)
	nodes, _ := run["nodes"].([]any)
	if code != 200 || run["name"] != "disk" || fmt.Sprint(run["argv"]) != "[df -h]" || len(nodes) != 2 ||
		nodes[1].(map[string]any)["stdout"] != "df -h on 10.0.0.2" || nodes[1].(map[string]any)["rc"] != 0.0 {
		t.Errorf("disk = %d %v", code, run)
	}
	code, run = f.doToken(t, "POST", "/api/v1/adhoc", adminT, `{"name":"journal","nodes":["10.0.0.1"],"service":"demo"}`)
	if code != 200 || fmt.Sprint(run["argv"]) != "[journalctl -u demo -n 50]" {
		t.Errorf("journal = %d %v", code, run)
	}
	if len(ops.commands) != 2 || ops.commands[1].MaxOutput != 2048 || strings.Join(ops.commands[1].Argv, "|") != "journalctl|-u|demo|-n|50" {
		t.Errorf("the executor was asked %+v", ops.commands)
	}
	code, list := f.doToken(t, "GET", "/api/v1/adhoc", adminT, "")
	cmds, _ := list["commands"].([]any)
	if code != 200 || len(cmds) != 2 || cmds[1].(map[string]any)["name"] != "journal" || cmds[1].(map[string]any)["service"] != true {
		t.Errorf("GET /api/v1/adhoc = %d %v", code, list)
	}

	none := newFixture(t, withOps) // no allow-list: nothing to run
	if code, b := none.do(t, "POST", "/api/v1/adhoc", disk); code != http.StatusNotFound || !strings.Contains(b["error"].(string), "adhoc.commands") {
		t.Errorf("ad-hoc on a server without commands = %d %v", code, b)
	}
}

func TestTokensFileKnowsTheAdminScope(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("- {name: ops, token: admin-token-0123456789abcdef0123456789, scopes: [read, admin]}\n")
	tokens, err := LoadTokens(path)
	if err != nil || len(tokens) != 1 || !tokens[0].allows(ScopeAdmin) || !tokens[0].allows(ScopeRead) || tokens[0].allows(ScopeDeploy) {
		t.Errorf("tokens = %+v, %v", tokens, err)
	}
	if (Token{Scopes: []Scope{ScopeDeploy}}).allows(ScopeAdmin) || (Token{Scopes: []Scope{ScopeAdmin}}).allows(ScopeRead) {
		t.Error("admin is implied by deploy, or implies read")
	}
	write("- {name: ops, token: admin-token-0123456789abcdef0123456789, scopes: [root]}\n")
	if _, err := LoadTokens(path); err == nil || !strings.Contains(err.Error(), "(read, deploy, admin)") {
		t.Errorf("an unknown scope: %v", err)
	}
}

// doToken is do with a bearer token.
func (f *fixture) doToken(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	return f.doWith(t, method, path, body, func(r *http.Request) {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
	})
}

// doWith is do with the request set up by prepare first.
func (f *fixture) doWith(t *testing.T, method, path, body string, prepare func(*http.Request)) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	prepare(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// The health of a physical deployment reads each node's unit now: a service check per node that
// passes when the unit is active and runs the deployment's version, with what the unit uses; a node
// that could not be read is unknown, and the deployment not healthy.
func TestHealthReadsEachNodesUnitAndItsResources(t *testing.T) {
	f := newFixture(t, withOps)
	close(f.exec.gate)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	id := d["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" {
		t.Fatalf("deployment = %v", end)
	}
	code, health := f.do(t, "GET", "/internal/v1/deploy/health/"+id, "")
	if code != 200 || health["healthy"] != true {
		t.Fatalf("health = %d %v", code, health)
	}
	if msg := health["message"]; msg != "All replicas are healthy; not checked: http_endpoint (no HTTP health check is configured for this deployment)" {
		t.Errorf("health message = %q", msg)
	}
	aggregate := map[string]string{}
	for _, raw := range health["checks"].([]any) {
		ch := raw.(map[string]any)
		aggregate[ch["name"].(string)] = ch["status"].(string) + ": " + ch["message"].(string)
	}
	for name, want := range map[string]string{
		"pod_status":     "healthy: 2/2 nodes running v2",
		"process":        "healthy: 2/2 units active, running v2",
		"resource_usage": "healthy: memory 3.0 MiB, CPU 1.0 s, 8 tasks on 2/2 nodes",
		"http_endpoint":  "unknown: no HTTP health check is configured for this deployment",
	} {
		if aggregate[name] != want {
			t.Errorf("check %s = %q, want %q", name, aggregate[name], want)
		}
	}
	services := map[string]map[string]any{}
	for _, raw := range health["details"].([]any) {
		if ch := raw.(map[string]any); ch["type"] == "service" {
			services[ch["name"].(string)] = ch
		}
	}
	for i, h := range []string{"10.0.0.1", "10.0.0.2"} {
		ch := services[h]
		res, _ := ch["resources"].(map[string]any)
		if ch["status"] != "pass" || ch["message"] != fmt.Sprintf("active (pid %d, up 1m30s), runs v2", 100+i) ||
			res["memory_bytes"] != float64((i+1)<<20) || res["cpu_seconds"] != 0.5 || res["tasks"] != float64(4) {
			t.Errorf("%s: service check %v", h, ch)
		}
	}

	f.ops().mu.Lock()
	f.ops().statusErr = errors.New("ansible-playbook: no such file")
	f.ops().mu.Unlock()
	_, health = f.do(t, "GET", "/internal/v1/deploy/health/"+id, "")
	unknown := 0
	for _, raw := range health["details"].([]any) {
		if ch := raw.(map[string]any); ch["type"] == "service" && ch["status"] == "unknown" && strings.Contains(ch["message"].(string), "no such file") {
			unknown++
		}
	}
	if health["healthy"] != false || unknown != 2 || !strings.HasPrefix(health["message"].(string), "could not read 2/2 units: 10.0.0.1: could not read the unit: ansible-playbook: no such file") {
		t.Errorf("health when the units cannot be read = %v", health)
	}
}
