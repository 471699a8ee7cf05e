package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/metrics"
	"github.com/nodeexec/nodeexec/store"
)

// errCancelRequested is the cause of a run cancelled through Cancel.
var errCancelRequested = errors.New("cancelled on request")

// errNotStartedDraining is the cause of runs still waiting for a slot when the engine began to drain.
var errNotStartedDraining = errors.New("nodeexec is shutting down")

// run is one deployment being carried out by this process. Only its goroutine writes the deployment's
// record and events, so the record and the event sequence need no locking across writers.
type run struct {
	d      *store.Deployment
	before map[string]*store.Node // the nodes as they were before the claim, for a run that never starts
	ctx    context.Context
	cancel context.CancelCauseFunc
	rec    *recorder
	log    logrus.FieldLogger
	// streamed counts the steps each node already reported live, so they are not recorded twice.
	streamed map[string]int
	// metrics and flight are nil for a run that reconcile ends: it was never in flight in this process.
	metrics *metrics.Metrics
	flight  *metrics.Flight
}

// progress records each task result as an event the moment the executor reports it.
func (x *run) progress(host string, step executor.Step) {
	if !step.Running { // a task that started is news for the live view, not one of the node's steps
		x.rec.mu.Lock()
		if x.streamed == nil {
			x.streamed = map[string]int{}
		}
		x.streamed[host]++
		x.rec.mu.Unlock()
		x.metrics.Step(x.d.Platform, x.d.Service, step)
	}
	step = boundStep(step)
	x.rec.emit(context.WithoutCancel(x.ctx), store.Event{Type: store.EventStep, Node: host, Step: &step, Message: stepLine(step)})
}

func (x *run) streamedSteps(host string) int {
	x.rec.mu.Lock()
	defer x.rec.mu.Unlock()
	return x.streamed[host]
}

// priorOf is a node's record before the claim (empty when unknown).
func (x *run) priorOf(host string) store.Node {
	if n := x.before[host]; n != nil {
		return *n
	}
	return store.Node{}
}

// runs tracks the deployments this process is carrying out, so they can be cancelled.
type runs struct {
	mu sync.Mutex
	m  map[string]*run
	wg sync.WaitGroup
}

func (r *runs) add(x *run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*run{}
	}
	r.m[x.d.ID] = x
	r.wg.Add(1)
}

func (r *runs) done(id string) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
	r.wg.Done()
}

func (r *runs) get(id string) *run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// start carries out a claimed and recorded deployment in the background.
func (e *Engine) start(d *store.Deployment, before map[string]*store.Node, rec *recorder) {
	ctx, cancel := context.WithCancelCause(e.ctx)
	x := &run{d: d, before: before, ctx: ctx, cancel: cancel, rec: rec,
		log:     e.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "service": d.Service, "version": d.Version}),
		metrics: e.metrics, flight: e.metrics.Queued(d.Platform, d.Service)}
	e.runs.add(x)
	go func() {
		defer e.runs.done(d.ID)
		defer x.flight.Done()
		defer cancel(nil)
		defer e.recoverRun(x)
		e.execute(x)
	}()
}

// recoverRun ends a run whose code panicked the way a run lost at restart is ended: each node it still
// holds is asked what it runs. The process goes on.
func (e *Engine) recoverRun(x *run) {
	r := recover()
	if r == nil {
		return
	}
	x.log.WithFields(logrus.Fields{"panic": fmt.Sprint(r), "stack": string(debug.Stack())}).Error("a deployment's run panicked; reading its nodes to end it")
	why := fmt.Sprintf("internal error: the run stopped (%v); each node's outcome was read from the node", r)
	if err := e.reconcile(context.WithoutCancel(x.ctx), x.d, why); err != nil {
		x.log.WithError(err).Error("could not end the deployment whose run panicked; the next start does")
	}
}

// execute waits for a slot, runs the executor, and records every node's end. Records are written even
// when the run was cancelled or the engine is stopping: they must not be lost.
func (e *Engine) execute(x *run) {
	d, bg := x.d, context.WithoutCancel(x.ctx)
	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	case <-x.ctx.Done():
	case <-e.drain:
	}
	if e.Draining() {
		x.cancel(errNotStartedDraining) // draining: only runs that already had their slot go on
	}
	if x.ctx.Err() != nil {
		e.neverStarted(bg, x)
		return
	}
	x.flight.Running()
	now := time.Now().UTC()
	d.StartedAt, d.State = &now, executor.StateDeploying
	events := []store.Event{{Type: store.EventDeployment, State: executor.StateDeploying, Message: d.Kind + " started"}}
	for i := range d.Nodes {
		d.Nodes[i].State = executor.StateDeploying
		events = append(events, store.Event{Type: store.EventNode, Node: d.Nodes[i].Host, State: executor.StateDeploying,
			Message: fmt.Sprintf("%s %s", d.Kind, d.Nodes[i].TargetVersion)})
	}
	e.save(bg, x, events...)

	results, skipped, runErr := e.operate(x)
	var evs []store.Event
	for _, r := range results {
		evs = append(evs, e.finishNode(bg, x, r)...)
	}
	evs = append(evs, e.giveBack(bg, x, skipped)...)
	switch {
	case x.ctx.Err() != nil:
		// Cut short (a cancel, a shutdown), in whatever phase: that is the deployment's end, in one
		// sentence; what it meant for each node is in the node's own last error.
		d.Error = context.Cause(x.ctx).Error()
	case runErr != nil:
		d.Error = runErr.Error()
	}
	e.end(bg, x, evs)
}

// operate hands the deployment to the executor, one group of its targets after another (its
// operation's groups: a deploy's batches, a rollback's versions to go back to). It returns the nodes'
// results, and the nodes it never started (cancelled, or stopped after a failed batch) with the reason.
func (e *Engine) operate(x *run) ([]executor.NodeResult, map[string]string, error) {
	d := x.d
	groups := operationOf(d.Kind).groups(d)
	exec, err := e.Executor(d.Platform)
	if err != nil {
		return nil, nil, err
	}
	var all []executor.NodeResult
	var errs []error
	skipped := map[string]string{}
	for i, g := range groups {
		if why := x.stopBefore(all); why != "" {
			for _, g := range groups[i:] {
				for _, h := range g.Hosts() {
					skipped[h] = why
				}
			}
			break
		}
		res, err := e.runGroup(x, exec, g)
		res = e.retryTransient(x, exec, g, res)
		all = append(all, res...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return all, skipped, errors.Join(errs...)
}

// runGroup hands one group of nodes to the executor, within the deploy timeout. Nodes it could not
// even start on are failed with the reason.
func (e *Engine) runGroup(x *run, exec executor.Executor, g group) ([]executor.NodeResult, error) {
	d := x.d
	ctx := x.ctx
	if t := e.cfg.DeployTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t, fmt.Errorf("the deploy timeout (%s) was reached", t))
		defer cancel()
	}
	began := time.Now()
	res, err := operationOf(d.Kind).run(ctx, exec, d, g, x.progress)
	var unsupported *unsupportedError
	if errors.As(err, &unsupported) {
		return nil, err
	}
	e.metrics.ExecutorRun(d.Platform, d.Service, d.Kind, time.Since(began))
	cleanErrors(res) // before anything shows it: the retry announcements, the records
	if err != nil && len(res) == 0 {
		// Nothing ran on any node of this group: each is failed with the reason, and with why the run
		// was cut short when it was (the deploy timeout, a shutdown) rather than a bare "deadline exceeded".
		if ctx.Err() != nil && !strings.Contains(err.Error(), context.Cause(ctx).Error()) {
			err = fmt.Errorf("%v: %w", context.Cause(ctx), err)
		}
		for _, h := range g.Hosts() {
			prior := x.priorOf(h)
			res = append(res, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: h, Service: d.Service, Platform: d.Platform,
				State: executor.StateFailed, CurrentVersion: prior.CurrentVersion, PrevVersion: prior.PrevVersion, LastError: executor.CleanError(err.Error())}})
		}
	}
	return res, err
}

// errTransientLeft says that nodes of a group failed on a transient fault and are to be tried again.
var errTransientLeft = errors.New("nodes failed on a transient fault")

// retryTransient runs the group again for the nodes that failed on a transient fault (a host that
// could not be reached), after a backoff, as often as the retry policy allows; each retry is announced
// on the node's events before its wait, and the latest result of a node replaces the earlier ones.
func (e *Engine) retryTransient(x *run, exec executor.Executor, g group, res []executor.NodeResult) []executor.NodeResult {
	p := e.cfg.Retry
	n := 0
	var at map[string]int // the failed nodes' index in res
	var hosts []string
	waiting := false // hosts wait for their next try
	_ = p.Do(x.ctx, func() (bool, error) {
		waiting = false
		if n > 0 { // the backoff before retry n is over
			again, _ := e.runGroup(x, exec, g.only(hosts))
			for _, r := range again {
				if i, ok := at[r.Host]; ok {
					res[i] = r
				}
			}
		}
		if n++; n > p.MaxRetries || x.ctx.Err() != nil {
			return false, nil
		}
		at, hosts = map[string]int{}, nil
		var evs []store.Event
		for i, r := range res {
			if r.Transient && r.State == executor.StateFailed {
				at[r.Host] = i
				hosts = append(hosts, r.Host)
				// The CLI's live table reads this wording (cmd/nodeexec/live.go, parseRetry).
				evs = append(evs, store.Event{Type: store.EventNode, Node: r.Host, State: executor.StateDeploying,
					Message: fmt.Sprintf("%s; retry %d of %d in %s", r.LastError, n, p.MaxRetries, p.Delay(n))})
			}
		}
		if len(hosts) == 0 {
			return false, nil
		}
		x.rec.emit(context.WithoutCancel(x.ctx), evs...)
		x.log.WithField("nodes", hosts).WithField("retry", n).Warn("transient failure: trying again after a backoff")
		waiting = true
		return true, errTransientLeft
	})
	if waiting && x.ctx.Err() != nil {
		// The run ended (a cancel, a shutdown) while these nodes waited for their retry: say so, with
		// what their last try found, rather than leave the last try's words as if it were the end.
		for _, h := range hosts {
			r := &res[at[h]]
			r.LastError = fmt.Sprintf("%s while it waited to retry; the last try: %s", context.Cause(x.ctx), r.LastError)
		}
	}
	return res
}

// stopBefore says why the next batch must not start ("" if it may).
func (x *run) stopBefore(done []executor.NodeResult) string {
	if x.ctx.Err() != nil {
		return "not started: " + context.Cause(x.ctx).Error() + "; the node was not touched"
	}
	if x.d.Batch.StopOnFailure {
		for _, r := range done {
			if r.State != goal(x.d) {
				return "not started: node " + r.Host + " failed in an earlier batch (stop_on_failure); the node was not touched"
			}
		}
	}
	return ""
}

// giveBack releases nodes a deployment claimed but never started, as they were, and records why.
func (e *Engine) giveBack(ctx context.Context, x *run, skipped map[string]string) []store.Event {
	if len(skipped) == 0 {
		return nil
	}
	claimed := map[string]*store.Node{}
	var evs []store.Event
	for i := range x.d.Nodes {
		n := &x.d.Nodes[i]
		why, ok := skipped[n.Host]
		if !ok {
			continue
		}
		if prior := x.before[n.Host]; prior != nil {
			claimed[n.Host] = prior
		}
		n.State, n.LastError = executor.StateFailed, why
		evs = append(evs, store.Event{Type: store.EventNode, Node: n.Host, State: n.State, Message: why})
	}
	if err := e.cfg.Store.ReleaseAll(ctx, x.d.ID, claimed); err != nil {
		e.releaseLater(x.d.ID, claimed)
	}
	return evs
}

// neverStarted ends a deployment cancelled while it waited for a slot: its nodes are given back as
// they were, untouched.
func (e *Engine) neverStarted(ctx context.Context, x *run) {
	skipped := map[string]string{}
	why := "not started: " + context.Cause(x.ctx).Error() + "; the node was not touched"
	for _, n := range x.d.Nodes {
		skipped[n.Host] = why
	}
	x.d.Error = context.Cause(x.ctx).Error() + " before it started"
	e.end(ctx, x, e.giveBack(ctx, x, skipped))
}

// cleanErrors puts the executor's error texts as they are recorded and shown (executor.CleanError):
// done once, where results come back from an executor (a run, or the read of a lost run's nodes).
func cleanErrors(res []executor.NodeResult) {
	for i := range res {
		res[i].LastError = executor.CleanError(res[i].LastError)
	}
}
