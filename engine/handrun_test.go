package engine

import (
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// Each playbook's node outcome, as the executor decides its own runs: a deploy that went through is
// success, a rollback that went through rolled_back; a deploy switched back is rolled_back, any other
// failure failed with the task's message.
func TestHandOutcomeFollowsThePlaybookAndTheModuleReport(t *testing.T) {
	rolledBack := &NodeReport{Current: "v1", State: "rolled_back", LastError: "Check the TCP port: refused"}
	for _, c := range []struct {
		name, playbook string
		node           HandNode
		state          executor.State
		reason         string
	}{
		{"deploy through", "deploy", HandNode{Report: &NodeReport{Current: "v2", State: "success"}}, executor.StateSuccess, ""},
		{"rollback through", "rollback", HandNode{Report: &NodeReport{Current: "v1", State: "rolled_back"}}, executor.StateRolledBack, ""},
		{"restart through", "restart", HandNode{}, executor.StateSuccess, ""},
		{"deploy switched back", "deploy", HandNode{Failed: true, Msg: "v2 failed verification", Report: rolledBack}, executor.StateRolledBack, "v2 failed verification"},
		{"rollback failed", "rollback", HandNode{Failed: true, Report: rolledBack}, executor.StateFailed, "Check the TCP port: refused"},
		{"failed without words", "restart", HandNode{Failed: true}, executor.StateFailed, "the playbook failed on this node without saying why"},
		{"unreachable", "deploy", HandNode{Unreachable: true, Msg: "ssh: connect timed out"}, executor.StateFailed, "host unreachable: ssh: connect timed out"},
		{"unreachable without words", "deploy", HandNode{Unreachable: true}, executor.StateFailed, "host unreachable"},
	} {
		state, reason := handOutcome(c.playbook, c.node)
		if state != c.state || reason != c.reason {
			t.Errorf("%s: %s %q, want %s %q", c.name, state, reason, c.state, c.reason)
		}
	}
}

// A report_id gives the same record id on every post, and another report_id another.
func TestAReportIDGivesOneRecordID(t *testing.T) {
	if handRunID("run-1") != handRunID("run-1") || handRunID("run-1") == handRunID("run-2") {
		t.Error("record ids do not follow report ids")
	}
	if err := executor.ValidateVersion(handRunID("run-1")[2:]); err != nil { // it is shown to whoever finds a lock
		t.Errorf("record id %q: %v", handRunID("run-1"), err)
	}
}
