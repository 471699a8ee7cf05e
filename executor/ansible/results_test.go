package ansible

import (
	"strings"
	"testing"

	jsonresults "github.com/apenella/go-ansible/v2/pkg/execute/result/json"

	"github.com/nodeexec/nodeexec/executor"
)

// A run over four hosts in the shape ansible.posix.json prints: h1 deployed, h2 failed its verify and
// was rolled back, h3 found the node locked, h4 was unreachable. h5 was asked for but never appears.
const sampleRun = `{
 "plays": [{"play": {"name": "deploy"}, "tasks": [
  {"task": {"name": "nodeexec_lock : Take the node lock"}, "hosts": {
    "h1": {"action": "nodeexec_lock", "changed": false},
    "h2": {"action": "nodeexec_lock", "changed": false},
    "h3": {"action": "nodeexec_lock", "failed": true, "msg": "locked by ansible-playbook by alice on ops1 (deploy.yml, since 2026-11-25T10:00:00Z, pid 42)"},
    "h4": {"unreachable": true, "msg": "Failed to connect to the host via ssh: connect to host 10.0.0.4 port 22: No route to host"}}},
  {"task": {"name": "Check the health endpoint"}, "hosts": {
    "h1": {"action": "uri", "changed": false},
    "h2": {"action": "uri", "failed": true, "msg": "Status code was 503 and not [200]"}}},
  {"task": {"name": "Fail after the automatic rollback"}, "hosts": {
    "h2": {"action": "fail", "failed": true, "msg": "v3 failed verification and was rolled back to v2"}}},
  {"task": {"name": "nodeexec_release : nodeexec report"}, "hosts": {
    "h1": {"action": "debug", "msg": {"service": "demo", "current": "v3", "previous": "v2", "state": "success", "running_version": "v3", "active": true}},
    "h2": {"action": "debug", "msg": {"service": "demo", "current": "v2", "previous": "v1", "state": "rolled_back", "running_version": "v2", "active": true}},
    "h3": {"action": "debug", "msg": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2", "active": true}}}}
 ]}],
 "stats": {
  "h1": {"changed": 5, "failures": 0, "ok": 9, "unreachable": 0},
  "h2": {"changed": 4, "failures": 1, "ok": 9, "rescued": 1, "unreachable": 0},
  "h3": {"changed": 0, "failures": 1, "ok": 1, "unreachable": 0},
  "h4": {"changed": 0, "failures": 0, "ok": 0, "unreachable": 1}
 }
}`

func TestNodeResultsMapsEachHostOnItsOwn(t *testing.T) {
	res, err := jsonresults.ParseJSONResultsStream(strings.NewReader(sampleRun))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []executor.Node{{Host: "h1"}, {Host: "h2"}, {Host: "h3"}, {Host: "h4"}, {Host: "h5"}}
	got := nodeResults(res, opDeploy, "demo", nodes, "ERROR! something on stderr\n")
	want := []struct {
		state        executor.State
		current      string
		prev         string
		errContains  string
		changed      bool
		runningVer   string
		lastStepName string
	}{
		{executor.StateSuccess, "v3", "v2", "", true, "v3", "Check the health endpoint"},
		{executor.StateRolledBack, "v2", "v1", "v3 failed verification and was rolled back to v2", true, "v2", "Fail after the automatic rollback"},
		{executor.StateFailed, "v2", "v1", "locked by ansible-playbook by alice", false, "v2", "Take the node lock"},
		{executor.StateFailed, "", "", "host unreachable: task \"Take the node lock\": Failed to connect", false, "", "Take the node lock"},
		{executor.StateFailed, "", "", "reported nothing for this node: ERROR! something on stderr", false, "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Host != nodes[i].Host || g.Service != "demo" || g.Platform != executor.PlatformPhysical {
			t.Errorf("%s: identity = %+v", nodes[i].Host, g.NodeStatus)
		}
		if g.State != w.state || g.CurrentVersion != w.current || g.PrevVersion != w.prev || g.Changed != w.changed || g.RunningVersion != w.runningVer {
			t.Errorf("%s: got state=%s current=%s prev=%s changed=%v running=%s, want %+v", g.Host, g.State, g.CurrentVersion, g.PrevVersion, g.Changed, g.RunningVersion, w)
		}
		if (w.errContains == "") != (g.LastError == "") || !strings.Contains(g.LastError, w.errContains) {
			t.Errorf("%s: LastError = %q, want it to contain %q", g.Host, g.LastError, w.errContains)
		}
		if w.lastStepName != "" && g.Steps[len(g.Steps)-1].Name != w.lastStepName {
			t.Errorf("%s: last step = %q, want %q", g.Host, g.Steps[len(g.Steps)-1].Name, w.lastStepName)
		}
	}
}

func TestDecideByOperation(t *testing.T) {
	clean := func(state string) *nodeOutcome {
		return &nodeOutcome{seen: true, report: &nodeReport{State: state}}
	}
	cases := []struct {
		name string
		op   operation
		o    *nodeOutcome
		want executor.State
	}{
		{"deploy ok", opDeploy, clean("success"), executor.StateSuccess},
		{"rollback ok", opRollback, clean("rolled_back"), executor.StateRolledBack},
		{"status reports the node's record", opStatus, clean("rolled_back"), executor.StateRolledBack},
		{"status of a node never deployed", opStatus, clean(""), executor.StatePending},
		{"status with garbage state", opStatus, clean("weird"), executor.StateFailed},
		{"status without report", opStatus, &nodeOutcome{seen: true}, executor.StateFailed},
		{"rollback that failed stays failed", opRollback, &nodeOutcome{seen: true, failed: true, report: &nodeReport{State: "rolled_back"}}, executor.StateFailed},
		{"deploy failed before the switch", opDeploy, &nodeOutcome{seen: true, failed: true, report: &nodeReport{State: "success"}}, executor.StateFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, _ := decide(c.op, c.o); got != c.want {
				t.Errorf("decide = %s, want %s", got, c.want)
			}
		})
	}
}

func TestTextFlattensResultFields(t *testing.T) {
	if got := text([]any{"a", "b"}); got != "a\nb" {
		t.Errorf("lines: %q", got)
	}
	if got := text(map[string]any{"k": 1}); got != `{"k":1}` {
		t.Errorf("map: %q", got)
	}
	if got := text(nil); got != "" {
		t.Errorf("nil: %q", got)
	}
}

// The report carries the node's kept failed release (every run) and, from the run that failed, the
// evidence it kept with the unit's journal excerpt; an empty {} means none.
func TestNodeResultsCarryTheFailedReleaseAndItsEvidence(t *testing.T) {
	const run = `{
 "plays": [{"play": {"name": "deploy"}, "tasks": [
  {"task": {"name": "nodeexec_release : Check the HTTP health endpoint"}, "hosts": {
    "h1": {"action": "uri", "failed": true, "msg": "Status code was 503 and not [200]"}}},
  {"task": {"name": "nodeexec_release : nodeexec report"}, "hosts": {
    "h1": {"action": "debug", "msg": {"service": "demo", "current": "v2", "previous": "v1", "state": "rolled_back",
      "failed": {"version": "v3", "at": "2026-11-25T10:05:00Z", "reason": "Check the HTTP health endpoint: 503", "dir": "/opt/demo/.nodeexec/failed/v3"},
      "evidence": {"version": "v3", "at": "2026-11-25T10:05:00Z", "reason": "Check the HTTP health endpoint: 503", "dir": "/opt/demo/.nodeexec/failed/v3",
        "journal": ["2026-11-25T10:04:59+0000 h1 demo[42]: listening"], "unit_status": ["● demo.service"]}}},
    "h2": {"action": "debug", "msg": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "failed": {}, "evidence": {}}}}}
 ]}],
 "stats": {"h1": {"changed": 3, "failures": 1, "ok": 9}, "h2": {"changed": 0, "failures": 0, "ok": 5}}
}`
	res, err := jsonresults.ParseJSONResultsStream(strings.NewReader(run))
	if err != nil {
		t.Fatal(err)
	}
	got := nodeResults(res, opDeploy, "demo", []executor.Node{{Host: "h1"}, {Host: "h2"}}, "")
	h1, h2 := got[0], got[1]
	if h1.State != executor.StateRolledBack || h1.Failed == nil || h1.Failed.Version != "v3" || h1.Failed.Dir != "/opt/demo/.nodeexec/failed/v3" {
		t.Errorf("h1: state %s, failed %+v", h1.State, h1.Failed)
	}
	if e := h1.Evidence; e == nil || e.Version != "v3" || e.Reason != "Check the HTTP health endpoint: 503" ||
		len(e.Journal) != 1 || !strings.Contains(e.Journal[0], "listening") || len(e.UnitStatus) != 1 {
		t.Errorf("h1: evidence %+v", h1.Evidence)
	}
	if h2.Failed != nil || h2.Evidence != nil {
		t.Errorf("h2 kept nothing, got failed %+v, evidence %+v", h2.Failed, h2.Evidence)
	}
}
