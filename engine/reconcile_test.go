package engine

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

func quietLogger() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// noExecutor runs nothing: a test that needs one of its operations embeds it and adds the operation.
type noExecutor struct{}

func (noExecutor) Deploy(context.Context, executor.DeployRequest) ([]executor.NodeResult, error) {
	return nil, errors.New("not in this test")
}

func (noExecutor) Rollback(context.Context, executor.RollbackRequest) ([]executor.NodeResult, error) {
	return nil, errors.New("not in this test")
}

func (noExecutor) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

// recoveringExecutor answers a recovery from what each node "runs".
type recoveringExecutor struct {
	noExecutor
	runs      map[string]string // host -> version it runs
	recovered []executor.RecoverRequest
}

func (r *recoveringExecutor) Recover(_ context.Context, req executor.RecoverRequest) ([]executor.NodeResult, error) {
	r.recovered = append(r.recovered, req)
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		v := r.runs[n.Host]
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service,
			CurrentVersion: v, PrevVersion: "v1", State: executor.StateSuccess}, RunningVersion: v})
	}
	return out, nil
}

// A deployment left deploying by a dead process ends with what its nodes really run: the node that got
// the new version is a success, the one still on the old is failed, saying so; nothing recorded is lost.
func TestReconcileFinishesALostDeploymentFromTheNodes(t *testing.T) {
	records := storetest.Open(t)
	ctx := context.Background()
	inFlight(t, records, "d-lost", "", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	d, err := records.Deployment(ctx, "d-lost")
	if err != nil {
		t.Fatal(err)
	}
	// The dead run had finished 10.0.0.3 and recorded two events before it died.
	if _, err := records.Finish(ctx, d.ID, executor.NodeStatus{Service: "demo", Host: "10.0.0.3", State: executor.StateSuccess, CurrentVersion: "v2"}); err != nil {
		t.Fatal(err)
	}
	if err := records.AppendEvents(ctx, []store.Event{{DeploymentID: d.ID, Seq: 1, Type: store.EventDeployment, State: executor.StatePending},
		{DeploymentID: d.ID, Seq: 2, Type: store.EventDeployment, State: executor.StateDeploying}}); err != nil {
		t.Fatal(err)
	}

	rex := &recoveringExecutor{runs: map[string]string{"10.0.0.1": "v2", "10.0.0.2": "v1"}}
	e := New(Config{Executor: rex, Store: records, Logger: quietLogger()})
	defer e.Shutdown()
	if err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rex.recovered) != 1 || len(rex.recovered[0].Nodes) != 2 || rex.recovered[0].DeploymentID != "d-lost" {
		t.Fatalf("recover calls = %+v; want one for the two held nodes", rex.recovered)
	}
	got, err := records.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != executor.StateFailed || !strings.Contains(got.Error, "interrupted") || got.FinishedAt == nil {
		t.Errorf("deployment = %+v", got)
	}
	want := map[string]executor.State{"10.0.0.1": executor.StateSuccess, "10.0.0.2": executor.StateFailed, "10.0.0.3": executor.StateSuccess}
	for host, st := range want {
		dn := got.Node(host)
		n, err := records.Node(ctx, "demo", host)
		if err != nil || dn.State != st || n.State != st {
			t.Errorf("%s: in deployment %+v, record %+v (%v); want %s", host, dn, n, err, st)
		}
	}
	if dn := got.Node("10.0.0.2"); !strings.Contains(dn.LastError, "runs v1") {
		t.Errorf("10.0.0.2 error = %q", dn.LastError)
	}
	evs, _ := records.Events(ctx, d.ID, 0, 100)
	if len(evs) < 5 || evs[0].Seq != 1 || evs[len(evs)-1].Type != store.EventDeployment || evs[len(evs)-1].State != executor.StateFailed {
		t.Errorf("events after reconcile = %+v", evs)
	}
	// Nothing left in flight: a second start has nothing to do.
	if left, _ := records.InFlight(ctx); len(left) != 0 {
		t.Errorf("still in flight: %v", left)
	}
}

// What a node says it runs decides the lost run's outcome there: the target, both recorded and running,
// is the goal reached; anything else is failed, saying what the node runs.
func TestJudgeLostTellsTheOutcomeFromWhatTheNodeRuns(t *testing.T) {
	d := &store.Deployment{Kind: store.KindDeploy, Nodes: []store.DeploymentNode{{Host: "h1", TargetVersion: "v2", FromVersion: "v1"}}}
	back := &store.Deployment{Kind: store.KindRollback, Nodes: []store.DeploymentNode{{Host: "h1", TargetVersion: "v1", FromVersion: "v2"}}}
	node := func(current, running, lastErr string, st executor.State) executor.NodeResult {
		return executor.NodeResult{NodeStatus: executor.NodeStatus{Host: "h1", CurrentVersion: current, State: st, LastError: lastErr}, RunningVersion: running}
	}
	cases := []struct {
		name    string
		d       *store.Deployment
		r       executor.NodeResult
		state   executor.State
		changed bool
		err     string
	}{
		{"runs the target", d, node("v2", "v2", "", executor.StateSuccess), executor.StateSuccess, true, ""},
		{"a rollback that got there", back, node("v1", "v1", "", executor.StateSuccess), executor.StateRolledBack, true, ""},
		{"recorded but not running", d, node("v2", "v1", "", executor.StateSuccess), executor.StateFailed, false,
			"interrupted: nodeexec stopped during the run; the node runs v1 (its record: current v2, previous nothing)"},
		{"still on the old version", d, node("v1", "v1", "", executor.StateSuccess), executor.StateFailed, false,
			"interrupted: nodeexec stopped during the run; the node runs v1 (its record: current v1, previous nothing)"},
		{"did not answer", d, node("", "", "unreachable", executor.StateFailed), executor.StateFailed, false,
			"interrupted, and the node did not say what it runs: unreachable"},
	}
	for _, c := range cases {
		got := judgeLost(c.d, c.r)
		if got.State != c.state || got.Changed != c.changed || got.LastError != c.err {
			t.Errorf("%s: %s, changed %v, %q; want %s, %v, %q", c.name, got.State, got.Changed, got.LastError, c.state, c.changed, c.err)
		}
	}
}
