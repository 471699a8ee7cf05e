//go:build e2e

package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/internal/contract"
)

// rawGet is a GET's status and body as they came.
func (env *apiEnv) rawGet(path string) (int, []byte) {
	env.t.Helper()
	resp, err := http.Get(env.base + path)
	if err != nil {
		env.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		env.t.Fatal(err)
	}
	return resp.StatusCode, body
}

// The management endpoints of a physical deployment on the real test hosts answer the Plan Layer's
// specified shapes (docs/contract): info with each node's unit read now, health with the aggregate
// checks, logs from the unit's journal on each node, and the deployment's events.
func TestAPIManagementAnswersTheSpecifiedShapesOnRealHosts(t *testing.T) {
	env := setupAPI(t)
	id := env.post("v1")
	if _, end := env.follow(id, nil); end["state"] != "success" {
		t.Fatalf("deploy v1 ended %v", end)
	}
	for _, c := range []struct {
		schema contract.Schema
		path   string
	}{
		{contract.Info, "/internal/v1/deploy/info/" + id},
		{contract.Health, "/internal/v1/deploy/health/" + id},
		{contract.Logs, "/internal/v1/deploy/logs/" + id + "?lines=20"},
		{contract.Logs, "/internal/v1/deploy/logs/" + id + "?lines=5&pod_name=" + env.hosts.Addrs[0]},
		{contract.Logs, "/internal/v1/deploy/logs/" + id + "?source=events"},
	} {
		code, body := env.rawGet(c.path)
		if code != http.StatusOK {
			t.Errorf("%s = %d %s", c.path, code, body)
			continue
		}
		if err := contract.Validate(c.schema, body); err != nil {
			t.Errorf("%s does not conform to %s: %v\n%s", c.path, c.schema, err, body)
		}
	}

	_, info := env.call("GET", "/internal/v1/deploy/info/"+id, nil)
	if info["status"] != "succeeded" || info["replicas"] != 3.0 || info["ready_replicas"] != 3.0 {
		t.Errorf("info = %v", info)
	}
	for _, raw := range info["details"].(map[string]any)["pods"].([]any) {
		if pod := raw.(map[string]any); pod["phase"] != "Running" || pod["ready"] != true || pod["phase_source"] != "live" {
			t.Errorf("node as a pod = %v", pod)
		}
	}
	_, health := env.call("GET", "/internal/v1/deploy/health/"+id, nil)
	if health["healthy"] != true || health["message"] == "" {
		t.Errorf("health = %v", health)
	}
	_, logs := env.call("GET", "/internal/v1/deploy/logs/"+id+"?lines=20", nil)
	entries, _ := logs["logs"].([]any)
	if len(entries) == 0 || logs["errors"] != nil || logs["error"] != nil {
		t.Fatalf("the service's journal = %v", logs)
	}
	started := map[string]bool{}
	for _, raw := range entries {
		e := raw.(map[string]any)
		host := e["pod_name"].(string)
		if e["container"] != env.svc.Name+".service" || !strings.Contains(strings.Join(env.hosts.Addrs[:3], " "), host) {
			t.Errorf("a journal line = %v", e)
		}
		if strings.Contains(fmt.Sprint(e["message"]), "demo v1") { // the service's own "demo v1 ... listening"
			started[host] = true
		}
	}
	if len(started) != 3 {
		t.Errorf("the service's own start line on %d of 3 nodes: %v", len(started), entries)
	}
}
