package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// rollbackOp takes the nodes a deployment switched back to what each ran before; each node is to end
// rolled_back.
type rollbackOp struct{}

// NothingToRollBackError is a rollback asked of a deployment that changed nothing it could undo.
type NothingToRollBackError struct{ Reason string }

func (e *NothingToRollBackError) Error() string { return e.Reason }

// RollbackOf is a new deployment, id, that takes back what orig (ended) changed: each node it switched
// goes back to the version it ran before; nodes it did not change are left alone. A
// *NothingToRollBackError when there is no such node, or orig changed no version at all.
func RollbackOf(orig *store.Deployment, id string) (*store.Deployment, error) {
	if why := operationOf(orig.Kind).irreversible(orig); why != "" {
		return nil, &NothingToRollBackError{Reason: why}
	}
	d := &store.Deployment{ID: id, Kind: store.KindRollback, RollbackOf: orig.ID, Service: orig.Service, Version: orig.Version,
		Platform: orig.Platform, State: executor.StatePending, CreatedAt: time.Now().UTC()}
	var hosts []string
	for _, n := range orig.Nodes {
		// On the deployment's version, and on another before it: the deployment switched this node. A
		// node it failed on was switched back in the same run (current is not the target); one with no
		// earlier version has nothing to go back to. A node an interrupted run left on the target, even
		// unverified, is rolled back too.
		if n.CurrentVersion == n.TargetVersion && n.FromVersion != "" && n.FromVersion != n.TargetVersion {
			d.Nodes = append(d.Nodes, store.DeploymentNode{Host: n.Host, State: executor.StatePending, TargetVersion: n.FromVersion})
			hosts = append(hosts, n.Host)
		}
	}
	if len(d.Nodes) == 0 {
		return nil, &NothingToRollBackError{Reason: "deployment " + orig.ID + " changed no node that has an earlier version to go back to"}
	}
	back := orig.Targets().Only(hosts)
	d.Rollback = &executor.RollbackRequest{
		DeploymentID:     id,
		Service:          orig.Service,
		PhysicalRollback: executor.PhysicalRollback{Nodes: back.Nodes, Health: orig.Health()},
		K8sRollback:      executor.K8sRollback{Workloads: back.Workloads},
	}
	return d, nil
}

// ToRevision is a new rollback, id, of one workload (validated) to an earlier revision of its template,
// as `kubectl rollout undo --to-revision` does; version is the version that revision runs (its image's),
// what the workload's node is to end on.
func ToRevision(id, service string, w executor.Workload, revision int64, version string) *store.Deployment {
	return pending(&store.Deployment{ID: id, Kind: store.KindRollback, Service: service, Version: version, Platform: executor.PlatformK8s,
		Rollback: &executor.RollbackRequest{DeploymentID: id, Service: service,
			K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{w}, ToRevision: revision}}}, version)
}

// groups: one call per version to go back to (each node goes back to what it ran before, which may
// differ between nodes). A rollback to a revision is one call that names the revision and no version:
// the executor finds the template itself.
func (rollbackOp) groups(d *store.Deployment) []group {
	targets := d.Targets()
	if d.Rollback != nil && d.Rollback.ToRevision > 0 {
		return []group{{Targets: targets}}
	}
	var out []group
	for _, target := range targetVersions(d) {
		var hosts []string
		for _, n := range d.Nodes {
			if n.TargetVersion == target {
				hosts = append(hosts, n.Host)
			}
		}
		out = append(out, group{Targets: targets.Only(hosts), version: target})
	}
	return out
}

func (rollbackOp) run(ctx context.Context, exec executor.Executor, d *store.Deployment, g group, progress executor.ProgressFunc) ([]executor.NodeResult, error) {
	if d.Rollback == nil {
		return nil, fmt.Errorf("rollback %s: the record has no rollback request", d.ID)
	}
	req := *d.Rollback
	req.ToVersion, req.Nodes, req.Workloads, req.Progress = g.version, g.Nodes, g.Workloads, progress
	return exec.Rollback(ctx, req)
}

func (rollbackOp) goal() executor.State { return executor.StateRolledBack }

func (rollbackOp) describe(d *store.Deployment) string {
	if d.Rollback != nil && d.Rollback.ToRevision > 0 {
		return fmt.Sprintf("rollback of %s to revision %d (%s) on %s", d.Service, d.Rollback.ToRevision, OrNothing(d.Version), targetsText(d))
	}
	if d.TargetDeploymentID != "" {
		return fmt.Sprintf("rollback of %s to the versions deployment %s left, on %s", d.Service, d.TargetDeploymentID, targetsText(d))
	}
	return deployOp{}.describe(d)
}

func (rollbackOp) claimed(dn *store.DeploymentNode, prior *store.Node) { fromPrior(dn, prior) }

func (rollbackOp) irreversible(*store.Deployment) string { return "" }

// targetVersions are the versions a rollback's nodes go back to, in the order of its nodes.
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
