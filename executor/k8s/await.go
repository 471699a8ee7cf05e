package k8s

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// awaitRollout waits until k's rollout is done, bounded by within when ctx has no deadline of its own
// (0: by ctx alone). Deploy, blue-green, rollback and scale all wait this way, so a rollout that is not
// done reads the same everywhere: the error says why (failed, deadline, cancelled), with the last
// status seen.
func awaitRollout(ctx context.Context, k workloadKind, within time.Duration) (Rollout, error) {
	if _, bounded := ctx.Deadline(); !bounded && within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, within)
		defer cancel()
	}
	r, err := waitRollout(ctx, k)
	if err != nil || !r.Done {
		return r, rolloutErr(r, err)
	}
	return r, nil
}

// rolloutErr says why a rollout is not done, from the last status seen and what ended the wait.
func rolloutErr(r Rollout, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("not done before the deadline (%s)", r.Message)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("cancelled (%s)", r.Message)
	case err != nil:
		return err
	case r.Failed:
		return errors.New(r.Message)
	}
	return fmt.Errorf("not done: %s", r.Message)
}

// waitRollout watches the workload until its rollout is done or has failed, or ctx ends. It reads the
// object once, then follows its changes; a watch the server closes is opened again from a fresh read.
// Beside it, stuckWatch follows the pods: one of the newest revision that cannot start fails the
// rollout at once. Each change of the workload this watch sees is passed on to it (changed), so that it
// judges again which pods are the newest.
func waitRollout(ctx context.Context, k workloadKind) (Rollout, error) {
	cur, err := k.get(ctx)
	if err != nil {
		return Rollout{}, err
	}
	if cur.rollout.Done || cur.rollout.Failed {
		return cur.rollout, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(cur.selector)
	if err != nil {
		return cur.rollout, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stuck := make(chan string, 1)
	changed := make(chan struct{}, 1)
	go func() {
		if why := stuckWatch(ctx, k, k.pods(), sel, changed); why != "" {
			stuck <- why
			cancel()
		}
	}()
	r, err := followRollout(ctx, k, cur, changed)
	if err == nil && (r.Done || r.Failed) {
		return r, nil // the workload's own word comes first
	}
	select {
	case why := <-stuck:
		return Rollout{Failed: true, Message: why}, nil
	default:
		return r, err
	}
}

// followRollout is waitRollout on the workload alone, from cur (a read of it); a watch the server
// closes is opened again from a fresh read. Each change it sees is signalled on changed.
func followRollout(ctx context.Context, k workloadKind, cur snapshot, changed chan<- struct{}) (Rollout, error) {
	var last Rollout
	for {
		last = cur.rollout
		if last.Done || last.Failed {
			return last, nil
		}
		watcher, err := k.watch(ctx, cur.resourceVersion)
		if err != nil {
			return last, err
		}
		r, closed, err := follow(ctx, watcher, k, &last, changed)
		watcher.Stop()
		if err != nil || !closed {
			return r, err
		}
		if cur, err = k.get(ctx); err != nil {
			return last, err
		}
		signal(changed)
	}
}

// signal tells the receiver something changed, without waiting: one pending signal stands for many.
func signal(changed chan<- struct{}) {
	select {
	case changed <- struct{}{}:
	default:
	}
}

// follow reads watch events until the rollout ends (closed=false) or the watch closes (closed=true),
// signalling each change of the workload on changed.
func follow(ctx context.Context, watcher watch.Interface, k workloadKind, last *Rollout, changed chan<- struct{}) (Rollout, bool, error) {
	for {
		select {
		case <-ctx.Done():
			return *last, false, ctx.Err()
		case ev, ok := <-watcher.ResultChan():
			if !ok {
				return *last, true, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return *last, false, errors.New("the workload was deleted during the rollout")
			case watch.Error:
				return *last, true, nil // e.g. resource version too old: read again
			}
			r, ok := k.rolloutOf(ev.Object)
			if !ok {
				continue
			}
			signal(changed)
			*last = r
			if last.Done || last.Failed {
				return *last, false, nil
			}
		}
	}
}
