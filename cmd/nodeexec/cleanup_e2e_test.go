//go:build e2e

package main

import (
	"context"
	"encoding/json"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/store"
)

// A cleanup pass through the API, on the real test hosts: four releases deployed, `nodeexec cleanup`
// against `nodeexec serve` (keep 2) removes the two oldest from every node, leaves the nodes serving
// and free, and records what each kept and removed.
func TestAPICleanupRemovesOldReleasesOnTheHosts(t *testing.T) {
	t.Setenv("NODEEXEC_CLEANUP_KEEP", "2") // serve reads it from its environment
	env := setupAPI(t)
	env.svc.AddRelease(t, "v3", false, nil)
	env.svc.AddRelease(t, "v4", false, nil)
	start := time.Now()
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		if end := env.deploy(v); end["state"] != "success" {
			t.Fatalf("deploy %s = %v", v, end)
		}
	}
	t.Logf("four deploys to %d hosts: %s", len(env.hosts.Addrs[:3]), time.Since(start).Round(time.Millisecond))
	releases := func(i int) string {
		out, err := env.hosts.SSH(context.Background(), i, "ls /opt/"+env.svc.Name+"/releases")
		if err != nil {
			t.Fatalf("host %d: %v: %s", i, err, out)
		}
		return strings.Join(strings.Fields(out), " ")
	}
	for i := range env.hosts.Addrs[:3] {
		if got := releases(i); got != "v1 v2 v3 v4" {
			t.Fatalf("host %d has releases %q before the cleanup", i, got)
		}
	}

	start = time.Now()
	out, err := osexec.Command(env.bin, "cleanup", "--server", env.base, "--json").Output()
	t.Logf("cleanup pass: %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("nodeexec cleanup: %v\n%s", err, out)
	}
	var pass store.Cleanup
	if err := json.Unmarshal(out, &pass); err != nil {
		t.Fatalf("nodeexec cleanup --json: %v\n%s", err, out)
	}
	if pass.State != store.CleanupSuccess || pass.Trigger != store.TriggerAPI || pass.Keep != 2 || len(pass.Nodes) != 3 {
		t.Fatalf("pass = %+v", pass)
	}
	for _, n := range pass.Nodes {
		if n.Service != env.svc.Name || n.State != store.NodeCleaned || strings.Join(n.Removed, " ") != "v1 v2" || strings.Join(n.Kept, " ") != "v3 v4" {
			t.Errorf("%s in the pass = %+v; want cleaned, v1 v2 removed, v3 v4 kept", n.Host, n)
		}
	}
	for i, h := range env.hosts.Addrs[:3] {
		if got := releases(i); got != "v3 v4" {
			t.Errorf("%s has releases %q after the cleanup, want \"v3 v4\"", h, got)
		}
		if v := env.serving(h); v != "v4" {
			t.Errorf("%s serves %q after the cleanup", h, v)
		}
		// The node is free and as it was: the next deploy may take it.
		code, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		if code != 200 || n["state"] != "success" || n["current_version"] != "v4" || n["prev_version"] != "v3" || strings.HasPrefix(n["deployment_id"].(string), "c-") {
			t.Errorf("node %s after the cleanup = %d %v", h, code, n)
		}
	}
	code, list := env.call("GET", "/api/v1/cleanups", nil)
	if passes, _ := list["cleanups"].([]any); code != 200 || len(passes) != 1 || passes[0].(map[string]any)["id"] != pass.ID {
		t.Errorf("GET /api/v1/cleanups = %d %v", code, list)
	}
	// The nodes are not held: a deploy of v3 (kept on the nodes) runs.
	if code, rb := env.call("POST", "/api/v1/deployments", env.deployBody("v3")); code != 202 {
		t.Errorf("deploy v3 after the cleanup = %d %v", code, rb)
	} else if _, end := env.follow(rb["id"].(string), nil); end["state"] != "success" {
		t.Errorf("deploy v3 after the cleanup ended %v", end)
	}
}
