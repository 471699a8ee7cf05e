package k8s

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nodeexec/nodeexec/executor"
)

// awaitRollout waits until w's rollout is done, bounded by within when ctx has no deadline of its own
// (0: by ctx alone). Deploy, blue-green, rollback and scale all wait this way, so a rollout that is not
// done reads the same everywhere: the error says why (failed, deadline, cancelled), with the last
// status seen.
func (e *Executor) awaitRollout(ctx context.Context, w executor.Workload, within time.Duration) (Rollout, error) {
	if _, bounded := ctx.Deadline(); !bounded && within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, within)
		defer cancel()
	}
	r, err := e.waitRollout(ctx, w)
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
func (e *Executor) waitRollout(ctx context.Context, w executor.Workload) (Rollout, error) {
	var last Rollout
	for {
		r, rv, err := e.rolloutNow(ctx, w)
		if err != nil {
			return last, err
		}
		last = r
		if r.Done || r.Failed {
			return r, nil
		}
		watcher, err := e.watch(ctx, w, rv)
		if err != nil {
			return last, err
		}
		r, closed, err := follow(ctx, watcher, w.Kind, &last)
		watcher.Stop()
		if err != nil || !closed {
			return r, err
		}
	}
}

// follow reads watch events until the rollout ends (closed=false) or the watch closes (closed=true).
func follow(ctx context.Context, watcher watch.Interface, kind string, last *Rollout) (Rollout, bool, error) {
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
			switch obj := ev.Object.(type) {
			case *appsv1.Deployment:
				*last = DeploymentRollout(obj)
			case *appsv1.StatefulSet:
				*last = StatefulSetRollout(obj)
			default:
				continue
			}
			if last.Done || last.Failed {
				return *last, false, nil
			}
		}
	}
}
