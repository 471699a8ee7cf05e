// Package drift runs drift passes, on a schedule (a cron spec) or on request, one at a time across
// every nodeexec replica on the database (package lease). A pass reads every known node (physical nodes
// with status.yml, one run per service per batch; Kubernetes workloads through the k8s executor's
// Status), holding each as a deployment holds it, and compares the node's record with what the node
// says and runs (Compare). What it finds is written on the node's record as its drift, and the record
// takes the node's versions when they differ; each pass is recorded in the store, node by node.
package drift

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/lease"
	"github.com/nodeexec/nodeexec/store"
)

// NodeReader reads physical nodes' units and own records: the Ansible executor (status.yml).
type NodeReader interface {
	ServiceStatus(ctx context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error)
}

// WorkloadReader reads Kubernetes workloads' live versions: the k8s executor.
type WorkloadReader interface {
	Status(ctx context.Context, req executor.StatusRequest) ([]executor.NodeResult, error)
}

// Metrics receives each pass's result (metrics.Metrics).
type Metrics interface {
	Drifted(service string, nodes []store.DriftNode)
}

// Notifier tells webhooks of each drift a pass found (notify.Notifier).
type Notifier interface {
	NodeDrifted(passID string, n store.DriftNode)
}

// Config says what a pass reads and when.
type Config struct {
	Store *store.Store
	// Nodes reads physical nodes, Workloads Kubernetes ones; a platform without a reader is skipped.
	Nodes     NodeReader
	Workloads WorkloadReader
	// Schedule is when passes run; nil: only on request (Start).
	Schedule cron.Schedule
	// BatchSize is how many nodes of a service one read takes (and holds from deploys); default 20.
	BatchSize int
	Metrics   Metrics
	Notify    Notifier
	// Holder names this replica in the lease and the records; default host-pid-random.
	Holder string
	// LeaseTTL is how long the lease outlives a runner that stopped renewing it; default 2m.
	LeaseTTL time.Duration
	Logger   logrus.FieldLogger
	Now      func() time.Time
}

// Runner runs drift passes; it owns the goroutines of the schedule and of passes started on request.
type Runner struct {
	cfg   Config
	log   logrus.FieldLogger
	lease *lease.Keeper
	runs  *lease.Runs
}

// ErrStopped means the runner was stopped (nodeexec is shutting down).
var ErrStopped = errors.New("drift: nodeexec is shutting down")

// errLeaseLost ends a pass whose runner could not keep its lease: another replica may start one.
var errLeaseLost = errors.New("this nodeexec lost the drift lease (the database did not answer in time)")

// New builds a runner; Go starts its schedule.
func New(cfg Config) *Runner {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 20
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.Holder == "" {
		cfg.Holder = lease.DefaultHolder()
	}
	log := cfg.Logger.WithField("component", "drift")
	r := &Runner{cfg: cfg, log: log, runs: lease.NewRuns()}
	r.lease = &lease.Keeper{Store: cfg.Store, Name: store.DriftLease, Holder: cfg.Holder, TTL: cfg.LeaseTTL, Now: cfg.Now, Log: log,
		Ended: func(ctx context.Context, pass string) bool {
			p, err := cfg.Store.DriftPass(ctx, pass)
			return err == nil && p.FinishedAt != nil
		}}
	return r
}

// Go starts the schedule in the background (nothing without one); Stop ends it.
func (r *Runner) Go() {
	if r.cfg.Schedule == nil {
		return
	}
	r.runs.Go(func(ctx context.Context) {
		lease.Loop(ctx, r.cfg.Schedule, r.cfg.Now, lease.SleepUntil, func(ctx context.Context, tick time.Time) {
			if _, err := r.RunTick(ctx, tick); err != nil {
				r.log.WithError(err).WithField("tick", tick).Error("scheduled drift pass failed to start")
			}
		}, r.log)
	})
}

// Stop cancels the schedule and any pass running here (each ends recording why), and waits for them.
func (r *Runner) Stop() { r.runs.Stop(ErrStopped) }

// Wait waits for the passes running in the background to end.
func (r *Runner) Wait() { r.runs.Wait() }

// RunTick runs the pass of one scheduled tick if this replica takes the lease for it, and returns it
// once it ended; nil when another replica has (or had) this tick, or another pass runs.
func (r *Runner) RunTick(ctx context.Context, tick time.Time) (*store.DriftPass, error) {
	p, err := r.begin(ctx, store.TriggerSchedule, "", "", tick)
	var held *store.LeaseHeldError
	if errors.As(err, &held) {
		r.log.WithFields(logrus.Fields{"tick": tick, "holder": held.Lease.Holder, "pass": held.Lease.Pass}).Info("drift tick taken elsewhere: not running it here")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.pass(ctx, p)
	return p, nil
}

// Start runs one pass now over service's nodes ("": every service's), in the background, and returns
// it as recorded at its start. While another pass runs (here or on another replica) it runs none: the
// *store.LeaseHeldError names that one.
func (r *Runner) Start(ctx context.Context, token, service string) (*store.DriftPass, error) {
	if r.runs.Stopped() {
		return nil, ErrStopped
	}
	p, err := r.begin(ctx, store.TriggerAPI, token, service, time.Time{})
	if err != nil {
		return nil, err
	}
	started := *p
	started.Nodes = slices.Clone(p.Nodes)
	if !r.runs.Go(func(ctx context.Context) { r.pass(ctx, p) }) {
		bg := context.WithoutCancel(ctx)
		r.end(bg, p, ErrStopped.Error())
		r.lease.Release(bg, p.ID)
		return nil, ErrStopped
	}
	return &started, nil
}

// begin takes the lease and records the pass.
func (r *Runner) begin(ctx context.Context, trigger, token, service string, tick time.Time) (*store.DriftPass, error) {
	id := store.NewDriftID()
	now := r.cfg.Now().UTC()
	if err := r.lease.Take(ctx, id, tick, now); err != nil {
		return nil, err
	}
	p := &store.DriftPass{ID: id, Trigger: trigger, Token: token, Service: service, Runner: r.cfg.Holder,
		State: store.DriftRunning, Nodes: []store.DriftNode{}, StartedAt: now}
	if !tick.IsZero() {
		t := tick.UTC()
		p.Tick = &t
	}
	if err := r.cfg.Store.CreateDriftPass(ctx, p); err != nil {
		r.lease.Release(context.WithoutCancel(ctx), id)
		return nil, err
	}
	return p, nil
}

// pass carries out a recorded pass under its lease, to its recorded end.
func (r *Runner) pass(parent context.Context, p *store.DriftPass) {
	log := r.log.WithFields(logrus.Fields{"drift_id": p.ID, "trigger": p.Trigger, "service": p.Service})
	log.Info("drift pass started")
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	stopRenewing := r.lease.Hold(ctx, cancel, p.ID, errLeaseLost)
	bg := context.WithoutCancel(ctx)
	defer r.lease.Release(bg, p.ID)
	defer stopRenewing()

	var problems []string
	if err := r.endAbandoned(ctx, p.ID); err != nil {
		problems = append(problems, "ending abandoned passes: "+err.Error())
	}
	nodes, err := r.cfg.Store.KnownNodes(ctx, p.Service)
	if err != nil {
		stopRenewing()
		r.end(bg, p, "listing the nodes: "+err.Error())
		return
	}
	for _, n := range nodes {
		dn := store.DriftNode{Service: n.Service, Host: n.Host, Platform: n.Platform, State: store.DriftNodePending}
		if r.reader(n.Platform) == nil {
			dn.State, dn.Error = store.DriftNodeSkipped, "this nodeexec has no "+string(n.Platform)+" executor to read it with"
		}
		p.Nodes = append(p.Nodes, dn)
	}
	r.save(bg, p)
	for _, batch := range r.batches(p.Nodes) {
		if ctx.Err() != nil {
			why := "not read: " + context.Cause(ctx).Error()
			for _, i := range batch {
				p.Nodes[i].State, p.Nodes[i].Error = store.DriftNodeSkipped, why
			}
			continue
		}
		r.readBatch(ctx, p, batch)
		r.save(bg, p)
	}
	if failed := count(p.Nodes, store.DriftNodeFailed); failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d nodes failed (each says why)", failed, len(p.Nodes)))
	}
	if ctx.Err() != nil {
		problems = append(problems, context.Cause(ctx).Error())
	}
	stopRenewing()
	r.end(bg, p, strings.Join(problems, "; "))
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.Drifted(p.Service, p.Nodes)
	}
	drifted := 0
	for _, n := range p.Nodes {
		if n.Drift != nil {
			drifted++
		}
	}
	log.WithFields(logrus.Fields{"state": p.State, "nodes": len(p.Nodes), "drifted": drifted,
		"skipped": count(p.Nodes, store.DriftNodeSkipped)}).Info("drift pass ended")
}

func (r *Runner) reader(p executor.Platform) any {
	if p == executor.PlatformK8s {
		if r.cfg.Workloads == nil {
			return nil
		}
		return r.cfg.Workloads
	}
	if r.cfg.Nodes == nil {
		return nil
	}
	return r.cfg.Nodes
}

// end records a pass's end: failed when there were problems, success otherwise.
func (r *Runner) end(ctx context.Context, p *store.DriftPass, problems string) {
	p.State, p.Error = store.DriftSuccess, problems
	if problems != "" {
		p.State = store.DriftFailed
	}
	now := r.cfg.Now().UTC()
	p.FinishedAt = &now
	r.save(ctx, p)
}

func (r *Runner) save(ctx context.Context, p *store.DriftPass) {
	if err := r.cfg.Store.SaveDriftPass(ctx, p); err != nil {
		r.log.WithError(err).WithField("drift_id", p.ID).Error("could not record the drift pass")
	}
}

// batches cuts the nodes still to read into runs of at most BatchSize nodes of one service and platform.
func (r *Runner) batches(nodes []store.DriftNode) [][]int {
	var out [][]int
	for i := range nodes {
		if nodes[i].State != store.DriftNodePending {
			continue
		}
		last := len(out) - 1
		if last < 0 || len(out[last]) == r.cfg.BatchSize || nodes[out[last][0]].Service != nodes[i].Service ||
			nodes[out[last][0]].Platform != nodes[i].Platform {
			out = append(out, nil)
			last++
		}
		out[last] = append(out[last], i)
	}
	return out
}

func count(nodes []store.DriftNode, state string) int {
	n := 0
	for _, x := range nodes {
		if x.State == state {
			n++
		}
	}
	return n
}
