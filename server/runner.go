package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/metrics"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// errCancelRequested is the cause of a run cancelled through the API.
var errCancelRequested = errors.New("cancelled on request")

// errShuttingDown is the cause of runs cancelled because the server stops.
var errShuttingDown = errors.New("cancelled: nodeexec is shutting down")

// errNotStartedDraining is the cause of runs still waiting for a slot when the server began to drain.
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
func (s *Server) start(d *store.Deployment, before map[string]*store.Node, rec *recorder) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	x := &run{d: d, before: before, ctx: ctx, cancel: cancel, rec: rec,
		log:     s.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "service": d.Service, "version": d.Version}),
		metrics: s.metrics, flight: s.metrics.Queued(d.Platform, d.Service)}
	s.runs.add(x)
	go func() {
		defer s.runs.done(d.ID)
		defer x.flight.Done()
		defer cancel(nil)
		defer s.recoverRun(x)
		s.execute(x)
	}()
}

// recoverRun ends a run whose code panicked the way a run lost at restart is ended: each node it still
// holds is asked what it runs. The server keeps serving.
func (s *Server) recoverRun(x *run) {
	r := recover()
	if r == nil {
		return
	}
	x.log.WithFields(logrus.Fields{"panic": fmt.Sprint(r), "stack": string(debug.Stack())}).Error("a deployment's run panicked; reading its nodes to end it")
	why := fmt.Sprintf("internal error: the run stopped (%v); each node's outcome was read from the node", r)
	if err := s.reconcile(context.WithoutCancel(x.ctx), x.d, why); err != nil {
		x.log.WithError(err).Error("could not end the deployment whose run panicked; the next start does")
	}
}

// execute waits for a slot, runs the executor, and records every node's end. Records are written even
// when the run was cancelled or the server is stopping: they must not be lost.
func (s *Server) execute(x *run) {
	d, bg := x.d, context.WithoutCancel(x.ctx)
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-x.ctx.Done():
	case <-s.drain:
	}
	if s.draining() {
		x.cancel(errNotStartedDraining) // draining: only runs that already had their slot go on
	}
	if x.ctx.Err() != nil {
		s.neverStarted(bg, x)
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
	s.save(bg, x, events...)

	results, skipped, runErr := s.operate(x)
	var evs []store.Event
	for _, r := range results {
		evs = append(evs, s.finishNode(bg, x, r)...)
	}
	evs = append(evs, s.giveBack(bg, x, skipped)...)
	if runErr != nil {
		d.Error = runErr.Error()
		if cause := context.Cause(x.ctx); cause != nil && x.ctx.Err() != nil {
			d.Error = cause.Error() + ": " + runErr.Error()
		}
	}
	s.end(bg, x, evs)
}

// operate hands the deployment to the executor: a deploy batch by batch, a rollback in one call per
// target version (each node goes back to what it ran before, which may differ between nodes). It
// returns the nodes' results, and the nodes it never started (cancelled, or stopped after a failed
// batch) with the reason.
func (s *Server) operate(x *run) ([]executor.NodeResult, map[string]string, error) {
	d := x.d
	var groups []executor.DeployRequest
	if d.Kind != store.KindRollback {
		for _, batch := range d.Batch.Split(hostsOf(d.Request)) {
			req := subset(d.Request, batch)
			req.Progress = x.progress
			groups = append(groups, req)
		}
	} else {
		for _, target := range targetVersions(d) {
			var hosts []string
			for _, n := range d.Nodes {
				if n.TargetVersion == target {
					hosts = append(hosts, n.Host)
				}
			}
			req := subset(d.Request, hosts)
			req.Version, req.Progress = target, x.progress
			groups = append(groups, req)
		}
	}
	exec, err := s.executorFor(d.Platform)
	if err != nil {
		return nil, nil, err
	}
	var all []executor.NodeResult
	var errs []error
	skipped := map[string]string{}
	for i, req := range groups {
		if why := x.stopBefore(all); why != "" {
			for _, g := range groups[i:] {
				for _, h := range hostsOf(g) {
					skipped[h] = why
				}
			}
			break
		}
		res, err := s.runGroup(x, exec, req)
		res = s.retryTransient(x, exec, req, res)
		all = append(all, res...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return all, skipped, errors.Join(errs...)
}

// hostsOf lists a request's targets as node names: physical hosts, or workloads as "namespace/name".
func hostsOf(req executor.DeployRequest) []string {
	var out []string
	for _, n := range req.Nodes {
		out = append(out, n.Host)
	}
	for _, w := range req.Workloads {
		out = append(out, w.Host())
	}
	return out
}

// subset is req for only the targets named in hosts.
func subset(req executor.DeployRequest, hosts []string) executor.DeployRequest {
	want := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		want[h] = true
	}
	nodes, workloads := req.Nodes, req.Workloads
	req.Nodes, req.Workloads = nil, nil
	for _, n := range nodes {
		if want[n.Host] {
			req.Nodes = append(req.Nodes, n)
		}
	}
	for _, w := range workloads {
		if want[w.Host()] {
			req.Workloads = append(req.Workloads, w)
		}
	}
	return req
}

// runGroup hands one group of nodes to the executor, within the deploy timeout. Nodes it could not
// even start on are failed with the reason.
func (s *Server) runGroup(x *run, exec executor.Executor, req executor.DeployRequest) ([]executor.NodeResult, error) {
	d := x.d
	ctx := x.ctx
	if t := s.cfg.DeployTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t, fmt.Errorf("the deploy timeout (%s) was reached", t))
		defer cancel()
	}
	var res []executor.NodeResult
	var err error
	began := time.Now()
	switch d.Kind {
	case store.KindScale:
		scaler, ok := exec.(executor.Scaler)
		if !ok {
			return nil, fmt.Errorf("the %s executor cannot scale", d.Platform)
		}
		res, err = scaler.Scale(ctx, executor.ScaleRequest{DeploymentID: d.ID, Service: d.Service, Workloads: req.Workloads,
			Replicas: *d.Replicas, Progress: req.Progress})
	case store.KindRollback:
		res, err = exec.Rollback(ctx, executor.RollbackRequest{DeploymentID: d.ID, Service: d.Service, ToVersion: req.Version,
			Nodes: req.Nodes, Workloads: req.Workloads, Health: req.Health, Progress: req.Progress})
	case store.KindRestart:
		restarter, ok := exec.(executor.Restarter)
		if !ok {
			return nil, fmt.Errorf("the %s executor cannot restart", d.Platform)
		}
		res, err = restarter.Restart(ctx, executor.RestartRequest{DeploymentID: d.ID, Service: d.Service, Nodes: req.Nodes,
			Health: req.Health, Progress: req.Progress})
	default:
		res, err = exec.Deploy(ctx, req)
	}
	s.metrics.ExecutorRun(d.Platform, d.Service, d.Kind, time.Since(began))
	if err != nil && len(res) == 0 {
		// Nothing ran on any node of this group: each is failed with the reason, and with why the run
		// was cut short when it was (the deploy timeout, a shutdown) rather than a bare "deadline exceeded".
		if ctx.Err() != nil && !strings.Contains(err.Error(), context.Cause(ctx).Error()) {
			err = fmt.Errorf("%v: %w", context.Cause(ctx), err)
		}
		for _, h := range hostsOf(req) {
			prior := x.priorOf(h)
			res = append(res, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: h, Service: d.Service, Platform: d.Platform,
				State: executor.StateFailed, CurrentVersion: prior.CurrentVersion, PrevVersion: prior.PrevVersion, LastError: err.Error()}})
		}
	}
	return res, err
}

// retryTransient runs the group again for the nodes that failed on a transient fault (a host that
// could not be reached), after a backoff, as often as the retry policy allows; each retry is announced
// on the node's events, and the latest result of a node replaces the earlier ones.
func (s *Server) retryTransient(x *run, exec executor.Executor, req executor.DeployRequest, res []executor.NodeResult) []executor.NodeResult {
	p := s.cfg.Retry
	for n := 1; n <= p.MaxRetries && x.ctx.Err() == nil; n++ {
		at := map[string]int{}
		var hosts []string
		var evs []store.Event
		for i, r := range res {
			if r.Transient && r.State == executor.StateFailed {
				at[r.Host] = i
				hosts = append(hosts, r.Host)
				evs = append(evs, store.Event{Type: store.EventNode, Node: r.Host, State: executor.StateDeploying,
					Message: fmt.Sprintf("%s; retry %d of %d in %s", r.LastError, n, p.MaxRetries, p.Delay(n))})
			}
		}
		if len(hosts) == 0 {
			break
		}
		x.rec.emit(context.WithoutCancel(x.ctx), evs...)
		x.log.WithField("nodes", hosts).WithField("retry", n).Warn("transient failure: trying again after a backoff")
		if p.Wait(x.ctx, n) != nil {
			break
		}
		again, _ := s.runGroup(x, exec, subset(req, hosts))
		for _, r := range again {
			if i, ok := at[r.Host]; ok {
				res[i] = r
			}
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
func (s *Server) giveBack(ctx context.Context, x *run, skipped map[string]string) []store.Event {
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
	if err := s.cfg.Store.ReleaseAll(ctx, x.d.ID, claimed); err != nil {
		s.releaseLater(x.d.ID, claimed)
	}
	return evs
}

func targetVersions(d *store.Deployment) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range d.Nodes {
		if !seen[n.TargetVersion] {
			seen[n.TargetVersion] = true
			out = append(out, n.TargetVersion)
		}
	}
	return out
}

// finishNode records one node's outcome on its record and in the deployment, and returns its events:
// the steps that ran on it, then its new state.
func (s *Server) finishNode(ctx context.Context, x *run, r executor.NodeResult) []store.Event {
	r.Service = x.d.Service
	if err := s.persist(ctx, func(ctx context.Context) error { _, err := s.cfg.Store.Finish(ctx, x.d.ID, r.NodeStatus); return err }); err != nil {
		x.log.WithField("node", r.Host).WithError(err).Error("could not record the node's end")
	}
	var evs []store.Event
	// Steps the executor did not stream live (or all, for one that cannot) are recorded now.
	for i := x.streamedSteps(r.Host); i < len(r.Steps); i++ {
		step := r.Steps[i]
		s.metrics.Step(x.d.Platform, x.d.Service, step)
		step = boundStep(step)
		evs = append(evs, store.Event{Type: store.EventStep, Node: r.Host, Step: &step, Message: stepLine(step)})
	}
	if e := r.Evidence; e != nil {
		e = boundEvidence(*e)
		evs = append(evs, store.Event{Type: store.EventEvidence, Node: r.Host, Evidence: e, Message: evidenceLine(e)})
	}
	if r.Stderr != "" && r.State != executor.StateSuccess && r.State != executor.StateRolledBack {
		evs = append(evs, store.Event{Type: store.EventStep, Node: r.Host, Message: "ansible-playbook stderr: " + truncate(r.Stderr, 4096)})
	}
	msg := "runs " + dashIfEmpty(r.CurrentVersion)
	if r.LastError != "" {
		msg = r.LastError
	}
	evs = append(evs, store.Event{Type: store.EventNode, Node: r.Host, State: r.State, Message: msg})
	if n := x.d.Node(r.Host); n != nil {
		n.State, n.CurrentVersion, n.PrevVersion, n.Changed, n.LastError = r.State, r.CurrentVersion, r.PrevVersion, r.Changed, r.LastError
	}
	return evs
}

// neverStarted ends a deployment cancelled while it waited for a slot: its nodes are given back as
// they were, untouched.
func (s *Server) neverStarted(ctx context.Context, x *run) {
	skipped := map[string]string{}
	why := "not started: " + context.Cause(x.ctx).Error() + "; the node was not touched"
	for _, n := range x.d.Nodes {
		skipped[n.Host] = why
	}
	x.d.Error = context.Cause(x.ctx).Error() + " before it started"
	s.end(ctx, x, s.giveBack(ctx, x, skipped))
}

// end records the deployment's final state, then announces it: the last event is written after the
// record, so whoever sees it reads the final record.
func (s *Server) end(ctx context.Context, x *run, evs []store.Event) {
	d := x.d
	d.State = overallState(d)
	now := time.Now().UTC()
	d.FinishedAt = &now
	if err := s.persist(ctx, func(ctx context.Context) error { return s.cfg.Store.UpdateDeployment(ctx, d) }); err != nil {
		x.log.WithError(err).Error("could not record the deployment's end")
	}
	// Counted before the last event: whoever sees the end sees it in the metrics too.
	s.metrics.Ended(d)
	x.flight.Done()
	msg := fmt.Sprintf("%s ended %s", d.Kind, d.State)
	if d.Error != "" {
		msg += ": " + d.Error
	}
	x.rec.emit(ctx, append(evs, store.Event{Type: store.EventDeployment, State: d.State, Message: msg})...)
	s.notifier.Deployment(d) // queued, never waited on
	x.log.WithField("state", d.State).Info("deployment finished")
}

// save records the deployment and then its events.
func (s *Server) save(ctx context.Context, x *run, evs ...store.Event) {
	if err := s.persist(ctx, func(ctx context.Context) error { return s.cfg.Store.UpdateDeployment(ctx, x.d) }); err != nil {
		x.log.WithError(err).Error("could not record the deployment")
	}
	x.rec.emit(ctx, evs...)
}

// persist writes one of a run's records, through a database blip: transient failures are retried
// with backoff (storeRetry, about 40 s in all).
func (s *Server) persist(ctx context.Context, write func(context.Context) error) error {
	return s.storeRetry.Do(ctx, func() (bool, error) {
		err := write(ctx)
		if store.IsTransient(err) && s.hooks.persistFailed != nil {
			s.hooks.persistFailed()
		}
		return store.IsTransient(err), err
	})
}

// goal is the state each node of d should reach: success for a deploy, rolled_back for a rollback.
func goal(d *store.Deployment) executor.State {
	if d.Kind == store.KindRollback {
		return executor.StateRolledBack
	}
	return executor.StateSuccess
}

// overallState: a deployment reaches its goal when every node did; otherwise it failed.
func overallState(d *store.Deployment) executor.State {
	for _, n := range d.Nodes {
		if n.State != goal(d) {
			return executor.StateFailed
		}
	}
	return goal(d)
}

func stepLine(st executor.Step) string {
	line := st.Name + ": " + st.Status()
	if st.Message != "" && (st.Failed || st.Changed) {
		line += ": " + st.Message
	}
	return line
}

// Bounds of what one step or one node's evidence adds to the events: each event is part of a stored
// document of 64 events, which must stay far below the database's 16 MiB.
const (
	maxStepMessage     = 2000
	maxStepOutput      = 4000
	maxJournalLines    = 1000
	maxEvidenceLine    = 1000
	maxEvidenceBytes   = 64 << 10
	maxUnitStatusLines = 40
)

// boundStep keeps a step's message and the end of its output (where an error usually is), bounded.
func boundStep(st executor.Step) executor.Step {
	st.Message = truncate(st.Message, maxStepMessage)
	st.Stdout, st.Stderr = tail(st.Stdout, maxStepOutput), tail(st.Stderr, maxStepOutput)
	return st
}

// boundEvidence keeps the newest journal lines and the first status lines, each line and all of them
// bounded (the role bounds them already; a node is not trusted to).
func boundEvidence(e executor.FailedRelease) *executor.FailedRelease {
	e.Reason = truncate(e.Reason, maxStepMessage)
	e.Journal = boundLines(e.Journal[max(0, len(e.Journal)-maxJournalLines):], true)
	e.UnitStatus = boundLines(e.UnitStatus[:min(len(e.UnitStatus), maxUnitStatusLines)], false)
	return &e
}

// boundLines cuts each line and keeps at most maxEvidenceBytes of them: the newest, or the first.
func boundLines(lines []string, newest bool) []string {
	out := make([]string, 0, len(lines))
	total := 0
	for i := range lines {
		j := i
		if newest {
			j = len(lines) - 1 - i
		}
		l := truncate(lines[j], maxEvidenceLine)
		if total += len(l) + 1; total > maxEvidenceBytes {
			break
		}
		out = append(out, l)
	}
	if newest {
		slices.Reverse(out)
	}
	return out
}

// evidenceLine is an evidence event's line in the node's log.
func evidenceLine(e *executor.FailedRelease) string {
	line := fmt.Sprintf("release %s failed and is kept on the node until a later successful deploy", e.Version)
	if e.Dir != "" {
		line += "; evidence in " + e.Dir
	}
	if len(e.Journal) > 0 {
		line += fmt.Sprintf(" (journal excerpt: %d lines)", len(e.Journal))
	}
	if e.Reason != "" {
		line += ": " + e.Reason
	}
	return line
}

// tail is the last n bytes of s (from a whole character on), marked as cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// truncate is the first n bytes of s (up to a whole character), marked as cut.
func truncate(s string, n int) string {
	if head, cut := executor.Cut(s, n); cut {
		return head + "…"
	}
	return s
}

// storeBackoff paces the writes that must reach the database once it answers again (the claims and
// the key a failed request leaves behind): 200 ms, doubling up to 30 s, until the server stops.
var storeBackoff = retry.Policy{MaxRetries: retry.Forever, InitialDelay: 200 * time.Millisecond, MaxDelay: 30 * time.Second, Factor: 2}

// releaseLater gives back nodes a request claimed but could not record, once the database answers
// again: until then they would look held by a deployment that does not exist. It retries with backoff
// until done or the server stops.
func (s *Server) releaseLater(deploymentID string, claimed map[string]*store.Node) {
	if len(claimed) == 0 {
		return
	}
	log := s.cfg.Logger.WithField("deployment_id", deploymentID)
	log.WithField("nodes", len(claimed)).Warn("the database failed mid-request: releasing the nodes it claimed once it answers")
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		err := storeBackoff.Do(s.ctx, func() (bool, error) {
			return true, s.cfg.Store.ReleaseAll(s.ctx, deploymentID, claimed)
		})
		if err != nil {
			log.WithError(err).Error("stopping with nodes still claimed by an unrecorded request; a later deploy takes them over")
			return
		}
		log.Info("released the nodes of the unrecorded request")
		if s.hooks.released != nil {
			s.hooks.released(deploymentID)
		}
	}()
}
