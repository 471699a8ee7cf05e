package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// The management endpoints of a deployment of several applications answer for all of them as one
// deployment: each application's answer, computed as for a deployment of its own, with its replicas,
// nodes, checks and lines marked with the application's service.

// applicationsOf reads the deployments of d's applications, in its order; one never recorded (its
// deployment of several ended it failed, nothing ran) has nothing to show and is left out.
func (s *Server) applicationsOf(c *gin.Context, d *store.Deployment) ([]*store.Deployment, bool) {
	apps := make([]*store.Deployment, 0, len(d.Applications))
	for _, a := range d.Applications {
		app, err := s.cfg.Store.Deployment(c.Request.Context(), a.DeploymentID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			s.failErr(c, err)
			return nil, false
		}
		apps = append(apps, app)
	}
	return apps, true
}

func (s *Server) applicationsInfo(c *gin.Context, d *store.Deployment) {
	apps, ok := s.applicationsOf(c, d)
	if !ok {
		return
	}
	info := api.Info{DeploymentID: d.ID, Status: statusOf(d.State), State: api.State(d.State), UpdatedAt: updatedAt(d),
		Platform: api.Platform(d.Platform), Kind: d.Kind, Error: d.Error, CreatedAt: d.CreatedAt, StartedAt: d.StartedAt,
		FinishedAt: d.FinishedAt, DurationSeconds: durationOf(d), Summary: map[string]int{"total": 0}, Nodes: []api.NodeInfo{},
		Details: api.InfoDetails{Pods: []api.Replica{}}}
	for _, st := range executor.States {
		info.Summary[string(st)] = 0
	}
	for _, app := range apps {
		one := s.info(c, app)
		for k, n := range one.Summary {
			info.Summary[k] += n
		}
		for _, n := range one.Nodes {
			n.Application = app.Service
			info.Nodes = append(info.Nodes, n)
		}
		for _, r := range one.Details.Pods {
			r.Application = app.Service
			info.Details.Pods = append(info.Details.Pods, r)
		}
		info.Replicas += one.Replicas
		info.ReadyReplicas += one.ReadyReplicas
	}
	c.JSON(http.StatusOK, info)
}

// applicationsHealth is healthy when every application is; each aggregate check is the worst of the
// applications' (unhealthy, then healthy, then unknown: a check that applies to none stays unknown),
// its message each application's.
func (s *Server) applicationsHealth(c *gin.Context, d *store.Deployment) {
	apps, ok := s.applicationsOf(c, d)
	if !ok {
		return
	}
	out := api.Health{DeploymentID: d.ID, Healthy: len(apps) > 0, CheckedAt: time.Now().UTC(), Checks: []api.AggregateCheck{}, Details: []api.Check{}}
	at := map[string]int{}
	var wrong, fine []string
	for _, app := range apps {
		one := s.health(c, app)
		if one.Healthy {
			fine = append(fine, app.Service)
		} else {
			out.Healthy = false
			wrong = append(wrong, app.Service+": "+one.Message)
		}
		for _, ch := range one.Checks {
			i, seen := at[ch.Name]
			if !seen {
				at[ch.Name] = len(out.Checks)
				out.Checks = append(out.Checks, api.AggregateCheck{Name: ch.Name, Status: ch.Status, Message: app.Service + ": " + ch.Message})
				continue
			}
			agg := &out.Checks[i]
			agg.Status = worse(agg.Status, ch.Status)
			agg.Message += "; " + app.Service + ": " + ch.Message
		}
		for _, ch := range one.Details {
			ch.Application = app.Service
			out.Details = append(out.Details, ch)
		}
	}
	switch {
	case len(apps) == 0:
		out.Message = "none of the applications was recorded: nothing runs"
	case out.Healthy:
		out.Message = fmt.Sprintf("All %d applications are healthy (%s)", len(apps), strings.Join(fine, ", "))
	default:
		out.Message = strings.Join(wrong, "; ")
	}
	c.JSON(http.StatusOK, out)
}

// worse is the status of an aggregate check over two applications'.
func worse(a, b string) string {
	rank := map[string]int{api.CheckUnknown: 0, api.CheckHealthy: 1, api.CheckUnhealthy: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// applicationsLogs are the applications' lines together, the newest q.lines of them; pod_name picks a
// node or pod of any application (404 when it names none).
func (s *Server) applicationsLogs(c *gin.Context, d *store.Deployment, q logQuery) {
	apps, ok := s.applicationsOf(c, d)
	if !ok {
		return
	}
	out := api.Logs{DeploymentID: d.ID, Source: q.source, Lines: q.lines, Logs: []api.LogEntry{}}
	var errs []string
	found := q.podName == ""
	for _, app := range apps {
		sc, has := scopeOf(app, s.livePods(c.Request.Context(), app), q.podName)
		if !has {
			continue
		}
		found = true
		one, ok := s.logs(c, app, q, sc)
		if !ok {
			return
		}
		for _, l := range one.Logs {
			l.Application = app.Service
			out.Logs = append(out.Logs, l)
		}
		for _, e := range one.Errors {
			e.Application = app.Service
			out.Errors = append(out.Errors, e)
		}
		out.Failures = append(out.Failures, one.Failures...)
		if one.Error != "" {
			errs = append(errs, app.Service+": "+one.Error)
		}
	}
	if !found {
		c.AbortWithStatusJSON(http.StatusNotFound, api.Error{Error: "pod_name: no application of deployment " + d.ID + " has a node or pod " + quote(q.podName),
			Code: "not_found", Field: "pod_name"})
		return
	}
	out.Logs = newest(out.Logs, q.lines)
	out.Error = strings.Join(errs, "; ")
	c.JSON(http.StatusOK, out)
}
