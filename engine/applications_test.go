package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// A deployment of several that a dead process left in flight ends at the next start from its
// applications: the one the dead run had finished as its record says, the one it held from what its
// node runs, and the one it never recorded failed, saying nothing ran for it.
func TestReconcileEndsADeploymentOfSeveralFromItsApplications(t *testing.T) {
	records := storetest.Open(t)
	ctx := context.Background()
	app := func(id, service string, state executor.State) *store.Deployment {
		return &store.Deployment{ID: id, Kind: store.KindDeploy, Service: service, Version: "v2", Platform: executor.PlatformPhysical,
			State: state, CreatedAt: time.Now().UTC(), Deploy: &executor.DeployRequest{PhysicalDeploy: executor.PhysicalDeploy{Nodes: []executor.Node{{Host: "10.0.0.1"}}}},
			Nodes: []store.DeploymentNode{{Host: "10.0.0.1", State: state, TargetVersion: "v2", FromVersion: "v1"}}}
	}
	done, held, never := app("d-a", "api", executor.StateSuccess), app("d-b", "web", executor.StateDeploying), app("d-c", "jobs", executor.StatePending)
	parent := Applications("d-p", store.KindDeploy, executor.PlatformPhysical, []*store.Deployment{done, held, never})
	parent.State = executor.StateDeploying
	if _, _, err := records.CreateDeployment(ctx, parent); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*store.Deployment{done, held} {
		if _, err := records.ClaimAll(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, _, err := records.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := records.Finish(ctx, done.ID, executor.NodeStatus{Service: "api", Host: "10.0.0.1", State: executor.StateSuccess, CurrentVersion: "v2"}); err != nil {
		t.Fatal(err)
	}

	rex := &recoveringExecutor{runs: map[string]string{"10.0.0.1": "v2"}}
	e := New(Config{Executor: rex, Store: records, Logger: quietLogger()})
	defer e.Shutdown()
	if err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := records.Deployment(ctx, parent.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []executor.State{executor.StateSuccess, executor.StateSuccess, executor.StateFailed}
	for i, a := range got.Applications {
		if a.State != want[i] {
			t.Errorf("application %s = %s, want %s", a.Service, a.State, want[i])
		}
	}
	if got.State != executor.StateFailed || got.FinishedAt == nil || !strings.Contains(got.Error, "jobs failed") ||
		!strings.Contains(got.Applications[2].Error, "before this application was recorded") {
		t.Errorf("deployment of several = %+v", got)
	}
	evs, _ := records.Events(ctx, parent.ID, 0, 100)
	if len(evs) == 0 || evs[len(evs)-1].State != executor.StateFailed || evs[len(evs)-1].Type != store.EventDeployment {
		t.Errorf("events = %+v", evs)
	}
	if left, _ := records.InFlight(ctx); len(left) != 0 {
		t.Errorf("still in flight: %v", left)
	}
}

// The state of a deployment of several follows its applications'.
func TestADeploymentOfSeveralIsInTheStateItsApplicationsMake(t *testing.T) {
	for _, c := range []struct {
		apps []executor.State
		want executor.State
	}{
		{[]executor.State{executor.StatePending, executor.StatePending}, executor.StatePending},
		{[]executor.State{executor.StateDeploying, executor.StatePending}, executor.StateDeploying},
		{[]executor.State{executor.StateSuccess, executor.StatePending}, executor.StateDeploying},
		{[]executor.State{executor.StateSuccess, executor.StateSuccess}, executor.StateSuccess},
		{[]executor.State{executor.StateSuccess, executor.StateRolledBack}, executor.StateFailed},
		{[]executor.State{executor.StateFailed, executor.StateDeploying}, executor.StateDeploying},
	} {
		d := &store.Deployment{}
		for _, st := range c.apps {
			d.Applications = append(d.Applications, store.Application{State: st})
		}
		if got := d.ApplicationsState(executor.StateSuccess); got != c.want {
			t.Errorf("%v = %s, want %s", c.apps, got, c.want)
		}
	}
}
