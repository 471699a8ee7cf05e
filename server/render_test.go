package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Until the API had types of its own, the server answered with its records as they are: json.Marshal
// of the store's (and the executor's) types. Rendered through api, every record is the same JSON,
// every field set and every field empty (omitempty and null stay as they were).
func TestRenderedRecordsAreTheJSONTheRecordsWere(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 600700800, time.FixedZone("CET", 3600))
	t1 := t0.Add(90 * time.Second)
	step := &executor.Step{Name: "Verify", Action: "nodeexec_release", Changed: true, Failed: true, Skipped: true, Running: true,
		Message: "503", Stdout: "out", Stderr: "err", Started: t0, Duration: 1234567891 * time.Nanosecond}
	evidence := &executor.FailedRelease{Version: "v2", At: "2026-01-02T03:04:05Z", Reason: "health check failed", Dir: "/srv/demo/releases/v2",
		Journal: []string{"panic"}, UnitStatus: []string{"failed"}}
	deployment := store.Deployment{ID: "d-1", Kind: store.KindRollback, RollbackOf: "d-0", Service: "demo", Version: "v2",
		Platform: executor.PlatformK8s, Rollback: &executor.RollbackRequest{Service: "not on the wire"}, Batch: store.Batch{Size: 2, StopOnFailure: true},
		RequestedBy: "alice", Token: "plan", IdempotencyKey: "k-1", State: executor.StateRolledBack, Error: "boom",
		Nodes: []store.DeploymentNode{{Host: "h1", State: executor.StateFailed, TargetVersion: "v2", FromVersion: "v1", CurrentVersion: "v1",
			PrevVersion: "v0", Changed: true, LastError: "503"}, {Host: "h2"}},
		CreatedAt: t0, StartedAt: &t0, FinishedAt: &t1}
	// A scale's replicas left the record's JSON for its scale request (store: json:"-"); the wire keeps
	// them. This is json.Marshal of the record as it was (Replicas beside the request), taken before.
	scale := store.Deployment{ID: "d-2", Kind: store.KindScale, Service: "web", Platform: executor.PlatformK8s,
		Scale: &executor.ScaleRequest{Service: "web", Replicas: 3}, State: executor.StateSuccess,
		Nodes: []store.DeploymentNode{{Host: "prod/web", State: executor.StateSuccess}}, CreatedAt: t0}
	scaleWas := json.RawMessage(`{"id":"d-2","kind":"scale","service":"web","version":"","platform":"k8s",` +
		`"batch":{"size":0,"stop_on_failure":false},"replicas":3,"state":"success",` +
		`"nodes":[{"host":"prod/web","state":"success","target_version":"","changed":false}],"created_at":"2026-01-02T03:04:05.6007008+01:00"}`)
	node := store.Node{ID: "demo/h1", Host: "h1", Service: "demo", Platform: executor.PlatformPhysical, CurrentVersion: "v2", PrevVersion: "v1",
		DeployingVersion: "v3", State: executor.StateDeploying, LastError: "e", DeploymentID: "d-1", CreatedAt: t0, UpdatedAt: t1}
	cleanup := store.Cleanup{ID: "c-1", Trigger: store.TriggerSchedule, Tick: &t0, Token: "ops", Runner: "replica-a", State: store.CleanupFailed,
		Error: "one node failed", Keep: 5, StartedAt: t0, FinishedAt: &t1,
		Nodes: []store.CleanupNode{{Service: "demo", Host: "h1", State: store.NodeCleaned, Keep: 5, Kept: []string{"v2", "v3"},
			Removed: []string{"v1"}, Error: "e", Prior: &node}, {Service: "demo", Host: "h2", Kept: []string{}}},
		Pruned: store.Pruned{Before: &t0, Deployments: 1, EventChunks: 2, IdempotencyKeys: 3, Cleanups: 4}}
	resources := &executor.Resources{MemoryBytes: 1 << 20, CPUSeconds: 1.25, Tasks: 7}
	status := executor.ServiceStatus{Host: "h1", Service: "demo", Running: true, ActiveState: "active", MainPID: 42, Since: &t0, UptimeSeconds: 90,
		CurrentVersion: "v2", PrevVersion: "v1", RunningVersion: "v2", State: executor.StateSuccess, LastError: "e", Resources: resources, Error: "x"}

	for _, c := range []struct {
		name         string
		record, wire any
	}{
		{"deployment", deployment, renderDeployment(deployment)},
		{"scale deployment", scaleWas, renderDeployment(scale)},
		{"deployment, empty", store.Deployment{}, renderDeployment(store.Deployment{})},
		{"deployment with no nodes", store.Deployment{Nodes: []store.DeploymentNode{}}, renderDeployment(store.Deployment{Nodes: []store.DeploymentNode{}})},
		{"node", node, renderNode(node)},
		{"node, empty", store.Node{}, renderNode(store.Node{})},
		{"step event", store.Event{DeploymentID: "d-1", Seq: 7, Time: t0, Type: store.EventStep, Node: "h1", State: executor.StateDeploying, Message: "m", Step: step},
			renderEvent(store.Event{DeploymentID: "d-1", Seq: 7, Time: t0, Type: store.EventStep, Node: "h1", State: executor.StateDeploying, Message: "m", Step: step})},
		{"step event, bare step", store.Event{Type: store.EventStep, Step: &executor.Step{Name: "x"}}, renderEvent(store.Event{Type: store.EventStep, Step: &executor.Step{Name: "x"}})},
		{"evidence event", store.Event{Type: store.EventEvidence, Evidence: evidence}, renderEvent(store.Event{Type: store.EventEvidence, Evidence: evidence})},
		{"event, empty", store.Event{}, renderEvent(store.Event{})},
		{"cleanup", cleanup, renderCleanup(cleanup)},
		{"cleanup, empty", store.Cleanup{}, renderCleanup(store.Cleanup{})},
		{"service status", status, renderServiceStatus(status)},
		{"service status, empty", executor.ServiceStatus{}, renderServiceStatus(executor.ServiceStatus{})},
		{"resources", resources, renderResources(resources)},
		{"pod", executor.Pod{Name: "web-1", Phase: "Running", Ready: true, Restarts: 2, Node: "n1", Image: "web:v2", Created: t0, Color: "blue"},
			renderPod(executor.Pod{Name: "web-1", Phase: "Running", Ready: true, Restarts: 2, Node: "n1", Image: "web:v2", Created: t0, Color: "blue"})},
		{"pod, empty", executor.Pod{}, renderPod(executor.Pod{})},
		{"command result", executor.CommandResult{Host: "h1", RC: -1, Stdout: "o", Stderr: "e", Truncated: true, Error: "unreachable"},
			renderCommandResult(executor.CommandResult{Host: "h1", RC: -1, Stdout: "o", Stderr: "e", Truncated: true, Error: "unreachable"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			was, now := canonicalJSON(t, c.record), canonicalJSON(t, c.wire)
			if !bytes.Equal(was, now) {
				t.Errorf("the API now answers\n  %s\nwhere it answered\n  %s", now, was)
			}
		})
	}
}

// canonicalJSON is v's JSON with the keys of every object sorted and every number as it was written.
func canonicalJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The API's words for states, platforms, kinds and event types are the ones the records use.
func TestWireEnumsAreTheRecordsOwn(t *testing.T) {
	wire := []api.State{api.StatePending, api.StateDeploying, api.StateSuccess, api.StateFailed, api.StateRolledBack}
	if len(wire) != len(executor.States) {
		t.Fatalf("api has %d states, executor %d: %v", len(wire), len(executor.States), executor.States)
	}
	for i, st := range executor.States {
		if string(wire[i]) != string(st) {
			t.Errorf("state %d: api %q, executor %q", i, wire[i], st)
		}
	}
	for _, p := range [][2]string{
		{string(api.PlatformPhysical), string(executor.PlatformPhysical)},
		{string(api.PlatformK8s), string(executor.PlatformK8s)},
		{string(api.DeliveryPull), string(executor.DeliveryPull)},
		{string(api.DeliveryPush), string(executor.DeliveryPush)},
		{api.KindDeploy, store.KindDeploy},
		{api.KindRollback, store.KindRollback},
		{api.KindScale, store.KindScale},
		{api.KindRestart, store.KindRestart},
		{string(api.EventDeployment), string(store.EventDeployment)},
		{string(api.EventNode), string(store.EventNode)},
		{string(api.EventStep), string(store.EventStep)},
		{string(api.EventEvidence), string(store.EventEvidence)},
		{api.TriggerSchedule, store.TriggerSchedule},
		{api.TriggerAPI, store.TriggerAPI},
		{api.CleanupRunning, store.CleanupRunning},
		{api.CleanupSuccess, store.CleanupSuccess},
		{api.CleanupFailed, store.CleanupFailed},
		{api.NodePending, store.NodePending},
		{api.NodeCleaning, store.NodeCleaning},
		{api.NodeCleaned, store.NodeCleaned},
		{api.NodeSkipped, store.NodeSkipped},
		{api.NodeFailed, store.NodeFailed},
	} {
		if p[0] != p[1] {
			t.Errorf("api says %q where the records say %q", p[0], p[1])
		}
	}
}
