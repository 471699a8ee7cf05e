package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// errInterrupted is why a reconciled deployment ended.
const errInterrupted = "interrupted: nodeexec stopped during the run; each node's outcome was read from the node at restart"

// Reconcile finishes the deployments a previous nodeexec process left in flight (it died mid-run): the
// nodes they still hold are asked what they really run (status.yml, from the node's own record, after
// releasing the dead run's node locks), and each node and the deployment get a true final state. A node
// that runs the target version is a success; anything else is failed, saying what the node runs.
// Among replicas on one database, only what this replica's earlier incarnation left, or a dead
// replica's, is finished here: the others' runs go on. Call it at start, before taking submissions.
func (e *Engine) Reconcile(ctx context.Context) error {
	if err := e.heartbeat(ctx); err != nil {
		return err
	}
	return e.adopt(ctx, errInterrupted)
}

// settleLost ends deployments whose run is gone; why is their error.
func (e *Engine) settleLost(ctx context.Context, lost []store.Deployment, why string) error {
	// Applications first: a deployment of several then follows what they became.
	var several []string
	for i := range lost {
		if lost[i].HasApplications() {
			several = append(several, lost[i].ID)
			continue
		}
		if store.IsObjectsKind(lost[i].Kind) {
			if err := e.endLostObjects(ctx, &lost[i]); err != nil {
				return fmt.Errorf("end %s %s: %w", lost[i].Kind, lost[i].ID, err)
			}
			continue
		}
		if err := e.reconcile(ctx, &lost[i], why); err != nil {
			return fmt.Errorf("reconcile deployment %s: %w", lost[i].ID, err)
		}
	}
	for _, id := range several {
		if err := e.settleApplications(ctx, id); err != nil {
			return fmt.Errorf("reconcile deployment %s: %w", id, err)
		}
	}
	return nil
}

// reconcile ends a deployment whose run is gone from the nodes' own word; why is its error.
func (e *Engine) reconcile(ctx context.Context, d *store.Deployment, why string) error {
	log := e.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "service": d.Service, "version": d.Version})
	last, err := e.cfg.Store.LastEventSeq(ctx, d.ID)
	if err != nil {
		return err
	}
	x := &run{d: d, ctx: ctx, rec: e.recorder(d.ID, last), log: log}
	// Nodes the dead run had finished are as their records say; the ones it still held are asked.
	var held []string
	records := map[string]*store.Node{}
	for i := range d.Nodes {
		dn := &d.Nodes[i]
		n, err := e.cfg.Store.Node(ctx, d.Service, dn.Host)
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		case err == nil && n.DeploymentID == d.ID && n.State == executor.StateDeploying:
			held = append(held, dn.Host)
			records[dn.Host] = n
		case err == nil && n.DeploymentID == d.ID:
			dn.State, dn.CurrentVersion, dn.PrevVersion, dn.LastError = n.State, n.CurrentVersion, n.PrevVersion, n.LastError
		default:
			dn.State, dn.LastError = executor.StateFailed, "interrupted before this node was recorded"
		}
	}
	log.WithField("held_nodes", len(held)).Warn("reconciling a deployment left in flight")
	var evs []store.Event
	if len(held) > 0 {
		results, err := e.readLost(ctx, d, held)
		if err != nil {
			// The nodes did not answer: they stay held (deploying) and the deployment in flight, so the
			// next start tries again; nothing is guessed.
			return fmt.Errorf("reading the nodes it held: %w", err)
		}
		reported := map[string]bool{}
		for _, r := range results {
			reported[r.Host] = true
			r = judgeLost(d, r)
			if hc := d.Health(); hc.HTTPPort != 0 && r.State != executor.StateFailed {
				// The lost run may have died before it verified the release: check it now.
				if ok, msg := ProbeHTTP(ctx, d.Targets().Address(r.Host), hc); !ok {
					r.State = executor.StateFailed
					r.LastError = fmt.Sprintf("interrupted before the release was verified; the node runs %s, which fails its health check (%s)", r.RunningVersion, msg)
				}
			}
			evs = append(evs, e.finishNode(ctx, x, r)...)
		}
		for _, h := range held {
			if !reported[h] {
				// Never left held: failed, with the versions its record had.
				n := records[h]
				evs = append(evs, e.finishNode(ctx, x, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: h, Service: d.Service,
					Platform: d.Platform, State: executor.StateFailed, CurrentVersion: n.CurrentVersion, PrevVersion: n.PrevVersion,
					LastError: "interrupted, and the node did not say what it runs"}})...)
			}
		}
	}
	d.Error = why
	e.end(ctx, x, evs)
	return nil
}

// readLost asks the nodes a lost run held what they run, releasing its locks first when the executor can.
func (e *Engine) readLost(ctx context.Context, d *store.Deployment, held []string) ([]executor.NodeResult, error) {
	exec, err := e.Executor(d.Platform)
	if err != nil {
		return nil, err
	}
	t := d.Targets().Only(held)
	var res []executor.NodeResult
	if r, ok := exec.(executor.Recoverer); ok {
		res, err = r.Recover(ctx, executor.RecoverRequest{DeploymentID: d.ID, Service: d.Service, Nodes: t.Nodes, Workloads: t.Workloads})
	} else {
		res, err = exec.Status(ctx, executor.StatusRequest{Service: d.Service, Nodes: t.Nodes, Workloads: t.Workloads})
	}
	cleanErrors(res)
	return res, err
}

// judgeLost turns what a node says it runs into the outcome of the lost run on it.
func judgeLost(d *store.Deployment, r executor.NodeResult) executor.NodeResult {
	dn := d.Node(r.Host)
	want := goal(d)
	switch {
	case r.LastError != "" && r.CurrentVersion == "" && r.State == executor.StateFailed:
		r.LastError = "interrupted, and the node did not say what it runs: " + r.LastError
	case dn != nil && r.CurrentVersion == dn.TargetVersion && r.RunningVersion == dn.TargetVersion:
		r.State, r.LastError = want, ""
		r.Changed = dn.FromVersion != dn.TargetVersion
	default:
		r.State = executor.StateFailed
		r.LastError = fmt.Sprintf("interrupted: nodeexec stopped during the run; the node runs %s (its record: current %s, previous %s)",
			OrNothing(r.RunningVersion), OrNothing(r.CurrentVersion), OrNothing(r.PrevVersion))
	}
	return r
}
