package engine

import (
	"context"
	"fmt"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// deployOp puts a version on nodes or workloads, batch by batch; each node is to end a success.
type deployOp struct{}

// Deploy is a new deployment of req (validated) on platform, run batch by batch; its id is
// req.DeploymentID.
func Deploy(req executor.DeployRequest, platform executor.Platform, batch store.Batch) *store.Deployment {
	return pending(&store.Deployment{ID: req.DeploymentID, Kind: store.KindDeploy, Service: req.Service, Version: req.Version,
		Platform: platform, Batch: batch, Deploy: &req}, req.Version)
}

func (deployOp) groups(d *store.Deployment) []group {
	if d.Deploy == nil {
		return batches(d, "")
	}
	return batches(d, d.Deploy.Version)
}

func (deployOp) run(ctx context.Context, exec executor.Executor, d *store.Deployment, g group, progress executor.ProgressFunc) ([]executor.NodeResult, error) {
	if d.Deploy == nil {
		return nil, fmt.Errorf("deploy %s: the record has no deploy request", d.ID)
	}
	req := *d.Deploy
	req.Nodes, req.Workloads, req.Progress = g.Nodes, g.Workloads, progress
	return exec.Deploy(ctx, req)
}

func (deployOp) goal() executor.State { return executor.StateSuccess }

func (deployOp) describe(d *store.Deployment) string {
	return fmt.Sprintf("%s of %s %s to %s", d.Kind, d.Service, d.Version, targetsText(d))
}

func (deployOp) claimed(dn *store.DeploymentNode, prior *store.Node) { fromPrior(dn, prior) }

func (deployOp) irreversible(*store.Deployment) string { return "" }
