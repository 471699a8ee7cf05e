package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

func nodesOf(hosts ...string) []executor.Node {
	var out []executor.Node
	for _, h := range hosts {
		out = append(out, executor.Node{Host: h})
	}
	return out
}

// Each kind says what its nodes are to reach, what it does in a line, and which executor calls it
// makes; a kind this build does not know (or a document without one) runs as a deploy.
func TestEachKindOfDeploymentKnowsItsGoalItsLineAndItsCalls(t *testing.T) {
	web := []executor.Workload{{Namespace: "prod", Kind: "Deployment", Name: "web"}, {Namespace: "prod", Kind: "Deployment", Name: "api"}}
	deploy := Deploy(executor.DeployRequest{DeploymentID: "d-1", Service: "demo", Version: "v2", PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodesOf("h1", "h2", "h3")}},
		executor.PlatformPhysical, store.Batch{Size: 2})
	restart := Restart(executor.RestartRequest{DeploymentID: "d-2", Service: "demo", Nodes: nodesOf("h1", "h2")}, store.Batch{})
	scale := Scale("d-3", "web", web, 3)
	rollback := &store.Deployment{ID: "d-4", Kind: store.KindRollback, Service: "demo", Version: "v2", Platform: executor.PlatformPhysical,
		Rollback: &executor.RollbackRequest{Service: "demo", PhysicalRollback: executor.PhysicalRollback{Nodes: nodesOf("h1", "h2", "h3")}},
		Nodes:    []store.DeploymentNode{{Host: "h1", TargetVersion: "v1"}, {Host: "h2", TargetVersion: "v0"}, {Host: "h3", TargetVersion: "v1"}}}
	toRevision := ToRevision("d-6", "web", web[0], 1, "v1")
	unknown := &store.Deployment{ID: "d-5", Kind: "", Service: "demo", Version: "v2", Platform: executor.PlatformPhysical,
		Deploy: &executor.DeployRequest{Service: "demo", Version: "v2", PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodesOf("h1")}}, Nodes: []store.DeploymentNode{{Host: "h1"}}}
	cases := []struct {
		name   string
		d      *store.Deployment
		goal   executor.State
		line   string
		groups string // each call's hosts@version
	}{
		{"deploy", deploy, executor.StateSuccess, "deploy of demo v2 to 3 nodes", "[[h1 h2]@v2 [h3]@v2]"},
		{"restart", restart, executor.StateSuccess, "restart of demo on 2 nodes", "[[h1 h2]@]"},
		{"scale", scale, executor.StateSuccess, "scale of web to 3 replicas on 2 workloads", "[[prod/web prod/api]@]"},
		{"rollback", rollback, executor.StateRolledBack, "rollback of demo v2 to 3 nodes", "[[h1 h3]@v1 [h2]@v0]"},
		{"rollback to a revision", toRevision, executor.StateRolledBack, "rollback of web to revision 1 (v1) on 1 workloads", "[[prod/web]@]"},
		{"unknown kind", unknown, executor.StateSuccess, " of demo v2 to 1 nodes", "[[h1]@v2]"},
	}
	for _, c := range cases {
		if got := goal(c.d); got != c.goal {
			t.Errorf("%s: goal = %s, want %s", c.name, got, c.goal)
		}
		if got := describe(c.d); got != c.line {
			t.Errorf("%s: line = %q, want %q", c.name, got, c.line)
		}
		var groups []string
		for _, g := range operationOf(c.d.Kind).groups(c.d) {
			groups = append(groups, fmt.Sprintf("%v@%s", g.Hosts(), g.version))
		}
		if got := fmt.Sprint(groups); got != c.groups {
			t.Errorf("%s: groups = %s, want %s", c.name, got, c.groups)
		}
	}
}

// Once its nodes are held, each node remembers what it ran; a restart also keeps it as its target.
func TestAClaimedNodeRemembersWhatItRan(t *testing.T) {
	prior := &store.Node{CurrentVersion: "v1"}
	for _, c := range []struct {
		kind, target, want string
	}{
		{store.KindDeploy, "v2", "v2"},
		{store.KindRollback, "v0", "v0"},
		{store.KindScale, "", ""},
		{store.KindRestart, "", "v1"},
	} {
		dn := store.DeploymentNode{Host: "h1", TargetVersion: c.target}
		operationOf(c.kind).claimed(&dn, prior)
		if dn.FromVersion != "v1" || dn.TargetVersion != c.want {
			t.Errorf("%s: from %q, target %q; want v1, %q", c.kind, dn.FromVersion, dn.TargetVersion, c.want)
		}
	}
}

// A rollback takes back only the nodes a deployment switched from an earlier version, each to what it
// ran; a deployment that changed no version, or no such node, has nothing to roll back.
func TestRollbackOfTakesBackOnlyTheNodesADeploymentSwitched(t *testing.T) {
	orig := &store.Deployment{ID: "d-1", Kind: store.KindDeploy, Service: "demo", Version: "v2", Platform: executor.PlatformPhysical,
		Deploy: &executor.DeployRequest{
			Service:        "demo",
			PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodesOf("switched", "failed", "fresh", "same", "other"), Health: executor.HealthCheck{HTTPPort: 8080}},
		},
		Nodes: []store.DeploymentNode{
			{Host: "switched", TargetVersion: "v2", FromVersion: "v1", CurrentVersion: "v2"},
			{Host: "failed", TargetVersion: "v2", FromVersion: "v1", CurrentVersion: "v1"},
			{Host: "fresh", TargetVersion: "v2", CurrentVersion: "v2"},
			{Host: "same", TargetVersion: "v2", FromVersion: "v2", CurrentVersion: "v2"},
			{Host: "other", TargetVersion: "v2", FromVersion: "v0", CurrentVersion: "v2"},
		}}
	d, err := RollbackOf(orig, "d-9")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "d-9" || d.Kind != store.KindRollback || d.RollbackOf != "d-1" || d.Version != "v2" || d.State != executor.StatePending ||
		d.Rollback == nil || d.Rollback.DeploymentID != "d-9" || d.Rollback.Health.HTTPPort != 8080 || fmt.Sprint(d.Targets().Hosts()) != "[switched other]" {
		t.Errorf("rollback = %+v", d)
	}
	if fmt.Sprint(d.Nodes) != fmt.Sprint([]store.DeploymentNode{{Host: "switched", State: executor.StatePending, TargetVersion: "v1"},
		{Host: "other", State: executor.StatePending, TargetVersion: "v0"}}) {
		t.Errorf("rollback nodes = %+v", d.Nodes)
	}

	none := *orig
	none.Nodes = orig.Nodes[1:4]
	scale := &store.Deployment{ID: "d-2", Kind: store.KindScale}
	restart := &store.Deployment{ID: "d-3", Kind: store.KindRestart}
	for _, c := range []struct {
		d    *store.Deployment
		want string
	}{
		{&none, "deployment d-1 changed no node that has an earlier version to go back to"},
		{scale, "deployment d-2 is a scale, which changed no version: scale again to undo it"},
		{restart, "deployment d-3 is a restart, which changed no version: there is nothing to roll back"},
	} {
		var nothing *NothingToRollBackError
		if _, err := RollbackOf(c.d, "d-9"); !errors.As(err, &nothing) || err.Error() != c.want {
			t.Errorf("rollback of %s = %v, want %q", c.d.ID, err, c.want)
		}
	}
}

// An executor that cannot carry out an operation runs nothing and says so.
func TestAnExecutorThatCannotScaleOrRestartSaysSo(t *testing.T) {
	for _, d := range []*store.Deployment{Scale("d-1", "web", nil, 3),
		Restart(executor.RestartRequest{DeploymentID: "d-2", Service: "demo"}, store.Batch{})} {
		_, err := operationOf(d.Kind).run(context.Background(), noExecutor{}, d, group{Targets: d.Targets()}, nil)
		var unsupported *unsupportedError
		if !errors.As(err, &unsupported) || err.Error() != "the "+string(d.Platform)+" executor cannot "+d.Kind {
			t.Errorf("%s on an executor without it: %v", d.Kind, err)
		}
	}
}

// A rollback to a revision is one executor call that names the revision and no version: a version
// would make the executor retag the current image instead of bringing the revision's template back.
func TestARollbackToARevisionAsksTheExecutorForTheRevisionNotAVersion(t *testing.T) {
	w := executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web"}
	d := ToRevision("d-7", "web", w, 3, "v1")
	if len(d.Nodes) != 1 || d.Nodes[0].Host != "prod/web" || d.Nodes[0].TargetVersion != "v1" {
		t.Fatalf("nodes = %+v, want prod/web to end on v1", d.Nodes)
	}
	rec, op := &rollbackRecorder{}, rollbackOp{}
	for _, g := range op.groups(d) {
		if _, err := op.run(context.Background(), rec, d, g, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.got) != 1 {
		t.Fatalf("%d executor calls, want 1", len(rec.got))
	}
	if r := rec.got[0]; r.ToRevision != 3 || r.ToVersion != "" || len(r.Workloads) != 1 || r.Workloads[0] != w || r.DeploymentID != "d-7" {
		t.Errorf("request = %+v, want revision 3 of prod/web, no version", r)
	}
}

// rollbackRecorder is an executor that records the rollbacks it is asked for.
type rollbackRecorder struct {
	executor.Executor
	got []executor.RollbackRequest
}

func (r *rollbackRecorder) Rollback(_ context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	r.got = append(r.got, req)
	return nil, nil
}
