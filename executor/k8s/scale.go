package k8s

import (
	"context"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/executor"
)

// Scale sets each workload's replicas and waits until exactly that many are ready and available (for a
// blue-green workload, the serving color's). The version does not change; the results say what runs.
// Scaling to the size a workload has changes nothing.
func (e *Executor) Scale(ctx context.Context, req executor.ScaleRequest) ([]executor.NodeResult, error) {
	if err := executor.ValidateService(req.Service); err != nil {
		return nil, err
	}
	if err := executor.ValidateWorkloads(req.Workloads); err != nil {
		return nil, err
	}
	if err := executor.ValidateReplicas(req.Replicas); err != nil {
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
	cur, err := e.getScale(ctx, target)
	if err != nil {
		return t.fail("Read the workload", notFoundHint(err, target))
	}
	if cur.Spec.Replicas != req.Replicas {
		if err := e.scaleTo(ctx, target, req.Replicas); err != nil {
			return t.fail("Scale", err)
		}
		t.step("Scale", true, fmt.Sprintf("%s: %d -> %d replicas", target.Name, cur.Spec.Replicas, req.Replicas))
	}
	r, err := e.awaitRollout(ctx, target, e.cfg.RolloutTimeout)
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

func (e *Executor) getScale(ctx context.Context, w executor.Workload) (*autoscalingv1.Scale, error) {
	if w.Kind == executor.KindStatefulSet {
		return e.c.AppsV1().StatefulSets(w.Namespace).GetScale(ctx, w.Name, metav1.GetOptions{})
	}
	return e.c.AppsV1().Deployments(w.Namespace).GetScale(ctx, w.Name, metav1.GetOptions{})
}

// scaleTo writes the replicas through the scale subresource (what `kubectl scale` does), leaving the
// pod template and so the version alone.
func (e *Executor) scaleTo(ctx context.Context, w executor.Workload, replicas int32) error {
	s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	var err error
	if w.Kind == executor.KindStatefulSet {
		_, err = e.c.AppsV1().StatefulSets(w.Namespace).UpdateScale(ctx, w.Name, s, metav1.UpdateOptions{FieldManager: fieldManager})
	} else {
		_, err = e.c.AppsV1().Deployments(w.Namespace).UpdateScale(ctx, w.Name, s, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	return notFoundHint(err, w)
}

// servingWorkload is the Deployment that takes the traffic: the workload itself, or for a blue-green
// one the color its Service selects.
func (e *Executor) servingWorkload(ctx context.Context, w executor.Workload) (executor.Workload, error) {
	_, ann, err := e.template(ctx, w)
	if err != nil {
		return w, err
	}
	svcName := ann[annBlueGreenService]
	if svcName == "" {
		return w, nil
	}
	svc, err := e.c.CoreV1().Services(w.Namespace).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		return w, serviceNotFoundHint(err, w.Namespace, svcName)
	}
	color := svc.Spec.Selector[labelColor]
	if color == "" {
		color = colorBlue
	}
	return executor.Workload{Namespace: w.Namespace, Kind: w.Kind, Name: colorName(w, color), Container: w.Container}, nil
}
