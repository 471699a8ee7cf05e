package k8s

import (
	"context"
	"fmt"
	"reflect"

	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodeexec/nodeexec/executor"
)

var (
	_ executor.ManifestApplier = (*Executor)(nil)
	_ executor.SelectorDeleter = (*Executor)(nil)
	_ executor.PodLister       = (*Executor)(nil)
)

// PlanManifest reads a manifest and finds every object's kind in the cluster, changing nothing.
func (e *Executor) PlanManifest(ctx context.Context, namespace, manifest string) ([]executor.Object, error) {
	if e.dyn == nil {
		return nil, errNoDynamic
	}
	plan, err := e.plan(namespace, []byte(manifest))
	if err != nil {
		return nil, err
	}
	out := make([]executor.Object, 0, len(plan))
	for _, p := range plan {
		out = append(out, objectOf(p.id, executor.ObjectPending, ""))
	}
	return out, nil
}

// ApplyManifest server-side-applies the manifest's objects in order (as Apply does), saying of each
// whether it was created, configured or left unchanged; with DryRun the API server runs every
// admission and validation and stores nothing, and the words are would_create, would_configure or
// unchanged. The first object the API server refuses is failed, and those after it not applied.
func (e *Executor) ApplyManifest(ctx context.Context, req executor.ApplyRequest) ([]executor.Object, error) {
	if e.dyn == nil {
		return nil, errNoDynamic
	}
	if err := executor.ValidateNamespace(req.Namespace); err != nil {
		return nil, err
	}
	plan, err := e.plan(req.Namespace, []byte(req.Manifest))
	if err != nil {
		return nil, err
	}
	out := make([]executor.Object, 0, len(plan))
	stopped := false
	for _, p := range plan {
		if stopped {
			out = append(out, objectOf(p.id, executor.ObjectNotApplied, ""))
			continue
		}
		o := e.applyOne(ctx, p, req.DryRun)
		stopped = o.Outcome == executor.ObjectFailed
		out = append(out, o)
		e.log.WithFields(logrus.Fields{"object": p.id.String(), "outcome": o.Outcome, "dry_run": req.DryRun}).Info("apply")
	}
	return out, nil
}

// maxApplyConflicts bounds the tries of one object's apply that another writer beat to it.
const maxApplyConflicts = 5

// applyOne applies one object, reading it first to tell a creation from a change. The apply is
// conditional on the resourceVersion it read, so what it answers is its own change and no one
// else's (a controller's status write in between is a conflict, and it reads and tries again).
func (e *Executor) applyOne(ctx context.Context, p planned, dryRun bool) executor.Object {
	opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var err error
	for range maxApplyConflicts {
		var before, after *unstructured.Unstructured
		before, err = p.res.Get(ctx, p.obj.GetName(), metav1.GetOptions{})
		if isNotFound(err) {
			before, err = nil, nil
		}
		if err != nil {
			return objectOf(p.id, executor.ObjectFailed, "read it before applying: "+err.Error())
		}
		obj := p.obj.DeepCopy()
		if before != nil {
			obj.SetResourceVersion(before.GetResourceVersion())
		}
		after, err = p.res.Apply(ctx, obj.GetName(), obj, opts)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return objectOf(p.id, executor.ObjectFailed, err.Error())
		}
		return objectOf(p.id, applyOutcome(before, after, dryRun), "")
	}
	return objectOf(p.id, executor.ObjectFailed, fmt.Sprintf("others kept changing it: %d tries conflicted (%v)", maxApplyConflicts, err))
}

// applyOutcome says what an apply did to an object, from the object it was conditional on (nil: there
// was none) and the API server's answer. A new resourceVersion is the apply's own write. A dry run
// never moves it: what it would change is told by comparing the objects.
func applyOutcome(before, after *unstructured.Unstructured, dryRun bool) executor.ObjectOutcome {
	switch {
	case before == nil && dryRun:
		return executor.ObjectWouldCreate
	case before == nil:
		return executor.ObjectCreated
	case !dryRun && before.GetResourceVersion() == after.GetResourceVersion():
		return executor.ObjectUnchanged
	case !dryRun:
		return executor.ObjectConfigured
	case reflect.DeepEqual(ownContent(before), ownContent(after)):
		return executor.ObjectUnchanged
	}
	return executor.ObjectWouldConfigure
}

// ownContent is an object without its status, its resourceVersion and the times of its field managers'
// writes: what an apply may change.
func ownContent(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "status")
	c.SetResourceVersion("")
	mf := c.GetManagedFields()
	for i := range mf {
		mf[i].Time = nil
	}
	c.SetManagedFields(mf)
	return c.Object
}

// DeleteSelected deletes the Deployments, StatefulSets, Services, ConfigMaps and Secrets of the
// namespace that the selector picks (as DeleteByLabels; their pods go with them, in the background),
// saying of each whether it was deleted; with DryRun it names them and deletes nothing. An object the
// API server refuses is failed and the others are still deleted. The error is for a run that could
// not go on (a bad selector, a listing the API server refused), with the objects handled before it.
func (e *Executor) DeleteSelected(ctx context.Context, req executor.DeleteRequest) ([]executor.Object, error) {
	if e.dyn == nil {
		return nil, errNoDynamic
	}
	if err := executor.ValidateNamespace(req.Namespace); err != nil {
		return nil, err
	}
	if err := executor.ValidateDeleteSelector(req.Selector); err != nil {
		return nil, err
	}
	background := metav1.DeletePropagationBackground
	out := []executor.Object{}
	for _, k := range deletable {
		res := e.dyn.Resource(k.gvr).Namespace(req.Namespace)
		list, err := res.List(ctx, metav1.ListOptions{LabelSelector: req.Selector})
		if err != nil {
			return out, fmt.Errorf("list %ss: %w", k.kind, err)
		}
		for _, item := range list.Items {
			id := Object{Kind: k.kind, Namespace: req.Namespace, Name: item.GetName()}
			if req.DryRun {
				out = append(out, objectOf(id, executor.ObjectWouldDelete, ""))
				continue
			}
			err := res.Delete(ctx, item.GetName(), metav1.DeleteOptions{PropagationPolicy: &background})
			if err != nil && !isNotFound(err) {
				out = append(out, objectOf(id, executor.ObjectFailed, err.Error()))
				continue
			}
			out = append(out, objectOf(id, executor.ObjectDeleted, ""))
		}
	}
	e.log.WithFields(logrus.Fields{"namespace": req.Namespace, "selector": req.Selector, "objects": len(out), "dry_run": req.DryRun}).Info("delete by selector")
	return out, nil
}

func objectOf(id Object, outcome executor.ObjectOutcome, errText string) executor.Object {
	return executor.Object{Kind: id.Kind, Namespace: id.Namespace, Name: id.Name, Outcome: outcome, Error: errText}
}
