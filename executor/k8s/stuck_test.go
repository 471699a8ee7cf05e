package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodeexec/nodeexec/executor"
)

func waiting(name, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "why"}}}
}

func TestStuckPodNamesTheContainerAndReasonsThatWaitingDoesNotFix(t *testing.T) {
	pod := func(init, main []corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Status: corev1.PodStatus{InitContainerStatuses: init, ContainerStatuses: main}}
	}
	crash := waiting("app", "CrashLoopBackOff")
	crash.RestartCount = 3
	crash.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2}
	gone := pod(nil, []corev1.ContainerStatus{waiting("app", "ImagePullBackOff")})
	gone.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	cases := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"image pull back-off", pod(nil, []corev1.ContainerStatus{{Name: "side"}, waiting("app", "ImagePullBackOff")}), "pod web-1: container app is in ImagePullBackOff (why)"},
		{"crash loop", pod(nil, []corev1.ContainerStatus{crash}), "pod web-1: container app is in CrashLoopBackOff (why), restarts 3, last exit code 2"},
		{"init container", pod([]corev1.ContainerStatus{waiting("migrate", "CrashLoopBackOff")}, nil), "init container migrate is in CrashLoopBackOff"},
		{"missing config", pod(nil, []corev1.ContainerStatus{waiting("app", "CreateContainerConfigError")}), "CreateContainerConfigError"},
		{"a first failed pull may pass", pod(nil, []corev1.ContainerStatus{waiting("app", "ErrImagePull")}), ""},
		{"still creating", pod(nil, []corev1.ContainerStatus{waiting("app", "ContainerCreating")}), ""},
		{"running", pod(nil, []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}), ""},
		{"being deleted", gone, ""},
	}
	for _, c := range cases {
		got := stuckPod(c.pod)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Only a pod of the newest revision ends a rollout: one of the ReplicaSet the Deployment's revision
// names, or of the StatefulSet's update revision, and only once the controller has seen the spec.
func TestOnlyAPodOfTheNewestRevisionCounts(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", UID: "d1", Generation: 2, Annotations: map[string]string{revisionAnnotation: "2"}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2}}
	rs := func(name, rev string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, UID: types.UID("rs-" + name), Annotations: map[string]string{revisionAnnotation: rev},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}}}
	}
	podOf := func(owner metav1.Object, kind string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: owner.GetName() + "-x", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, appsv1.SchemeGroupVersion.WithKind(kind))}}}
	}
	newRS, oldRS := rs("web-new", "2"), rs("web-old", "1")
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	newRS.Labels, oldRS.Labels = d.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db", UID: "s1", Generation: 3},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 3, UpdateRevision: "db-7"}}
	e, err := New(Config{Client: fake.NewClientset(d, newRS, oldRS, s)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	web, _ := e.kindOf(executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web"})
	db, _ := e.kindOf(executor.Workload{Namespace: "prod", Kind: executor.KindStatefulSet, Name: "db"})
	cases := []struct {
		name string
		k    workloadKind
		pod  *corev1.Pod
		want bool
	}{
		{"the new ReplicaSet's pod", web, podOf(newRS, "ReplicaSet", nil), true},
		{"the old ReplicaSet's pod", web, podOf(oldRS, "ReplicaSet", nil), false},
		{"an orphan pod", web, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lone"}}, false},
		{"the update revision's pod", db, podOf(s, "StatefulSet", map[string]string{appsv1.ControllerRevisionHashLabelKey: "db-7"}), true},
		{"an older revision's pod", db, podOf(s, "StatefulSet", map[string]string{appsv1.ControllerRevisionHashLabelKey: "db-6"}), false},
	}
	for _, c := range cases {
		newest, err := c.k.newestPods(ctx)
		if err != nil || newest == nil || newest(c.pod) != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Before the controller has seen the newest spec, the revision it names is an older one.
	d.Generation = 3
	e2, _ := New(Config{Client: fake.NewClientset(d, newRS)})
	web2, _ := e2.kindOf(executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web"})
	if newest, err := web2.newestPods(ctx); newest != nil || err != nil {
		t.Errorf("newest pods known before the controller saw the spec (%v)", err)
	}
}

// The rollout's wait ends failed, with the pod's reason, as soon as a pod of the newest revision
// cannot start, though the Deployment itself says nothing of it. Here the pod fails before the
// controller has recorded that it saw the new spec (KWOK is that fast): it is judged when it has.
func TestWaitRolloutEndsWhenANewPodCannotStart(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", UID: "d1", Generation: 2, Annotations: map[string]string{revisionAnnotation: "2"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: sel}, Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web-2", UID: "rs2", Labels: sel.MatchLabels, Annotations: map[string]string{revisionAnnotation: "2"},
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web-2-a", Labels: sel.MatchLabels,
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("app", "ImagePullBackOff")}}}
	c := fake.NewClientset(d, rs, pod)
	e, _ := New(Config{Client: c})
	k, _ := e.kindOf(executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web"})
	done := make(chan string, 1)
	go func() {
		_, err := awaitRollout(context.Background(), k, 30*time.Second)
		done <- fmt.Sprint(err)
	}()
	select {
	case msg := <-done:
		t.Fatalf("the wait ended before the controller saw the spec: %s", msg)
	case <-time.After(200 * time.Millisecond): // nothing may end it yet; not a sync, a window for a wrong end
	}
	d.Status.ObservedGeneration = 2
	if _, err := c.AppsV1().Deployments("prod").UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if msg := <-done; !strings.Contains(msg, "stuck: pod web-2-a: container app is in ImagePullBackOff") {
		t.Errorf("rollout = %s", msg)
	}
}
