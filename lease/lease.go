// Package lease runs passes one at a time across every nodeexec replica on the database (cleanup
// passes, drift passes): a pass takes its lease as it starts, renews it while it runs and gives it back
// once its end is recorded. A replica that stops stops renewing, and its lease expires.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/store"
)

// Keeper takes, renews and gives back one named lease for the passes of one replica.
type Keeper struct {
	Store *store.Store
	// Name is the lease (store.CleanupLease, store.DriftLease); Holder names this replica.
	Name   string
	Holder string
	TTL    time.Duration
	Now    func() time.Time
	Log    logrus.FieldLogger
	// Ended says whether a pass's record says it ended: its lease may be taken over before its runner
	// gives it back.
	Ended func(ctx context.Context, pass string) bool
}

// Take takes the lease for pass id (and the scheduled tick, when not zero). A lease still held for a
// pass whose end is recorded (its runner is about to give it back) is taken over: whoever saw that
// pass end may start the next. Held by a running pass: a *store.LeaseHeldError naming it.
func (k *Keeper) Take(ctx context.Context, id string, tick, now time.Time) error {
	_, err := k.Store.TakeLease(ctx, k.Name, k.Holder, id, tick, now, k.TTL)
	var held *store.LeaseHeldError
	if !errors.As(err, &held) || held.TickTaken || !k.Ended(ctx, held.Lease.Pass) {
		return err
	}
	_, err = k.Store.TakeEndedLease(ctx, k.Name, k.Holder, id, held.Lease.Pass, tick, now, k.TTL)
	return err
}

// Release gives back pass id's lease once its end is recorded. Lost by then, it was taken over by a
// pass that saw this one end, or it expired: either way it is no longer this pass's to give.
func (k *Keeper) Release(ctx context.Context, id string) {
	err := k.Store.ReleaseLease(ctx, k.Name, k.Holder, id, k.Now().UTC())
	log := k.Log.WithFields(logrus.Fields{"lease": k.Name, "pass": id})
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Debug("the lease was already taken over or expired")
	case err != nil:
		log.WithError(err).Warn("could not give back the lease; it expires on its own")
	}
}

// Hold renews pass id's lease in the background until the returned stop is called (once or more); a
// runner that can no longer renew it before it expires cancels the pass with lost.
func (k *Keeper) Hold(ctx context.Context, cancel context.CancelCauseFunc, id string, lost error) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	log := k.Log.WithFields(logrus.Fields{"lease": k.Name, "pass": id})
	go func() {
		defer wg.Done()
		every := k.TTL / 3
		tick := time.NewTicker(every)
		defer tick.Stop()
		expires := k.Now().Add(k.TTL)
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := k.Now().UTC()
			err := k.Store.RenewLease(ctx, k.Name, k.Holder, id, now, k.TTL)
			switch {
			case err == nil:
				expires = now.Add(k.TTL)
			case errors.Is(err, store.ErrLeaseLost) || !now.Add(every).Before(expires):
				log.WithError(err).Error("lost the lease: stopping the pass")
				cancel(lost)
				return
			default:
				log.WithError(err).Warn("could not renew the lease; trying again")
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

// DefaultHolder names this process as a pass runner: its host, its pid, and a few random characters so
// that a restarted process under the same pid is another holder.
func DefaultHolder() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
