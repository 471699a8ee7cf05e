package k8s

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/executor"
)

// Live reads a workload as the cluster has it now (the image of its first container, the version read
// from it, replicas, ready replicas, whether its rollout is done): the truth for a Kubernetes node,
// also for one nodeexec never deployed. kind "" tries a Deployment of that name, then a StatefulSet.
func (e *Executor) Live(ctx context.Context, namespace, name, kind string) (executor.LiveWorkload, error) {
	if !validNamespace(namespace) {
		return executor.LiveWorkload{}, &executor.ValidationError{Field: "host", Reason: fmt.Sprintf("%q is not a namespace name", namespace)}
	}
	if kind == "" || kind == executor.KindDeployment {
		d, err := e.c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			live := liveOf(executor.KindDeployment, &d.Spec.Template.Spec, d.Annotations, DeploymentRollout(d).Done)
			live.Replicas, live.ReadyReplicas = replicasOf(d.Spec.Replicas), d.Status.ReadyReplicas
			return live, nil
		}
		if kind != "" || !isNotFound(err) {
			return executor.LiveWorkload{}, liveErr(err, executor.KindDeployment, namespace, name)
		}
	}
	if kind != "" && kind != executor.KindStatefulSet {
		return executor.LiveWorkload{}, &executor.ValidationError{Field: "kind", Reason: fmt.Sprintf("%q is not Deployment or StatefulSet", kind)}
	}
	s, err := e.c.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if kind == "" && isNotFound(err) {
			return executor.LiveWorkload{}, fmt.Errorf("%w: no Deployment or StatefulSet %s/%s", executor.ErrNoWorkload, namespace, name)
		}
		return executor.LiveWorkload{}, liveErr(err, executor.KindStatefulSet, namespace, name)
	}
	live := liveOf(executor.KindStatefulSet, &s.Spec.Template.Spec, s.Annotations, StatefulSetRollout(s).Done)
	live.Replicas, live.ReadyReplicas = replicasOf(s.Spec.Replicas), s.Status.ReadyReplicas
	return live, nil
}

// liveErr names a workload the cluster does not have (executor.ErrNoWorkload), or says why it could not be read.
func liveErr(err error, kind, namespace, name string) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: no %s %s/%s", executor.ErrNoWorkload, kind, namespace, name)
	}
	return fmt.Errorf("read %s %s/%s: %w", kind, namespace, name, err)
}

func liveOf(kind string, spec *corev1.PodSpec, ann map[string]string, done bool) executor.LiveWorkload {
	live := executor.LiveWorkload{Kind: kind, RolloutDone: done}
	if len(spec.Containers) > 0 {
		live.Image = spec.Containers[0].Image
		live.Version = versionOf(live.Image, ann)
	}
	return live
}

// replicasOf is a workload's wanted replicas (the API's default of 1 when unset).
func replicasOf(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}
