package server

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

func TestFoldLogsTellsEachNodeFromTheEvents(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	line := func(s int, host, msg string) api.LogEntry {
		return api.LogEntry{Timestamp: at(s), PodName: host, Container: "nodeexec", Message: msg}
	}
	node := func(host string, st executor.State, lastErr string) store.DeploymentNode {
		return store.DeploymentNode{Host: host, State: st, TargetVersion: "v2", LastError: lastErr}
	}
	deployment := func(nodes ...store.DeploymentNode) *store.Deployment {
		return &store.Deployment{ID: "d-1", Service: "demo", Version: "v2", Nodes: nodes}
	}
	nodeEv := func(s int, host string, st executor.State, msg string) store.Event {
		return store.Event{Time: at(s), Type: store.EventNode, Node: host, State: st, Message: msg}
	}
	step := func(s int, host, name string, failed bool) store.Event {
		return store.Event{Time: at(s), Type: store.EventStep, Node: host, Message: name,
			Step: &executor.Step{Name: name, Action: "command", Failed: failed, Stderr: "err of " + name}}
	}
	task := func(s int, name string) api.FailedTask {
		return api.FailedTask{Time: at(s), Name: name, Action: "command", Stderr: "err of " + name}
	}
	evidence := &executor.FailedRelease{Version: "v2", Reason: "health check failed", Journal: []string{"panic"}}
	wireEvidence := &api.FailedRelease{Version: "v2", Reason: "health check failed", Journal: []string{"panic"}}
	var manyFailures []store.Event
	var newestTen []api.FailedTask
	var manyLines []api.LogEntry
	for i := range 12 {
		manyFailures = append(manyFailures, step(i, "h1", fmt.Sprintf("try %d", i), true))
		manyLines = append(manyLines, line(i, "h1", fmt.Sprintf("step try %d", i)))
		if i >= 2 {
			newestTen = append(newestTen, task(i, fmt.Sprintf("try %d", i)))
		}
	}

	cases := []struct {
		name     string
		d        *store.Deployment
		evs      []store.Event
		only     string
		want     []api.LogEntry
		failures []api.NodeFailure
	}{
		{
			name: "no events: no lines",
			d:    deployment(node("h1", executor.StatePending, ""), node("h2", executor.StatePending, "")),
			want: []api.LogEntry{},
		},
		{
			name: "each event of a node a line, in the events' order; deployment events and other nodes' on none",
			d:    deployment(node("h2", executor.StateSuccess, ""), node("h1", executor.StateSuccess, "")),
			evs: []store.Event{
				{Time: at(0), Type: store.EventDeployment, State: executor.StateDeploying, Message: "deploy started"},
				nodeEv(1, "h1", executor.StateDeploying, "deploy v2"),
				step(2, "h1", "Download the package", false),
				nodeEv(3, "h2", executor.StateSuccess, ""),
				nodeEv(4, "h9", executor.StateSuccess, "not a node of this deployment"),
			},
			want: []api.LogEntry{line(1, "h1", "node deploying deploy v2"), line(2, "h1", "step Download the package"), line(3, "h2", "node success")},
		},
		{
			name:     "one node asked for",
			d:        deployment(node("h1", executor.StateSuccess, ""), node("h2", executor.StateFailed, "boom")),
			evs:      []store.Event{nodeEv(1, "h1", "", "one"), nodeEv(2, "h2", "", "two")},
			only:     "h2",
			want:     []api.LogEntry{line(2, "h2", "node two")},
			failures: []api.NodeFailure{{PodName: "h2", State: api.StateFailed, Error: "boom", FailedTasks: []api.FailedTask{}}},
		},
		{
			name:     "a failed node shows its failed tasks apart from its lines",
			d:        deployment(node("h1", executor.StateFailed, "Download the package: 404"), node("h2", executor.StateSuccess, "")),
			evs:      []store.Event{step(1, "h1", "Take the lock", false), step(2, "h1", "Download the package", true), step(3, "h2", "Download the package", false)},
			want:     []api.LogEntry{line(1, "h1", "step Take the lock"), line(2, "h1", "step Download the package"), line(3, "h2", "step Download the package")},
			failures: []api.NodeFailure{{PodName: "h1", State: api.StateFailed, Error: "Download the package: 404", FailedTasks: []api.FailedTask{task(2, "Download the package")}}},
		},
		{
			name:     "only the newest failed tasks",
			d:        deployment(node("h1", executor.StateFailed, "gave up")),
			evs:      manyFailures,
			want:     manyLines,
			failures: []api.NodeFailure{{PodName: "h1", State: api.StateFailed, Error: "gave up", FailedTasks: newestTen}},
		},
		{
			name:     "a rolled back node shows its evidence",
			d:        deployment(node("h1", executor.StateRolledBack, "health check failed")),
			evs:      []store.Event{step(1, "h1", "Verify", true), {Time: at(2), Type: store.EventEvidence, Node: "h1", Message: "release v2 failed", Evidence: evidence}},
			want:     []api.LogEntry{line(1, "h1", "step Verify"), line(2, "h1", "evidence release v2 failed")},
			failures: []api.NodeFailure{{PodName: "h1", State: api.StateRolledBack, Error: "health check failed", FailedTasks: []api.FailedTask{task(1, "Verify")}, Evidence: wireEvidence}},
		},
		{
			name: "a node that succeeded after a failed attempt, and kept nothing, shows no failure",
			d:    deployment(node("h1", executor.StateSuccess, "")),
			evs:  []store.Event{step(1, "h1", "Take the lock", true), step(2, "h1", "Take the lock", false)},
			want: []api.LogEntry{line(1, "h1", "step Take the lock"), line(2, "h1", "step Take the lock")},
		},
		{
			name:     "a node that succeeded but kept evidence of a failed release shows it",
			d:        deployment(node("h1", executor.StateSuccess, "")),
			evs:      []store.Event{{Time: at(1), Type: store.EventEvidence, Node: "h1", Message: "release v2 failed", Evidence: evidence}},
			want:     []api.LogEntry{line(1, "h1", "evidence release v2 failed")},
			failures: []api.NodeFailure{{PodName: "h1", State: api.StateSuccess, FailedTasks: []api.FailedTask{}, Evidence: wireEvidence}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, failures := foldLogs(c.d, c.evs, c.only)
			if !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(failures, c.failures) {
				t.Errorf("got  %+v %+v\nwant %+v %+v", got, failures, c.want, c.failures)
			}
		})
	}
}

// The newest lines of a log, in all, in time order: a node's or pod's own order kept among equal times.
func TestNewestKeepsTheNewestLinesInTimeOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	e := func(s int, pod, msg string) api.LogEntry {
		return api.LogEntry{Timestamp: t0.Add(time.Duration(s) * time.Second), PodName: pod, Message: msg}
	}
	in := []api.LogEntry{e(1, "a", "a1"), e(3, "a", "a3"), e(3, "a", "a3 again"), e(2, "b", "b2"), e(4, "b", "b4")}
	got := newest(in, 4)
	want := []api.LogEntry{e(2, "b", "b2"), e(3, "a", "a3"), e(3, "a", "a3 again"), e(4, "b", "b4")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
