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
	d := pending(req.DeploymentID, store.KindRestart, executor.PlatformPhysical,
		executor.DeployRequest{DeploymentID: req.DeploymentID, Service: req.Service, Nodes: req.Nodes, Health: req.Health}, "")
	d.Batch = batch
	return d
}

func (restartOp) groups(d *store.Deployment) []executor.DeployRequest { return batches(d) }

func (restartOp) run(ctx context.Context, exec executor.Executor, d *store.Deployment, req executor.DeployRequest) ([]executor.NodeResult, error) {
	restarter, ok := exec.(executor.Restarter)
	if !ok {
		return nil, &unsupportedError{platform: d.Platform, what: "restart"}
	}
	return restarter.Restart(ctx, executor.RestartRequest{DeploymentID: d.ID, Service: d.Service, Nodes: req.Nodes,
		Health: req.Health, Progress: req.Progress})
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
