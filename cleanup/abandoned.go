package cleanup

// Passes a stopped replica left running are ended by the next pass, under the cleanup lease.

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// endAbandoned ends the passes a stopped nodeexec left running. Under the lease no other pass runs, so
// every other record that still says running is one: the nodes it held are given back as they were
// (and their node locks released), and it ends failed, saying so.
func (r *Runner) endAbandoned(ctx context.Context, self string) error {
	running, err := r.cfg.Store.RunningCleanups(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range running {
		d := &running[i]
		if d.ID == self {
			continue
		}
		r.log.WithFields(logrus.Fields{"cleanup_id": d.ID, "runner": d.Runner}).Warn("ending a cleanup pass its nodeexec left running")
		locked := map[string][]executor.Node{}
		for j := range d.Nodes {
			n := &d.Nodes[j]
			switch n.State {
			case store.NodeCleaning:
				n.State, n.Error = store.NodeFailed, "interrupted: the nodeexec running this pass stopped during the cleanup of this node"
				locked[n.Service] = append(locked[n.Service], executor.Node{Host: n.Host})
			case store.NodePending:
				n.State, n.Error = store.NodeSkipped, "not cleaned: the nodeexec running this pass stopped first"
			}
			if n.Prior != nil {
				if err := r.cfg.Store.Release(ctx, d.ID, n.Prior); err != nil {
					errs = append(errs, fmt.Errorf("give back %s/%s: %w", n.Service, n.Host, err))
					continue
				}
				n.Prior = nil
			}
		}
		if rec, ok := r.cfg.Cleaner.(executor.Recoverer); ok {
			for service, nodes := range locked {
				if _, err := rec.Recover(ctx, executor.RecoverRequest{DeploymentID: d.ID, Service: service, Nodes: nodes}); err != nil {
					r.log.WithError(err).WithField("cleanup_id", d.ID).Warn("could not release the node locks of an abandoned cleanup pass; they expire on their own")
				}
			}
		}
		r.end(ctx, d, "interrupted: the nodeexec running it ("+d.Runner+") stopped; pass "+self+" gave back the nodes it held")
	}
	return errors.Join(errs...)
}
