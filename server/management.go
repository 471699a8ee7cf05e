package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// The management endpoints (/internal/v1/deploy/...) answer an operator's three questions about a
// deployment: what is it (info), is it healthy now (health), and what happened (logs).

func (s *Server) deployInfo(c *gin.Context) {
	d, err := s.cfg.Store.Deployment(c.Request.Context(), c.Param("deployment_id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if d.HasApplications() {
		s.applicationsInfo(c, d)
		return
	}
	c.JSON(http.StatusOK, s.info(c, d))
}

// info is what a deployment is now: its record, and its replicas read live.
func (s *Server) info(c *gin.Context, d *store.Deployment) api.Info {
	info := api.Info{DeploymentID: d.ID, Status: statusOf(d.State), State: api.State(d.State), UpdatedAt: updatedAt(d),
		Service: d.Service, Version: d.Version, Platform: api.Platform(d.Platform), Kind: d.Kind, Error: d.Error,
		CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
		Summary: map[string]int{"total": len(d.Nodes)}, Nodes: []api.NodeInfo{}}
	for _, st := range executor.States {
		info.Summary[string(st)] = 0
	}
	pods := s.livePods(c.Request.Context(), d)
	for _, n := range d.Nodes {
		info.Summary[string(n.State)]++
		ni := api.NodeInfo{Name: n.Host, Status: api.State(n.State), Version: n.CurrentVersion, PreviousVersion: n.PrevVersion, Error: n.LastError}
		if p, ok := pods[n.Host]; ok {
			ni.Pods, ni.PodsError = listOf(p.pods, renderPod), errText(p.err)
		}
		info.Nodes = append(info.Nodes, ni)
	}
	info.Details.Pods = s.replicas(c, d, pods, nil)
	info.Replicas, info.ReadyReplicas = len(info.Details.Pods), readyCount(info.Details.Pods)
	info.DurationSeconds = durationOf(d)
	return info
}

// durationOf is how long a deployment ran, or has run so far (0 before it started).
func durationOf(d *store.Deployment) float64 {
	if d.StartedAt == nil {
		return 0
	}
	end := time.Now()
	if d.FinishedAt != nil {
		end = *d.FinishedAt
	}
	return end.Sub(*d.StartedAt).Round(time.Millisecond).Seconds()
}

// replicas are the deployment's replicas: its live pods, or its nodes (from units, read now unless
// units is already a reading).
func (s *Server) replicas(c *gin.Context, d *store.Deployment, pods map[string]workloadPods, units *unitReading) []api.Replica {
	if d.Platform == executor.PlatformK8s {
		return podReplicas(d, pods)
	}
	if units == nil {
		read := s.readUnits(c, d)
		units = &read
	}
	return nodeReplicas(d, *units)
}

// serviceCheckTimeout bounds the status run of a health or info request.
const serviceCheckTimeout = 60 * time.Second

// deployHealth decides the deployment's aggregate checks from each node's record, its unit read now
// (physical nodes), its pods (Kubernetes) and its HTTP check probed now; the per-node checks are the
// answer's details.
func (s *Server) deployHealth(c *gin.Context) {
	ctx := c.Request.Context()
	d, err := s.cfg.Store.Deployment(ctx, c.Param("deployment_id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if d.HasApplications() {
		s.applicationsHealth(c, d)
		return
	}
	c.JSON(http.StatusOK, s.health(c, d))
}

// health checks a deployment now.
func (s *Server) health(c *gin.Context, d *store.Deployment) api.Health {
	ctx := c.Request.Context()
	facts := healthFacts{platform: d.Platform, version: d.Version, health: d.Health(), units: unitReading{unsupported: true}}
	details := make([]api.Check, 0, 2*len(d.Nodes))
	for _, dn := range d.Nodes {
		details = append(details, s.nodeStatusCheck(ctx, d, dn))
	}
	if d.Platform == executor.PlatformPhysical {
		facts.units = s.readUnits(c, d)
		details = append(details, serviceChecks(d, facts.units)...)
	}
	pods := s.livePods(ctx, d)
	for _, dn := range d.Nodes {
		if p, ok := pods[dn.Host]; ok {
			details = append(details, podChecks(dn.Host, p)...)
			if p.err != nil {
				facts.podErrors = append(facts.podErrors, dn.Host+": "+p.err.Error())
			}
		}
	}
	if hc := facts.health; hc.HTTPPort != 0 && d.Platform == executor.PlatformPhysical {
		targets := d.Targets()
		probes := make([]api.Check, len(d.Nodes))
		var wg sync.WaitGroup
		for i, dn := range d.Nodes {
			wg.Go(func() { probes[i] = probeHTTP(ctx, dn.Host, targets.Address(dn.Host), hc) })
		}
		wg.Wait()
		details = append(details, probes...)
	}
	facts.details = details
	facts.replicas = s.replicas(c, d, pods, &facts.units)
	verdicts := aggregateChecks(facts)
	ok, msg := judge(verdicts)
	checks := make([]api.AggregateCheck, len(verdicts))
	for i, v := range verdicts {
		checks[i] = v.AggregateCheck
	}
	return api.Health{DeploymentID: d.ID, Healthy: ok, Message: msg, CheckedAt: time.Now().UTC(), Checks: checks, Details: details}
}

// nodeStatusCheck passes when the node's record says it runs what the deployment put there.
func (s *Server) nodeStatusCheck(ctx context.Context, d *store.Deployment, dn store.DeploymentNode) api.Check {
	ch := api.Check{Name: dn.Host, Type: "node_status", Status: "unknown"}
	n, err := s.cfg.Store.Node(ctx, d.Service, dn.Host)
	if err != nil {
		ch.Message = "no record of the node: " + err.Error()
		return ch
	}
	switch {
	case n.State == executor.StateDeploying || n.State == executor.StatePending:
		ch.Message = fmt.Sprintf("%s by deployment %s", n.State, n.DeploymentID)
	case n.State == executor.StateFailed:
		ch.Status, ch.Message = "fail", "failed: "+n.LastError
	case n.CurrentVersion == dn.TargetVersion:
		ch.Status, ch.Message = "pass", fmt.Sprintf("%s, runs %s", n.State, n.CurrentVersion)
	default:
		ch.Status, ch.Message = "fail", fmt.Sprintf("%s, runs %s, not %s (deployment %s changed it since)", n.State, engine.OrNothing(n.CurrentVersion), dn.TargetVersion, n.DeploymentID)
	}
	return ch
}

// serviceChecks are the per-node checks of the units read: a check passes when the unit is active
// and runs the release the deployment put there, and carries what the unit uses. None when this
// server's executor cannot read units; unknown for a node that could not be read.
func serviceChecks(d *store.Deployment, units unitReading) []api.Check {
	if units.unsupported {
		return nil
	}
	checks := make([]api.Check, 0, len(d.Nodes))
	if units.err != nil {
		for _, dn := range d.Nodes {
			checks = append(checks, api.Check{Name: dn.Host, Type: "service", Status: "unknown", Message: "could not read the unit: " + units.err.Error()})
		}
		return checks
	}
	for _, dn := range d.Nodes {
		st, ok := units.byHost[dn.Host]
		if !ok {
			checks = append(checks, api.Check{Name: dn.Host, Type: "service", Status: "unknown", Message: "the unit was not reported"})
			continue
		}
		ch := api.Check{Name: st.Host, Type: "service", Status: "fail", Resources: renderResources(st.Resources)}
		switch want := dn.TargetVersion; {
		case st.Error != "":
			ch.Status, ch.Message = "unknown", st.Error
		case !st.Running:
			ch.Message = fmt.Sprintf("%s.service is %s", d.Service, engine.OrNothing(st.ActiveState))
		case want != "" && st.RunningVersion != want:
			ch.Message = fmt.Sprintf("active, runs %s, not %s", engine.OrNothing(st.RunningVersion), want)
		default:
			ch.Status = "pass"
			ch.Message = fmt.Sprintf("active (pid %d, up %s), runs %s", st.MainPID, time.Duration(st.UptimeSeconds)*time.Second, st.RunningVersion)
		}
		checks = append(checks, ch)
	}
	return checks
}

// probeHTTP is a live HTTP check of a node, as a health check.
func probeHTTP(ctx context.Context, name, addr string, hc executor.HealthCheck) api.Check {
	ch := api.Check{Name: name, Type: "http", Status: "fail"}
	ok, msg := engine.ProbeHTTP(ctx, addr, hc)
	if ok {
		ch.Status = "pass"
	}
	ch.Message = msg
	return ch
}
