package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Applies and deletes of Kubernetes objects (store.KindApply, KindDelete). They hold no nodes and wait
// for no slot: each runs in its request, bounded by ObjectsTimeout, and is recorded like a deployment
// (before the cluster is called, in flight; its end after), so a crash leaves a record that the next
// start ends failed, saying what to do (Reconcile), never one run again as a deploy.

// DefaultObjectsTimeout bounds one apply or delete when Config.ObjectsTimeout is zero.
const DefaultObjectsTimeout = 2 * time.Minute

// Apply is a new apply, id, of req's manifest, recorded under service.
func Apply(id, service string, req executor.ApplyRequest) *store.Deployment {
	return &store.Deployment{ID: id, Kind: store.KindApply, Service: service, Platform: executor.PlatformK8s, Apply: &req,
		State: executor.StatePending, Nodes: []store.DeploymentNode{}, CreatedAt: time.Now().UTC()}
}

// Delete is a new delete, id, of the objects req's selector picks, recorded under service.
func Delete(id, service string, req executor.DeleteRequest) *store.Deployment {
	return &store.Deployment{ID: id, Kind: store.KindDelete, Service: service, Platform: executor.PlatformK8s, Delete: &req,
		State: executor.StatePending, Nodes: []store.DeploymentNode{}, CreatedAt: time.Now().UTC()}
}

// objectsOp answers for applies and deletes whatever asks a deployment's operation: they have no
// groups to run (RunObjects carries them out), every object is to succeed, and they roll back only by
// another apply or delete.
type objectsOp struct{}

func (objectsOp) groups(*store.Deployment) []group { return nil }

func (objectsOp) run(_ context.Context, _ executor.Executor, d *store.Deployment, _ group, _ executor.ProgressFunc) ([]executor.NodeResult, error) {
	return nil, fmt.Errorf("%s %s runs in its request (RunObjects), never as a run of nodes", d.Kind, d.ID)
}

func (objectsOp) goal() executor.State { return executor.StateSuccess }

func (objectsOp) describe(d *store.Deployment) string {
	switch {
	case d.Apply != nil:
		return fmt.Sprintf("%sapply of a manifest to namespace %s", dryRunText(d), d.Apply.Namespace)
	case d.Delete != nil:
		return fmt.Sprintf("%sdelete of %q in namespace %s", dryRunText(d), d.Delete.Selector, d.Delete.Namespace)
	}
	return d.Kind + " " + d.ID
}

func dryRunText(d *store.Deployment) string {
	if d.DryRun() {
		return "dry run: "
	}
	return ""
}

func (objectsOp) claimed(*store.DeploymentNode, *store.Node) {}

func (objectsOp) irreversible(d *store.Deployment) string {
	if d.Kind == store.KindDelete {
		return "deployment " + d.ID + " is a delete of Kubernetes objects: apply their manifest again to bring them back"
	}
	return "deployment " + d.ID + " is an apply of Kubernetes objects: apply the manifest you want instead"
}

// Why an apply or a delete that a crash left in flight ended.
const (
	errApplyInterrupted  = "interrupted: nodeexec stopped during the apply; server-side apply is idempotent: apply again"
	errDeleteInterrupted = "interrupted: nodeexec stopped during the delete; the objects it had not reached are still there: delete again"
)

// RunObjects carries out an apply or a delete (made by Apply or Delete) now, in the caller's goroutine,
// and returns its record once it ended; created is false when d's idempotency key had already made one,
// which is returned as it is. Bad input (a manifest that does not parse, a kind the cluster lacks, a
// selector that picks everything) is a *executor.ValidationError and records nothing.
func (e *Engine) RunObjects(ctx context.Context, d *store.Deployment) (got *store.Deployment, created bool, err error) {
	if !store.IsObjectsKind(d.Kind) {
		return nil, false, fmt.Errorf("%s is not an apply or a delete", d.Kind)
	}
	exec, err := e.Executor(executor.PlatformK8s)
	if err != nil {
		return nil, false, err
	}
	if d.Delete != nil {
		if err := executor.ValidateDeleteSelector(d.Delete.Selector); err != nil {
			return nil, false, err
		}
	}
	if d.IdempotencyKey != "" {
		existing, err := e.ownKey(ctx, d)
		if err != nil || existing != nil {
			return existing, false, err
		}
	}
	planned, err := e.planObjects(ctx, exec, d)
	if err != nil {
		e.forgetKey(ctx, d)
		return nil, false, err
	}
	now := time.Now().UTC()
	d.State, d.StartedAt, d.Objects = executor.StateDeploying, &now, planned
	// Recorded before the cluster is called: a crash from here on leaves a record in flight.
	if _, _, err := e.create(ctx, d); err != nil {
		e.forgetKey(ctx, d)
		return nil, false, err
	}
	log := e.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "kind": d.Kind, "service": d.Service, "dry_run": d.DryRun()})
	rctx, cancel := context.WithCancelCause(e.ctx)
	x := &run{d: d, ctx: rctx, cancel: cancel, rec: e.recorder(d.ID, 0), log: log}
	e.runs.add(x)
	defer e.runs.done(d.ID)
	x.rec.emit(context.WithoutCancel(ctx), store.Event{Type: store.EventDeployment, State: executor.StateDeploying, Message: describe(d) + " started"})
	objects, runErr := e.callObjects(rctx, exec, d)
	cancel(nil)
	e.endObjects(ctx, x, objects, runErr)
	return d, true, nil
}

// planObjects checks what d names against the cluster before anything is recorded: an apply's
// objects (pending), a delete's none yet (the selector picks them when it runs).
func (e *Engine) planObjects(ctx context.Context, exec executor.Executor, d *store.Deployment) ([]executor.Object, error) {
	if d.Apply == nil {
		return []executor.Object{}, nil
	}
	applier, ok := exec.(executor.ManifestApplier)
	if !ok {
		return nil, &unsupportedError{platform: executor.PlatformK8s, what: "apply manifests"}
	}
	pctx, cancel := context.WithTimeout(ctx, e.cfg.ObjectsTimeout)
	defer cancel()
	objects, err := applier.PlanManifest(pctx, d.Apply.Namespace, d.Apply.Manifest)
	if err != nil && !executor.IsValidation(err) {
		return nil, &ClusterError{What: "reading the manifest's kinds from the cluster", Err: err}
	}
	return objects, err
}

// ClusterError is an apply or a delete the cluster did not let start (it did not answer, or refused
// a read): nothing was recorded or changed.
type ClusterError struct {
	What string
	Err  error
}

func (e *ClusterError) Error() string { return e.What + " failed: " + e.Err.Error() }
func (e *ClusterError) Unwrap() error { return e.Err }

// callObjects hands d to the executor, bounded by ObjectsTimeout.
func (e *Engine) callObjects(ctx context.Context, exec executor.Executor, d *store.Deployment) ([]executor.Object, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ObjectsTimeout)
	defer cancel()
	switch {
	case d.Apply != nil:
		applier, ok := exec.(executor.ManifestApplier)
		if !ok {
			return nil, &unsupportedError{platform: executor.PlatformK8s, what: "apply manifests"}
		}
		return applier.ApplyManifest(ctx, *d.Apply)
	case d.Delete != nil:
		deleter, ok := exec.(executor.SelectorDeleter)
		if !ok {
			return nil, &unsupportedError{platform: executor.PlatformK8s, what: "delete by selector"}
		}
		return deleter.DeleteSelected(ctx, *d.Delete)
	}
	return nil, fmt.Errorf("%s %s has no request", d.Kind, d.ID)
}

// endObjects records how an apply or a delete ended: its objects, each with its outcome, and failed
// when the run could not go on or any object failed.
func (e *Engine) endObjects(ctx context.Context, x *run, objects []executor.Object, runErr error) {
	d := x.d
	d.Objects = mergeObjects(d.Objects, objects, runErr != nil)
	d.State, d.Error = objectsState(d.Objects, runErr)
	now := time.Now().UTC()
	d.FinishedAt = &now
	if err := e.persist(context.WithoutCancel(ctx), func(ctx context.Context) error { return e.cfg.Store.UpdateObjects(ctx, d) }); err != nil {
		x.log.WithError(err).Error("could not record the end")
	}
	e.metrics.Ended(d)
	evs := make([]store.Event, 0, len(d.Objects)+1)
	for _, o := range d.Objects {
		evs = append(evs, store.Event{Type: store.EventStep, Node: o.String(), Message: objectLine(o)})
	}
	msg := fmt.Sprintf("%s ended %s", d.Kind, d.State)
	if d.Error != "" {
		msg += ": " + d.Error
	}
	x.rec.emit(context.WithoutCancel(ctx), append(evs, store.Event{Type: store.EventDeployment, State: d.State, Message: msg})...)
	x.log.WithFields(logrus.Fields{"state": d.State, "objects": len(d.Objects)}).Info("objects run finished")
}

// mergeObjects is what the record keeps of a run's objects: the executor's word on each, or, when it
// said nothing (the run could not start), the planned ones, none of them applied.
func mergeObjects(planned, got []executor.Object, failed bool) []executor.Object {
	if len(got) > 0 || !failed {
		if got == nil {
			got = []executor.Object{}
		}
		return got
	}
	out := make([]executor.Object, len(planned))
	for i, o := range planned {
		o.Outcome = executor.ObjectNotApplied
		out[i] = o
	}
	return out
}

// objectsState is an apply's or a delete's end: failed, saying why, when the run could not go on or
// an object failed; else a success.
func objectsState(objects []executor.Object, runErr error) (executor.State, string) {
	var failed []string
	for _, o := range objects {
		if o.Outcome == executor.ObjectFailed {
			failed = append(failed, o.String()+": "+o.Error)
		}
	}
	switch {
	case runErr != nil:
		return executor.StateFailed, executor.CleanError(runErr.Error())
	case len(failed) > 0:
		return executor.StateFailed, fmt.Sprintf("%d of %d objects failed: %s", len(failed), len(objects), strings.Join(failed, "; "))
	}
	return executor.StateSuccess, ""
}

func objectLine(o executor.Object) string {
	if o.Error != "" {
		return string(o.Outcome) + ": " + o.Error
	}
	return string(o.Outcome)
}

// endLostObjects ends an apply or a delete a previous process left in flight: what it reached is
// unknown (the API server may have taken some objects), so it is failed and says what to do.
func (e *Engine) endLostObjects(ctx context.Context, d *store.Deployment) error {
	last, err := e.cfg.Store.LastEventSeq(ctx, d.ID)
	if err != nil {
		return err
	}
	log := e.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "kind": d.Kind, "service": d.Service})
	log.Warn("ending an apply or a delete left in flight")
	for i := range d.Objects {
		if d.Objects[i].Outcome == executor.ObjectPending {
			d.Objects[i].Outcome = executor.ObjectUnknown
		}
	}
	why := errApplyInterrupted
	if d.Kind == store.KindDelete {
		why = errDeleteInterrupted
	}
	d.State, d.Error = executor.StateFailed, why
	now := time.Now().UTC()
	d.FinishedAt = &now
	if err := e.persist(ctx, func(ctx context.Context) error { return e.cfg.Store.UpdateObjects(ctx, d) }); err != nil {
		return err
	}
	x := &run{d: d, ctx: ctx, rec: e.recorder(d.ID, last), log: log}
	x.rec.emit(ctx, store.Event{Type: store.EventDeployment, State: d.State, Message: fmt.Sprintf("%s ended %s: %s", d.Kind, d.State, why)})
	return nil
}

// errObjectsKind refuses an apply or a delete handed to Submit: it holds no nodes to queue.
var errObjectsKind = errors.New("an apply or a delete runs in its request (RunObjects), not through Submit")
