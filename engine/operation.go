package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// operation is what one kind of deployment does. The engine asks a deployment's operation, never its
// Kind: what each kind means lives in one type (deploy.go, rollback.go, scale.go, restart.go, objects.go).
type operation interface {
	// groups are the executor calls a run makes, in turn, each for some of the deployment's targets.
	groups(d *store.Deployment) []group
	// run hands one group to the executor, its progress seeing each step live.
	run(ctx context.Context, exec executor.Executor, d *store.Deployment, g group, progress executor.ProgressFunc) ([]executor.NodeResult, error)
	// goal is the state each node is to reach.
	goal() executor.State
	// describe says what d does, in a line: "deploy of web v2 to 3 nodes".
	describe(d *store.Deployment) string
	// claimed completes a node once its claim is held: prior is its record before the claim.
	claimed(dn *store.DeploymentNode, prior *store.Node)
	// irreversible says why a deployment of this kind has nothing to roll back ("" when it may).
	irreversible(d *store.Deployment) string
}

// group is one executor call of a run: some of the deployment's targets, and the version they are to
// run (a deploy's; for a rollback, the one these targets go back to; none for a scale or a restart).
type group struct {
	store.Targets
	version string
}

// only is the group for just the targets hosts names.
func (g group) only(hosts []string) group {
	return group{Targets: g.Targets.Only(hosts), version: g.version}
}

// unsupportedError is an operation the executor of its platform cannot carry out: nothing ran, so
// no executor run is counted and no node gets a result.
type unsupportedError struct {
	platform executor.Platform
	what     string
}

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("the %s executor cannot %s", e.platform, e.what)
}

// operationOf is the operation of a deployment's kind. A kind this build does not know runs as a
// deploy, as it always has.
func operationOf(kind string) operation {
	switch kind {
	case store.KindRollback:
		return rollbackOp{}
	case store.KindScale:
		return scaleOp{}
	case store.KindRestart:
		return restartOp{}
	case store.KindApply, store.KindDelete:
		return objectsOp{}
	case store.KindForget:
		return forgetOp{}
	case store.KindManual:
		return manualOp{}
	}
	return deployOp{}
}

// goal is the state each node of d is to reach.
func goal(d *store.Deployment) executor.State { return operationOf(d.Kind).goal() }

// describe says what a deployment does, in a line.
func describe(d *store.Deployment) string { return operationOf(d.Kind).describe(d) }

// targetsText names what a deployment runs on: "3 nodes", or "2 workloads" on Kubernetes.
func targetsText(d *store.Deployment) string {
	if d.Platform == executor.PlatformK8s {
		return fmt.Sprintf("%d workloads", len(d.Nodes))
	}
	return fmt.Sprintf("%d nodes", len(d.Nodes))
}

// batches cuts d's targets into its batches (store.Batch), in turn, each to run version.
func batches(d *store.Deployment, version string) []group {
	targets := d.Targets()
	var out []group
	for _, batch := range d.Batch.Split(targets.Hosts()) {
		out = append(out, group{Targets: targets.Only(batch), version: version})
	}
	return out
}

// fromPrior keeps what a node ran before the claim, which a rollback goes back to.
func fromPrior(dn *store.DeploymentNode, prior *store.Node) { dn.FromVersion = prior.CurrentVersion }

// pending makes d a new deployment, about to be submitted: its targets its nodes, each pending and to
// reach target.
func pending(d *store.Deployment, target string) *store.Deployment {
	d.State, d.CreatedAt = executor.StatePending, time.Now().UTC()
	for _, h := range d.Targets().Hosts() {
		d.Nodes = append(d.Nodes, store.DeploymentNode{Host: h, State: executor.StatePending, TargetVersion: target})
	}
	return d
}
