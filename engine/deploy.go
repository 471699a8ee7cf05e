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
	d := pending(req.DeploymentID, store.KindDeploy, platform, req, req.Version)
	d.Version, d.Batch = req.Version, batch
	return d
}

func (deployOp) groups(d *store.Deployment) []executor.DeployRequest { return batches(d) }

func (deployOp) run(ctx context.Context, exec executor.Executor, _ *store.Deployment, req executor.DeployRequest) ([]executor.NodeResult, error) {
	return exec.Deploy(ctx, req)
}

func (deployOp) goal() executor.State { return executor.StateSuccess }

func (deployOp) describe(d *store.Deployment) string {
	return fmt.Sprintf("%s of %s %s to %s", d.Kind, d.Service, d.Version, targetsText(d))
}

func (deployOp) claimed(dn *store.DeploymentNode, prior *store.Node) { fromPrior(dn, prior) }

func (deployOp) irreversible(*store.Deployment) string { return "" }
