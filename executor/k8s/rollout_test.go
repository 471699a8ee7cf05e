package k8s

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

func deployment(gen, observed int64, want int32, st appsv1.DeploymentStatus) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: ptr(want)}, Status: st}
	d.Status.ObservedGeneration = observed
	return d
}

func TestDeploymentRolloutIsDoneOnlyWhenEveryReplicaIsNewReadyAndAvailable(t *testing.T) {
	deadline := []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing."}}
	cases := []struct {
		name         string
		d            *appsv1.Deployment
		done, failed bool
	}{
		{"controller has not seen the spec", deployment(2, 1, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}), false, false},
		{"not all updated", deployment(2, 2, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3}), false, false},
		{"old replicas left", deployment(2, 2, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}), false, false},
		{"updated but not ready", deployment(2, 2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2}), false, false},
		{"ready but not available", deployment(2, 2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 2}), false, false},
		{"done", deployment(2, 2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}), true, false},
		{"scaled to zero", deployment(2, 2, 0, appsv1.DeploymentStatus{}), true, false},
		{"scaling down, extra pods still running", deployment(3, 3, 1, appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 5, ReadyReplicas: 5, AvailableReplicas: 5}), false, false},
		{"scaled down", deployment(3, 3, 1, appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}), true, false},
		{"default one replica, done", &appsv1.Deployment{Status: appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}}, true, false},
		{"progress deadline exceeded", deployment(2, 2, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3, Conditions: deadline}), false, true},
	}
	for _, c := range cases {
		r := DeploymentRollout(c.d)
		if r.Done != c.done || r.Failed != c.failed || r.Message == "" {
			t.Errorf("%s: %+v, want done=%v failed=%v", c.name, r, c.done, c.failed)
		}
	}
}

func statefulSet(gen, observed int64, want int32, partition *int32, st appsv1.StatefulSetStatus) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.StatefulSetSpec{Replicas: ptr(want)}, Status: st}
	if partition != nil {
		s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: partition}}
	}
	s.Status.ObservedGeneration = observed
	return s
}

func TestStatefulSetRolloutIsDoneWhenTheCurrentRevisionIsTheUpdateRevision(t *testing.T) {
	cases := []struct {
		name string
		s    *appsv1.StatefulSet
		done bool
	}{
		{"controller has not seen the spec", statefulSet(3, 2, 3, nil, appsv1.StatefulSetStatus{ReadyReplicas: 3, CurrentRevision: "a", UpdateRevision: "a"}), false},
		{"not all ready", statefulSet(3, 3, 3, nil, appsv1.StatefulSetStatus{ReadyReplicas: 2, UpdatedReplicas: 3, CurrentRevision: "b", UpdateRevision: "b"}), false},
		{"scaling down, extra pods still running", statefulSet(3, 3, 1, nil, appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 3, CurrentRevision: "b", UpdateRevision: "b"}), false},
		{"scaled down", statefulSet(3, 3, 1, nil, appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 1, CurrentRevision: "b", UpdateRevision: "b"}), true},
		{"old revision still current", statefulSet(3, 3, 3, nil, appsv1.StatefulSetStatus{ReadyReplicas: 3, UpdatedReplicas: 2, CurrentRevision: "a", UpdateRevision: "b"}), false},
		{"done", statefulSet(3, 3, 3, nil, appsv1.StatefulSetStatus{ReadyReplicas: 3, UpdatedReplicas: 3, CurrentRevision: "b", UpdateRevision: "b"}), true},
		{"partition: pods above it not yet updated", statefulSet(3, 3, 3, ptr(int32(1)), appsv1.StatefulSetStatus{ReadyReplicas: 3, UpdatedReplicas: 1, CurrentRevision: "a", UpdateRevision: "b"}), false},
		{"partition: pods above it updated", statefulSet(3, 3, 3, ptr(int32(1)), appsv1.StatefulSetStatus{ReadyReplicas: 3, UpdatedReplicas: 2, CurrentRevision: "a", UpdateRevision: "b"}), true},
	}
	for _, c := range cases {
		if r := StatefulSetRollout(c.s); r.Done != c.done || r.Message == "" {
			t.Errorf("%s: %+v, want done=%v", c.name, r, c.done)
		}
	}
	onDelete := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}}
	if r := StatefulSetRollout(onDelete); !r.Done {
		t.Errorf("OnDelete: %+v", r)
	}
}

func TestImageVersions(t *testing.T) {
	for image, want := range map[string]string{
		"registry.example:5000/team/app:v2": "v2", "app": "latest", "app:1.2.3": "1.2.3",
		"reg.example/app@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "sha256-0123456789ab",
	} {
		if got := imageVersion(image); got != want {
			t.Errorf("imageVersion(%s) = %s, want %s", image, got, want)
		}
	}
	for image, want := range map[string]string{
		"registry.example:5000/team/app:v2": "registry.example:5000/team/app:v1", "app": "app:v1",
		"reg.example/app@sha256:abc": "reg.example/app:v1",
	} {
		if got := withTag(image, "v1"); got != want {
			t.Errorf("withTag(%s) = %s, want %s", image, got, want)
		}
	}
}

func TestPickRevision(t *testing.T) {
	revs := []int64{1, 2, 3, 4}
	for _, c := range []struct {
		current, want, got int64
		err                bool
	}{{4, 0, 3, false}, {4, 2, 2, false}, {4, 4, 0, true}, {4, 9, 0, true}, {1, 0, 0, true}} {
		got, err := pickRevision(append([]int64(nil), revs...), c.current, c.want)
		if got != c.got || (err != nil) != c.err {
			t.Errorf("current %d want %d: got %d, %v", c.current, c.want, got, err)
		}
	}
}

// A workload's version is nodeexec's record while its image is the one nodeexec set; an image set by
// someone else (kubectl set image) is read from its tag. Workloads deployed before nodeexec recorded the
// image it set are taken at their word.
func TestVersionOfAnImageSetBehindNodeexecsBackIsTheImagesTag(t *testing.T) {
	for _, tc := range []struct {
		image string
		ann   map[string]string
		want  string
	}{
		{"reg/app:1.2.0", map[string]string{annVersion: "v1", annImage: "reg/app:1.2.0"}, "v1"},
		{"reg/app:1.3.0", map[string]string{annVersion: "v1", annImage: "reg/app:1.2.0"}, "1.3.0"},
		{"reg/app:1.3.0", map[string]string{annVersion: "v1"}, "v1"},
		{"reg/app:1.3.0", nil, "1.3.0"},
	} {
		if got := versionOf(tc.image, tc.ann); got != tc.want {
			t.Errorf("versionOf(%s, %v) = %s, want %s", tc.image, tc.ann, got, tc.want)
		}
	}
}
