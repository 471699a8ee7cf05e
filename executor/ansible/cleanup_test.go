package ansible

import (
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// A cleanup.yml run, one module call per node: h1 cleaned (its record still carries a past deploy's
// error, which is not the cleanup's), h2 found the node locked by a deploy, h3 was unreachable, h4 never
// appears.
const sampleCleanup = `{
 "plays": [{"play": {"name": "Clean up old releases"}, "tasks": [
  {"task": {"name": "nodeexec_release : Clean up"}, "hosts": {
    "h1": {"action": "nodeexec_release", "changed": true, "steps": [
      {"name": "Take the node lock", "status": "changed", "start": "2026-12-06T03:10:00.000Z", "duration": 0.004, "msg": ""},
      {"name": "Remove old releases", "status": "changed", "start": "2026-12-06T03:10:00.004Z", "duration": 0.1, "msg": "removed v1, v2"},
      {"name": "Release the node lock", "status": "changed", "start": "2026-12-06T03:10:00.104Z", "duration": 0.001, "msg": ""}],
     "report": {"service": "demo", "current": "v4", "previous": "v3", "state": "rolled_back",
      "last_error": "v5 failed verification", "releases": ["v3", "v4"], "removed": ["v1", "v2"]}},
    "h2": {"action": "nodeexec_release", "changed": false, "failed": true, "msg": "Take the node lock: locked by nodeexec deployment d-1", "steps": [
      {"name": "Take the node lock", "status": "failed", "start": "2026-12-06T03:10:00.000Z", "duration": 0.004, "msg": "locked by nodeexec deployment d-1"}],
     "report": {"service": "demo", "current": "v4", "previous": "v3", "state": "success",
      "releases": ["v1", "v2", "v3", "v4"], "removed": [], "locked_by": "nodeexec deployment d-1"}},
    "h3": {"unreachable": true, "msg": "Failed to connect to the host via ssh: No route to host"}}}
 ]}],
 "stats": {
  "h1": {"changed": 1, "failures": 0, "ok": 1, "unreachable": 0},
  "h2": {"changed": 0, "failures": 1, "ok": 0, "unreachable": 0},
  "h3": {"changed": 0, "failures": 0, "ok": 0, "unreachable": 1}
 }
}`

func TestCleanupResultsSayWhatEachNodeKeptAndRemoved(t *testing.T) {
	res := mustParse(t, sampleCleanup)
	nodes := []executor.Node{{Host: "h1"}, {Host: "h2"}, {Host: "h3"}, {Host: "h4"}}
	got := cleanupResults(res, "demo", nodes, "")
	want := []struct {
		kept, removed, errContains string
	}{
		{"v3,v4", "v1,v2", ""},
		{"", "", "Take the node lock: locked by nodeexec deployment d-1"},
		{"", "", "host unreachable"},
		{"", "", "reported nothing for this node"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d results for %d nodes", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Host != nodes[i].Host {
			t.Errorf("result %d is for %s, want %s", i, g.Host, nodes[i].Host)
		}
		if strings.Join(g.Kept, ",") != w.kept || strings.Join(g.Removed, ",") != w.removed {
			t.Errorf("%s: kept %v removed %v, want kept [%s] removed [%s]", g.Host, g.Kept, g.Removed, w.kept, w.removed)
		}
		if (w.errContains == "") != (g.Error == "") || !strings.Contains(g.Error, w.errContains) {
			t.Errorf("%s: Error = %q, want it to contain %q", g.Host, g.Error, w.errContains)
		}
	}
	// The node's own record is still reported as its status.
	if got[0].State != executor.StateRolledBack || got[0].CurrentVersion != "v4" || got[0].LastError != "v5 failed verification" {
		t.Errorf("h1 status = %+v", got[0].NodeStatus)
	}
}

func TestCleanupPassesHoldTheirOwnNamedLocks(t *testing.T) {
	if got := lockHolder("c-0123"); got != "nodeexec cleanup pass c-0123" {
		t.Errorf("lock holder of a cleanup pass = %q", got)
	}
	if got := lockHolder("d-0123"); got != "nodeexec deployment d-0123" {
		t.Errorf("lock holder of a deployment = %q", got)
	}
}
