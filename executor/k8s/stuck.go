package k8s

// A rollout whose new pods cannot start is known to the kubelet long before the Deployment's progress
// deadline (600 s by default) passes, and a StatefulSet has no deadline at all. The pods say it first:
// a container waiting in ImagePullBackOff or CrashLoopBackOff. stuckWatch follows the workload's pods
// beside the rollout's own watch, and ends the wait as soon as a pod of the newest revision says so.

import (
	"context"
	"fmt"

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
// watched (then the rollout's own watch and deadline decide, as before). Which revision is the newest
// is known only once the controller has seen the spec, which may be after the pod failed: a stuck pod
// is kept, and judged again whenever the rollout's watch sees the workload change (changed).
func stuckWatch(ctx context.Context, k workloadKind, pods podAPI, sel labels.Selector, changed <-chan struct{}) string {
	for ctx.Err() == nil {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return ""
		}
		s := stuckPods{k: k, pending: map[string]stuckCandidate{}}
		for i := range list.Items {
			s.see(&list.Items[i], false)
		}
		if why := s.judge(ctx); why != "" {
			return why
		}
		pw, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: list.ResourceVersion})
		if err != nil {
			return ""
		}
		why := s.follow(ctx, pw, changed)
		pw.Stop()
		if why != "" {
			return why
		}
	}
	return ""
}

// stuckPods are the workload's pods that cannot start, of whichever revision, until one is known to be
// of the newest.
type stuckPods struct {
	k       workloadKind
	pending map[string]stuckCandidate
}

type stuckCandidate struct {
	pod *corev1.Pod
	why string
}

// see notes what a pod's status says (gone: the pod is gone).
func (s *stuckPods) see(p *corev1.Pod, gone bool) {
	why := ""
	if !gone {
		why = stuckPod(p)
	}
	if why == "" {
		delete(s.pending, p.Name)
		return
	}
	s.pending[p.Name] = stuckCandidate{pod: p, why: why}
}

// judge says why a stuck pod of the newest revision cannot start ("" while none is known to be).
func (s *stuckPods) judge(ctx context.Context) string {
	if len(s.pending) == 0 {
		return ""
	}
	newest, err := s.k.newestPods(ctx)
	if err != nil || newest == nil {
		return ""
	}
	for _, c := range s.pending {
		if newest(c.pod) {
			return "stuck: " + c.why
		}
	}
	return ""
}

// follow reads the pods' events, and the signals that the workload changed, until a pod of the newest
// revision is stuck, or the pods' watch ends ("": list again).
func (s *stuckPods) follow(ctx context.Context, pods watch.Interface, changed <-chan struct{}) string {
	for {
		select {
		case <-ctx.Done():
			return ""
		case ev, ok := <-pods.ResultChan():
			if !ok || ev.Type == watch.Error {
				return ""
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			s.see(p, ev.Type == watch.Deleted)
		case <-changed:
		}
		if why := s.judge(ctx); why != "" {
			return why
		}
	}
}

// podAPI is the part of the pods client stuckWatch uses.
type podAPI interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// newestDeploymentPods: the pods of the ReplicaSet the Deployment's revision names. Until the
// controller has seen the newest spec, that revision is an older one: nil.
func newestDeploymentPods(ctx context.Context, k *kind[*appsv1.Deployment], d *appsv1.Deployment) (func(*corev1.Pod) bool, error) {
	if d.Generation > d.Status.ObservedGeneration {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	list, err := k.c.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		rs := &list.Items[i]
		if rs.Annotations[revisionAnnotation] == d.Annotations[revisionAnnotation] && metav1.IsControlledBy(rs, d) {
			return func(p *corev1.Pod) bool { return metav1.IsControlledBy(p, rs) }, nil
		}
	}
	return nil, nil
}

// newestStatefulSetPods: the pods of the StatefulSet's update revision.
func newestStatefulSetPods(_ context.Context, _ *kind[*appsv1.StatefulSet], s *appsv1.StatefulSet) (func(*corev1.Pod) bool, error) {
	if s.Generation > s.Status.ObservedGeneration || s.Status.UpdateRevision == "" {
		return nil, nil
	}
	return func(p *corev1.Pod) bool {
		return metav1.IsControlledBy(p, s) && p.Labels[appsv1.ControllerRevisionHashLabelKey] == s.Status.UpdateRevision
	}, nil
}
