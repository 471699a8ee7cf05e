package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/contract"
)

// The management endpoints answer the Plan Layer's specified shapes (docs/contract): real answers of
// the handlers, for a physical and a Kubernetes deployment, validated against the schemas.

// journalExecutor is opsExecutor that also reads the unit's journal: two lines a node, and one node
// that cannot be read.
type journalExecutor struct {
	*opsExecutor
	unreadable string
	asked      chan executor.JournalRequest
}

func (j *journalExecutor) Journal(_ context.Context, req executor.JournalRequest) ([]executor.NodeJournal, error) {
	j.asked <- req
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	var out []executor.NodeJournal
	for i, n := range req.Nodes {
		if n.Host == j.unreadable {
			out = append(out, executor.NodeJournal{Host: n.Host, Error: "host unreachable: no route to host"})
			continue
		}
		at := t0.Add(time.Duration(i) * time.Second)
		out = append(out, executor.NodeJournal{Host: n.Host, Lines: []executor.JournalLine{
			{Time: at, Unit: req.Service + ".service", Message: "Started " + req.Service + ".service."},
			{Time: at.Add(10 * time.Second), Unit: req.Service + ".service", Message: "listening on :8080"},
		}})
	}
	return out, nil
}

// fakeCluster deploys Kubernetes workloads at once and shows two pods a workload, one of them not
// ready yet, whose logs it serves with the kubelet's times; the pod not ready has no log to serve.
type fakeCluster struct{}

func (fakeCluster) Deploy(_ context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	var out []executor.NodeResult
	for _, w := range req.Workloads {
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: w.Host(), Service: req.Service, CurrentVersion: req.Version,
			Platform: executor.PlatformK8s, State: executor.StateSuccess}, Changed: true})
	}
	return out, nil
}

func (fakeCluster) Rollback(context.Context, executor.RollbackRequest) ([]executor.NodeResult, error) {
	return nil, errors.New("not in this test")
}

func (fakeCluster) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

func (fakeCluster) WorkloadPods(_ context.Context, w executor.Workload) ([]executor.Pod, error) {
	created := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	return []executor.Pod{
		{Name: w.Name + "-abc123", Phase: "Running", Ready: true, Node: "node-1", Image: "registry.example/web:v2", Created: created},
		{Name: w.Name + "-ghi789", Phase: "Pending", Image: "registry.example/web:v2", Created: created},
	}, nil
}

func (c fakeCluster) PodLogs(ctx context.Context, namespace, pod, container string, lines int) ([]string, error) {
	return nil, errors.New("PodLogLines is the one asked")
}

func (fakeCluster) PodLogLines(_ context.Context, namespace, pod, container string, lines int) ([]executor.JournalLine, error) {
	if strings.HasSuffix(pod, "-ghi789") {
		return nil, errors.New("pod logs unavailable: pod " + namespace + "/" + pod + " has not started")
	}
	return []executor.JournalLine{{Time: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC), Unit: "app", Message: "Server started on port 8080"}}, nil
}

// raw is the status and the body of a GET, as they came.
func (f *fixture) raw(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(f.http.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// conforms gets path, which must answer 200 in the shape of schema, and returns the answer decoded.
func (f *fixture) conforms(t *testing.T, schema contract.Schema, path string) map[string]any {
	t.Helper()
	code, body := f.raw(t, path)
	if code != http.StatusOK {
		t.Fatalf("%s = %d %s", path, code, body)
	}
	if err := contract.Validate(schema, body); err != nil {
		t.Errorf("%s does not conform to %s: %v\n%s", path, schema, err, body)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkStatuses(health map[string]any) map[string]string {
	out := map[string]string{}
	for _, raw := range health["checks"].([]any) {
		ch := raw.(map[string]any)
		out[ch["name"].(string)] = ch["status"].(string)
	}
	return out
}

func TestPhysicalDeploymentAnswersTheSpecifiedShapes(t *testing.T) {
	journal := &journalExecutor{unreadable: "10.0.0.3", asked: make(chan executor.JournalRequest, 4)}
	f := newFixture(t, withOps, func(c *Config) {
		journal.opsExecutor = c.Executor.(*opsExecutor)
		c.Executor = journal
	})
	close(f.exec.gate)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3"`, ""))
	id := d["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" {
		t.Fatalf("deployment = %v", end)
	}

	info := f.conforms(t, contract.Info, "/internal/v1/deploy/info/"+id)
	if info["status"] != "succeeded" || info["replicas"] != 3.0 || info["ready_replicas"] != 3.0 {
		t.Errorf("info = %v", info)
	}
	for _, raw := range info["details"].(map[string]any)["pods"].([]any) {
		if pod := raw.(map[string]any); pod["phase"] != "Running" || pod["ready"] != true || pod["phase_source"] != "live" || pod["version"] != "v2" {
			t.Errorf("node as a pod = %v", pod)
		}
	}

	health := f.conforms(t, contract.Health, "/internal/v1/deploy/health/"+id)
	if health["healthy"] != true || checkStatuses(health)["resource_usage"] != "healthy" || checkStatuses(health)["process"] != "healthy" {
		t.Errorf("health = %v", health)
	}

	logs := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?lines=3")
	req := <-journal.asked
	entries := logs["logs"].([]any)
	errs, _ := logs["errors"].([]any)
	if req.Service != "demo" || req.Lines != 3 || len(req.Nodes) != 3 || len(entries) != 3 || len(errs) != 1 ||
		!strings.Contains(errs[0].(map[string]any)["error"].(string), "unreachable") {
		t.Fatalf("journal asked %+v; logs = %v", req, logs)
	}
	// The newest three of the four lines read, oldest first.
	var got []string
	for _, raw := range entries {
		e := raw.(map[string]any)
		got = append(got, e["timestamp"].(string)+" "+e["pod_name"].(string)+" "+e["container"].(string)+" "+e["message"].(string))
	}
	want := []string{
		"2026-01-02T03:04:01Z 10.0.0.2 demo.service Started demo.service.",
		"2026-01-02T03:04:10Z 10.0.0.1 demo.service listening on :8080",
		"2026-01-02T03:04:11Z 10.0.0.2 demo.service listening on :8080",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?pod_name=10.0.0.2")
	if req := <-journal.asked; len(req.Nodes) != 1 || req.Nodes[0].Host != "10.0.0.2" {
		t.Errorf("pod_name=10.0.0.2 asked the journal of %+v", req.Nodes)
	}
	if events := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?source=events"); len(events["logs"].([]any)) == 0 {
		t.Errorf("events = %v", events)
	}
}

func TestKubernetesDeploymentAnswersTheSpecifiedShapes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.K8s = fakeCluster{} })
	code, d := f.do(t, "POST", "/api/v1/deployments", `{"service":"web","version":"v2","platform":"k8s","image":"registry.example/web:v2",`+
		`"workloads":[{"namespace":"prod","kind":"Deployment","name":"web","container":"app"}]}`)
	if code != http.StatusAccepted {
		t.Fatalf("deploy = %d %v", code, d)
	}
	id := d["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" {
		t.Fatalf("deployment = %v", end)
	}

	info := f.conforms(t, contract.Info, "/internal/v1/deploy/info/"+id)
	pods := info["details"].(map[string]any)["pods"].([]any)
	if info["status"] != "succeeded" || info["replicas"] != 2.0 || info["ready_replicas"] != 1.0 || len(pods) != 2 ||
		pods[1].(map[string]any)["name"] != "web-ghi789" || pods[1].(map[string]any)["phase"] != "Pending" || pods[1].(map[string]any)["node"] != "prod/web" {
		t.Errorf("info = %v", info)
	}

	health := f.conforms(t, contract.Health, "/internal/v1/deploy/health/"+id)
	statuses := checkStatuses(health)
	if health["healthy"] != false || statuses["pod_status"] != "unhealthy" || statuses["resource_usage"] != "unknown" || statuses["http_endpoint"] != "unknown" ||
		!strings.HasPrefix(health["message"].(string), "1/2 pods running: web-ghi789: Pending") {
		t.Errorf("health = %v", health)
	}

	logs := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id)
	entries := logs["logs"].([]any)
	errs, _ := logs["errors"].([]any)
	if len(entries) != 1 || len(errs) != 1 || errs[0].(map[string]any)["pod_name"] != "web-ghi789" {
		t.Fatalf("logs = %v", logs)
	}
	if e := entries[0].(map[string]any); e["timestamp"] != "2026-01-02T03:05:00Z" || e["pod_name"] != "web-abc123" || e["container"] != "app" || e["message"] != "Server started on port 8080" {
		t.Errorf("line = %v", e)
	}
	for _, pick := range []string{"web-abc123", "prod/web"} {
		if one := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?pod_name="+pick); len(one["logs"].([]any)) != 1 {
			t.Errorf("pod_name=%s: %v", pick, one)
		}
	}
	if code, b := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?pod_name=web-zzz", ""); code != 404 || b["field"] != "pod_name" {
		t.Errorf("a pod of none of the workloads = %d %v", code, b)
	}
}
