//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/store"
)

// A failed deploy's evidence, on the real test hosts through `nodeexec serve`: the broken release is
// rolled back, but stays on every node with the unit's journal excerpt beside it; the logs endpoint
// serves that excerpt and the failed task's output from the database; a cleanup with a small keep
// leaves the failed release; after a later successful deploy, a cleanup removes it and its evidence.
func TestAPIFailedDeployKeepsItsEvidenceUntilALaterSuccess(t *testing.T) {
	t.Setenv("NODEEXEC_CLEANUP_KEEP", "2") // serve reads it from its environment
	env := setupAPI(t)
	env.svc.AddRelease(t, "v3", false, nil)
	env.svc.AddRelease(t, "v4-broken", true, nil)
	env.svc.AddRelease(t, "v5", false, nil)
	hosts := env.hosts.Addrs[:3]
	root := "/opt/" + env.svc.Name
	evidenceDir := root + "/.nodeexec/failed/v4-broken"
	ssh := func(i int, cmd string) string {
		t.Helper()
		out, err := env.hosts.SSH(context.Background(), i, cmd)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", hosts[i], cmd, err, out)
		}
		return strings.Join(strings.Fields(out), " ")
	}
	cleanup := func() store.Cleanup {
		t.Helper()
		start := time.Now()
		out, err := osexec.Command(env.bin, "cleanup", "--server", env.base, "--json").Output()
		t.Logf("cleanup pass: %s", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("nodeexec cleanup: %v\n%s", err, out)
		}
		var pass store.Cleanup
		if err := json.Unmarshal(out, &pass); err != nil || pass.State != store.CleanupSuccess || len(pass.Nodes) != 3 {
			t.Fatalf("nodeexec cleanup --json = %v %s", err, out)
		}
		return pass
	}

	start := time.Now()
	for _, v := range []string{"v1", "v2", "v3"} {
		if end := env.deploy(v); end["state"] != "success" {
			t.Fatalf("deploy %s = %v", v, end)
		}
	}
	t.Logf("three good deploys: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	id := env.post("v4-broken")
	events, end := env.follow(id, nil)
	t.Logf("the broken deploy, rolled back: %s", time.Since(start).Round(time.Millisecond))
	if end["state"] != "failed" {
		t.Fatalf("deploy of the broken release = %v", end)
	}
	for _, raw := range end["nodes"].([]any) {
		if n := raw.(map[string]any); n["state"] != "rolled_back" || n["current_version"] != "v3" {
			t.Errorf("node after the broken deploy = %v", n)
		}
	}
	evidenceEvents := map[string]bool{}
	for _, ev := range events {
		if ev["type"] == "evidence" {
			evidenceEvents[ev["node"].(string)] = true
		}
	}
	if len(evidenceEvents) != 3 {
		t.Errorf("evidence events for %v, want every node", evidenceEvents)
	}

	t.Run("the failed release and the unit's journal excerpt are on each node", func(t *testing.T) {
		for i, h := range hosts {
			if got := ssh(i, "ls "+root+"/releases"); got != "v1 v2 v3 v4-broken" {
				t.Errorf("%s: releases %q", h, got)
			}
			if j := ssh(i, "cat "+evidenceDir+"/journal.txt"); !strings.Contains(j, "demo v4-broken (broken=true) listening") {
				t.Errorf("%s: journal.txt lacks the broken release's own lines: %s", h, j)
			}
			var rec struct {
				Failed struct{ Version, Reason, Dir string } `json:"failed"`
			}
			if out := ssh(i, "cat "+root+"/.nodeexec/state.json"); json.Unmarshal([]byte(out), &rec) != nil ||
				rec.Failed.Version != "v4-broken" || rec.Failed.Dir != evidenceDir || !strings.Contains(rec.Failed.Reason, "Check the HTTP health endpoint") {
				t.Errorf("%s: state.json's failed entry = %+v (%s)", h, rec.Failed, out)
			}
		}
	})

	t.Run("the logs endpoint's events serve each node's journal excerpt and failed task, marked", func(t *testing.T) {
		check := func(path string, want int) {
			code, logs := env.call("GET", path, nil)
			failures, _ := logs["failures"].([]any)
			if code != 200 || len(failures) != want {
				t.Fatalf("%s = %d %v", path, code, logs)
			}
			for _, raw := range failures {
				failure := raw.(map[string]any)
				node := failure["pod_name"]
				if failure["state"] != "rolled_back" {
					t.Errorf("%s %s: failure = %v", path, node, failure)
					continue
				}
				ev, _ := failure["evidence"].(map[string]any)
				journal, _ := ev["journal"].([]any)
				if ev["version"] != "v4-broken" || ev["dir"] != evidenceDir || !anyContains(journal, "demo v4-broken (broken=true) listening") {
					t.Errorf("%s %s: evidence = %v", path, node, ev)
				}
				var tasks []string
				for _, ft := range failure["failed_tasks"].([]any) {
					tasks = append(tasks, fmt.Sprint(ft.(map[string]any)["name"], ": ", ft.(map[string]any)["message"]))
				}
				if !anyContains(toAny(tasks), "Check the HTTP health endpoint: Status code was 503") {
					t.Errorf("%s %s: failed tasks = %q", path, node, tasks)
				}
				var lines []any
				for _, raw := range logs["logs"].([]any) {
					if e := raw.(map[string]any); e["pod_name"] == node {
						lines = append(lines, e["message"])
					}
				}
				if !anyContains(lines, "evidence release v4-broken failed and is kept on the node") {
					t.Errorf("%s %s: lines = %v", path, node, lines)
				}
			}
		}
		check("/internal/v1/deploy/logs/"+id+"?source=events&lines=1000", 3)
		check("/internal/v1/deploy/logs/"+id+"?source=events&lines=5&pod_name="+hosts[1], 1) // the node's own view
	})

	t.Run("a cleanup keeping two leaves the failed release and its evidence", func(t *testing.T) {
		pass := cleanup()
		for _, n := range pass.Nodes {
			if n.State != store.NodeCleaned || strings.Join(n.Kept, " ") != "v2 v3 v4-broken" || strings.Join(n.Removed, " ") != "v1" {
				t.Errorf("%s in the pass = %+v; want v1 removed, v2 v3 v4-broken kept", n.Host, n)
			}
		}
		for i, h := range hosts {
			if got := ssh(i, "ls "+root+"/releases; ls "+evidenceDir); got != "v2 v3 v4-broken failure.json journal.txt unit-status.txt" {
				t.Errorf("%s: releases and evidence after the cleanup: %q", h, got)
			}
		}
	})

	t.Run("after a successful deploy the failed release goes like any old one", func(t *testing.T) {
		start := time.Now()
		if end := env.deploy("v5"); end["state"] != "success" {
			t.Fatalf("deploy v5 = %v", end)
		}
		t.Logf("deploy v5: %s", time.Since(start).Round(time.Millisecond))
		pass := cleanup()
		for _, n := range pass.Nodes {
			if strings.Join(n.Kept, " ") != "v3 v5" || strings.Join(n.Removed, " ") != "v2 v4-broken" {
				t.Errorf("%s in the pass = %+v; want v2 v4-broken removed, v3 v5 kept", n.Host, n)
			}
		}
		for i, h := range hosts {
			if got := ssh(i, "ls "+root+"/releases; ls -A "+root+"/.nodeexec/failed; grep -c '\"failed\":' "+root+"/.nodeexec/state.json || true"); got != "v3 v5 0" {
				t.Errorf("%s: releases, evidence and failed entry after the success and cleanup: %q", h, got)
			}
			if v := env.serving(h); v != "v5" {
				t.Errorf("%s serves %q", h, v)
			}
		}
		// What the database recorded of the failure outlives the node's copy.
		_, logs := env.call("GET", "/internal/v1/deploy/logs/"+id+"?source=events&pod_name="+hosts[0], nil)
		if failures, _ := logs["failures"].([]any); len(failures) != 1 {
			t.Errorf("the failed deployment's logs lost the failure: %v", logs)
		}
	})
}

func anyContains(lines []any, s string) bool {
	for _, l := range lines {
		if strings.Contains(fmt.Sprint(l), s) {
			return true
		}
	}
	return false
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
