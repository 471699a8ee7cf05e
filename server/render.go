package server

import (
	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// What the server keeps (store) and runs (executor) turned into what it answers (api), and requests
// into what it runs. The API's JSON is api's alone: a record can change without the wire changing.

// listOf converts every item of a list; nil stays nil (JSON null) and empty stays empty ([]), as the
// records had them.
func listOf[T, U any](in []T, conv func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = conv(v)
	}
	return out
}

func renderDeployment(d store.Deployment) api.Deployment {
	out := api.Deployment{ID: d.ID, Kind: d.Kind, RollbackOf: d.RollbackOf, ParentID: d.ParentID, TargetDeploymentID: d.TargetDeploymentID, Service: d.Service, Version: d.Version,
		Platform: api.Platform(d.Platform), Batch: api.Batch{Size: d.Batch.Size, StopOnFailure: d.Batch.StopOnFailure, MaxUnavailable: d.Batch.MaxUnavailable},
		Replicas: replicasOf(d), Namespace: namespaceOf(d), Objects: listOf(d.Objects, renderObject), DryRun: d.DryRun(), RequestedBy: d.RequestedBy, Token: d.Token, IdempotencyKey: d.IdempotencyKey,
		Replica: d.Owner, State: api.State(d.State), Error: d.Error, Nodes: listOf(d.Nodes, renderDeploymentNode),
		Applications: listOf(d.Applications, renderApplication),
		CreatedAt:    d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt}
	if d.HandRun != nil {
		out.Playbook, out.ReportID = d.HandRun.Playbook, d.HandRun.ReportID
	}
	return out
}

func renderApplication(a store.Application) api.ApplicationDeployment {
	return api.ApplicationDeployment{Service: a.Service, Version: a.Version, DeploymentID: a.DeploymentID, State: api.State(a.State),
		Error: a.Error, Nodes: listOf(a.Nodes, renderDeploymentNode)}
}

// replicasOf is what a scale asks of each workload; nil (left out) for every other kind.
func replicasOf(d store.Deployment) *int32 {
	if d.Scale == nil {
		return nil
	}
	n := d.Scale.Replicas
	return &n
}

// namespaceOf is the namespace an apply or a delete works in; "" for every other kind.
func namespaceOf(d store.Deployment) string {
	switch {
	case d.Apply != nil:
		return d.Apply.Namespace
	case d.Delete != nil:
		return d.Delete.Namespace
	}
	return ""
}

func renderObject(o executor.Object) api.Object {
	return api.Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Outcome: string(o.Outcome), Error: o.Error}
}

func renderPodStatus(p executor.Pod) api.PodStatus {
	return api.PodStatus{Name: p.Name, Phase: p.Phase, Ready: p.Ready, Restarts: p.Restarts, Node: p.Node, Created: p.Created.UTC()}
}

func renderDeploymentNode(n store.DeploymentNode) api.DeploymentNode {
	return api.DeploymentNode{Host: n.Host, State: api.State(n.State), TargetVersion: n.TargetVersion, FromVersion: n.FromVersion,
		CurrentVersion: n.CurrentVersion, PrevVersion: n.PrevVersion, Changed: n.Changed, LastError: n.LastError,
		RecordKept: n.RecordKept}
}

func renderNode(n store.Node) api.Node {
	return api.Node{ID: n.ID, Host: n.Host, Service: n.Service, Platform: api.Platform(n.Platform), CurrentVersion: n.CurrentVersion,
		PrevVersion: n.PrevVersion, DeployingVersion: n.DeployingVersion, State: api.State(n.State), LastError: n.LastError,
		DeploymentID: n.DeploymentID, Drift: renderDrift(n.Drift), CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt}
}

func renderDrift(d *store.Drift) *api.Drift {
	return pointerOf(d, func(d store.Drift) api.Drift { return api.Drift(d) })
}

func renderDriftPass(p store.DriftPass) api.DriftPass {
	return api.DriftPass{ID: p.ID, Trigger: p.Trigger, Tick: p.Tick, Token: p.Token, Service: p.Service, Runner: p.Runner,
		State: p.State, Error: p.Error, Nodes: listOf(p.Nodes, renderDriftNode), StartedAt: p.StartedAt, FinishedAt: p.FinishedAt}
}

func renderDriftNode(n store.DriftNode) api.DriftNode {
	return api.DriftNode{Service: n.Service, Host: n.Host, Platform: api.Platform(n.Platform), State: n.State, Drift: renderDrift(n.Drift),
		Change: n.Change, Message: n.Message, Error: n.Error,
		Updated: pointerOf(n.Updated, func(u store.VersionUpdate) api.VersionUpdate {
			return api.VersionUpdate{FromCurrent: u.FromCurrent, FromPrev: u.FromPrev, Current: u.Current, Prev: u.Prev, State: api.State(u.State)}
		})}
}

func renderEvent(ev store.Event) api.Event {
	out := api.Event{DeploymentID: ev.DeploymentID, Seq: ev.Seq, Time: ev.Time, Type: api.EventType(ev.Type), Node: ev.Node,
		State: api.State(ev.State), Message: ev.Message, Evidence: renderEvidence(ev.Evidence)}
	if st := ev.Step; st != nil {
		out.Step = &api.Step{Name: st.Name, Action: st.Action, Changed: st.Changed, Failed: st.Failed, Skipped: st.Skipped,
			Running: st.Running, Message: st.Message, Stdout: st.Stdout, Stderr: st.Stderr, Started: st.Started,
			DurationMS: st.Milliseconds()}
	}
	return out
}

// pointerOf converts what p points at; nil stays nil (the field is left out).
func pointerOf[T, U any](p *T, conv func(T) U) *U {
	if p == nil {
		return nil
	}
	out := conv(*p)
	return &out
}

func renderEvidence(e *executor.FailedRelease) *api.FailedRelease {
	return pointerOf(e, func(f executor.FailedRelease) api.FailedRelease { return api.FailedRelease(f) })
}

func renderCleanup(c store.Cleanup) api.Cleanup {
	p := c.Pruned
	return api.Cleanup{ID: c.ID, Trigger: c.Trigger, Tick: c.Tick, Token: c.Token, Runner: c.Runner, State: c.State, Error: c.Error,
		Keep: c.Keep, Nodes: listOf(c.Nodes, renderCleanupNode), StartedAt: c.StartedAt, FinishedAt: c.FinishedAt,
		Pruned: api.Pruned{Before: p.Before, Deployments: p.Deployments, EventChunks: p.EventChunks, IdempotencyKeys: p.IdempotencyKeys, Cleanups: p.Cleanups, DriftPasses: p.DriftPasses}}
}

func renderCleanupNode(n store.CleanupNode) api.CleanupNode {
	return api.CleanupNode{Service: n.Service, Host: n.Host, State: n.State, Keep: n.Keep, Kept: n.Kept, Removed: n.Removed, Error: n.Error}
}

func renderServiceStatus(s executor.ServiceStatus) api.ServiceStatus {
	return api.ServiceStatus{Host: s.Host, Service: s.Service, Running: s.Running, ActiveState: s.ActiveState, MainPID: s.MainPID,
		Since: s.Since, UptimeSeconds: s.UptimeSeconds, CurrentVersion: s.CurrentVersion, PrevVersion: s.PrevVersion,
		RunningVersion: s.RunningVersion, State: api.State(s.State), LastError: s.LastError, Resources: renderResources(s.Resources), Error: s.Error}
}

func renderResources(r *executor.Resources) *api.Resources {
	return pointerOf(r, func(x executor.Resources) api.Resources { return api.Resources(x) })
}

func renderPod(p executor.Pod) api.Pod { return api.Pod(p) }

func renderCommandResult(r executor.CommandResult) api.CommandResult { return api.CommandResult(r) }

// workloadsOf are a request's workloads as the executor takes them.
func workloadsOf(ws []api.Workload) []executor.Workload {
	return listOf(ws, func(w api.Workload) executor.Workload { return executor.Workload(w) })
}
