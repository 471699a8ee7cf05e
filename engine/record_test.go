package engine

import (
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// What a failed request leaves behind is given back as soon as the database answers, without hammering
// it: 200 ms, doubling up to 30 s, for as long as the engine runs.
func TestLeftoversAreRetriedAfter200msDoublingTo30s(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := storeBackoff.Delay(i + 1); got != w {
			t.Errorf("wait before retry %d = %s, want %s", i+1, got, w)
		}
	}
	if storeBackoff.MaxRetries != retry.Forever {
		t.Errorf("retries = %d, want until the server stops", storeBackoff.MaxRetries)
	}
}

// A rollback of a deploy goes back to what ran before it: nodeexec's record, unless it had none, or
// the node is a Kubernetes workload whose image was changed behind nodeexec's back (the cluster is
// the truth there).
func TestWhatTheExecutorFoundBeforeADeployIsWhereItsRollbackGoes(t *testing.T) {
	switched := executor.NodeResult{NodeStatus: executor.NodeStatus{CurrentVersion: "v4", PrevVersion: "v3"}, Changed: true}
	cases := []struct {
		name     string
		kind     string
		platform executor.Platform
		from     string
		r        executor.NodeResult
		want     bool
	}{
		{"no record", store.KindDeploy, executor.PlatformPhysical, "", switched, true},
		{"kubernetes, changed by hand", store.KindDeploy, executor.PlatformK8s, "v2", switched, true},
		{"physical keeps its record", store.KindDeploy, executor.PlatformPhysical, "v2", switched, false},
		{"not switched", store.KindDeploy, executor.PlatformK8s, "v2", executor.NodeResult{NodeStatus: executor.NodeStatus{CurrentVersion: "v3", PrevVersion: "v4"}, Changed: true}, false},
		{"nothing changed", store.KindDeploy, executor.PlatformK8s, "v2", executor.NodeResult{NodeStatus: switched.NodeStatus}, false},
		{"the target itself ran before", store.KindDeploy, executor.PlatformK8s, "v2", executor.NodeResult{NodeStatus: executor.NodeStatus{CurrentVersion: "v4", PrevVersion: "v4"}, Changed: true}, false},
		{"a rollback keeps its own", store.KindRollback, executor.PlatformK8s, "v2", switched, false},
	}
	for _, c := range cases {
		d := &store.Deployment{Kind: c.kind, Platform: c.platform}
		n := &store.DeploymentNode{TargetVersion: "v4", FromVersion: c.from}
		if got := foundBefore(d, n, c.r); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
