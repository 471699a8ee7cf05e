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
	info := api.Info{DeploymentID: d.ID, Service: d.Service, Version: d.Version, Platform: api.Platform(d.Platform), Kind: d.Kind,
		Status: api.State(d.State), Error: d.Error, CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
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
	if d.StartedAt != nil {
		end := time.Now()
		if d.FinishedAt != nil {
			end = *d.FinishedAt
		}
		info.DurationSeconds = end.Sub(*d.StartedAt).Round(time.Millisecond).Seconds()
	}
	c.JSON(http.StatusOK, info)
}

// serviceCheckTimeout bounds the status run of a health request.
const serviceCheckTimeout = 60 * time.Second

// deployHealth reports each node's recorded state and, when the deployment has an HTTP health check,
// probes every node now. Healthy means every check passes.
func (s *Server) deployHealth(c *gin.Context) {
	ctx := c.Request.Context()
	d, err := s.cfg.Store.Deployment(ctx, c.Param("deployment_id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	checks := make([]api.Check, 0, 2*len(d.Nodes))
	for _, dn := range d.Nodes {
		checks = append(checks, s.nodeStatusCheck(ctx, d, dn))
	}
	if d.Platform == executor.PlatformPhysical {
		checks = append(checks, s.serviceChecks(c, d)...)
	}
	pods := s.livePods(ctx, d)
	for _, dn := range d.Nodes {
		if p, ok := pods[dn.Host]; ok {
			checks = append(checks, podChecks(dn.Host, p)...)
		}
	}
	if hc := d.Health(); hc.HTTPPort != 0 && d.Platform == executor.PlatformPhysical {
		targets := d.Targets()
		probes := make([]api.Check, len(d.Nodes))
		var wg sync.WaitGroup
		for i, dn := range d.Nodes {
			wg.Go(func() { probes[i] = probeHTTP(ctx, dn.Host, targets.Address(dn.Host), hc) })
		}
		wg.Wait()
		checks = append(checks, probes...)
	}
	healthy := len(checks) > 0
	for _, ch := range checks {
		healthy = healthy && ch.Status == "pass"
	}
	c.JSON(http.StatusOK, api.Health{DeploymentID: d.ID, Healthy: healthy, CheckedAt: time.Now().UTC(), Checks: checks})
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

// serviceChecks read each node's unit now (one status.yml run): a check passes when the unit is active
// and runs the release the deployment put there, and carries what the unit uses. None when this
// server's executor cannot read units; unknown for a node that could not be read.
func (s *Server) serviceChecks(c *gin.Context, d *store.Deployment) []api.Check {
	exec, err := s.executorFor(executor.PlatformPhysical)
	inspector, ok := exec.(executor.ServiceInspector)
	nodes := d.Targets().Nodes
	if err != nil || !ok || len(nodes) == 0 {
		return nil
	}
	ctx, done, ok := s.inspection(c)
	if !ok {
		return nil
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, serviceCheckTimeout)
	defer cancel()
	statuses, err := inspector.ServiceStatus(ctx, executor.StatusRequest{Service: d.Service, Nodes: nodes})
	checks := make([]api.Check, 0, len(d.Nodes))
	if err != nil {
		for _, dn := range d.Nodes {
			checks = append(checks, api.Check{Name: dn.Host, Type: "service", Status: "unknown", Message: "could not read the unit: " + err.Error()})
		}
		return checks
	}
	target := map[string]string{}
	for _, dn := range d.Nodes {
		target[dn.Host] = dn.TargetVersion
	}
	for _, st := range statuses {
		ch := api.Check{Name: st.Host, Type: "service", Status: "fail", Resources: renderResources(st.Resources)}
		switch want := target[st.Host]; {
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

// deployLogs serves each node's newest lines from the deployment's events (task results, state
// changes, errors) and, for Kubernetes workloads, each pod's own log from the cluster. pod_name picks
// one node or one pod; a pod whose log the cluster cannot serve is 502 with the reason.
func (s *Server) deployLogs(c *gin.Context) {
	ctx := c.Request.Context()
	lines, ok := queryInt(c, "lines", defaultLogLines, 1, executor.MaxLogLines)
	if !ok {
		return
	}
	d, err := s.cfg.Store.Deployment(ctx, c.Param("deployment_id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	only := c.Query("pod_name")
	pods := s.livePods(ctx, d)
	var onlyPod *podRef
	if only != "" && d.Node(only) == nil {
		if onlyPod = findPod(pods, only); onlyPod == nil {
			c.AbortWithStatusJSON(http.StatusNotFound, api.Error{Error: "pod_name: deployment " + d.ID + " has no node or pod " + quote(only), Code: "not_found", Field: "pod_name"})
			return
		}
	}
	out := api.Logs{DeploymentID: d.ID, Lines: lines, Logs: []api.NodeLog{}}
	if onlyPod == nil {
		evs, err := s.cfg.Store.Events(ctx, d.ID, 0, maxLogEvents)
		if err != nil {
			s.failErr(c, err)
			return
		}
		out = foldLogs(d, evs, lines, only)
	}
	var refs []podRef
	switch {
	case onlyPod != nil:
		refs = []podRef{*onlyPod}
	case only == "":
		refs = allPods(d, pods)
	}
	podLogs := s.readPodLogs(ctx, refs, lines)
	if onlyPod != nil && podLogs[0].Error != "" {
		c.AbortWithStatusJSON(http.StatusBadGateway, api.Error{Error: podLogs[0].Error, Code: "logs_unavailable"})
		return
	}
	out.Logs = append(out.Logs, podLogs...)
	c.JSON(http.StatusOK, out)
}
