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
func Scale(id, service string, workloads []executor.Workload, replicas int32) *store.Deployment {
	return pending(&store.Deployment{ID: id, Kind: store.KindScale, Service: service, Platform: executor.PlatformK8s,
		Scale: &executor.ScaleRequest{DeploymentID: id, Service: service, Workloads: workloads, Replicas: replicas}}, "")
}

func (scaleOp) groups(d *store.Deployment) []group { return batches(d, "") }

func (scaleOp) run(ctx context.Context, exec executor.Executor, d *store.Deployment, g group, progress executor.ProgressFunc) ([]executor.NodeResult, error) {
	scaler, ok := exec.(executor.Scaler)
	if !ok {
		return nil, &unsupportedError{platform: d.Platform, what: "scale"}
	}
	if d.Scale == nil {
		return nil, fmt.Errorf("scale %s: the record has no scale request", d.ID)
	}
	req := *d.Scale
	req.Workloads, req.Progress = g.Workloads, progress
	return scaler.Scale(ctx, req)
}

func (scaleOp) goal() executor.State { return executor.StateSuccess }

func (scaleOp) describe(d *store.Deployment) string {
	if d.Scale == nil {
		return deployOp{}.describe(d)
	}
	return fmt.Sprintf("scale of %s to %d replicas on %s", d.Service, d.Scale.Replicas, targetsText(d))
}

func (scaleOp) claimed(dn *store.DeploymentNode, prior *store.Node) { fromPrior(dn, prior) }

func (scaleOp) irreversible(d *store.Deployment) string {
	return "deployment " + d.ID + " is a scale, which changed no version: scale again to undo it"
}
