package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
)

// The bounds the engine keeps a step's output and a node's evidence to.
const (
	maxStepOutput    = engine.MaxStepOutput
	maxEvidenceBytes = engine.MaxEvidenceBytes
)

// failingExecutor fails every deploy the way the ansible executor reports a release that failed its
// health check: the failed task streams live with its output, the node is rolled back, and the result
// carries the evidence the node kept (the journal excerpt captured before the rollback).
type failingExecutor struct {
	gatedExecutor
	journal []string
	stderr  string
}

func (e *failingExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		health := executor.Step{Name: "Check the HTTP health endpoint", Action: "uri", Failed: true,
			Message: "Status code was 503 and not [200]", Stdout: "out", Stderr: e.stderr}
		if req.Progress != nil {
			req.Progress(n.Host, health)
		}
		reason := "Check the HTTP health endpoint: Status code was 503 and not [200]"
		dir := "/opt/" + req.Service + "/.nodeexec/failed/" + req.Version
		out = append(out, executor.NodeResult{
			NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service, CurrentVersion: "v1", State: executor.StateRolledBack,
				LastError: req.Version + " failed verification and was rolled back to v1: " + reason},
			Changed: true,
			Steps: []executor.Step{health, {Name: "Fail the deploy after the automatic rollback", Action: "ansible.builtin.fail", Failed: true,
				Message: req.Version + " failed verification and was rolled back to v1"}},
			Failed:   &executor.FailedRelease{Version: req.Version, Reason: reason, Dir: dir},
			Evidence: &executor.FailedRelease{Version: req.Version, Reason: reason, Dir: dir, Journal: e.journal, UnitStatus: []string{"● demo.service - demo"}},
		})
	}
	return out, nil
}

// A node rolled back after its health check failed: the logs endpoint shows its failure apart from the
// lines, clearly marked: the failed tasks with their output, and the evidence the node kept, with the
// unit's journal excerpt, all read back from the store and bounded. A node that succeeded shows none.
func TestLogsServeAFailedNodesEvidence(t *testing.T) {
	journal := []string{"2026-11-25T10:04:58+0000 h1 systemd[1]: Started demo.service.", "2026-11-25T10:04:58+0000 h1 demo[42]: demo v2 (broken=true) listening on :18080"}
	for i := range 1500 { // more than the store keeps: the newest lines stay
		journal = append(journal, fmt.Sprintf("2026-11-25T10:05:00+0000 h1 demo[42]: line %04d %s", i, strings.Repeat("x", 2000)))
	}
	exec := &failingExecutor{journal: journal, stderr: strings.Repeat("e", 10000) + " the end"}
	f := newFixture(t, func(c *Config) { c.Executor = exec })
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	id := d["id"].(string)
	if end := f.waitState(t, id); end["state"] != "failed" {
		t.Fatalf("deployment = %v", end)
	}

	for _, path := range []string{"/internal/v1/deploy/logs/" + id + "?source=events", "/internal/v1/deploy/logs/" + id + "?source=events&pod_name=10.0.0.1&lines=3"} {
		code, logs := f.do(t, "GET", path, "")
		failures, _ := logs["failures"].([]any)
		if code != 200 || len(failures) != 1 {
			t.Fatalf("%s = %d %v", path, code, logs)
		}
		failure := failures[0].(map[string]any)
		if failure["pod_name"] != "10.0.0.1" || failure["state"] != "rolled_back" || !strings.Contains(failure["error"].(string), "rolled back to v1") {
			t.Fatalf("%s: failure = %v", path, failure)
		}
		tasks := failure["failed_tasks"].([]any)
		if len(tasks) != 2 {
			t.Fatalf("%s: failed tasks = %v", path, tasks)
		}
		health := tasks[0].(map[string]any)
		if stderr := health["stderr"].(string); health["name"] != "Check the HTTP health endpoint" || health["message"] != "Status code was 503 and not [200]" ||
			health["stdout"] != "out" || !strings.HasSuffix(stderr, " the end") || len(stderr) > maxStepOutput+4 {
			t.Errorf("%s: failed health check task = name %v, message %v, stdout %v, stderr %d bytes", path, health["name"], health["message"], health["stdout"], len(stderr))
		}
		ev := failure["evidence"].(map[string]any)
		lines := ev["journal"].([]any)
		total := 0
		for _, l := range lines {
			total += len(l.(string)) + 1
		}
		if ev["version"] != "v2" || ev["dir"] != "/opt/demo/.nodeexec/failed/v2" || len(ev["unit_status"].([]any)) != 1 ||
			total > maxEvidenceBytes || len(lines) == 0 || !strings.Contains(lines[len(lines)-1].(string), "line 1499") {
			t.Errorf("%s: evidence = version %v, dir %v, %d journal lines of %d bytes, last %.60q", path, ev["version"], ev["dir"], len(lines), total, lines[len(lines)-1])
		}
		// The node's lines say where the evidence is, as one marked line.
		marked := 0
		for _, raw := range logs["logs"].([]any) {
			l := raw.(map[string]any)
			if l["pod_name"] == "10.0.0.1" && strings.Contains(l["message"].(string), "evidence release v2 failed and is kept on the node until a later successful deploy; evidence in /opt/demo/.nodeexec/failed/v2") {
				marked++
			}
		}
		if marked != 1 {
			t.Errorf("%s: lines = %v", path, logs["logs"])
		}
	}

	// The live stream carries the evidence too, as its own event type.
	events, _ := f.follow(t, id, nil)
	var kinds []string
	for _, ev := range events {
		if ev.event == "evidence" {
			kinds = append(kinds, fmt.Sprint(ev.data["node"], " ", ev.data["evidence"].(map[string]any)["version"]))
		}
	}
	if strings.Join(kinds, ",") != "10.0.0.1 v2" {
		t.Errorf("evidence events = %v", kinds)
	}
}

func TestLogsShowNoFailureForANodeThatSucceeded(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	id := d["id"].(string)
	f.waitState(t, id)
	_, logs := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?source=events", "")
	if len(logs["logs"].([]any)) == 0 || logs["failures"] != nil {
		t.Errorf("a node that succeeded shows a failure: %v", logs)
	}
}
