package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/drift"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// heldReader stands in for status.yml: every node runs v2 (deployed by hand); each read waits for hold.
type heldReader struct {
	hold    chan struct{}
	running chan struct{}
}

func (h *heldReader) ServiceStatus(ctx context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	h.running <- struct{}{}
	select {
	case <-h.hold:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var out []executor.ServiceStatus
	for _, n := range req.Nodes {
		out = append(out, executor.ServiceStatus{Host: n.Host, Service: req.Service, Running: true, ActiveState: "active",
			CurrentVersion: "v2", PrevVersion: "v1", RunningVersion: "v2", State: executor.StateSuccess})
	}
	return out, nil
}

// POST /api/v1/drift runs a pass now; a second is refused while it runs (409 drift_running naming it);
// bad input is 400 naming the field; the drifted node is listed by ?drifted=true and counted in /metrics.
func TestDriftPassThroughTheAPI(t *testing.T) {
	f, _, call := cleanupFixture(t)
	reader := &heldReader{hold: make(chan struct{}), running: make(chan struct{}, 1)}
	runner := drift.New(drift.Config{Store: f.st, Nodes: reader, Metrics: f.srv.metrics, Notify: f.srv.notifier, Logger: f.srv.cfg.Logger, Holder: "replica-a"})
	t.Cleanup(runner.Stop)
	f.srv.cfg.Drift = runner
	ctx := context.Background()
	for _, h := range []string{"h1", "h2"} {
		if _, err := f.st.Claim(ctx, "web", h, executor.PlatformPhysical, "d-1", "v1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Finish(ctx, "d-1", executor.NodeStatus{Service: "web", Host: h, State: executor.StateSuccess, CurrentVersion: "v1", PrevVersion: "v0"}); err != nil {
			t.Fatal(err)
		}
	}
	const plan, viewer = "deploy-token-0123456789", "read-token-0123456789"

	for _, tc := range []struct{ body, code, field string }{
		{`{"service": "../etc"}`, "invalid", "service"},
		{`{"servic": "web"}`, "bad_json", ""},
		{`[1]`, "bad_json", ""},
	} {
		status, body := call("POST", "/api/v1/drift", plan, tc.body)
		if status != http.StatusBadRequest || body["code"] != tc.code || (tc.field != "" && body["field"] != tc.field) {
			t.Errorf("POST %s: %d %v, want 400 %s naming %q", tc.body, status, body, tc.code, tc.field)
		}
	}
	if status, _ := call("POST", "/api/v1/drift", viewer); status != http.StatusForbidden {
		t.Errorf("a read token started a pass: %d", status)
	}
	if status, body := call("GET", "/api/v1/nodes?drifted=maybe", viewer); status != http.StatusBadRequest || body["field"] != "drifted" {
		t.Errorf("drifted=maybe: %d %v, want 400 naming drifted", status, body)
	}

	status, started := call("POST", "/api/v1/drift", plan, `{"service": "web"}`)
	if status != http.StatusAccepted || started["state"] != "running" || started["service"] != "web" {
		t.Fatalf("POST /api/v1/drift: %d %v", status, started)
	}
	id := started["id"].(string)
	<-reader.running
	status, body := call("POST", "/api/v1/drift", plan)
	if status != http.StatusConflict || body["code"] != "drift_running" || !strings.Contains(body["error"].(string), id) {
		t.Errorf("a second pass while %s runs: %d %v", id, status, body)
	}
	close(reader.hold)
	runner.Wait()

	status, pass := call("GET", "/api/v1/drift/"+id, viewer)
	if status != http.StatusOK || pass["state"] != store.DriftSuccess || len(pass["nodes"].([]any)) != 2 {
		t.Fatalf("GET the pass: %d %v", status, pass)
	}
	if status, list := call("GET", "/api/v1/drift", viewer); status != http.StatusOK || len(list["passes"].([]any)) != 1 {
		t.Errorf("GET /api/v1/drift: %d %v", status, list)
	}
	if status, body := call("GET", "/api/v1/drift/r-nope", viewer); status != http.StatusNotFound || body["code"] != "not_found" {
		t.Errorf("GET an unknown pass: %d %v", status, body)
	}
	status, nodes := call("GET", "/api/v1/nodes?drifted=true", viewer)
	list, _ := nodes["nodes"].([]any)
	if status != http.StatusOK || len(list) != 2 {
		t.Fatalf("GET /api/v1/nodes?drifted=true: %d %v", status, nodes)
	}
	n := list[0].(map[string]any)
	d, _ := n["drift"].(map[string]any)
	if n["current_version"] != "v2" || d["kind"] != "version" || d["recorded"] != "v1" || d["observed"] != "v2" {
		t.Errorf("drifted node %v, want the record at v2 with a version drift from v1", n)
	}

	req, _ := http.NewRequest("GET", f.http.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(metrics), `nodeexec_nodes_drifted{kind="version",service="web"} 2`) ||
		!strings.Contains(string(metrics), `nodeexec_nodes_drifted{kind="unit_inactive",service="web"} 0`) {
		t.Errorf("/metrics does not count the drifted nodes:\n%s", grepLines(string(metrics), "nodeexec_nodes_drifted"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
