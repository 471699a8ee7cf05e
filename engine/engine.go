// Package engine runs nodeexec's operations (deploys, rollbacks, scales, restarts) apart from any HTTP:
// it takes a recorded request (Submit), holds the idempotency key and the nodes it names, queues it
// with bounded concurrency, hands it to the executor batch by batch, retries nodes that failed on a
// transient fault, bounds and records every event and node outcome through the store, cancels on
// request (Cancel), drains on shutdown (Drain, Shutdown), and at start finishes the runs a dead
// process left in flight (Reconcile). The server routes, authenticates, decodes, validates and renders;
// every decision about a run is taken here.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/metrics"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// Notifier hears how each deployment ended (package notify's Notifier); it must not block.
type Notifier interface {
	Deployment(d *store.Deployment)
}

// Config wires the engine to its executors, store and observers.
type Config struct {
	// Executor runs operations on physical nodes; K8s (optional) on Kubernetes workloads.
	Executor executor.Executor
	K8s      executor.Executor
	Store    *store.Store
	// MaxConcurrent bounds the runs that go at once; more wait their turn. Default 4.
	MaxConcurrent int
	Logger        logrus.FieldLogger
	// Retry is how nodes that failed on a transient fault (unreachable) are tried again; the zero
	// policy never retries.
	Retry retry.Policy
	// DeployTimeout bounds one executor call (a batch's ansible-playbook run, a rollout); 0: none.
	DeployTimeout time.Duration
	// ObjectsTimeout bounds one apply or delete of Kubernetes objects; 0: DefaultObjectsTimeout.
	ObjectsTimeout time.Duration
	// Metrics records queued, running and ended runs; nil: a registry of the engine's own.
	Metrics *metrics.Metrics
	// Notifier hears each end; nil: nobody.
	Notifier Notifier
	// StoreRetry is how a run writes its records through a database blip; zero: 8 retries from 250 ms,
	// doubling up to 10 s (about 40 s in all).
	StoreRetry retry.Policy
	// KeyWait and KeyOrphanAfter: see DefaultKeyWait; zero: the defaults.
	KeyWait, KeyOrphanAfter time.Duration
	// Replica places this engine among replicas sharing the database (replicas.go).
	Replica ReplicaConfig
	// Hooks let tests act at points a real fault would strike; leave them nil in production.
	Hooks Hooks
}

// Hooks are called at points a test needs to act at; each may be nil.
type Hooks struct {
	// AfterClaim runs once a submission holds its nodes, before its deployment is recorded.
	AfterClaim func()
	// Released runs when nodes an unrecorded request claimed are given back after a database failure.
	Released func(deploymentID string)
	// KeyWaiting runs when a retry starts to wait for the request that holds its idempotency key.
	KeyWaiting func()
	// KeyForgotten runs when the key of a failed request is given back after a database failure.
	KeyForgotten func(key string)
	// PersistFailed runs each time a run's record fails to reach the database on a transient fault.
	PersistFailed func()
}

// Engine carries out operations. Its methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	slots   chan struct{}
	runs    runs
	hub     hub
	parents parents
	metrics *metrics.Metrics
	// admit serializes this process's admissions (admission): a max_unavailable check must see every
	// deployment before it.
	admit sync.Mutex
	// background holds goroutines that outlive a request (releases after a database failure).
	background sync.WaitGroup
	// drain is closed when the engine stops taking new runs (StopTaking).
	drain     chan struct{}
	drainOnce sync.Once
	// ctx is the parent of every run: Shutdown cancels it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// self is this process as a replica; stopWatch ends its heartbeats (Shutdown), watching waits for them.
	self      store.Replica
	stopWatch chan struct{}
	stopOnce  sync.Once
	watching  sync.WaitGroup
}

// errShuttingDown is the cause of runs cancelled because the engine stops.
var errShuttingDown = errors.New("cancelled: nodeexec is shutting down")

// New builds an engine; it runs nothing until Submit.
func New(cfg Config) *Engine {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.StoreRetry == (retry.Policy{}) {
		cfg.StoreRetry = retry.Policy{MaxRetries: 8, InitialDelay: 250 * time.Millisecond, MaxDelay: 10 * time.Second, Factor: 2}
	}
	if cfg.ObjectsTimeout <= 0 {
		cfg.ObjectsTimeout = DefaultObjectsTimeout
	}
	if cfg.KeyWait <= 0 {
		cfg.KeyWait = DefaultKeyWait
	}
	if cfg.KeyOrphanAfter <= 0 {
		cfg.KeyOrphanAfter = DefaultKeyOrphanAfter
	}
	self := newReplica(&cfg.Replica)
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Engine{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent), metrics: cfg.Metrics,
		drain: make(chan struct{}), ctx: ctx, cancel: cancel, self: self, stopWatch: make(chan struct{})}
}

// Executor is the executor of a platform, or a ValidationError naming the platform when this engine
// has none.
func (e *Engine) Executor(p executor.Platform) (executor.Executor, error) {
	switch {
	case p == executor.PlatformK8s && e.cfg.K8s != nil:
		return e.cfg.K8s, nil
	case p == executor.PlatformPhysical && e.cfg.Executor != nil:
		return e.cfg.Executor, nil
	}
	return nil, &executor.ValidationError{Field: "platform", Reason: fmt.Sprintf("%q is not configured on this server", p)}
}

// Context ends when the engine cancels its runs (Shutdown, or Drain past its grace): work a request
// waits for on the nodes ends with it.
func (e *Engine) Context() context.Context { return e.ctx }

// Changed is closed at the next event recorded for the deployment id, by this process.
func (e *Engine) Changed(id string) <-chan struct{} { return e.hub.wait(id) }

// Cancel stops the run of deployment id, if this process carries it out (true).
func (e *Engine) Cancel(id string) bool {
	x := e.runs.get(id)
	if x != nil {
		x.cancel(errCancelRequested)
	}
	return x != nil
}

// Shutdown cancels the running operations and waits for them to record their end.
func (e *Engine) Shutdown() {
	e.StopTaking()
	e.cancel(errShuttingDown)
	e.runs.wg.Wait()
	e.stopOnce.Do(func() { close(e.stopWatch) })
	e.watching.Wait()
	e.background.Wait()
}

// Drain is a graceful Shutdown: the engine stops taking new runs, ends those still waiting for a slot
// as not started, and gives the running ones up to grace to finish on their own; then it cancels the
// rest (each node reports what it really runs, and the deployment says why it ended) and waits for
// their records. ctx ending cuts the grace short.
func (e *Engine) Drain(ctx context.Context, grace time.Duration) {
	e.StopTaking()
	done := make(chan struct{})
	go func() {
		e.runs.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		e.cfg.Logger.WithField("grace", grace.String()).Warn("grace period over: cancelling the deployments still running")
		e.cancel(fmt.Errorf("cancelled: nodeexec is shutting down and the deployment did not finish within the %s grace period", grace))
	case <-ctx.Done():
		e.cancel(errShuttingDown)
	}
	<-done
	e.background.Wait()
}

// StopTaking makes Draining true; runs still waiting for a slot end as not started.
func (e *Engine) StopTaking() { e.drainOnce.Do(func() { close(e.drain) }) }

// Draining says whether the engine stopped taking new runs.
func (e *Engine) Draining() bool {
	select {
	case <-e.drain:
		return true
	default:
		return false
	}
}
