package k8s

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodeexec/nodeexec/executor"
)

func TestKindOfReadsTheWorkloadThroughItsOwnKindAndNamesAnUnknownOne(t *testing.T) {
	tmpl := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	}
	c := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web"}, Spec: appsv1.DeploymentSpec{Template: tmpl("web:v1")}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db"}, Spec: appsv1.StatefulSetSpec{Template: tmpl("db:v7")}},
	)
	e, err := New(Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, kind, workload string
		image                string // the image read, when the read succeeds
		err                  string // what the error says, when it does not
	}{
		{"a Deployment is read as one", executor.KindDeployment, "web", "web:v1", ""},
		{"a StatefulSet is read as one", executor.KindStatefulSet, "db", "db:v7", ""},
		{"a StatefulSet asked for as a Deployment is not found", executor.KindDeployment, "db", "", "Deployment prod/db not found"},
		{"a Deployment asked for as a StatefulSet is not found", executor.KindStatefulSet, "web", "", "StatefulSet prod/web not found"},
		{"an unknown kind names the kinds there are", "DaemonSet", "web", "", `unknown kind "DaemonSet": the Kubernetes executor works on a Deployment or a StatefulSet`},
		{"no kind is an unknown kind", "", "web", "", `unknown kind ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, cur, err := e.read(context.Background(), executor.Workload{Namespace: "prod", Kind: tc.kind, Name: tc.workload})
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want one saying %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && cur.template.Spec.Containers[0].Image != tc.image:
				t.Errorf("image = %s, want %s", cur.template.Spec.Containers[0].Image, tc.image)
			}
		})
	}
}
