package engine

import (
	"context"
	"fmt"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// restartOp restarts a service on physical nodes and verifies it as a deploy does, keeping the version
// each node runs; each node is to end a success.
type restartOp struct{}

// Restart is a new restart of req (validated), run batch by batch; its id is req.DeploymentID.
func Restart(req executor.RestartRequest, batch store.Batch) *store.Deployment {
	return pending(&store.Deployment{ID: req.DeploymentID, Kind: store.KindRestart, Service: req.Service,
		Platform: executor.PlatformPhysical, Batch: batch, Restart: &req}, "")
}

func (restartOp) groups(d *store.Deployment) []group { return batches(d, "") }

func (restartOp) run(ctx context.Context, exec executor.Executor, d *store.Deployment, g group, progress executor.ProgressFunc) ([]executor.NodeResult, error) {
	restarter, ok := exec.(executor.Restarter)
	if !ok {
		return nil, &unsupportedError{platform: d.Platform, what: "restart"}
	}
	if d.Restart == nil {
		return nil, fmt.Errorf("restart %s: the record has no restart request", d.ID)
	}
	req := *d.Restart
	req.Nodes, req.Progress = g.Nodes, progress
	return restarter.Restart(ctx, req)
}

func (restartOp) goal() executor.State { return executor.StateSuccess }

func (restartOp) describe(d *store.Deployment) string {
	return fmt.Sprintf("restart of %s on %s", d.Service, targetsText(d))
}

// claimed: a restart keeps the version a node runs, which is its target.
func (restartOp) claimed(dn *store.DeploymentNode, prior *store.Node) {
	fromPrior(dn, prior)
	dn.TargetVersion = prior.CurrentVersion
}

func (restartOp) irreversible(d *store.Deployment) string {
	return "deployment " + d.ID + " is a restart, which changed no version: there is nothing to roll back"
}
