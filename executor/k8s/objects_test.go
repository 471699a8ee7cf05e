package k8s

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodeexec/nodeexec/executor"
)

func configMap(rv string, data map[string]any, edit func(*unstructured.Unstructured)) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "cfg", "namespace": "shop"}, "data": data}}
	u.SetResourceVersion(rv)
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: fieldManager, Operation: metav1.ManagedFieldsOperationApply,
		Time: &metav1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}})
	if edit != nil {
		edit(u)
	}
	return u
}

func TestAnApplysOutcomeTellsCreatedFromConfiguredFromUnchanged(t *testing.T) {
	v1 := map[string]any{"mode": "blue"}
	v2 := map[string]any{"mode": "green"}
	statusWrite := func(u *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(u.Object, "3", "status", "observed")
		mf := u.GetManagedFields()
		mf[0].Time = &metav1.Time{Time: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
		u.SetManagedFields(mf)
	}
	for _, c := range []struct {
		name          string
		before, after *unstructured.Unstructured
		dryRun        bool
		want          executor.ObjectOutcome
	}{
		{"none before: created", nil, configMap("5", v1, nil), false, executor.ObjectCreated},
		{"none before, dry run: would create", nil, configMap("", v1, nil), true, executor.ObjectWouldCreate},
		{"the same resourceVersion: unchanged", configMap("5", v1, nil), configMap("5", v1, nil), false, executor.ObjectUnchanged},
		{"a new resourceVersion and new data: configured", configMap("5", v1, nil), configMap("6", v2, nil), false, executor.ObjectConfigured},
		{"a new resourceVersion (the apply is conditional on the one read): configured", configMap("5", v1, nil), configMap("6", v1, nil), false, executor.ObjectConfigured},
		{"dry run, the same but a status and a manager's time: unchanged", configMap("5", v1, nil), configMap("5", v1, statusWrite), true, executor.ObjectUnchanged},
		{"dry run, same content: unchanged", configMap("5", v1, nil), configMap("5", v1, nil), true, executor.ObjectUnchanged},
		{"dry run, new data (the resourceVersion stays): would configure", configMap("5", v1, nil), configMap("5", v2, nil), true, executor.ObjectWouldConfigure},
		{"dry run, a new label: would configure", configMap("5", v1, nil), configMap("5", v1, func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{"app": "web"}) }), true, executor.ObjectWouldConfigure},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := applyOutcome(c.before, c.after, c.dryRun); got != c.want {
				t.Errorf("= %s, want %s", got, c.want)
			}
		})
	}
}
