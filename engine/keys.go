package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// DefaultKeyWait bounds how long a retry waits for the request that holds its idempotency key to record
// its deployment (claims and a record take milliseconds); DefaultKeyOrphanAfter is when a key whose
// request never recorded one (nodeexec and its database failed in between) goes to the next retry.
const (
	DefaultKeyWait        = 5 * time.Second
	DefaultKeyOrphanAfter = time.Minute
)

// keyPoll paces a retry's looks at the request that holds its key: every 20 ms until KeyWait is over.
var keyPoll = retry.Policy{MaxRetries: retry.Forever, InitialDelay: 20 * time.Millisecond, Factor: 1}

// KeyInFlightError is a retry that came while the request holding its key has not recorded a
// deployment.
type KeyInFlightError struct{ Owner string }

func (e *KeyInFlightError) Error() string {
	return "a request with this idempotency_key is still being recorded (as " + e.Owner + "); retry in a moment"
}

// errKeyHeld says the key's holder is still being recorded: look again after a pause.
var errKeyHeld = errors.New("idempotency key held by a request being recorded")

// keyedBefore is the deployment an earlier request with d's idempotency key started (nil when d has no
// key, or is the first with it: then the key is d's).
func (e *Engine) keyedBefore(ctx context.Context, d *store.Deployment) (*Accepted, error) {
	if d.IdempotencyKey == "" {
		return nil, nil
	}
	existing, err := e.ownKey(ctx, d)
	if err != nil || existing == nil {
		return nil, err
	}
	return &Accepted{ID: existing.ID, State: existing.State}, nil
}

// deref is a, or the zero Accepted for none.
func deref(a *Accepted) Accepted {
	if a == nil {
		return Accepted{}
	}
	return *a
}

// ownKey reserves d's idempotency key for d (nil), or returns the deployment of the request that holds
// it. A holder still being recorded is waited for, briefly; one that never recorded anything and
// reserved the key longer than KeyOrphanAfter ago loses it to d.
func (e *Engine) ownKey(ctx context.Context, d *store.Deployment) (*store.Deployment, error) {
	deadline := time.Now().Add(e.cfg.KeyWait)
	announced := false
	var existing *store.Deployment
	err := keyPoll.Do(ctx, func() (bool, error) {
		owner, got, err := e.tryKey(ctx, d)
		switch {
		case err != nil || owner == "":
			existing = got
			return false, err
		case time.Now().After(deadline):
			return false, &KeyInFlightError{Owner: owner}
		}
		if !announced && e.cfg.Hooks.KeyWaiting != nil {
			announced = true
			e.cfg.Hooks.KeyWaiting()
		}
		return true, errKeyHeld
	})
	if errors.Is(err, errKeyHeld) { // the wait ended with ctx
		return nil, ctx.Err()
	}
	return existing, err
}

// tryKey is one look at d's key. It returns the owner when that is a request that recorded no
// deployment yet; else "" and, unless d got the key, the deployment of the request that holds it (a
// *store.KeyReusedError when that request was another than d's).
func (e *Engine) tryKey(ctx context.Context, d *store.Deployment) (string, *store.Deployment, error) {
	fingerprint := d.Fingerprint()
	for {
		holder, err := e.cfg.Store.ReserveKey(ctx, d.IdempotencyKey, d.ID, fingerprint, d.CreatedAt)
		owner := holder.DeploymentID
		if err != nil || owner == d.ID {
			return "", nil, err
		}
		existing, err := e.cfg.Store.Deployment(ctx, owner)
		if !errors.Is(err, store.ErrNotFound) {
			if err == nil && holder.Reused(fingerprint) {
				return "", nil, &store.KeyReusedError{Key: d.IdempotencyKey, DeploymentID: owner}
			}
			return "", existing, err
		}
		at, err := e.cfg.Store.KeyReservedAt(ctx, d.IdempotencyKey)
		if errors.Is(err, store.ErrNotFound) {
			continue // given back meanwhile: try again
		}
		if err != nil {
			return "", nil, err
		}
		if now := time.Now().UTC(); now.Sub(at) > e.cfg.KeyOrphanAfter {
			got, err := e.cfg.Store.TakeOverKey(ctx, d.IdempotencyKey, owner, d.ID, fingerprint, now.Add(-e.cfg.KeyOrphanAfter), d.CreatedAt)
			if err != nil || got == d.ID {
				return "", nil, err
			}
			continue
		}
		return owner, nil, nil
	}
}

// forgetKey gives back the key of a request that recorded no deployment, so its retry can run; if the
// database does not answer now, once it does.
func (e *Engine) forgetKey(ctx context.Context, d *store.Deployment) {
	if d.IdempotencyKey == "" {
		return
	}
	if err := e.cfg.Store.ForgetKey(context.WithoutCancel(ctx), d.IdempotencyKey, d.ID); err == nil {
		return
	}
	e.background.Go(func() {
		// Until the engine stops; then the first retry a KeyOrphanAfter later takes the key over.
		err := storeBackoff.Retry(e.ctx, func() (bool, error) {
			return true, e.cfg.Store.ForgetKey(e.ctx, d.IdempotencyKey, d.ID)
		})
		if err == nil && e.cfg.Hooks.KeyForgotten != nil {
			e.cfg.Hooks.KeyForgotten(d.IdempotencyKey)
		}
	})
}
