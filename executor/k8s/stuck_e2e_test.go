//go:build e2e

package k8s

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/executor"
)

// The simulated nodes fail a pod as a kubelet would when its image's tag asks (hack/kwok-stages.yaml).
// With the progress deadline at its default (600 s) and the executor's own limit at 60 s, only the
// pods' waiting reason can end these rollouts as failed: the deploy says why and puts v1 back.
func TestARolloutWhosePodsCannotStartIsRolledBackWhenAPodSaysSo(t *testing.T) {
	for _, reason := range []string{"ImagePullBackOff", "CrashLoopBackOff"} {
		t.Run(reason, func(t *testing.T) {
			k := newCluster(t)
			w := k.makeDeployment("web", "registry.example/demo:v1", nil)
			k.waitDone(w)
			res := k.deploy(w, "v2-"+strings.ToLower(reason))
			if res.State != executor.StateRolledBack || res.CurrentVersion != "v1" || !strings.Contains(res.LastError, "container app is in "+reason) {
				t.Fatalf("deploy = %+v", res)
			}
			if n := k.readyPods("registry.example/demo:v1"); n != 3 {
				t.Errorf("%d pods of v1 ready after the rollback, want 3", n)
			}
		})
	}
}

// A StatefulSet has no progress deadline: before pods were watched, a crash loop ran until nodeexec's
// own limit. The pod's reason ends it now, and the rollback restores every replica.
func TestAStatefulSetWhosePodsCrashLoopIsRolledBack(t *testing.T) {
	k := newCluster(t)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: k.ns},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(3)), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}}, Template: k.podSpec("registry.example/demo:v1"),
			PodManagementPolicy: appsv1.ParallelPodManagement},
	}
	if _, err := k.c.AppsV1().StatefulSets(k.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := executor.Workload{Namespace: k.ns, Kind: executor.KindStatefulSet, Name: "db", Container: "app"}
	k.waitDone(w)
	res := k.deploy(w, "v2-crashloopbackoff")
	if res.State != executor.StateRolledBack || res.CurrentVersion != "v1" || !strings.Contains(res.LastError, "CrashLoopBackOff") {
		t.Fatalf("deploy = %+v", res)
	}
	k.waitDone(w)
	if n := k.readyPods("registry.example/demo:v1"); n != 3 {
		t.Errorf("%d pods of v1 ready after the rollback, want 3", n)
	}
}

// Pods of an older revision that crash are what a rollout replaces: a deploy of a fix onto a workload
// whose pods crash-loop succeeds.
func TestAFixDeployedOverACrashLoopSucceeds(t *testing.T) {
	k := newCluster(t)
	w := k.makeDeployment("web", "registry.example/demo:v1-crashloopbackoff", nil)
	res := k.deploy(w, "v2")
	if res.State != executor.StateSuccess || res.CurrentVersion != "v2" {
		t.Fatalf("deploy of the fix = %+v", res)
	}
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready, want 3", n)
	}
}

// Pods that run but never pass their readiness probe have no waiting reason: the workload's progress
// deadline (here 4 s) is what tells, as before.
func TestPodsThatNeverGetReadyFailAtTheProgressDeadline(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	res := k.deploy(w, "v2-neverready")
	if res.State != executor.StateRolledBack || res.CurrentVersion != "v1" || !strings.Contains(res.LastError, "progress deadline exceeded") {
		t.Fatalf("deploy = %+v", res)
	}
	if n := k.readyPods("registry.example/demo:v1"); n != 3 {
		t.Errorf("%d pods of v1 ready after the rollback, want 3", n)
	}
}
