package ansible

import (
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// A status.yml run, one module call per node: h1 runs the service, h2 has it stopped, h3 was
// unreachable, h4 never appears.
const sampleStatus = `{
 "plays": [{"play": {"name": "Report release status"}, "tasks": [
  {"task": {"name": "nodeexec_release : Report"}, "hosts": {
    "h1": {"action": "nodeexec_release", "changed": false, "steps": [
      {"name": "Read the node's record", "status": "ok", "start": "2026-11-25T10:01:30.000Z", "duration": 0.01, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "success", "running_version": "v2",
      "active": true, "active_state": "active", "main_pid": 4242, "active_since": "2026-11-25T10:00:00Z", "uptime_seconds": 90,
      "resources": {"memory_bytes": 12582912, "cpu_nsec": 431000000, "tasks": "7"}}},
    "h2": {"action": "nodeexec_release", "changed": false, "steps": [
      {"name": "Read the node's record", "status": "ok", "start": "2026-11-25T10:01:30.000Z", "duration": 0.01, "msg": ""}],
     "report": {"service": "demo", "current": "v2", "previous": "v1", "state": "rolled_back", "last_error": "v3 failed verification",
      "running_version": "", "active": false, "active_state": "failed", "main_pid": "0", "active_since": "", "uptime_seconds": "0", "resources": {}}},
    "h3": {"unreachable": true, "msg": "Failed to connect to the host via ssh: No route to host"}}}
 ]}],
 "stats": {
  "h1": {"changed": 0, "failures": 0, "ok": 1, "unreachable": 0},
  "h2": {"changed": 0, "failures": 0, "ok": 1, "unreachable": 0},
  "h3": {"changed": 0, "failures": 0, "ok": 0, "unreachable": 1}
 }
}`

func TestServiceStatusesReadTheUnitAndTheRecordOfEachNode(t *testing.T) {
	res := mustParse(t, sampleStatus)
	got := serviceStatuses(res, "demo", []executor.Node{{Host: "h1"}, {Host: "h2"}, {Host: "h3"}, {Host: "h4"}}, "")
	since := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	want := []executor.ServiceStatus{
		{Host: "h1", Service: "demo", Running: true, ActiveState: "active", MainPID: 4242, Since: &since, UptimeSeconds: 90,
			CurrentVersion: "v2", PrevVersion: "v1", RunningVersion: "v2", State: executor.StateSuccess},
		{Host: "h2", Service: "demo", ActiveState: "failed", CurrentVersion: "v2", PrevVersion: "v1",
			State: executor.StateRolledBack, LastError: "v3 failed verification"},
	}
	for i, w := range want {
		g := got[i]
		if (g.Since == nil) != (w.Since == nil) || (g.Since != nil && !g.Since.Equal(*w.Since)) {
			t.Errorf("%s: since %v, want %v", w.Host, g.Since, w.Since)
		}
		g.Since, w.Since = nil, nil
		wantRes := map[string]*executor.Resources{"h1": {MemoryBytes: 12582912, CPUSeconds: 0.431, Tasks: 7}}[w.Host]
		if (g.Resources == nil) != (wantRes == nil) || (g.Resources != nil && *g.Resources != *wantRes) {
			t.Errorf("%s: resources %+v, want %+v", w.Host, g.Resources, wantRes)
		}
		g.Resources = nil
		if g != w {
			t.Errorf("%s:\n got %+v\nwant %+v", w.Host, g, w)
		}
	}
	if !strings.Contains(got[2].Error, "host unreachable") || got[2].Running || !strings.Contains(got[3].Error, "reported nothing") {
		t.Errorf("unreachable and missing nodes: %+v, %+v", got[2], got[3])
	}
}

// An adhoc.yml run: h1 ran it (exit 3), h2 had no such program, h3 was unreachable, h4 printed more
// than the bound in a multi-byte character.
const sampleCommand = `{
 "plays": [{"play": {"name": "Run a command"}, "tasks": [
  {"task": {"name": "nodeexec_command : Run the command"}, "hosts": {
    "h1": {"action": "ansible.builtin.command", "censored": "hidden"},
    "h2": {"action": "ansible.builtin.command", "censored": "hidden"},
    "h3": {"unreachable": true, "msg": "Failed to connect to the host via ssh: No route to host"},
    "h4": {"action": "ansible.builtin.command", "censored": "hidden"}}},
  {"task": {"name": "nodeexec_command : nodeexec command report"}, "hosts": {
    "h1": {"action": "debug", "msg": {"rc": "3", "stdout": "out", "stderr": "err", "truncated": false, "error": ""}},
    "h2": {"action": "debug", "msg": {"rc": "-1", "stdout": "", "stderr": "", "truncated": false, "error": "[Errno 2] No such file or directory: b'nope'"}},
    "h4": {"action": "debug", "msg": {"rc": 0, "stdout": "abcdé", "stderr": "", "truncated": false, "error": ""}}}}
 ]}],
 "stats": {
  "h1": {"changed": 0, "failures": 0, "ok": 3, "unreachable": 0},
  "h2": {"changed": 0, "failures": 0, "ok": 3, "unreachable": 0},
  "h3": {"changed": 0, "failures": 0, "ok": 0, "unreachable": 1},
  "h4": {"changed": 0, "failures": 0, "ok": 3, "unreachable": 0}
 }
}`

func TestCommandResultsSayWhatEachNodeRanAndPrinted(t *testing.T) {
	res := mustParse(t, sampleCommand)
	got := commandResults(res, []executor.Node{{Host: "h1"}, {Host: "h2"}, {Host: "h3"}, {Host: "h4"}, {Host: "h5"}}, "", 5)
	want := []executor.CommandResult{
		{Host: "h1", RC: 3, Stdout: "out", Stderr: "err"},
		{Host: "h2", RC: -1, Error: "[Errno 2] No such file or directory: b'nope'"},
		{Host: "h3", RC: -1, Error: "host unreachable: task \"Run the command\": Failed to connect to the host via ssh: No route to host"},
		{Host: "h4", RC: 0, Stdout: "abcd", Truncated: true}, // 5 bytes would cut the é in half
		{Host: "h5", RC: -1, Error: "ansible-playbook reported nothing for this node"},
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("%s:\n got %+v\nwant %+v", w.Host, got[i], w)
		}
	}
}

func TestUnsafeYAMLTagsEveryArgvElement(t *testing.T) {
	node, err := unsafeYAML(map[string]any{"nodeexec_command": []string{"echo", "{{ lookup('pipe','id') }}"}})
	if err != nil {
		t.Fatal(err)
	}
	list := node.Content[1]
	if len(list.Content) != 2 {
		t.Fatalf("argv as YAML: %+v", list)
	}
	for _, el := range list.Content {
		if el.Tag != "!unsafe" {
			t.Errorf("argv element %q is tagged %q, want !unsafe", el.Value, el.Tag)
		}
	}
}
