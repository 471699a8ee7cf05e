package cleanup

// The cleanup lease: one pass at a time across every replica on the database, kept while a pass runs,
// given back when it ends; passes a stopped replica left running are ended at the next start.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/sirupsen/logrus"
)

// takeLease takes the cleanup lease for pass id. A lease still held for a pass whose end is recorded
// (its runner is about to give it back) is taken over: whoever saw that pass end may start the next.
func (r *Runner) takeLease(ctx context.Context, id string, tick, now time.Time) error {
	_, err := r.cfg.Store.TakeLease(ctx, store.CleanupLease, r.cfg.Holder, id, tick, now, r.cfg.LeaseTTL)
	var held *store.LeaseHeldError
	if !errors.As(err, &held) || held.TickTaken {
		return err
	}
	if prev, readErr := r.cfg.Store.Cleanup(ctx, held.Lease.Pass); readErr != nil || prev.FinishedAt == nil {
		return err
	}
	_, err = r.cfg.Store.TakeEndedLease(ctx, store.CleanupLease, r.cfg.Holder, id, held.Lease.Pass, tick, now, r.cfg.LeaseTTL)
	return err
}

// releaseLease gives back pass id's lease once its end is recorded. Lost by then, it was taken over by
// a pass that saw this one end, or it expired: either way it is no longer this pass's to give.
func (r *Runner) releaseLease(ctx context.Context, id string) {
	err := r.cfg.Store.ReleaseLease(ctx, store.CleanupLease, r.cfg.Holder, id, r.cfg.Now().UTC())
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		r.log.WithField("cleanup_id", id).Debug("the cleanup lease was already taken over or expired")
	case err != nil:
		r.log.WithError(err).WithField("cleanup_id", id).Warn("could not give back the cleanup lease; it expires on its own")
	}
}

// endAbandoned ends the passes a stopped nodeexec left running. Under the lease no other pass runs, so
// every other record that still says running is one: the nodes it held are given back as they were
// (and their node locks released), and it ends failed, saying so.
func (r *Runner) endAbandoned(ctx context.Context, self string) error {
	running, err := r.cfg.Store.RunningCleanups(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range running {
		d := &running[i]
		if d.ID == self {
			continue
		}
		r.log.WithFields(logrus.Fields{"cleanup_id": d.ID, "runner": d.Runner}).Warn("ending a cleanup pass its nodeexec left running")
		locked := map[string][]executor.Node{}
		for j := range d.Nodes {
			n := &d.Nodes[j]
			switch n.State {
			case store.NodeCleaning:
				n.State, n.Error = store.NodeFailed, "interrupted: the nodeexec running this pass stopped during the cleanup of this node"
				locked[n.Service] = append(locked[n.Service], executor.Node{Host: n.Host})
			case store.NodePending:
				n.State, n.Error = store.NodeSkipped, "not cleaned: the nodeexec running this pass stopped first"
			}
			if n.Prior != nil {
				if err := r.cfg.Store.Release(ctx, d.ID, n.Prior); err != nil {
					errs = append(errs, fmt.Errorf("give back %s/%s: %w", n.Service, n.Host, err))
					continue
				}
				n.Prior = nil
			}
		}
		if rec, ok := r.cfg.Cleaner.(executor.Recoverer); ok {
			for service, nodes := range locked {
				if _, err := rec.Recover(ctx, executor.RecoverRequest{DeploymentID: d.ID, Service: service, Nodes: nodes}); err != nil {
					r.log.WithError(err).WithField("cleanup_id", d.ID).Warn("could not release the node locks of an abandoned cleanup pass; they expire on their own")
				}
			}
		}
		r.end(ctx, d, "interrupted: the nodeexec running it ("+d.Runner+") stopped; pass "+self+" gave back the nodes it held")
	}
	return errors.Join(errs...)
}

// holdLease renews the pass's lease in the background until the returned stop is called (once or more);
// a runner that can no longer renew it before it expires cancels the pass.
func (r *Runner) holdLease(ctx context.Context, cancel context.CancelCauseFunc, id string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := r.cfg.LeaseTTL / 3
		tick := time.NewTicker(every)
		defer tick.Stop()
		expires := r.cfg.Now().Add(r.cfg.LeaseTTL)
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := r.cfg.Now().UTC()
			err := r.cfg.Store.RenewLease(ctx, store.CleanupLease, r.cfg.Holder, id, now, r.cfg.LeaseTTL)
			switch {
			case err == nil:
				expires = now.Add(r.cfg.LeaseTTL)
			case errors.Is(err, store.ErrLeaseLost) || !now.Add(every).Before(expires):
				r.log.WithError(err).WithField("cleanup_id", id).Error("lost the cleanup lease: stopping the pass")
				cancel(errLeaseLost)
				return
			default:
				r.log.WithError(err).WithField("cleanup_id", id).Warn("could not renew the cleanup lease; trying again")
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
