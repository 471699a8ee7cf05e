//go:build e2e

package main

import (
	"context"
	"fmt"
	"net/http"
	osexec "os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Rollback to a target deployment on the real test hosts: v1 on two nodes, v2 on both, v3 on one. The
// v3 deploy rolled back to the v1 deploy takes its node to v1; the v2 deploy rolled back to the v1
// deploy then touches only the node still on v2 (the other keeps running, same process). Once cleanup
// removed v1 from a node, a rollback to v1 fails there, naming it, and the node keeps serving.
func TestAPIRollbackToATargetDeploymentOnTheHosts(t *testing.T) {
	t.Setenv("NODEEXEC_CLEANUP_KEEP", "2") // serve reads it from its environment
	env := setupAPIAs(t, "rbt")
	env.svc.AddRelease(t, "v3", false, nil)
	hosts := env.hosts.Addrs[:2]
	deploy := func(version string, nodes ...string) string {
		t.Helper()
		body := env.deployBody(version)
		body["nodes"] = nodes
		code, d := env.call("POST", "/api/v1/deployments", body)
		if code != http.StatusAccepted {
			t.Fatalf("deploy %s = %d %v", version, code, d)
		}
		if _, end := env.follow(d["id"].(string), nil); end["state"] != "success" {
			t.Fatalf("deploy %s = %v", version, end)
		}
		return d["id"].(string)
	}
	// rollbackTo follows the rollback of orig to target to its end; its nodes as host@version.
	rollbackTo := func(id, orig, target string) (map[string]any, []string) {
		t.Helper()
		_, end := env.follow(id, nil)
		if end["kind"] != "rollback" || end["rollback_of"] != orig || end["target_deployment_id"] != target {
			t.Errorf("rollback %s = %v", id, end)
		}
		var nodes []string
		for _, n := range end["nodes"].([]any) {
			n := n.(map[string]any)
			nodes = append(nodes, fmt.Sprintf("%s@%v", n["host"], n["current_version"]))
		}
		return end, nodes
	}
	mainPID := func(i int) string {
		out, err := env.hosts.SSH(context.Background(), i, "systemctl show -p MainPID --value "+env.svc.Name+".service")
		if err != nil {
			t.Fatalf("host %d: %v: %s", i, err, out)
		}
		return strings.TrimSpace(out)
	}
	start := time.Now()
	v1 := deploy("v1", hosts...)
	v2 := deploy("v2", hosts...)
	v3 := deploy("v3", hosts[0])
	t.Logf("three deploys: %s", time.Since(start).Round(time.Millisecond))

	// Through the command line: rollback --to.
	start = time.Now()
	out, err := osexec.Command(env.bin, "rollback", "--server", env.base, "--to", v1, "--detach", v3).Output()
	if err != nil {
		t.Fatalf("nodeexec rollback --to: %v\n%s", err, out)
	}
	end, nodes := rollbackTo(strings.TrimSpace(string(out)), v3, v1)
	t.Logf("rollback of the v3 deploy to the v1 deploy: %s", time.Since(start).Round(time.Millisecond))
	if end["state"] != "rolled_back" || !slices.Equal(nodes, []string{hosts[0] + "@v1"}) {
		t.Fatalf("rollback of v3 to v1: %v, nodes %v", end["state"], nodes)
	}
	if a, b := env.serving(hosts[0]), env.serving(hosts[1]); a != "v1" || b != "v2" {
		t.Fatalf("after the first rollback the nodes serve %q, %q; want v1, v2", a, b)
	}

	pid := mainPID(0)
	start = time.Now()
	code, rb := env.call("POST", "/api/v1/deployments/"+v2+"/rollback", map[string]any{"target_deployment_id": v1})
	if code != http.StatusAccepted {
		t.Fatalf("rollback of v2 to v1 = %d %v", code, rb)
	}
	end, nodes = rollbackTo(rb["id"].(string), v2, v1)
	t.Logf("rollback of the v2 deploy to the v1 deploy: %s", time.Since(start).Round(time.Millisecond))
	if end["state"] != "rolled_back" || !slices.Equal(nodes, []string{hosts[1] + "@v1"}) {
		t.Errorf("rollback of v2 to v1: %v, nodes %v; want only %s", end["state"], nodes, hosts[1])
	}
	for i, h := range hosts {
		_, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		if v := env.serving(h); v != "v1" || n["current_version"] != "v1" || n["state"] != "rolled_back" {
			t.Errorf("%s serves %q, its record %v; want v1", h, v, n)
		}
		if i == 0 && mainPID(0) != pid {
			t.Errorf("%s was restarted (main PID %s, was %s): it was on v1 already", h, mainPID(0), pid)
		}
	}
	if code, b := env.call("POST", "/api/v1/deployments/"+v2+"/rollback", map[string]any{"target_deployment_id": v1}); code != http.StatusConflict || b["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of v2 to v1 again = %d %v", code, b)
	}

	// v2 then v3 on the first node; cleanup (keep 2) removes v1 there. A rollback to v1 fails on it,
	// saying so, and leaves it serving v3.
	deploy("v2", hosts[0])
	v3again := deploy("v3", hosts[0])
	if out, err := osexec.Command(env.bin, "cleanup", "--server", env.base, "--json").Output(); err != nil {
		t.Fatalf("nodeexec cleanup: %v\n%s", err, out)
	}
	if out, _ := env.hosts.SSH(context.Background(), 0, "ls /opt/"+env.svc.Name+"/releases"); strings.Join(strings.Fields(out), " ") != "v2 v3" {
		t.Fatalf("releases on %s after the cleanup: %q, want v2 v3", hosts[0], out)
	}
	code, rb = env.call("POST", "/api/v1/deployments/"+v3again+"/rollback", map[string]any{"target_deployment_id": v1})
	if code != http.StatusAccepted {
		t.Fatalf("rollback of v3 to v1 after the cleanup = %d %v", code, rb)
	}
	end, _ = rollbackTo(rb["id"].(string), v3again, v1)
	n := end["nodes"].([]any)[0].(map[string]any)
	const want = "release v1 is no longer on the node (kept: v2, v3): deploy v1 again"
	if end["state"] != "failed" || n["state"] != "failed" || !strings.Contains(fmt.Sprint(n["last_error"]), want) {
		t.Errorf("rollback to a release cleanup removed: %v, node %v; want failed with %q", end["state"], n, want)
	}
	if v := env.serving(hosts[0]); v != "v3" {
		t.Errorf("%s serves %q after the refused rollback, want v3", hosts[0], v)
	}
	if out, _ := env.hosts.SSH(context.Background(), 0, "readlink /opt/"+env.svc.Name+"/current"); !strings.Contains(out, "v3") {
		t.Errorf("current on %s points at %q after the refused rollback", hosts[0], out)
	}
}
