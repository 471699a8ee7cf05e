package engine

import (
	"context"
	"errors"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Accepted is the deployment a submission answers with: the one it started, or the one its
// idempotency key started before.
type Accepted struct {
	ID    string
	State executor.State
}

// Submit claims the deployment's nodes, records it, and starts it in the background; d belongs to its
// run from here on. A deployment that cannot have all its nodes records nothing (a *store.BusyError
// naming the holder); one whose idempotency key the same request holds answers with that request's
// deployment, even while that one is being recorded (a *KeyInFlightError once KeyWait is over). A key
// that another request holds (another fingerprint, store.Deployment.Fingerprint) is a
// *store.KeyReusedError naming its deployment.
func (e *Engine) Submit(ctx context.Context, d *store.Deployment) (Accepted, error) {
	if store.IsObjectsKind(d.Kind) {
		return Accepted{}, errObjectsKind
	}
	if before, err := e.keyedBefore(ctx, d); err != nil || before != nil {
		return deref(before), err
	}
	admitted, err := e.admission(ctx, d)
	if err != nil {
		e.forgetKey(ctx, d)
		return Accepted{}, err
	}
	defer admitted()
	if err := e.checkUnavailable(ctx, d); err != nil {
		e.forgetKey(ctx, d)
		return Accepted{}, err
	}
	before, err := e.cfg.Store.ClaimAll(ctx, d)
	var unreleased *store.UnreleasedError
	if errors.As(err, &unreleased) {
		e.releaseLater(d.ID, unreleased.Claimed)
	}
	if err == nil && e.cfg.Hooks.AfterClaim != nil {
		e.cfg.Hooks.AfterClaim()
	}
	if err != nil {
		e.forgetKey(ctx, d)
		return Accepted{}, err
	}
	op := operationOf(d.Kind)
	for host, prior := range before {
		op.claimed(d.Node(host), prior)
	}
	got, created, err := e.create(ctx, d)
	admitted()
	if err != nil || !created {
		if relErr := e.cfg.Store.ReleaseAll(ctx, d.ID, before); relErr != nil {
			e.releaseLater(d.ID, before)
		}
		if err != nil {
			e.forgetKey(ctx, d)
			return Accepted{}, err
		}
		return Accepted{ID: got.ID, State: got.State}, nil
	}
	rec := e.recorder(d.ID, 0)
	rec.emit(context.WithoutCancel(ctx), store.Event{Type: store.EventDeployment, State: executor.StatePending,
		Message: describe(d) + " accepted"})
	accepted := Accepted{ID: d.ID, State: d.State} // read before the run owns d
	e.start(d, before, rec)
	return accepted, nil
}
