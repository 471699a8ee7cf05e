package k8s

// A rollout whose new pods cannot start is known to the kubelet long before the Deployment's progress
// deadline (600 s by default) passes, and a StatefulSet has no deadline at all. The pods say it first:
// a container waiting in ImagePullBackOff or CrashLoopBackOff. stuckWatch follows the workload's pods
// beside the rollout's own watch, and ends the wait as soon as a pod of the newest revision says so.

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// stuckReasons are the waiting reasons a container does not get past by waiting: the kubelet has
// already tried again and backs off (…BackOff), it never can (InvalidImageName, ErrImageNeverPull),
// or the pod's configuration names what is not there (CreateContainerConfigError: a missing ConfigMap,
// Secret or key). A first ErrImagePull is not among them: a registry hiccup passes, and a pull that
// keeps failing turns into ImagePullBackOff seconds later.
var stuckReasons = map[string]bool{
	"ImagePullBackOff":           true,
	"ErrImageNeverPull":          true,
	"InvalidImageName":           true,
	"CrashLoopBackOff":           true,
	"CreateContainerConfigError": true,
}

// stuckPod says why a pod cannot become ready, from its containers' (and init containers') waiting
// reasons; "" when nothing says so.
func stuckPod(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return ""
	}
	for _, group := range []struct {
		what     string
		statuses []corev1.ContainerStatus
	}{{"init container", p.Status.InitContainerStatuses}, {"container", p.Status.ContainerStatuses}} {
		for _, s := range group.statuses {
			w := s.State.Waiting
			if w == nil || !stuckReasons[w.Reason] {
				continue
			}
			why := fmt.Sprintf("pod %s: %s %s is in %s", p.Name, group.what, s.Name, w.Reason)
			if w.Message != "" {
				why += " (" + w.Message + ")"
			}
			if t := s.LastTerminationState.Terminated; t != nil && w.Reason == "CrashLoopBackOff" {
				why += fmt.Sprintf(", restarts %d, last exit code %d", s.RestartCount, t.ExitCode)
			}
			return why
		}
	}
	return ""
}

// stuckWatch follows the pods that sel picks and returns why one of the workload's newest revision
// cannot become ready, as soon as its status says so; "" when ctx ends first or the pods cannot be
// watched (then the rollout's own watch and deadline decide, as before).
func stuckWatch(ctx context.Context, k workloadKind, pods podAPI, sel labels.Selector) string {
	for ctx.Err() == nil {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return ""
		}
		for i := range list.Items {
			if why := stuckOfNewest(ctx, k, &list.Items[i]); why != "" {
				return why
			}
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: list.ResourceVersion})
		if err != nil {
			return ""
		}
		why := followPods(ctx, k, w)
		w.Stop()
		if why != "" {
			return why
		}
	}
	return ""
}

// followPods reads pod events until one of the newest revision is stuck, or the watch ends ("").
func followPods(ctx context.Context, k workloadKind, w watch.Interface) string {
	for {
		select {
		case <-ctx.Done():
			return ""
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return "" // closed, or too old a resource version: list again
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type != watch.Deleted {
				if why := stuckOfNewest(ctx, k, p); why != "" {
					return why
				}
			}
		}
	}
}

// stuckOfNewest is stuckPod for a pod of the workload's newest revision: a crash-looping pod of an
// older one is what the rollout replaces, not a reason to stop it.
func stuckOfNewest(ctx context.Context, k workloadKind, p *corev1.Pod) string {
	why := stuckPod(p)
	if why == "" {
		return ""
	}
	if newest, err := k.ofNewestRevision(ctx, p); err != nil || !newest {
		return ""
	}
	return "stuck: " + why
}

// podAPI is the part of the pods client stuckWatch uses.
type podAPI interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// deploymentPodIsNewest: the pod's ReplicaSet is the Deployment's, and carries the Deployment's
// revision. Until the controller has seen the newest spec, no pod is known to be of it.
func deploymentPodIsNewest(ctx context.Context, k *kind[*appsv1.Deployment], d *appsv1.Deployment, p *corev1.Pod) (bool, error) {
	if d.Generation > d.Status.ObservedGeneration {
		return false, nil
	}
	owner := metav1.GetControllerOf(p)
	if owner == nil || owner.Kind != "ReplicaSet" {
		return false, nil
	}
	rs, err := k.c.AppsV1().ReplicaSets(d.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	want, err := strconv.ParseInt(d.Annotations[revisionAnnotation], 10, 64)
	if err != nil {
		return false, nil
	}
	got, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	return err == nil && got == want && metav1.IsControlledBy(rs, d), nil
}

// statefulSetPodIsNewest: the pod runs the StatefulSet's update revision.
func statefulSetPodIsNewest(_ context.Context, _ *kind[*appsv1.StatefulSet], s *appsv1.StatefulSet, p *corev1.Pod) (bool, error) {
	if s.Generation > s.Status.ObservedGeneration || s.Status.UpdateRevision == "" {
		return false, nil
	}
	return metav1.IsControlledBy(p, s) && p.Labels[appsv1.ControllerRevisionHashLabelKey] == s.Status.UpdateRevision, nil
}
