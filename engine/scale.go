package engine

import (
	"context"
	"fmt"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// scaleOp changes the size of Kubernetes workloads, not their version; each is to end a success.
type scaleOp struct{}

// Scale is a new scale, id, of the service's workloads (validated) to replicas each. It holds the
// workloads like a deploy, so it never runs beside a deploy to them.
func Scale(id, service string, workloads []executor.Workload, replicas *int32) *store.Deployment {
	d := pending(id, store.KindScale, executor.PlatformK8s, executor.DeployRequest{DeploymentID: id, Service: service, Workloads: workloads}, "")
	d.Replicas = replicas
	return d
}

func (scaleOp) groups(d *store.Deployment) []executor.DeployRequest { return batches(d) }

func (scaleOp) run(ctx context.Context, exec executor.Executor, d *store.Deployment, req executor.DeployRequest) ([]executor.NodeResult, error) {
	scaler, ok := exec.(executor.Scaler)
	if !ok {
		return nil, &unsupportedError{platform: d.Platform, what: "scale"}
	}
	return scaler.Scale(ctx, executor.ScaleRequest{DeploymentID: d.ID, Service: d.Service, Workloads: req.Workloads,
		Replicas: *d.Replicas, Progress: req.Progress})
}

func (scaleOp) goal() executor.State { return executor.StateSuccess }

func (scaleOp) describe(d *store.Deployment) string {
	if d.Replicas == nil {
		return deployOp{}.describe(d)
	}
	return fmt.Sprintf("scale of %s to %d replicas on %s", d.Service, *d.Replicas, targetsText(d))
}

func (scaleOp) claimed(dn *store.DeploymentNode, prior *store.Node) { fromPrior(dn, prior) }

func (scaleOp) irreversible(d *store.Deployment) string {
	return "deployment " + d.ID + " is a scale, which changed no version: scale again to undo it"
}
