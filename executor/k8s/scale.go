package k8s

import (
	"context"
	"fmt"

	"github.com/nodeexec/nodeexec/executor"
)

// Scale sets each workload's replicas and waits until exactly that many are ready and available (for a
// blue-green workload, the serving color's). The version does not change; the results say what runs.
// Scaling to the size a workload has changes nothing.
func (e *Executor) Scale(ctx context.Context, req executor.ScaleRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return e.each(req.Workloads, func(w executor.Workload) executor.NodeResult {
		return e.scaleOne(ctx, req, w)
	}), nil
}

func (e *Executor) scaleOne(ctx context.Context, req executor.ScaleRequest, w executor.Workload) executor.NodeResult {
	t := e.track(w, req.Service, req.DeploymentID, "", req.Progress)
	target, err := e.servingWorkload(ctx, w)
	if err != nil {
		return t.fail("Read the workload", err)
	}
	cur, err := target.replicas(ctx)
	if err != nil {
		return t.fail("Read the workload", err)
	}
	if cur != req.Replicas {
		if err := target.scaleTo(ctx, req.Replicas); err != nil {
			return t.fail("Scale", err)
		}
		t.step("Scale", true, fmt.Sprintf("%s: %d -> %d replicas", target.workload().Name, cur, req.Replicas))
	}
	r, err := awaitRollout(ctx, target, e.cfg.RolloutTimeout)
	if err != nil {
		return t.fail("Wait for the replicas", err)
	}
	t.step("Wait for the replicas", false, r.Message)
	if err := e.status(ctx, w, &t.res); err != nil {
		return t.fail("Read the workload", err)
	}
	t.log.WithField("replicas", req.Replicas).Info("scaled")
	return t.res
}

// servingWorkload is the Deployment that takes the traffic: the workload itself, or for a blue-green
// one the color its Service selects.
func (e *Executor) servingWorkload(ctx context.Context, w executor.Workload) (workloadKind, error) {
	k, cur, err := e.read(ctx, w)
	if err != nil {
		return nil, err
	}
	svcName := cur.annotations[annBlueGreenService]
	if svcName == "" {
		return k, nil
	}
	_, color, err := e.blueGreen(w, svcName, nil).serving(ctx)
	if err != nil {
		return nil, err
	}
	if color == "" {
		color = colorBlue
	}
	return k.named(colorName(w, color)), nil
}
