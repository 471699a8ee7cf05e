package k8s

import (
	"context"
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodeexec/nodeexec/executor"
)

func TestRevisionsListsEachKindsHistoryNewestFirstAndMarksTheCurrentOne(t *testing.T) {
	tmpl := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}, {Name: "sidecar", Image: "proxy:1"}}}}
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", UID: "d1", Annotations: map[string]string{revisionAnnotation: "2"}},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl("web:v2")}}
	owner := []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}
	rs := func(name, rev, image, cause string, at time.Time) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, Labels: map[string]string{"app": "web"}, OwnerReferences: owner,
			CreationTimestamp: metav1.NewTime(at), Annotations: map[string]string{revisionAnnotation: rev, changeCauseAnnotation: cause}},
			Spec: appsv1.ReplicaSetSpec{Template: tmpl(image)}}
	}
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db", UID: "s1"},
		Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl("db:v2")}, Status: appsv1.StatefulSetStatus{UpdateRevision: "db-2"}}
	sOwner := []metav1.OwnerReference{*metav1.NewControllerRef(s, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}
	cr := func(name string, rev int64, image string) *appsv1.ControllerRevision {
		return &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, Labels: map[string]string{"app": "web"}, OwnerReferences: sOwner},
			Revision: rev, Data: runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + image + `"}]},"$patch":"replace"}}}`)}}
	}
	stranger := rs("other-1", "7", "other:v1", "", t0) // same labels, not the Deployment's
	stranger.OwnerReferences = nil
	c := fake.NewClientset(d, s, rs("web-1", "1", "web:v1", "first", t0), rs("web-2", "2", "web:v2", "", t0.Add(time.Hour)), stranger,
		cr("db-1", 1, "db:v1"), cr("db-2", 2, "db:v2"))
	e, err := New(Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	got, err := e.Revisions(ctx, executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := []executor.Revision{
		{Revision: 2, Image: "web:v2", Version: "v2", Created: t0.Add(time.Hour), Current: true},
		{Revision: 1, Image: "web:v1", Version: "v1", ChangeCause: "first", Created: t0},
	}
	if len(got) != len(want) {
		t.Fatalf("revisions = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("revision[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	sidecar, err := e.Revisions(ctx, executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web", Container: "sidecar"})
	if err != nil || sidecar[0].Image != "proxy:1" {
		t.Errorf("sidecar revisions = %+v, %v; want the sidecar's image", sidecar, err)
	}

	sts, err := e.Revisions(ctx, executor.Workload{Namespace: "prod", Kind: executor.KindStatefulSet, Name: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[0].Revision != 2 || sts[0].Image != "db:v2" || !sts[0].Current || sts[1].Image != "db:v1" || sts[1].Current {
		t.Errorf("StatefulSet revisions = %+v, want 2 (db:v2, current) then 1 (db:v1)", sts)
	}

	_, err = e.Revisions(ctx, executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "gone"})
	if !errors.Is(err, executor.ErrNoSuchWorkload) {
		t.Errorf("a missing workload: err = %v, want ErrNoSuchWorkload", err)
	}
	_, err = e.Revisions(ctx, executor.Workload{Namespace: "prod", Kind: executor.KindDeployment, Name: "web", Container: "nope"})
	var v *executor.ValidationError
	if !errors.As(err, &v) || v.Field != "container" {
		t.Errorf("a container the workload lacks: err = %v, want a ValidationError on container", err)
	}
}
