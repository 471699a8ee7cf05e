//go:build e2e

package server

// A workload's rollout history and a rollback to a revision through the API, on the real control plane.

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// A Deployment and a StatefulSet made at v1, deployed v2 and v3 through the API: the history lists the
// three revisions with their images, the newest current; a rollback to revision 99 is refused with
// nothing recorded or changed; a rollback to revision 1 brings v1 back, its pods ready.
func TestK8sRevisionsAndARollbackToTheFirstRevision(t *testing.T) {
	f, client, ns := kubeFixture(t, "rev", 2)
	ctx := context.Background()
	dbBesideWeb(t, client, ns)
	for _, w := range []struct{ kind, name string }{{"Deployment", "web"}, {"StatefulSet", "db"}} {
		t.Run(w.kind, func(t *testing.T) {
			path := fmt.Sprintf("/api/v1/workloads/%s/%s/%s/", ns, w.kind, w.name)
			for _, v := range []string{"v2", "v3"} {
				body := fmt.Sprintf(`{"service":%q,"version":%q,"platform":"k8s","image":"registry.example/web:%s",`+
					`"workloads":[{"namespace":%q,"kind":%q,"name":%q}]}`, w.name, v, v, ns, w.kind, w.name)
				code, acc := f.do(t, "POST", "/api/v1/deployments", body)
				if code != http.StatusAccepted {
					t.Fatalf("deploy %s = %d %v", v, code, acc)
				}
				if end := f.waitState(t, acc["id"].(string)); end["state"] != "success" {
					t.Fatalf("deploy %s = %v", v, end)
				}
			}

			code, list := f.do(t, "GET", path+"revisions?container=app", "")
			if code != http.StatusOK {
				t.Fatalf("revisions = %d %v", code, list)
			}
			revs := list["revisions"].([]any)
			var got []string
			for _, r := range revs {
				r := r.(map[string]any)
				got = append(got, fmt.Sprintf("%v:%v:%v", r["revision"], r["image"], r["current"]))
				if r["created"] == "" || r["created"] == "0001-01-01T00:00:00Z" {
					t.Errorf("revision without its creation time: %v", r)
				}
			}
			want := "[3:registry.example/web:v3:true 2:registry.example/web:v2:false 1:registry.example/web:v1:false]"
			if fmt.Sprint(got) != want {
				t.Fatalf("revisions = %v, want %s", got, want)
			}

			deployments := func() int {
				_, l := f.do(t, "GET", "/api/v1/deployments?service="+w.name, "")
				return len(l["deployments"].([]any))
			}
			before := deployments()
			code, refused := f.do(t, "POST", path+"rollback", fmt.Sprintf(`{"service":%q,"to_revision":99}`, w.name))
			if code != http.StatusConflict || refused["code"] != "no_such_revision" || refused["error"] != fmt.Sprintf("%s %s/%s: no revision 99 (there are [3 2 1])", w.kind, ns, w.name) {
				t.Errorf("rollback to revision 99 = %d %v", code, refused)
			}
			if n := deployments(); n != before {
				t.Errorf("the refused rollback was recorded: %d deployments, were %d", n, before)
			}
			if img, _ := workloadState(ctx, t, client, ns, w.kind, w.name); img != "registry.example/web:v3" {
				t.Errorf("image after the refused rollback = %s, want v3 still", img)
			}

			code, acc := f.do(t, "POST", path+"rollback", fmt.Sprintf(`{"service":%q,"to_revision":1,"requested_by":"rev-e2e"}`, w.name))
			if code != http.StatusAccepted {
				t.Fatalf("rollback to revision 1 = %d %v", code, acc)
			}
			end := f.waitState(t, acc["id"].(string))
			node := end["nodes"].([]any)[0].(map[string]any)
			if end["state"] != "rolled_back" || end["kind"] != "rollback" || end["version"] != "v1" || node["target_version"] != "v1" || node["current_version"] != "v1" {
				t.Fatalf("rollback to revision 1 = %v", end)
			}
			img, ready := workloadState(ctx, t, client, ns, w.kind, w.name)
			if img != "registry.example/web:v1" || !ready {
				t.Errorf("after the rollback: image %s, all pods ready and updated %v", img, ready)
			}
			_, after := f.do(t, "GET", path+"revisions", "")
			if newest := after["revisions"].([]any)[0].(map[string]any); newest["image"] != "registry.example/web:v1" || newest["current"] != true {
				t.Errorf("newest revision after the rollback = %v", newest)
			}
		})
	}
}

// workloadState is the workload's image and whether every pod it wants runs its template, ready.
func workloadState(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, kind, name string) (string, bool) {
	t.Helper()
	if kind == "Deployment" {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := *d.Spec.Replicas
		return d.Spec.Template.Spec.Containers[0].Image, d.Status.ObservedGeneration >= d.Generation &&
			d.Status.UpdatedReplicas == want && d.Status.ReadyReplicas == want && d.Status.Replicas == want
	}
	s, err := client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := *s.Spec.Replicas
	return s.Spec.Template.Spec.Containers[0].Image, s.Status.ObservedGeneration >= s.Generation &&
		s.Status.UpdatedReplicas == want && s.Status.ReadyReplicas == want && s.Status.UpdateRevision == s.Status.CurrentRevision
}
