package lease

import (
	"context"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
)

// Runs owns the goroutines of one kind of pass on a replica: its schedule's, and those of the passes
// started on request. Stop cancels them all (each pass records why) and waits for them.
type Runs struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	mu      sync.Mutex // guards stopped and wg.Add against Stop
	stopped bool
	wg      sync.WaitGroup
}

// NewRuns is a set of runs not stopped yet.
func NewRuns() *Runs {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Runs{ctx: ctx, cancel: cancel}
}

// Stopped says whether Stop was called.
func (r *Runs) Stopped() bool { return r.ctx.Err() != nil }

// Go runs fn in a goroutine the runs own, with a context Stop cancels; false (fn not run) once stopped.
func (r *Runs) Go(fn func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(r.ctx)
	}()
	return true
}

// Stop cancels every run with cause and waits for them to end.
func (r *Runs) Stop(cause error) {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel(cause)
	r.wg.Wait()
}

// Wait waits for the runs going on to end.
func (r *Runs) Wait() { r.wg.Wait() }

// Loop calls tick at each time of schedule until ctx ends (wait, the clock, says when that time has
// come: false when ctx ended first). The tick is the schedule's own time, the same on every replica,
// so a lease taken for it lets exactly one of them run it.
func Loop(ctx context.Context, schedule cron.Schedule, now func() time.Time, wait func(context.Context, time.Time) bool,
	tick func(context.Context, time.Time), log logrus.FieldLogger) {
	for {
		at := schedule.Next(now())
		if at.IsZero() {
			log.Warn("the schedule never fires again")
			return
		}
		if !wait(ctx, at) {
			return
		}
		tick(ctx, at)
	}
}

// SleepUntil blocks until the given time (true) or until ctx ends (false): Loop's real clock.
func SleepUntil(ctx context.Context, until time.Time) bool {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
