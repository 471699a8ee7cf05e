package drift

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// readBatch holds the batch's nodes as a deployment would (a node a deployment holds is skipped, and
// says by which), reads those it holds, and gives each back as it was, with what the pass found.
func (r *Runner) readBatch(ctx context.Context, p *store.DriftPass, batch []int) {
	st, bg := r.cfg.Store, context.WithoutCancel(ctx)
	var held []int
	for _, i := range batch {
		n := &p.Nodes[i]
		prior, err := st.Claim(ctx, n.Service, n.Host, n.Platform, p.ID, "")
		var busy *store.BusyError
		switch {
		case errors.As(err, &busy):
			n.State, n.Error = store.DriftNodeSkipped, "held by "+store.HolderName(busy.DeploymentID)+": not read; a later pass reads it"
		case err != nil:
			n.State, n.Error = store.DriftNodeFailed, "could not hold the node: "+err.Error()
		default:
			n.State, n.Prior = store.DriftNodeReading, prior
			held = append(held, i)
		}
	}
	if len(held) == 0 {
		return
	}
	// The prior records are kept before anything runs: if this nodeexec stops, the next pass gives them back.
	r.save(bg, p)
	observed := r.read(ctx, p.Nodes, held)
	now := r.cfg.Now()
	for _, i := range held {
		n := &p.Nodes[i]
		f := Compare(*n.Prior, observed[n.Host], now)
		n.State, n.Drift, n.Change, n.Updated, n.Message = store.DriftNodeRead, f.Drift, f.Change, f.Versions, f.Message
		if err := st.GiveBack(bg, p.ID, n.Prior, store.Observed{Drift: f.Drift, Versions: f.Versions}); err != nil {
			n.State, n.Error = store.DriftNodeFailed, "could not write what was found and give the node back ("+err.Error()+"): a deploy takes it over after "+store.OrphanGrace.String()
			continue
		}
		n.Prior = nil
		entry := r.log.WithFields(logrus.Fields{"drift_id": p.ID, "service": n.Service, "node": n.Host, "change": f.Change,
			"kind": kindOf(f.Drift), "updated": f.Versions != nil})
		switch f.Change {
		case store.DriftFound:
			entry.Warn(f.Message)
		case store.DriftKept, store.DriftCleared:
			entry.Info(f.Message)
		}
		if f.Change == store.DriftFound && r.cfg.Notify != nil {
			r.cfg.Notify.NodeDrifted(p.ID, *n)
		}
	}
}

func kindOf(d *store.Drift) string {
	if d == nil {
		return ""
	}
	return d.Kind
}

// read reads the held nodes (one service, one platform) and returns what each says, by host; a node
// the read says nothing of is unreachable, with why.
func (r *Runner) read(ctx context.Context, nodes []store.DriftNode, held []int) map[string]Observation {
	out := make(map[string]Observation, len(held))
	service, platform := nodes[held[0]].Service, nodes[held[0]].Platform
	var req executor.StatusRequest
	req.Service = service
	for _, i := range held {
		n := nodes[i]
		target, err := r.target(ctx, n.Prior)
		switch {
		case err != nil:
			out[n.Host] = Observation{Error: err.Error()}
		case platform == executor.PlatformK8s:
			req.Workloads = append(req.Workloads, target.Workloads...)
		default:
			req.Nodes = append(req.Nodes, target.Nodes...)
		}
	}
	if len(req.Nodes)+len(req.Workloads) == 0 {
		return out
	}
	var readErr error
	if platform == executor.PlatformK8s {
		results, err := r.cfg.Workloads.Status(ctx, req)
		readErr = err
		for _, res := range results {
			o := Observation{Current: res.CurrentVersion, Prev: res.PrevVersion, State: res.State, Running: res.RunningVersion, Active: true}
			if res.State == executor.StateFailed && res.CurrentVersion == "" {
				o.Error = res.LastError // the workload could not be read at all
			}
			out[res.Host] = o
		}
	} else {
		results, err := r.cfg.Nodes.ServiceStatus(ctx, req)
		readErr = err
		for _, s := range results {
			out[s.Host] = Observation{Error: s.Error, Active: s.Running, ActiveState: s.ActiveState,
				Current: s.CurrentVersion, Prev: s.PrevVersion, State: s.State, Running: s.RunningVersion}
		}
	}
	for _, i := range held {
		host := nodes[i].Host
		if _, ok := out[host]; ok {
			continue
		}
		why := "the read reported nothing for this node"
		if readErr != nil {
			why = readErr.Error()
		}
		out[host] = Observation{Error: why}
	}
	return out
}

// target is how a node is reached: as the deployment that last held it named it (a physical node's
// address, a workload's kind and container), else by its host name.
func (r *Runner) target(ctx context.Context, n *store.Node) (store.Targets, error) {
	var t store.Targets
	if n.DeploymentID != "" {
		if d, err := r.cfg.Store.Deployment(ctx, n.DeploymentID); err == nil {
			t = d.Targets().Only([]string{n.Host})
		}
	}
	if n.Platform != executor.PlatformK8s {
		if len(t.Nodes) == 0 {
			t.Nodes = []executor.Node{{Host: n.Host}}
		}
		return store.Targets{Nodes: t.Nodes[:1]}, nil
	}
	if len(t.Workloads) == 0 {
		return t, fmt.Errorf("no deployment on record names workload %s's kind and container (its last deployment %q is gone): deploy it through nodeexec again", n.Host, n.DeploymentID)
	}
	return store.Targets{Workloads: t.Workloads[:1]}, nil
}

// endAbandoned ends the passes a stopped nodeexec left running. Under the lease no other pass runs, so
// every other record that still says running is one: the nodes it held are given back as they were,
// and it ends failed, saying so. (A drift pass only reads: no node lock to release.)
func (r *Runner) endAbandoned(ctx context.Context, self string) error {
	running, err := r.cfg.Store.RunningDriftPasses(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range running {
		d := &running[i]
		if d.ID == self {
			continue
		}
		r.log.WithFields(logrus.Fields{"drift_id": d.ID, "runner": d.Runner}).Warn("ending a drift pass its nodeexec left running")
		for j := range d.Nodes {
			n := &d.Nodes[j]
			switch n.State {
			case store.DriftNodeReading:
				n.State, n.Error = store.DriftNodeSkipped, "interrupted: the nodeexec running this pass stopped while reading this node"
			case store.DriftNodePending:
				n.State, n.Error = store.DriftNodeSkipped, "not read: the nodeexec running this pass stopped first"
			}
			if n.Prior != nil {
				if err := r.cfg.Store.GiveBack(ctx, d.ID, n.Prior, store.Observed{Drift: n.Prior.Drift}); err != nil && !errors.Is(err, store.ErrNotHeld) {
					errs = append(errs, fmt.Errorf("give back %s/%s: %w", n.Service, n.Host, err))
					continue
				}
				n.Prior = nil
			}
		}
		r.end(ctx, d, "interrupted: the nodeexec running it ("+d.Runner+") stopped; pass "+self+" gave back the nodes it held")
	}
	return errors.Join(errs...)
}
