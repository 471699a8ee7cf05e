package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// forgetOp is the record of a node forgotten (Forget): it ran nothing, and there is nothing to take back.
type forgetOp struct{}

func (forgetOp) groups(*store.Deployment) []group { return nil }

func (forgetOp) run(_ context.Context, _ executor.Executor, d *store.Deployment, _ group, _ executor.ProgressFunc) ([]executor.NodeResult, error) {
	return nil, fmt.Errorf("%s records a node forgotten; it runs nothing", d.ID)
}

func (forgetOp) goal() executor.State { return executor.StateSuccess }

func (forgetOp) describe(d *store.Deployment) string {
	return fmt.Sprintf("forget of a node of %s", d.Service)
}

func (forgetOp) claimed(*store.DeploymentNode, *store.Node) {}

func (forgetOp) irreversible(d *store.Deployment) string {
	return "deployment " + d.ID + " forgot a node of " + d.Service + ", which changed nothing on it: deploy to the node to record it again"
}

// Forget removes a node's record unless a deployment or a pass holds it (a *store.BusyError), and
// records who forgot it and what it ran as a deployment of kind forget, id, which it returns. The node
// stays forgotten if that record cannot be written (the error says so, with the record).
func (e *Engine) Forget(ctx context.Context, id, service, host, requestedBy, token string) (*store.Deployment, error) {
	n, err := e.cfg.Store.ForgetNode(ctx, service, host)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	d := &store.Deployment{ID: id, Kind: store.KindForget, Service: service, Version: n.CurrentVersion, Platform: n.Platform,
		RequestedBy: requestedBy, Token: token, State: executor.StateSuccess, CreatedAt: now, StartedAt: &now, FinishedAt: &now,
		Nodes: []store.DeploymentNode{{Host: host, State: executor.StateSuccess, FromVersion: n.CurrentVersion, CurrentVersion: n.CurrentVersion,
			PrevVersion: n.PrevVersion, Changed: true, LastError: "forgotten; it was " + string(n.State)}}}
	log := e.cfg.Logger.WithFields(map[string]any{"deployment_id": id, "service": service, "node": host, "version": n.CurrentVersion, "requested_by": requestedBy})
	if _, _, err := e.cfg.Store.CreateDeployment(ctx, d); err != nil {
		log.WithError(err).Error("forgot a node but could not record who did")
		return d, fmt.Errorf("node %s of %s is forgotten, but the record of it could not be written: %w", host, service, err)
	}
	log.Info("node forgotten")
	return d, nil
}
