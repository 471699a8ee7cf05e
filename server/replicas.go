package server

import (
	"context"
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// A deployment's replicas, as the Plan Layer's specification counts them: a Kubernetes workload's
// pods, or a physical deployment's nodes, each with a phase and whether it is ready.

// The phases of a replica, in Kubernetes' words (a pod's own phase is passed on as the cluster says it).
const (
	phaseRunning = "Running"
	phasePending = "Pending"
	phaseFailed  = "Failed"
	phaseUnknown = "Unknown"
)

// Where a replica's phase comes from.
const (
	sourceLive   = "live"
	sourceRecord = "record"
)

// statusOf is a deployment's state in the specification's words (api.DeploymentStatus).
func statusOf(st executor.State) api.DeploymentStatus {
	switch st {
	case executor.StatePending:
		return api.StatusPending
	case executor.StateDeploying:
		return api.StatusRunning
	case executor.StateSuccess:
		return api.StatusSucceeded
	case executor.StateFailed:
		return api.StatusFailed
	case executor.StateRolledBack:
		return api.StatusRolledBack
	}
	return api.StatusUnknown
}

// updatedAt is the last time the deployment's record changed that it keeps a time of.
func updatedAt(d *store.Deployment) time.Time {
	switch {
	case d.FinishedAt != nil:
		return *d.FinishedAt
	case d.StartedAt != nil:
		return *d.StartedAt
	}
	return d.CreatedAt
}

// unitReading is the service's unit on each node of a physical deployment, read now.
type unitReading struct {
	byHost map[string]executor.ServiceStatus
	// err says why none could be read; unsupported, that this server's executor cannot read units.
	err         error
	unsupported bool
}

// readUnits reads the deployment's unit on each of its nodes (one status.yml run, in one of the
// server's inspection slots).
func (s *Server) readUnits(c *gin.Context, d *store.Deployment) unitReading {
	exec, err := s.executorFor(executor.PlatformPhysical)
	inspector, ok := exec.(executor.ServiceInspector)
	nodes := d.Targets().Nodes
	if err != nil || !ok || len(nodes) == 0 {
		return unitReading{unsupported: true}
	}
	ctx, done, ok := s.inspection(c)
	if !ok {
		return unitReading{err: c.Request.Context().Err()}
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, serviceCheckTimeout)
	defer cancel()
	statuses, err := inspector.ServiceStatus(ctx, executor.StatusRequest{Service: d.Service, Nodes: nodes})
	if err != nil {
		return unitReading{err: err}
	}
	out := unitReading{byHost: make(map[string]executor.ServiceStatus, len(statuses))}
	for _, st := range statuses {
		out.byHost[st.Host] = st
	}
	return out
}

// nodeReplicas are a physical deployment's nodes as replicas: from each node's unit when it was read,
// else from the deployment's record of the node.
func nodeReplicas(d *store.Deployment, units unitReading) []api.Replica {
	out := make([]api.Replica, 0, len(d.Nodes))
	for _, dn := range d.Nodes {
		st, read := units.byHost[dn.Host]
		if read && st.Error == "" {
			out = append(out, liveNodeReplica(d.Service, dn, st))
			continue
		}
		why := "this server cannot read units"
		switch {
		case read:
			why = "its unit could not be read: " + st.Error
		case units.err != nil:
			why = "its unit could not be read: " + units.err.Error()
		case !units.unsupported:
			why = "its unit was not reported"
		}
		out = append(out, recordedNodeReplica(dn, why))
	}
	return out
}

// liveNodeReplica: ready when the unit is active and runs the release the deployment put there.
func liveNodeReplica(service string, dn store.DeploymentNode, st executor.ServiceStatus) api.Replica {
	r := api.Replica{Name: dn.Host, Node: dn.Host, Phase: unitPhase(st.ActiveState), PhaseSource: sourceLive, Version: st.RunningVersion}
	switch {
	case !st.Running:
		r.Message = fmt.Sprintf("%s.service is %s", service, engine.OrNothing(st.ActiveState))
	case dn.TargetVersion != "" && st.RunningVersion != dn.TargetVersion:
		r.Message = fmt.Sprintf("runs %s, not %s", engine.OrNothing(st.RunningVersion), dn.TargetVersion)
	default:
		r.Ready = true
	}
	return r
}

// recordedNodeReplica is a node as the deployment's record has it, why saying why it is not read live.
func recordedNodeReplica(dn store.DeploymentNode, why string) api.Replica {
	r := api.Replica{Name: dn.Host, Node: dn.Host, Phase: recordPhase(dn.State), PhaseSource: sourceRecord, Version: dn.CurrentVersion,
		Ready: dn.State == executor.StateSuccess && dn.CurrentVersion == dn.TargetVersion}
	r.Message = "from the deployment's record (" + string(dn.State) + "): " + why
	if dn.LastError != "" {
		r.Message += "; last error: " + dn.LastError
	}
	return r
}

// unitPhase is a systemd ActiveState as a phase.
func unitPhase(active string) string {
	switch active {
	case "active", "reloading":
		return phaseRunning
	case "activating":
		return phasePending
	case "failed", "inactive", "deactivating": // the service is not serving: stopped counts as down
		return phaseFailed
	}
	return phaseUnknown
}

// recordPhase is a node's recorded state as a phase.
func recordPhase(st executor.State) string {
	switch st {
	case executor.StatePending, executor.StateDeploying:
		return phasePending
	case executor.StateSuccess, executor.StateRolledBack:
		return phaseRunning
	case executor.StateFailed:
		return phaseFailed
	}
	return phaseUnknown
}

// podReplicas are a Kubernetes deployment's live pods as replicas, in the deployment's node order.
func podReplicas(d *store.Deployment, pods map[string]workloadPods) []api.Replica {
	out := []api.Replica{}
	for _, n := range d.Nodes {
		for _, p := range pods[n.Host].pods {
			r := api.Replica{Name: p.Name, Node: n.Host, Phase: p.Phase, PhaseSource: sourceLive, Ready: p.Ready && p.Phase == phaseRunning}
			if !r.Ready {
				r.Message = fmt.Sprintf("%s, ready %v, %d restarts", p.Phase, p.Ready, p.Restarts)
			}
			out = append(out, r)
		}
	}
	return out
}

// readyCount is how many replicas are ready.
func readyCount(rs []api.Replica) int {
	n := 0
	for _, r := range rs {
		if r.Ready {
			n++
		}
	}
	return n
}
