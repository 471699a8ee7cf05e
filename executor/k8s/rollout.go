package k8s

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodeexec/nodeexec/executor"
)

// Rollout is where a workload's rollout stands.
type Rollout struct {
	Done    bool
	Failed  bool
	Message string
}

// DeploymentRollout decides whether a Deployment's rollout is really done: the controller has seen
// the newest spec, every replica runs the new template and is ready and available, no old replica is
// left, and none beyond those wanted (a scale-down is done when the extra pods are gone). A rollout past its progress deadline has failed. A pure function of the object.
func DeploymentRollout(d *appsv1.Deployment) Rollout {
	if d.Generation > d.Status.ObservedGeneration {
		return Rollout{Message: "waiting for the deployment controller to see the new spec"}
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return Rollout{Failed: true, Message: fmt.Sprintf("progress deadline exceeded: %s", c.Message)}
		}
	}
	want := replicas(d.Spec.Replicas)
	s := d.Status
	switch {
	case s.UpdatedReplicas < want:
		return Rollout{Message: fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)}
	case s.Replicas > s.UpdatedReplicas:
		return Rollout{Message: fmt.Sprintf("%d old replicas still running", s.Replicas-s.UpdatedReplicas)}
	case s.Replicas > want:
		return Rollout{Message: fmt.Sprintf("%d replicas running, %d wanted: waiting for the others to stop", s.Replicas, want)}
	case s.ReadyReplicas < want:
		return Rollout{Message: fmt.Sprintf("%d of %d updated replicas ready", s.ReadyReplicas, want)}
	case s.AvailableReplicas < want:
		return Rollout{Message: fmt.Sprintf("%d of %d updated replicas available", s.AvailableReplicas, want)}
	}
	return Rollout{Done: true, Message: fmt.Sprintf("%d of %d replicas updated, ready and available", s.AvailableReplicas, want)}
}

// StatefulSetRollout decides whether a StatefulSet's rollout is done: the controller has seen the
// newest spec, every replica is ready, and the current revision is the update revision (no pod runs
// an older one). A partitioned rolling update is done when the pods above the partition are updated.
func StatefulSetRollout(s *appsv1.StatefulSet) Rollout {
	if s.Generation > s.Status.ObservedGeneration {
		return Rollout{Message: "waiting for the statefulset controller to see the new spec"}
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return Rollout{Done: true, Message: "update strategy OnDelete: pods change only when deleted"}
	}
	want := replicas(s.Spec.Replicas)
	st := s.Status
	if st.ReadyReplicas < want {
		return Rollout{Message: fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, want)}
	}
	if st.Replicas > want {
		return Rollout{Message: fmt.Sprintf("%d replicas running, %d wanted: waiting for the others to stop", st.Replicas, want)}
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
		if st.UpdatedReplicas < want-*ru.Partition {
			return Rollout{Message: fmt.Sprintf("%d of %d replicas above the partition updated", st.UpdatedReplicas, want-*ru.Partition)}
		}
		return Rollout{Done: true, Message: fmt.Sprintf("partitioned rollout: %d replicas updated", st.UpdatedReplicas)}
	}
	if st.UpdateRevision != st.CurrentRevision {
		return Rollout{Message: fmt.Sprintf("%d of %d replicas updated to revision %s", st.UpdatedReplicas, want, st.UpdateRevision)}
	}
	return Rollout{Done: true, Message: fmt.Sprintf("%d of %d replicas ready at revision %s", st.ReadyReplicas, want, st.CurrentRevision)}
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// containerIndex finds the container a deploy changes: by name, or the only/first one.
func containerIndex(spec *corev1.PodSpec, name string) (int, error) {
	if len(spec.Containers) == 0 {
		return 0, fmt.Errorf("the pod template has no containers")
	}
	if name == "" {
		return 0, nil
	}
	for i, c := range spec.Containers {
		if c.Name == name {
			return i, nil
		}
	}
	names := make([]string, len(spec.Containers))
	for i, c := range spec.Containers {
		names[i] = c.Name
	}
	return 0, fmt.Errorf("no container %q (the pod has %v)", name, names)
}

// rollingSettings are the spec fields a rolling strategy sets beside the new image (nil: none).
func rollingSettings(kind string, s executor.Strategy) map[string]any {
	out := map[string]any{}
	if s.MinReadySeconds != nil {
		out["minReadySeconds"] = *s.MinReadySeconds
	}
	if kind != executor.KindDeployment {
		return out // a StatefulSet takes only minReadySeconds (validated)
	}
	if s.ProgressDeadlineSeconds != nil {
		out["progressDeadlineSeconds"] = *s.ProgressDeadlineSeconds
	}
	ru := map[string]any{}
	if s.MaxSurge != "" {
		ru["maxSurge"] = intOrPercent(s.MaxSurge)
	}
	if s.MaxUnavailable != "" {
		ru["maxUnavailable"] = intOrPercent(s.MaxUnavailable)
	}
	if len(ru) > 0 {
		out["strategy"] = map[string]any{"type": string(appsv1.RollingUpdateDeploymentStrategyType), "rollingUpdate": ru}
	}
	return out
}

// intOrPercent is a validated "3" or "25%" as the API wants it: a number, or a percentage string.
func intOrPercent(v string) any {
	if strings.HasSuffix(v, "%") {
		return v
	}
	n, _ := strconv.Atoi(v)
	return n
}
