package ansible

import (
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// mustParse reads a run's JSON report as run does.
func mustParse(t *testing.T, stdout string) *runResults {
	t.Helper()
	res, err := parseRun([]byte(stdout))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// stepList is a node's steps as "name status" lines joined with "|", status one of ok, changed,
// failed, skipped: what a person reads in the node's log.
func stepList(steps []executor.Step) string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.Name + " " + st.Status()
	}
	return strings.Join(out, "|")
}

// A deploy.yml run in the shape ansible.posix.json prints, over the module's two phases (spec of
// issue 15, docs/node-contract.md):
//
//	h1 deployed v3; h2 failed verification and was rolled back to v2; h3 could not download the
//	package; h4 found the node locked; h5 was unreachable; h6 already ran v3 (prepare alone, then the
//	play ended for it); h7's request was refused before the node was read (no steps, an empty report);
//	h8's activate crashed without a failed sub-step; h9 was asked for but never appears.
const sampleDeploy = `{
 "plays": [{"play": {"name": "Deploy a release"}, "tasks": [
  {"task": {"name": "nodeexec_release : Prepare the release"}, "hosts": {
    "h1": {"action": "nodeexec_release", "changed": true, "done": false, "token": "t1", "steps": [
      {"name": "Check the request", "status": "ok", "start": "2026-12-06T03:10:00.100Z", "duration": 0.001, "msg": ""},
      {"name": "Take the node lock", "status": "changed", "start": "2026-12-06T03:10:00.101Z", "duration": 0.004, "msg": "held by nodeexec deployment d-9"},
      {"name": "Read the node's record", "status": "ok", "start": "2026-12-06T03:10:00.105Z", "duration": 0.002, "msg": ""},
      {"name": "Download the package and check its SHA256", "status": "changed", "start": "2026-12-06T03:10:00.107Z", "duration": 0.412, "msg": ""},
      {"name": "Unpack the release", "status": "changed", "start": "2026-12-06T03:10:00.519Z", "duration": 0.030, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2", "active": true}},
    "h2": {"action": "nodeexec_release", "changed": true, "done": false, "token": "t2", "steps": [
      {"name": "Take the node lock", "status": "changed", "start": "2026-12-06T03:10:00.101Z", "duration": 0.004, "msg": ""},
      {"name": "Unpack the release", "status": "changed", "start": "2026-12-06T03:10:00.519Z", "duration": 0.030, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2", "active": true}},
    "h3": {"action": "nodeexec_release", "changed": false, "failed": true,
     "msg": "Download the package and check its SHA256: HTTP Error 404: Not Found", "steps": [
      {"name": "Take the node lock", "status": "changed", "start": "2026-12-06T03:10:00.101Z", "duration": 0.004, "msg": ""},
      {"name": "Download the package and check its SHA256", "status": "failed", "start": "2026-12-06T03:10:00.107Z", "duration": 0.2, "msg": "HTTP Error 404: Not Found"},
      {"name": "Release the node lock", "status": "changed", "start": "2026-12-06T03:10:00.307Z", "duration": 0.001, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2", "active": true}},
    "h4": {"action": "nodeexec_release", "changed": false, "failed": true,
     "msg": "Take the node lock: locked by nodeexec deployment d-1 (Deploy a release, since 2026-12-06T03:00:00Z, pid 42); wait for it to finish", "steps": [
      {"name": "Check the request", "status": "ok", "start": "2026-12-06T03:10:00.100Z", "duration": 0.001, "msg": ""},
      {"name": "Take the node lock", "status": "failed", "start": "2026-12-06T03:10:00.101Z", "duration": 0.004,
       "msg": "locked by nodeexec deployment d-1 (Deploy a release, since 2026-12-06T03:00:00Z, pid 42); wait for it to finish"}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2", "active": true,
      "locked_by": "nodeexec deployment d-1"}},
    "h5": {"unreachable": true, "changed": false, "msg": "Failed to connect to the host via ssh: connect to host 10.0.0.5 port 22: No route to host"},
    "h6": {"action": "nodeexec_release", "changed": false, "done": true, "steps": [
      {"name": "Take the node lock", "status": "changed", "start": "2026-12-06T03:10:00.101Z", "duration": 0.004, "msg": ""},
      {"name": "Read the node's record", "status": "ok", "start": "2026-12-06T03:10:00.105Z", "duration": 0.002, "msg": "v3 is current and running: nothing to do"},
      {"name": "Release the node lock", "status": "changed", "start": "2026-12-06T03:10:00.107Z", "duration": 0.001, "msg": ""}],
     "report": {"service": "demo", "current": "v3", "previous": "v2", "state": "success", "running_version": "v3", "active": true}},
    "h7": {"action": "nodeexec_release", "changed": false, "failed": true, "msg": "Check the request: version \"../x\" is not a version", "steps": [], "report": {}},
    "h8": {"action": "nodeexec_release", "changed": true, "done": false, "token": "t8", "steps": [
      {"name": "Take the node lock", "status": "changed", "start": "2026-12-06T03:10:00.101Z", "duration": 0.004, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2", "active": true}}}},
  {"task": {"name": "nodeexec_release : Stop here when the node already runs this version"}, "hosts": {}},
  {"task": {"name": "nodeexec_release : Stop here when the node already runs this version"}, "hosts": {
    "h1": {"action": "meta", "changed": false, "skipped": true, "skip_reason": "end_host conditional evaluated to false, continuing execution for h1"},
    "h2": {"action": "meta", "changed": false, "skipped": true, "skip_reason": "end_host conditional evaluated to false, continuing execution for h2"},
    "h6": {"action": "ansible.builtin.meta", "changed": false, "msg": "ending play"},
    "h8": {"action": "meta", "changed": false, "skipped": true, "skip_reason": "end_host conditional evaluated to false, continuing execution for h8"}}},
  {"task": {"name": "nodeexec_release : Activate the release"}, "hosts": {
    "h1": {"action": "nodeexec_release", "changed": true, "steps": [
      {"name": "Switch current to the release", "status": "changed", "start": "2026-12-06T03:10:01.000Z", "duration": 0.002, "msg": ""},
      {"name": "Restart the service", "status": "changed", "start": "2026-12-06T03:10:01.002Z", "duration": 0.150, "msg": "demo.service restarted on v3"},
      {"name": "Wait for the unit to be active", "status": "ok", "start": "2026-12-06T03:10:01.152Z", "duration": 0.200, "msg": ""},
      {"name": "Check the HTTP health endpoint", "status": "ok", "start": "2026-12-06T03:10:01.352Z", "duration": 0.010, "msg": ""},
      {"name": "Check the TCP port", "status": "skipped", "start": "2026-12-06T03:10:01.362Z", "duration": 0, "msg": "no TCP port to check"},
      {"name": "Release the node lock", "status": "changed", "start": "2026-12-06T03:10:01.363Z", "duration": 0.001, "msg": ""}],
     "report": {"service": "demo", "current": "v3", "previous": "v2", "state": "success", "running_version": "v3", "active": true, "failed": {}, "evidence": {}}},
    "h2": {"action": "nodeexec_release", "changed": true, "failed": true,
     "msg": "v3 failed verification and was rolled back to v2: Check the HTTP health endpoint: Status code was 503 and not [200]", "steps": [
      {"name": "Switch current to the release", "status": "changed", "start": "2026-12-06T03:10:01.000Z", "duration": 0.002, "msg": ""},
      {"name": "Restart the service", "status": "changed", "start": "2026-12-06T03:10:01.002Z", "duration": 0.150, "msg": ""},
      {"name": "Check the HTTP health endpoint", "status": "failed", "start": "2026-12-06T03:10:01.152Z", "duration": 10.0,
       "msg": "Status code was 503 and not [200]", "stdout": "HTTP/1.1 503 Service Unavailable", "stderr": "demo[42]: no database"},
      {"name": "Keep the evidence", "status": "changed", "start": "2026-12-06T03:10:11.152Z", "duration": 0.05, "msg": ""},
      {"name": "Switch current to the release rolled back to", "status": "changed", "start": "2026-12-06T03:10:11.202Z", "duration": 0.002, "msg": ""},
      {"name": "Restart on the release rolled back to", "status": "changed", "start": "2026-12-06T03:10:11.204Z", "duration": 0.150, "msg": ""},
      {"name": "Release the node lock", "status": "changed", "start": "2026-12-06T03:10:11.354Z", "duration": 0.001, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "rolled_back", "running_version": "v2", "active": true,
      "last_error": "v3 failed verification and was rolled back to v2: Check the HTTP health endpoint: Status code was 503 and not [200]",
      "failed": {"version": "v3", "at": "2026-12-06T03:10:11Z", "reason": "Check the HTTP health endpoint: Status code was 503 and not [200]", "dir": "/opt/demo/.nodeexec/failed/v3"},
      "evidence": {"version": "v3", "at": "2026-12-06T03:10:11Z", "reason": "Check the HTTP health endpoint: Status code was 503 and not [200]", "dir": "/opt/demo/.nodeexec/failed/v3",
       "journal": ["2026-12-06T03:10:02+0000 h2 demo[42]: no database"], "unit_status": ["● demo.service"]}}},
    "h8": {"action": "nodeexec_release", "changed": false, "failed": true, "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error",
     "module_stderr": "Traceback (most recent call last):", "steps": [
      {"name": "Switch current to the release", "status": "changed", "start": "2026-12-06T03:10:01.000Z", "duration": 0.002, "msg": ""}]}}}
 ]}],
 "stats": {
  "h1": {"changed": 2, "failures": 0, "ok": 2, "skipped": 1, "unreachable": 0},
  "h2": {"changed": 2, "failures": 1, "ok": 1, "skipped": 1, "unreachable": 0},
  "h3": {"changed": 0, "failures": 1, "ok": 0, "unreachable": 0},
  "h4": {"changed": 0, "failures": 1, "ok": 0, "unreachable": 0},
  "h5": {"changed": 0, "failures": 0, "ok": 0, "unreachable": 1},
  "h6": {"changed": 0, "failures": 0, "ok": 1, "unreachable": 0},
  "h7": {"changed": 0, "failures": 1, "ok": 0, "unreachable": 0},
  "h8": {"changed": 1, "failures": 1, "ok": 1, "skipped": 1, "unreachable": 0}
 }
}`

func TestDeployResultsOfEachNode(t *testing.T) {
	res := mustParse(t, sampleDeploy)
	hosts := []string{"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"}
	nodes := make([]executor.Node, len(hosts))
	for i, h := range hosts {
		nodes[i] = executor.Node{Host: h}
	}
	got := nodeResults(res, opDeploy, "demo", nodes, "ERROR! something on stderr\n")
	outcomes := collect(res)
	cases := []struct {
		host                      string
		state                     executor.State
		current, prev, running    string
		changed, transient        bool
		lastError                 string
		steps                     string
		lastFailure               string // the failed step's name, "" when none
		failureStdout, failureErr string
	}{
		{host: "h1", state: executor.StateSuccess, current: "v3", prev: "v2", running: "v3", changed: true,
			steps: "Check the request ok|Take the node lock changed|Read the node's record ok|Download the package and check its SHA256 changed|Unpack the release changed|" +
				"Switch current to the release changed|Restart the service changed|Wait for the unit to be active ok|Check the HTTP health endpoint ok|Check the TCP port skipped|Release the node lock changed"},
		{host: "h2", state: executor.StateRolledBack, current: "v2", prev: "v1", running: "v2", changed: true,
			lastError: "v3 failed verification and was rolled back to v2: Check the HTTP health endpoint: Status code was 503 and not [200]",
			steps: "Take the node lock changed|Unpack the release changed|Switch current to the release changed|Restart the service changed|Check the HTTP health endpoint failed|" +
				"Keep the evidence changed|Switch current to the release rolled back to changed|Restart on the release rolled back to changed|Release the node lock changed",
			lastFailure: "Check the HTTP health endpoint", failureStdout: "HTTP/1.1 503 Service Unavailable", failureErr: "demo[42]: no database"},
		{host: "h3", state: executor.StateFailed, current: "v2", prev: "v1", running: "v2",
			lastError:   "Download the package and check its SHA256: HTTP Error 404: Not Found",
			steps:       "Take the node lock changed|Download the package and check its SHA256 failed|Release the node lock changed",
			lastFailure: "Download the package and check its SHA256"},
		{host: "h4", state: executor.StateFailed, current: "v2", prev: "v1", running: "v2",
			lastError:   "Take the node lock: locked by nodeexec deployment d-1 (Deploy a release, since 2026-12-06T03:00:00Z, pid 42); wait for it to finish",
			steps:       "Check the request ok|Take the node lock failed",
			lastFailure: "Take the node lock"},
		{host: "h5", state: executor.StateFailed, transient: true,
			lastError:   `host unreachable: task "Prepare the release": Failed to connect to the host via ssh: connect to host 10.0.0.5 port 22: No route to host`,
			steps:       "Prepare the release failed",
			lastFailure: "Prepare the release"},
		{host: "h6", state: executor.StateSuccess, current: "v3", prev: "v2", running: "v3",
			steps: "Take the node lock changed|Read the node's record ok|Release the node lock changed"},
		{host: "h7", state: executor.StateFailed,
			lastError:   `Check the request: version "../x" is not a version`,
			steps:       "Prepare the release failed",
			lastFailure: "Prepare the release"},
		{host: "h8", state: executor.StateFailed, current: "v2", prev: "v1", running: "v2", changed: true,
			lastError:   "MODULE FAILURE\nSee stdout/stderr for the exact error",
			steps:       "Take the node lock changed|Switch current to the release changed|Activate the release failed",
			lastFailure: "Activate the release"},
		{host: "h9", state: executor.StateFailed, lastError: "ansible-playbook reported nothing for this node: ERROR! something on stderr"},
	}
	if len(got) != len(cases) {
		t.Fatalf("got %d results, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			g := got[i]
			if g.Host != c.host || g.Service != "demo" || g.Platform != executor.PlatformPhysical {
				t.Errorf("identity = %+v", g.NodeStatus)
			}
			if g.State != c.state || g.CurrentVersion != c.current || g.PrevVersion != c.prev || g.RunningVersion != c.running ||
				g.Changed != c.changed || g.Transient != c.transient {
				t.Errorf("got state=%s current=%q prev=%q running=%q changed=%v transient=%v, want %+v",
					g.State, g.CurrentVersion, g.PrevVersion, g.RunningVersion, g.Changed, g.Transient, c)
			}
			if g.LastError != c.lastError {
				t.Errorf("LastError = %q\n      want %q", g.LastError, c.lastError)
			}
			if s := stepList(g.Steps); s != c.steps {
				t.Errorf("steps:\n got %s\nwant %s", s, c.steps)
			}
			o := outcomes[c.host]
			if c.lastFailure == "" {
				if o != nil && o.lastFailure != nil {
					t.Errorf("lastFailure = %+v, want none", o.lastFailure)
				}
				return
			}
			if f := o.lastFailure; f == nil || f.Name != c.lastFailure || !f.Failed || f.Stdout != c.failureStdout || f.Stderr != c.failureErr {
				t.Errorf("lastFailure = %+v, want %q with stdout %q, stderr %q", f, c.lastFailure, c.failureStdout, c.failureErr)
			}
		})
	}
}

// A sub-step is a step of the node's log: the module's action, its message and output, and when it
// ran and for how long.
func TestSubStepsKeepTheirActionMessageAndTiming(t *testing.T) {
	got := nodeResults(mustParse(t, sampleDeploy), opDeploy, "demo", []executor.Node{{Host: "h2"}}, "")[0]
	var check *executor.Step
	for i := range got.Steps {
		if got.Steps[i].Name == "Check the HTTP health endpoint" {
			check = &got.Steps[i]
		}
	}
	if check == nil {
		t.Fatalf("no health check among %s", stepList(got.Steps))
	}
	wantStart := time.Date(2026, 12, 6, 3, 10, 1, 152e6, time.UTC)
	if check.Action != "nodeexec_release" || check.Message != "Status code was 503 and not [200]" ||
		!check.Started.Equal(wantStart) || check.Duration != 10*time.Second {
		t.Errorf("step = %+v; want action nodeexec_release, the sub-step's msg, started %s, 10s", *check, wantStart)
	}
	if d := got.Steps[0].Duration; d != 4*time.Millisecond {
		t.Errorf("the lock's duration = %s, want 4ms", d)
	}
}

func TestFailureMessageNamesTheTaskUnlessItSpeaksForItself(t *testing.T) {
	failedWith := func(action, msg string) *nodeOutcome {
		task := &executor.Step{Name: "Do it", Action: action, Failed: true, Message: msg}
		return &nodeOutcome{seen: true, failed: true, failedTask: task, lastFailure: task}
	}
	for _, c := range []struct {
		action, want string
	}{
		{"nodeexec_release", "Take the node lock: locked by x"},
		{"nodeexec_lock", "Take the node lock: locked by x"},
		{"nodeexec_command", "Take the node lock: locked by x"},
		{"fail", "Take the node lock: locked by x"},
		{"ansible.builtin.fail", "Take the node lock: locked by x"},
		{"ansible.builtin.copy", `task "Do it": Take the node lock: locked by x`},
		{"uri", `task "Do it": Take the node lock: locked by x`},
	} {
		if got := failureMessage(failedWith(c.action, "Take the node lock: locked by x")); got != c.want {
			t.Errorf("%s: %q, want %q", c.action, got, c.want)
		}
	}
	if got := failureMessage(&nodeOutcome{seen: true, failed: true}); got != "failed without a task result" {
		t.Errorf("no failed task: %q", got)
	}
}

func TestDecideByOperation(t *testing.T) {
	clean := func(state string) *nodeOutcome {
		return &nodeOutcome{seen: true, report: &nodeReport{State: state}}
	}
	failedTask := &executor.Step{Name: "Activate the release", Action: "nodeexec_release", Failed: true, Message: "v3 failed"}
	failed := func(state string) *nodeOutcome {
		return &nodeOutcome{seen: true, failed: true, failedTask: failedTask, lastFailure: failedTask, report: &nodeReport{State: state}}
	}
	cases := []struct {
		name    string
		op      operation
		o       *nodeOutcome
		want    executor.State
		wantErr string
	}{
		{"deploy ok", opDeploy, clean("success"), executor.StateSuccess, ""},
		{"deploy rolled back by the node", opDeploy, failed("rolled_back"), executor.StateRolledBack, "v3 failed"},
		{"deploy failed before the switch", opDeploy, failed("success"), executor.StateFailed, "v3 failed"},
		{"deploy failed without a report", opDeploy, &nodeOutcome{seen: true, failed: true, failedTask: failedTask, lastFailure: failedTask}, executor.StateFailed, "v3 failed"},
		{"deploy unreachable", opDeploy, &nodeOutcome{seen: true, unreachable: true, failedTask: failedTask, lastFailure: failedTask}, executor.StateFailed, "host unreachable: v3 failed"},
		{"restart ok", opRestart, clean("success"), executor.StateSuccess, ""},
		{"rollback ok", opRollback, clean("rolled_back"), executor.StateRolledBack, ""},
		{"rollback that failed stays failed", opRollback, failed("rolled_back"), executor.StateFailed, "v3 failed"},
		{"status reports the node's record", opStatus, clean("rolled_back"), executor.StateRolledBack, ""},
		{"status of a node never deployed", opStatus, clean(""), executor.StatePending, ""},
		{"status with garbage state", opStatus, clean("weird"), executor.StateFailed, `the node reports an unknown state "weird"`},
		{"status without report", opStatus, &nodeOutcome{seen: true}, executor.StateFailed, "the node sent no report"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, reason := decide(c.op, c.o); got != c.want || reason != c.wantErr {
				t.Errorf("decide = %s, %q; want %s, %q", got, reason, c.want, c.wantErr)
			}
		})
	}
}

// The report a node sends is the last one of the run, from whichever task sent it; an empty {} is none.
func TestTheLastReportOfTheRunIsTheNodes(t *testing.T) {
	const run = `{"plays": [{"play": {"name": "p"}, "tasks": [
  {"task": {"name": "First"}, "hosts": {"h1": {"action": "nodeexec_release", "report": {"current": "v1", "state": "success"}}}},
  {"task": {"name": "Second"}, "hosts": {"h1": {"action": "ansible.builtin.debug", "report": {"current": "v2", "state": "success"}}}},
  {"task": {"name": "Third"}, "hosts": {"h1": {"action": "nodeexec_release", "report": {}}}},
  {"task": {"name": "Fourth"}, "hosts": {"h1": {"action": "other", "report": "not a dict", "steps": "not a list"}}}
 ]}], "stats": {"h1": {"ok": 4}}}`
	res := mustParse(t, run)
	got := nodeResults(res, opStatus, "demo", []executor.Node{{Host: "h1"}}, "")[0]
	if got.CurrentVersion != "v2" || got.State != executor.StateSuccess {
		t.Errorf("status = %+v; want the second task's report", got.NodeStatus)
	}
	if s := stepList(got.Steps); s != "First ok|Second ok|Third ok|Fourth ok" {
		t.Errorf("steps = %s", s)
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
	got := nodeResults(mustParse(t, sampleDeploy), opDeploy, "demo", []executor.Node{{Host: "h2"}, {Host: "h1"}}, "")
	h2, h1 := got[0], got[1]
	if h2.Failed == nil || h2.Failed.Version != "v3" || h2.Failed.Dir != "/opt/demo/.nodeexec/failed/v3" {
		t.Errorf("h2: failed %+v", h2.Failed)
	}
	if e := h2.Evidence; e == nil || e.Version != "v3" || e.Reason != "Check the HTTP health endpoint: Status code was 503 and not [200]" ||
		len(e.Journal) != 1 || !strings.Contains(e.Journal[0], "no database") || len(e.UnitStatus) != 1 {
		t.Errorf("h2: evidence %+v", h2.Evidence)
	}
	if h1.Failed != nil || h1.Evidence != nil {
		t.Errorf("h1 kept nothing, got failed %+v, evidence %+v", h1.Failed, h1.Evidence)
	}
}
