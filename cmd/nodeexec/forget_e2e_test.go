//go:build e2e

package main

import (
	"encoding/json"
	"net/http"
	osexec "os/exec"
	"testing"

	"github.com/nodeexec/nodeexec/store"
)

// A node forgotten on the real hosts is gone from the services, the nodes, a cleanup pass and a drift
// pass; nothing on the host itself changed.
func TestAForgottenNodeIsGoneFromServicesNodesCleanupAndDrift(t *testing.T) {
	env := setupAPI(t)
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	gone := env.hosts.Addrs[2]
	if out, err := osexec.Command(env.bin, "forget", "--server", env.base, "--service", env.svc.Name, "--host", gone, "--requested-by", "ops").CombinedOutput(); err != nil {
		t.Fatalf("nodeexec forget: %v\n%s", err, out)
	}
	_, list := env.call("GET", "/api/v1/services", nil)
	found := false
	for _, raw := range list["services"].([]any) {
		if s := raw.(map[string]any); s["service"] == env.svc.Name {
			found = true
			if s["nodes"] != 2.0 {
				t.Errorf("the service after the forget = %v", s)
			}
		}
	}
	if !found {
		t.Errorf("services = %v", list)
	}
	if code, _ := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+gone, nil); code != http.StatusNotFound {
		t.Errorf("GET of the forgotten node = %d", code)
	}
	run := func(args ...string) []byte {
		t.Helper()
		out, err := osexec.Command(env.bin, append(args, "--server", env.base, "--json")...).Output()
		if err != nil {
			t.Fatalf("nodeexec %v: %v\n%s", args, err, out)
		}
		return out
	}
	var cleanup store.Cleanup
	if err := json.Unmarshal(run("cleanup"), &cleanup); err != nil || cleanup.State != store.CleanupSuccess || len(cleanup.Nodes) != 2 {
		t.Errorf("cleanup pass = %+v (%v)", cleanup, err)
	}
	var drift store.DriftPass
	if err := json.Unmarshal(run("drift", "--service", env.svc.Name), &drift); err != nil || drift.State != store.DriftSuccess || len(drift.Nodes) != 2 {
		t.Errorf("drift pass = %+v (%v)", drift, err)
	}
	for _, n := range cleanup.Nodes {
		if n.Host == gone {
			t.Errorf("the cleanup pass cleaned the forgotten node: %+v", n)
		}
	}
	for _, n := range drift.Nodes {
		if n.Host == gone {
			t.Errorf("the drift pass read the forgotten node: %+v", n)
		}
	}
	if v := env.serving(gone); v != "v1" {
		t.Errorf("the forgotten host serves %q; forgetting must not touch it", v)
	}
}
