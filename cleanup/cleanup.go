// Package cleanup runs cleanup passes, on a schedule (a cron spec) or on request, one at a time across
// every nodeexec replica on the database. A pass removes old releases from the physical nodes of every
// service (cleanup.yml, keep-N per service, in batches; each node held as a deployment holds it, so a
// cleanup never runs beside a deploy) and prunes the records that finished before the retention period.
// Each pass is recorded in the store, node by node.
package cleanup

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
	"github.com/nodeexec/nodeexec/executor/ansible"
	"github.com/nodeexec/nodeexec/lease"
	"github.com/nodeexec/nodeexec/store"
)

// Cleaner removes old releases on a service's nodes: the Ansible executor.
type Cleaner interface {
	Cleanup(ctx context.Context, req ansible.CleanupRequest) ([]ansible.CleanupResult, error)
}

// Config says what a pass does and when.
type Config struct {
	Store   *store.Store
	Cleaner Cleaner
	// Schedule is when passes run; nil: only on request (Start).
	Schedule cron.Schedule
	// Keep is how many releases each node keeps (at least 2); PerService overrides it for a service.
	Keep       int
	PerService map[string]int
	// Retention: records that finished longer ago are pruned; 0 keeps them all.
	Retention time.Duration
	// BatchSize is how many nodes of a service one cleanup run takes (and holds from deploys); default 20.
	BatchSize int
	// Holder names this replica in the lease and the records; default host-pid-random.
	Holder string
	// LeaseTTL is how long the lease outlives a runner that stopped renewing it; default 2m.
	LeaseTTL time.Duration
	Logger   logrus.FieldLogger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Runner runs cleanup passes; it owns the goroutines of the schedule and of passes started on request.
type Runner struct {
	cfg Config
	log logrus.FieldLogger
	// wait blocks until the given time (true) or until ctx ends (false): the schedule's clock.
	wait  func(ctx context.Context, until time.Time) bool
	lease *lease.Keeper
	runs  *lease.Runs
}

// ErrStopped means the runner was stopped (nodeexec is shutting down).
var ErrStopped = errors.New("cleanup: nodeexec is shutting down")

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
	log := cfg.Logger.WithField("component", "cleanup")
	r := &Runner{cfg: cfg, log: log, wait: lease.SleepUntil, runs: lease.NewRuns()}
	// One pass at a time across every replica on the database.
	r.lease = &lease.Keeper{Store: cfg.Store, Name: store.CleanupLease, Holder: cfg.Holder, TTL: cfg.LeaseTTL, Now: cfg.Now, Log: log,
		Ended: func(ctx context.Context, pass string) bool {
			prev, err := cfg.Store.Cleanup(ctx, pass)
			return err == nil && prev.FinishedAt != nil
		}}
	return r
}

// Go starts the schedule in the background (nothing without one); Stop ends it.
func (r *Runner) Go() {
	if r.cfg.Schedule == nil {
		return
	}
	r.runs.Go(r.loop)
}

// loop runs each tick of the schedule until ctx ends; the lease lets one replica run each tick.
func (r *Runner) loop(ctx context.Context) {
	lease.Loop(ctx, r.cfg.Schedule, r.cfg.Now, r.wait, func(ctx context.Context, tick time.Time) {
		if _, err := r.RunTick(ctx, tick); err != nil {
			r.log.WithError(err).WithField("tick", tick).Error("scheduled cleanup pass failed to start")
		}
	}, r.log)
}

// Stop cancels the schedule and any pass running here (each ends recording why), and waits for them.
func (r *Runner) Stop() { r.runs.Stop(ErrStopped) }

// Wait waits for the passes running in the background (and the schedule, once stopped) to end.
func (r *Runner) Wait() { r.runs.Wait() }

// RunTick runs the pass of one scheduled tick, if this replica takes the lease for it: it returns the
// pass once it ended, or nil when another replica has (or had) this tick, or another pass is running.
func (r *Runner) RunTick(ctx context.Context, tick time.Time) (*store.Cleanup, error) {
	c, err := r.begin(ctx, store.TriggerSchedule, "", tick)
	var held *store.LeaseHeldError
	if errors.As(err, &held) {
		r.log.WithFields(logrus.Fields{"tick": tick, "holder": held.Lease.Holder, "pass": held.Lease.Pass}).Info("cleanup tick taken elsewhere: not running it here")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.pass(ctx, c)
	return c, nil
}

// Start runs one pass now, in the background, and returns it as recorded at its start. While another
// pass runs (here or on another replica) it runs none: the *store.LeaseHeldError names that one.
func (r *Runner) Start(ctx context.Context, token string) (*store.Cleanup, error) {
	if r.runs.Stopped() {
		return nil, ErrStopped
	}
	c, err := r.begin(ctx, store.TriggerAPI, token, time.Time{})
	if err != nil {
		return nil, err
	}
	started := *c
	started.Nodes = slices.Clone(c.Nodes)
	if !r.runs.Go(func(ctx context.Context) { r.pass(ctx, c) }) {
		bg := context.WithoutCancel(ctx)
		r.end(bg, c, ErrStopped.Error())
		r.lease.Release(bg, c.ID)
		return nil, ErrStopped
	}
	return &started, nil
}

// begin takes the lease and records the pass.
func (r *Runner) begin(ctx context.Context, trigger, token string, tick time.Time) (*store.Cleanup, error) {
	id := store.NewCleanupID()
	now := r.cfg.Now().UTC()
	if err := r.lease.Take(ctx, id, tick, now); err != nil {
		return nil, err
	}
	c := &store.Cleanup{ID: id, Trigger: trigger, Token: token, Runner: r.cfg.Holder, State: store.CleanupRunning,
		Keep: r.cfg.Keep, Nodes: []store.CleanupNode{}, StartedAt: now}
	if !tick.IsZero() {
		t := tick.UTC()
		c.Tick = &t
	}
	if err := r.cfg.Store.CreateCleanup(ctx, c); err != nil {
		r.lease.Release(context.WithoutCancel(ctx), id)
		return nil, err
	}
	return c, nil
}

// errLeaseLost ends a pass whose runner could not keep its lease: another replica may start one.
var errLeaseLost = errors.New("this nodeexec lost the cleanup lease (the database did not answer in time)")

// pass carries out a recorded pass under its lease, to its recorded end.
func (r *Runner) pass(parent context.Context, c *store.Cleanup) {
	log := r.log.WithFields(logrus.Fields{"cleanup_id": c.ID, "trigger": c.Trigger})
	log.Info("cleanup pass started")
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	stopRenewing := r.lease.Hold(ctx, cancel, c.ID, errLeaseLost)
	bg := context.WithoutCancel(ctx)
	defer r.lease.Release(bg, c.ID)
	defer stopRenewing()

	var problems []string
	if err := r.endAbandoned(ctx, c.ID); err != nil {
		problems = append(problems, "ending abandoned passes: "+err.Error())
	}
	nodes, err := r.cfg.Store.PhysicalNodes(ctx)
	if err != nil {
		stopRenewing()
		r.end(bg, c, "listing the nodes: "+err.Error())
		return
	}
	for _, n := range nodes {
		cn := store.CleanupNode{Service: n.Service, Host: n.Host, State: store.NodePending, Keep: r.keep(n.Service)}
		if neverReleased(n) {
			// Nothing nodeexec knows of is on it (a deploy that never got there): not even connected to.
			cn.State, cn.Error = store.NodeSkipped, "nothing to clean: no release was ever recorded on this node"
		}
		c.Nodes = append(c.Nodes, cn)
	}
	r.save(bg, c)
	for _, batch := range r.batches(c.Nodes) {
		if ctx.Err() != nil {
			why := "not cleaned: " + context.Cause(ctx).Error()
			for _, i := range batch {
				c.Nodes[i].State, c.Nodes[i].Error = store.NodeSkipped, why
			}
			continue
		}
		r.cleanBatch(ctx, c, batch)
		r.save(bg, c)
	}
	if failed := count(c.Nodes, store.NodeFailed); failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d nodes failed (each says why)", failed, len(c.Nodes)))
	}
	if ctx.Err() != nil {
		problems = append(problems, context.Cause(ctx).Error())
	} else if r.cfg.Retention > 0 {
		cutoff := r.cfg.Now().UTC().Add(-r.cfg.Retention)
		pruned, err := r.cfg.Store.Prune(ctx, cutoff)
		c.Pruned = pruned
		if err != nil {
			problems = append(problems, "pruning records: "+err.Error())
		}
	}
	stopRenewing() // the lease is not renewed past the recorded end: another pass may take it over then
	r.end(bg, c, strings.Join(problems, "; "))
	log.WithFields(logrus.Fields{"state": c.State, "nodes": len(c.Nodes), "cleaned": count(c.Nodes, store.NodeCleaned),
		"skipped": count(c.Nodes, store.NodeSkipped), "pruned_deployments": c.Pruned.Deployments}).Info("cleanup pass ended")
}

// end records a pass's end: failed when there were problems, success otherwise.
func (r *Runner) end(ctx context.Context, c *store.Cleanup, problems string) {
	c.State, c.Error = store.CleanupSuccess, problems
	if problems != "" {
		c.State = store.CleanupFailed
	}
	now := r.cfg.Now().UTC()
	c.FinishedAt = &now
	r.save(ctx, c)
}

func (r *Runner) save(ctx context.Context, c *store.Cleanup) {
	if err := r.cfg.Store.SaveCleanup(ctx, c); err != nil {
		r.log.WithError(err).WithField("cleanup_id", c.ID).Error("could not record the cleanup pass")
	}
}

func (r *Runner) keep(service string) int {
	if k, ok := r.cfg.PerService[service]; ok {
		return k
	}
	return r.cfg.Keep
}

// neverReleased says whether a node's record has no release, and no deployment is giving it one now.
func neverReleased(n store.Node) bool {
	return n.CurrentVersion == "" && n.PrevVersion == "" && n.State != executor.StateDeploying && n.State != executor.StatePending
}

// batches cuts the nodes still to clean (listed by service) into runs of at most BatchSize nodes of
// one service.
func (r *Runner) batches(nodes []store.CleanupNode) [][]int {
	var out [][]int
	for i := range nodes {
		if nodes[i].State != store.NodePending {
			continue
		}
		last := len(out) - 1
		if last < 0 || len(out[last]) == r.cfg.BatchSize || nodes[out[last][0]].Service != nodes[i].Service {
			out = append(out, nil)
			last++
		}
		out[last] = append(out[last], i)
	}
	return out
}

// cleanBatch holds the batch's nodes as a deployment would (a node a deployment holds is skipped, and
// says by which), runs the cleanup on those it holds, and gives each back as it was.
func (r *Runner) cleanBatch(ctx context.Context, c *store.Cleanup, batch []int) {
	st, bg := r.cfg.Store, context.WithoutCancel(ctx)
	var held []int
	var nodes []executor.Node
	for _, i := range batch {
		n := &c.Nodes[i]
		prior, err := st.Claim(ctx, n.Service, n.Host, executor.PlatformPhysical, c.ID, "")
		var busy *store.BusyError
		switch {
		case errors.As(err, &busy):
			n.State, n.Error = store.NodeSkipped, "held by "+store.HolderName(busy.DeploymentID)+": not touched; a later pass cleans it"
		case err != nil:
			n.State, n.Error = store.NodeFailed, "could not hold the node: "+err.Error()
		default:
			n.State, n.Prior = store.NodeCleaning, prior
			held = append(held, i)
			nodes = append(nodes, executor.Node{Host: n.Host})
		}
	}
	if len(held) == 0 {
		return
	}
	// The prior records are kept before anything runs: if this nodeexec stops, the next pass gives them back.
	r.save(bg, c)
	service, keep := c.Nodes[held[0]].Service, c.Nodes[held[0]].Keep
	results, runErr := r.cfg.Cleaner.Cleanup(ctx, ansible.CleanupRequest{ID: c.ID, Service: service, Keep: keep, Nodes: nodes})
	byHost := make(map[string]ansible.CleanupResult, len(results))
	for _, res := range results {
		byHost[res.Host] = res
	}
	for _, i := range held {
		n := &c.Nodes[i]
		res, ok := byHost[n.Host]
		switch {
		case ok && res.Error == "":
			n.State, n.Kept, n.Removed = store.NodeCleaned, res.Kept, res.Removed
		case ok:
			n.State, n.Error = store.NodeFailed, res.Error
		case runErr != nil:
			n.State, n.Error = store.NodeFailed, runErr.Error()
		default:
			n.State, n.Error = store.NodeFailed, "the cleanup reported nothing for this node"
		}
		if err := st.Release(bg, c.ID, n.Prior); err != nil {
			n.Error = strings.TrimPrefix(n.Error+"; could not give the node back ("+err.Error()+"): a deploy takes it over after "+store.OrphanGrace.String(), "; ")
			continue
		}
		n.Prior = nil
	}
}

func count(nodes []store.CleanupNode, state string) int {
	n := 0
	for _, x := range nodes {
		if x.State == state {
			n++
		}
	}
	return n
}
