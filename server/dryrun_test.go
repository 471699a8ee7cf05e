package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// dryReader stands in for status.yml: 10.0.0.1 runs v2, 10.0.0.2 runs v1 (its record says so, its
// unit is down), 10.0.0.3 cannot be reached; every call is counted.
type dryReader struct {
	*gatedExecutor
	reads int
}

func (r *dryReader) ServiceStatus(_ context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	r.reads++
	var out []executor.ServiceStatus
	for _, n := range req.Nodes {
		st := executor.ServiceStatus{Host: n.Host, Service: req.Service}
		switch n.Host {
		case "10.0.0.1":
			st.Running, st.CurrentVersion, st.RunningVersion = true, "v2", "v2"
		case "10.0.0.2":
			st.CurrentVersion = "v1"
		case "10.0.0.3":
			st.Error = "unreachable: ssh: connect to host 10.0.0.3 port 22: Connection timed out"
		}
		out = append(out, st)
	}
	return out, nil
}

// ?dry_run=true says what a deploy would do to each node, from the node's own record read now, and
// changes nothing: no deployment, no claim, no node record, no executor run.
func TestADryRunSaysWhatADeployWouldDoAndChangesNothing(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Executor = &dryReader{gatedExecutor: c.Executor.(*gatedExecutor)} })
	ctx := context.Background()
	if _, err := f.st.Claim(ctx, "demo", "10.0.0.4", executor.PlatformPhysical, "d-other", "v9"); err != nil {
		t.Fatal(err)
	}
	code, got := f.do(t, "POST", "/api/v1/deployments?dry_run=true", deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3","10.0.0.4"`, ""))
	if code != http.StatusOK || got["dry_run"] != true || got["service"] != "demo" || got["version"] != "v2" {
		t.Fatalf("dry run = %d %v", code, got)
	}
	want := map[string]string{
		"10.0.0.1": "unchanged v2->v2 ",
		"10.0.0.2": "change v1->v2 ",
		"10.0.0.3": "unreachable ->v2 unreachable: ssh: connect to host 10.0.0.3 port 22: Connection timed out",
		"10.0.0.4": "held ->v2 d-other",
	}
	nodes := got["nodes"].([]any)
	if len(nodes) != len(want) {
		t.Fatalf("nodes = %v", nodes)
	}
	for _, raw := range nodes {
		n := raw.(map[string]any)
		line := fmt.Sprintf("%v %v->%v %v", n["action"], orEmpty(n["from"]), n["to"], orEmpty(n["error"])+orEmpty(n["held_by"]))
		if line != want[n["host"].(string)] {
			t.Errorf("%s: %q, want %q", n["host"], line, want[n["host"].(string)])
		}
	}
	if code, list := f.do(t, "GET", "/api/v1/deployments", ""); code != 200 || len(list["deployments"].([]any)) != 0 {
		t.Errorf("deployments after a dry run = %d %v, want none", code, list)
	}
	if _, err := f.st.Node(ctx, "demo", "10.0.0.1"); err == nil {
		t.Error("a dry run recorded a node")
	}
	if n, err := f.st.Node(ctx, "demo", "10.0.0.4"); err != nil || n.DeploymentID != "d-other" || n.State != executor.StateDeploying {
		t.Errorf("the held node after a dry run = %+v %v", n, err)
	}
	select {
	case id := <-f.exec.started:
		t.Errorf("a dry run ran the executor (%s)", id)
	default:
	}
	for _, c := range []struct{ query, body, field string }{
		{"?dry_run=maybe", deployJSON(`"10.0.0.1"`, ""), "dry_run"},
		{"?dry_run=true", `{"applications":[{"service":"a","version":"v1","nodes":["10.0.0.1"],"package_url":"https://p/a.tgz","sha256":"` + fmt.Sprintf("%064d", 0) + `"}]}`, "dry_run"},
		{"?dry_run=true", deployJSON(`"bad host!"`, ""), "nodes[0].host"},
	} {
		if code, b := f.do(t, "POST", "/api/v1/deployments"+c.query, c.body); code != http.StatusBadRequest || b["field"] != c.field {
			t.Errorf("%s %s = %d %v, want 400 on %s", c.query, c.body, code, b, c.field)
		}
	}
	if r := f.srv.cfg.Executor.(*dryReader).reads; r != 1 {
		t.Errorf("nodes read %d times, want once (bad input reads none)", r)
	}
}

func orEmpty(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
