package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// A deployment of several applications (store/applications.go) runs nothing itself: each application
// is a deployment of its own, submitted with the others all or nothing, run side by side like any
// deployments (each its batches, claims, retries, events), and the deployment of several follows them:
// its record and its events say how each application goes, and it ends when the last one has.

// parents serializes the refreshes of deployments of several in this process: two applications
// ending at once must not each write the record without the other's end.
type parents struct {
	mu sync.Mutex
	// recs are the recorders of deployments of several that this process records events of.
	recMu sync.Mutex
	recs  map[string]*recorder
}

// Applications is a new deployment of several applications, id, of kind (deploy or rollback) on
// platform, made of apps (each a pending deployment of its own, validated): their ParentID is set here.
func Applications(id, kind string, platform executor.Platform, apps []*store.Deployment) *store.Deployment {
	d := &store.Deployment{ID: id, Kind: kind, Platform: platform, State: executor.StatePending, CreatedAt: time.Now().UTC(),
		Nodes: []store.DeploymentNode{}}
	for _, a := range apps {
		a.ParentID = id
		app := store.ApplicationOf(a)
		app.Request = a
		d.Applications = append(d.Applications, app)
	}
	return d
}

// SubmitApplications claims the nodes of every application of d (a deployment of several, its
// applications' deployments apps, in its order), records d and then each application, and starts them
// all. All or nothing, as Submit for one: an application that cannot have its nodes (or would exceed
// its max_unavailable) records nothing and gives back what the others claimed. The idempotency key is
// d's: a retry gets d back.
func (e *Engine) SubmitApplications(ctx context.Context, d *store.Deployment, apps []*store.Deployment) (Accepted, error) {
	if before, err := e.keyedBefore(ctx, d); err != nil || before != nil {
		return deref(before), err
	}
	admitted, err := e.admission(ctx, append([]*store.Deployment{d}, apps...)...)
	if err != nil {
		e.forgetKey(ctx, d)
		return Accepted{}, err
	}
	defer admitted()
	claims := make([]map[string]*store.Node, 0, len(apps))
	giveBack := func(from int) {
		for i := from; i < len(claims); i++ {
			if err := e.cfg.Store.ReleaseAll(context.WithoutCancel(ctx), apps[i].ID, claims[i]); err != nil {
				e.releaseLater(apps[i].ID, claims[i])
			}
		}
	}
	refuse := func(err error) (Accepted, error) {
		giveBack(0)
		e.forgetKey(ctx, d)
		return Accepted{}, err
	}
	for _, a := range apps {
		if err := e.checkUnavailable(ctx, a); err != nil {
			return refuse(err)
		}
		before, err := e.cfg.Store.ClaimAll(ctx, a)
		var unreleased *store.UnreleasedError
		if errors.As(err, &unreleased) {
			e.releaseLater(a.ID, unreleased.Claimed)
		}
		if err != nil {
			return refuse(err)
		}
		claims = append(claims, before)
		op := operationOf(a.Kind)
		for host, prior := range before {
			op.claimed(a.Node(host), prior)
		}
	}
	for i, a := range apps {
		d.Applications[i] = withRequest(store.ApplicationOf(a), a)
	}
	// d first: an application recorded without it would run alone after a crash in between, where d
	// recorded alone is ended at the next start (its missing applications failed, nothing ran for them).
	got, created, err := e.create(ctx, d)
	if err != nil {
		return refuse(err)
	}
	if !created {
		giveBack(0)
		return Accepted{ID: got.ID, State: got.State}, nil
	}
	for i, a := range apps {
		if _, _, err := e.create(ctx, a); err != nil {
			giveBack(i)
			e.abandon(context.WithoutCancel(ctx), d, apps[:i], fmt.Errorf("recording application %s failed: %w; nothing was started", a.Service, err))
			return Accepted{}, err
		}
	}
	admitted()
	e.parents.emit(ctx, e, d.ID, store.Event{Type: store.EventDeployment, State: executor.StatePending,
		Message: describeApplications(d) + " accepted"})
	for i, a := range apps {
		rec := e.recorder(a.ID, 0)
		rec.emit(context.WithoutCancel(ctx), store.Event{Type: store.EventDeployment, State: executor.StatePending,
			Message: describe(a) + " accepted, application " + a.Service + " of " + d.ID})
		e.start(a, claims[i], rec)
	}
	return Accepted{ID: d.ID, State: d.State}, nil
}

func withRequest(app store.Application, req *store.Deployment) store.Application {
	app.Request = req
	return app
}

// abandon ends a deployment of several that could not be recorded whole: d and the applications
// recorded so far are failed with why (their claims were given back; none had started).
func (e *Engine) abandon(ctx context.Context, d *store.Deployment, recorded []*store.Deployment, why error) {
	now := time.Now().UTC()
	for _, a := range append(recorded, d) {
		a.State, a.Error, a.FinishedAt = executor.StateFailed, why.Error(), &now
		for i := range a.Nodes {
			a.Nodes[i].State, a.Nodes[i].LastError = executor.StateFailed, "not started: "+why.Error()
		}
		if err := e.cfg.Store.UpdateDeployment(ctx, a); err != nil {
			e.cfg.Logger.WithField("deployment_id", a.ID).WithError(err).Error("could not record the end of an unrecorded deployment of several applications; the next start ends it")
		}
	}
}

// describeApplications says what a deployment of several does, in a line.
func describeApplications(d *store.Deployment) string {
	names := make([]string, 0, len(d.Applications))
	for _, a := range d.Applications {
		names = append(names, a.Service+" "+a.Version)
	}
	return fmt.Sprintf("%s of %d applications (%s)", d.Kind, len(d.Applications), strings.Join(names, ", "))
}

// refreshParent brings the deployment of several that app is an application of up to date with its
// applications' records, after app's record changed (started, ended): its state, each application's
// state and nodes, an event for each application that changed, and its end once all have ended.
func (e *Engine) refreshParent(ctx context.Context, app *store.Deployment) {
	if app.ParentID == "" {
		return
	}
	if err := e.settleApplications(ctx, app.ParentID); err != nil {
		e.cfg.Logger.WithFields(map[string]any{"deployment_id": app.ParentID, "application": app.ID}).WithError(err).
			Error("could not record how an application of a deployment of several went; the next start does")
	}
}

// settleApplications reads deployment id (of several) and its applications, and records what changed.
// An application whose deployment was never recorded (nodeexec stopped in between) has failed.
func (e *Engine) settleApplications(ctx context.Context, id string) error {
	e.parents.mu.Lock()
	defer e.parents.mu.Unlock()
	d, err := e.cfg.Store.Deployment(ctx, id)
	if err != nil || d.State.Terminal() {
		return err
	}
	var evs []store.Event
	for i, a := range d.Applications {
		app, err := e.cfg.Store.Deployment(ctx, a.DeploymentID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			app = &store.Deployment{ID: a.DeploymentID, Service: a.Service, Version: a.Version, State: executor.StateFailed,
				Error: "interrupted: nodeexec stopped before this application was recorded; nothing ran for it", Nodes: a.Nodes}
		case err != nil:
			return err
		}
		if !d.Refresh(app) {
			continue
		}
		now := d.Applications[i]
		msg := fmt.Sprintf("application %s %s (%s): %s", now.Service, now.Version, now.DeploymentID, now.State)
		if now.Error != "" {
			msg += ": " + now.Error
		}
		evs = append(evs, store.Event{Type: store.EventNode, Node: now.Service, State: now.State, Message: msg})
	}
	if len(evs) == 0 {
		return nil
	}
	was := d.State
	d.State = d.ApplicationsState(goal(&store.Deployment{Kind: d.Kind}))
	now := time.Now().UTC()
	if d.State != executor.StatePending && d.StartedAt == nil {
		d.StartedAt = &now
	}
	if d.State.Terminal() {
		d.FinishedAt = &now
		d.Error = applicationErrors(d)
	}
	if err := e.persist(ctx, func(ctx context.Context) error { return e.cfg.Store.UpdateDeployment(ctx, d) }); err != nil {
		return err
	}
	if d.State != was {
		msg := fmt.Sprintf("%s %s", d.Kind, d.State)
		if d.State.Terminal() {
			msg = fmt.Sprintf("%s ended %s", describeApplications(d), d.State)
			if d.Error != "" {
				msg += ": " + d.Error
			}
		}
		evs = append(evs, store.Event{Type: store.EventDeployment, State: d.State, Message: msg})
	}
	e.parents.emit(ctx, e, d.ID, evs...)
	if d.State.Terminal() {
		e.parents.forget(d.ID)
		if e.cfg.Notifier != nil {
			e.cfg.Notifier.Deployment(d)
		}
	}
	return nil
}

// applicationErrors says which applications did not reach their goal, in a sentence.
func applicationErrors(d *store.Deployment) string {
	want := goal(&store.Deployment{Kind: d.Kind})
	var out []string
	for _, a := range d.Applications {
		if a.State != want {
			out = append(out, fmt.Sprintf("%s %s", a.Service, a.State))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "applications not " + string(want) + ": " + strings.Join(out, ", ")
}

// emit records events of deployment id (of several) through its one recorder in this process.
func (p *parents) emit(ctx context.Context, e *Engine, id string, evs ...store.Event) {
	p.recorder(ctx, e, id).emit(context.WithoutCancel(ctx), evs...)
}

func (p *parents) recorder(ctx context.Context, e *Engine, id string) *recorder {
	p.recMu.Lock()
	defer p.recMu.Unlock()
	if p.recs == nil {
		p.recs = map[string]*recorder{}
	}
	if rec, ok := p.recs[id]; ok {
		return rec
	}
	last, err := e.cfg.Store.LastEventSeq(ctx, id)
	if err != nil {
		e.cfg.Logger.WithField("deployment_id", id).WithError(err).Warn("could not read the last event number; numbering on")
	}
	rec := e.recorder(id, last)
	p.recs[id] = rec
	return rec
}

func (p *parents) forget(id string) {
	p.recMu.Lock()
	defer p.recMu.Unlock()
	delete(p.recs, id)
}

// RollbackOfApplications is a new deployment of several, id, that rolls back each application of orig
// (a deployment of several, ended; apps its applications' deployments, in its order) that changed a
// node it can take back (RollbackOf each, ids from newID); the others are left alone. A
// *NothingToRollBackError when no application has anything to roll back, saying why for each.
func RollbackOfApplications(orig *store.Deployment, apps []*store.Deployment, id string, newID func() string) (*store.Deployment, []*store.Deployment, error) {
	var back []*store.Deployment
	var why []string
	for _, a := range apps {
		rb, err := RollbackOf(a, newID())
		var nothing *NothingToRollBackError
		switch {
		case errors.As(err, &nothing):
			why = append(why, a.Service+": "+nothing.Reason)
			continue
		case err != nil:
			return nil, nil, err
		}
		back = append(back, rb)
	}
	if len(back) == 0 {
		return nil, nil, &NothingToRollBackError{Reason: "deployment " + orig.ID + " has nothing to roll back: " + strings.Join(why, "; ")}
	}
	d := Applications(id, store.KindRollback, orig.Platform, back)
	d.RollbackOf = orig.ID
	return d, back, nil
}
