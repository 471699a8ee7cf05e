package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// createApplications starts a deployment of several applications: each is validated as a deploy of its
// own (an error names its field within it, applications[1].sha256), then all are submitted as one.
func (s *Server) createApplications(c *gin.Context, body api.DeployRequest, platform executor.Platform) {
	if field := ownField(body); field != "" {
		failField(c, field, "a deployment of several applications gives it in each application")
		return
	}
	if n := len(body.Applications); n > store.MaxApplications {
		failField(c, "applications", fmt.Sprintf("at most %d in one deployment, not %d", store.MaxApplications, n))
		return
	}
	token := c.GetString("token_name")
	first := map[string]int{}
	apps := make([]*store.Deployment, 0, len(body.Applications))
	for i, a := range body.Applications {
		at := fmt.Sprintf("applications[%d]", i)
		if j, dup := first[a.Service]; dup {
			failField(c, at+".service", fmt.Sprintf("%s is also applications[%d]: give each service once", quote(a.Service), j))
			return
		}
		first[a.Service] = i
		d, err := deploymentOf(applicationRequest(body, a), platform, "d-"+randomID())
		var v *executor.ValidationError
		if errors.As(err, &v) {
			failField(c, at+"."+v.Field, v.Reason)
			return
		}
		if err != nil {
			s.failErr(c, err)
			return
		}
		d.Token = token
		if !targetsFit(c, d) {
			return
		}
		apps = append(apps, d)
	}
	d := engine.Applications("d-"+randomID(), store.KindDeploy, platform, apps)
	d.RequestedBy, d.IdempotencyKey, d.Token = body.RequestedBy, body.IdempotencyKey, token
	s.submitApplications(c, d, apps)
}

// submitApplications hands a deployment of several to the engine, as submit does one.
func (s *Server) submitApplications(c *gin.Context, d *store.Deployment, apps []*store.Deployment) {
	for _, err := range []error{executor.ValidateLabel("idempotency_key", d.IdempotencyKey), executor.ValidateLabel("requested_by", d.RequestedBy)} {
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	accepted, err := s.engine.SubmitApplications(c.Request.Context(), d, apps)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, api.Accepted{ID: accepted.ID, State: api.State(accepted.State)})
}

// ownField names a field a deployment of several must leave to its applications ("" when none is set).
func ownField(body api.DeployRequest) string {
	switch {
	case body.Service != "":
		return "service"
	case body.Version != "":
		return "version"
	case len(body.Nodes) > 0:
		return "nodes"
	case body.PackageURL != "":
		return "package_url"
	case body.SHA256 != "":
		return "sha256"
	case body.Health != nil:
		return "health"
	case body.Unit.Exec != "" || body.Unit.Args != "" || len(body.Unit.Env) > 0:
		return "unit"
	case len(body.Workloads) > 0:
		return "workloads"
	case body.Image != "":
		return "image"
	case len(body.Environment) > 0:
		return "environment"
	case len(body.Config) > 0:
		return "config"
	}
	return ""
}

// applicationRequest is one application's deploy: its own fields, with the deployment's batching,
// delivery and strategy. The idempotency key and who asked are the deployment of several's.
func applicationRequest(body api.DeployRequest, a api.Application) api.DeployRequest {
	return api.DeployRequest{Service: a.Service, Version: a.Version, Platform: body.Platform, Nodes: a.Nodes,
		PackageURL: a.PackageURL, SHA256: a.SHA256, Health: a.Health, Unit: a.Unit, Workloads: a.Workloads, Image: a.Image,
		Environment: a.Environment, Config: a.Config, BatchSize: body.BatchSize, StopOnFailure: body.StopOnFailure,
		MaxUnavailable: body.MaxUnavailable, Delivery: body.Delivery, Strategy: body.Strategy, RequestedBy: body.RequestedBy}
}

// rollbackApplications starts a rollback of a deployment of several: each application that changed a
// node it can take back is rolled back as a deployment of its own, all as one deployment of several.
func (s *Server) rollbackApplications(c *gin.Context, orig *store.Deployment, body api.RollbackRequest) {
	apps := make([]*store.Deployment, 0, len(orig.Applications))
	for _, a := range orig.Applications {
		app, err := s.cfg.Store.Deployment(c.Request.Context(), a.DeploymentID)
		if err != nil {
			s.failErr(c, err)
			return
		}
		apps = append(apps, app)
	}
	d, back, err := engine.RollbackOfApplications(orig, apps, "d-"+randomID(), func() string { return "d-" + randomID() })
	var nothing *engine.NothingToRollBackError
	if errors.As(err, &nothing) {
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: nothing.Error(), Code: "nothing_to_roll_back"})
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	token := c.GetString("token_name")
	d.RequestedBy, d.IdempotencyKey, d.Token = body.RequestedBy, body.IdempotencyKey, token
	for _, b := range back {
		b.RequestedBy, b.Token = body.RequestedBy, token
	}
	s.submitApplications(c, d, back)
}
