package ansible

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// The callback's lines, a sub-step's and a plain task's, as the steps the server records.
func TestProgressLinesBecomeSteps(t *testing.T) {
	for _, c := range []struct {
		name, line string
		want       executor.Step
	}{
		{"a failed sub-step with its output and timing",
			`{"host": "h1", "task": "Check the HTTP health endpoint", "action": "nodeexec_release", "status": "failed", "changed": false,
			  "msg": "Status code was 503 and not [200]", "stdout": "out", "stderr": "err", "start": "2026-12-06T03:10:00.123Z", "duration": 0.412}`,
			executor.Step{Name: "Check the HTTP health endpoint", Action: "nodeexec_release", Failed: true, Message: "Status code was 503 and not [200]",
				Stdout: "out", Stderr: "err", Started: time.Date(2026, 12, 6, 3, 10, 0, 123e6, time.UTC), Duration: 412 * time.Millisecond}},
		{"a changed sub-step",
			`{"host": "h1", "task": "Unpack the release", "action": "nodeexec_release", "status": "changed", "changed": true, "msg": "", "start": "2026-12-06T03:10:00.000Z", "duration": 0.03}`,
			executor.Step{Name: "Unpack the release", Action: "nodeexec_release", Changed: true, Started: time.Date(2026, 12, 6, 3, 10, 0, 0, time.UTC), Duration: 30 * time.Millisecond}},
		{"a skipped sub-step",
			`{"host": "h1", "task": "Download the package and check its SHA256", "action": "nodeexec_release", "status": "skipped", "changed": false, "msg": "already there", "start": "2026-12-06T03:10:00.000Z", "duration": 0}`,
			executor.Step{Name: "Download the package and check its SHA256", Action: "nodeexec_release", Skipped: true, Message: "already there", Started: time.Date(2026, 12, 6, 3, 10, 0, 0, time.UTC)}},
		{"a plain task of a role, without timing",
			`{"host": "h1", "task": "nodeexec_release : Copy the package to the node", "action": "ansible.builtin.copy", "status": "ok", "changed": true, "msg": ""}`,
			executor.Step{Name: "Copy the package to the node", Action: "ansible.builtin.copy", Changed: true}},
		{"an unreachable host",
			`{"host": "h1", "task": "Prepare the release", "action": "nodeexec_release", "status": "unreachable", "changed": false, "msg": "Failed to connect", "start": "bad", "duration": 1.5}`,
			executor.Step{Name: "Prepare the release", Action: "nodeexec_release", Failed: true, Message: "Failed to connect", Duration: 1500 * time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l progressLine
			if err := json.Unmarshal([]byte(c.line), &l); err != nil {
				t.Fatal(err)
			}
			if got := l.step(); got != c.want {
				t.Errorf("step:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
