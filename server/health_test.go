package server

import (
	"testing"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

func TestEveryStateHasAStatusWordAndAPhase(t *testing.T) {
	words := map[executor.State]api.DeploymentStatus{executor.StatePending: "pending", executor.StateDeploying: "running",
		executor.StateSuccess: "succeeded", executor.StateFailed: "failed", executor.StateRolledBack: "rolled_back", "paused": "unknown"}
	for st, want := range words {
		if got := statusOf(st); got != want {
			t.Errorf("statusOf(%q) = %q, want %q", st, got, want)
		}
	}
	for _, st := range executor.States {
		if recordPhase(st) == phaseUnknown {
			t.Errorf("state %s has no phase", st)
		}
	}
}

// A deployment is healthy when pod_status is and nothing is unhealthy or unread; a check that does not
// apply is named in the message without changing the verdict.
func TestJudgeSaysWhyInOneSentence(t *testing.T) {
	pods := healthy(api.CheckPodStatus, "3/3 nodes running v2")
	cases := []struct {
		name    string
		checks  []verdict
		healthy bool
		message string
	}{
		{"every check healthy", []verdict{pods, healthy(api.CheckHTTPEndpoint, "HTTP 200 OK on 3/3 nodes")}, true, "All replicas are healthy"},
		{"a check that does not apply", []verdict{pods, unknown(api.CheckResourceUsage, false, "no metrics source")}, true,
			"All replicas are healthy; not checked: resource_usage (no metrics source)"},
		{"a check whose read failed", []verdict{pods, unknown(api.CheckProcess, true, "could not read 1/3 units: h3: timeout")}, false,
			"could not read 1/3 units: h3: timeout"},
		{"unhealthy checks, joined", []verdict{unhealthy(api.CheckPodStatus, "2/3 nodes running v2: h3: demo.service is failed"),
			unhealthy(api.CheckProcess, "2/3 units active and running v2: h3: demo.service is failed")}, false,
			"2/3 nodes running v2: h3: demo.service is failed; 2/3 units active and running v2: h3: demo.service is failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if ok, msg := judge(c.checks); ok != c.healthy || msg != c.message {
				t.Errorf("judge = %v %q, want %v %q", ok, msg, c.healthy, c.message)
			}
		})
	}
}
