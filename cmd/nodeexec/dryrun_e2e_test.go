//go:build e2e

package main

import (
	"fmt"
	"net/http"
	"testing"
)

// A dry run on the real hosts reads each node's own record now and changes nothing: after v1, v2 would
// change two nodes from v1, v1 would leave them alone, and a host with no SSH is unreachable; no
// deployment or node record is added, and the nodes still serve v1.
func TestAPIDryRunReadsTheNodesAndChangesNothing(t *testing.T) {
	env := setupAPIAs(t, "dry")
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	plan := func(version string, nodes ...string) map[string]string {
		t.Helper()
		body := env.deployBody(version)
		body["nodes"] = nodes
		code, p := env.call("POST", "/api/v1/deployments?dry_run=true", body)
		if code != http.StatusOK || p["dry_run"] != true {
			t.Fatalf("dry run of %s = %d %v", version, code, p)
		}
		out := map[string]string{}
		for _, raw := range p["nodes"].([]any) {
			n := raw.(map[string]any)
			out[n["host"].(string)] = fmt.Sprintf("%v %v->%v", n["action"], n["from"], n["to"])
			if n["action"] == "unreachable" && n["error"] == nil {
				t.Errorf("%s unreachable without a reason: %v", n["host"], n)
			}
		}
		return out
	}
	a, b := env.hosts.Addrs[0], env.hosts.Addrs[1]
	if got := plan("v2", a, b, "127.0.0.1"); got[a] != "change v1->v2" || got[b] != "change v1->v2" || got["127.0.0.1"] != "unreachable <nil>->v2" {
		t.Errorf("dry run of v2 = %v", got)
	}
	if got := plan("v1", a); got[a] != "unchanged v1->v1" {
		t.Errorf("dry run of v1 = %v", got)
	}
	if code, list := env.call("GET", "/api/v1/deployments?service="+env.svc.Name, nil); code != 200 || len(list["deployments"].([]any)) != 1 {
		t.Errorf("deployments after the dry runs = %d %v, want only the deploy of v1", code, list)
	}
	if code, _ := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/127.0.0.1", nil); code != http.StatusNotFound {
		t.Errorf("a node only a dry run named has a record (%d)", code)
	}
	for _, h := range []string{a, b} {
		if v := env.serving(h); v != "v1" {
			t.Errorf("%s serves %s after the dry runs, want v1", h, v)
		}
	}
}
