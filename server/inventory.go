package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// The inventory: the services nodeexec knows, their nodes, and forgetting a node that is gone.

func (s *Server) listServices(c *gin.Context) {
	sums, err := s.cfg.Store.Services(c.Request.Context())
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, api.ServiceList{Services: listOf(sums, func(sum store.ServiceSummary) api.ServiceSummary {
		return api.ServiceSummary{Service: sum.Service, Platform: api.Platform(sum.Platform), Nodes: sum.Nodes, Failed: sum.Failed,
			Deploying: sum.Deploying, Versions: listOf(sum.Versions, func(v store.VersionHosts) api.VersionHosts { return api.VersionHosts(v) })}
	})})
}

// listNodes lists node records, every service's or one's, in pages, by version and state.
func (s *Server) listNodes(c *gin.Context) {
	f := store.NodeFilter{Service: c.Query("service"), Version: c.Query("version"), State: executor.State(c.Query("state")), Cursor: c.Query("cursor")}
	if f.Service != "" {
		if err := executor.ValidateService(f.Service); err != nil {
			s.failErr(c, err)
			return
		}
	}
	if f.Version != "" {
		if err := executor.ValidateVersion(f.Version); err != nil {
			s.failErr(c, err)
			return
		}
	}
	if f.State != "" && !f.State.Valid() {
		failField(c, "state", quote(string(f.State))+" is not a state")
		return
	}
	var ok bool
	if f.Limit, ok = queryInt(c, "limit", maxPageSize, 1, maxPageSize); !ok {
		return
	}
	page, next, err := s.cfg.Store.ListNodes(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, api.NodeList{Nodes: listOf(page, renderNode), NextCursor: next})
}

// forgetNode removes a node's record (a decommissioned host, a workload that is gone), unless a
// deployment or a pass holds it (409 node_busy), and records who forgot it and what it ran as a
// deployment of kind forget, which it answers with.
func (s *Server) forgetNode(c *gin.Context) {
	service, host := c.Param("service"), c.Param("host")
	if !validNodeKey(c, s, service, host) {
		return
	}
	by := c.Query("requested_by")
	if err := executor.ValidateLabel("requested_by", by); err != nil {
		s.failErr(c, err)
		return
	}
	ctx := c.Request.Context()
	n, err := s.cfg.Store.ForgetNode(ctx, service, host)
	if err != nil {
		s.failErr(c, err)
		return
	}
	now := time.Now().UTC()
	d := &store.Deployment{ID: "d-" + randomID(), Kind: store.KindForget, Service: service, Version: n.CurrentVersion, Platform: n.Platform,
		RequestedBy: by, Token: c.GetString("token_name"), State: executor.StateSuccess, CreatedAt: now, StartedAt: &now, FinishedAt: &now,
		Nodes: []store.DeploymentNode{{Host: host, State: executor.StateSuccess, FromVersion: n.CurrentVersion, CurrentVersion: n.CurrentVersion,
			PrevVersion: n.PrevVersion, Changed: true, LastError: "forgotten; it was " + string(n.State)}}}
	if _, _, err := s.cfg.Store.CreateDeployment(ctx, d); err != nil {
		// The node is forgotten either way; only the record of who did it is lost, and said so.
		s.cfg.Logger.WithFields(map[string]any{"service": service, "node": host}).WithError(err).Error("forgot a node but could not record it")
	}
	s.cfg.Logger.WithFields(map[string]any{"deployment_id": d.ID, "service": service, "node": host, "version": n.CurrentVersion,
		"requested_by": by}).Info("node forgotten")
	c.JSON(http.StatusOK, renderDeployment(*d))
}

// validNodeKey checks a node's service and host (a host, or a workload's "namespace/name"); false after
// answering 400.
func validNodeKey(c *gin.Context, s *Server, service, host string) bool {
	if err := executor.ValidateService(service); err != nil {
		s.failErr(c, err)
		return false
	}
	if _, _, workload := executor.SplitWorkloadHost(host); !workload {
		if err := executor.ValidateHost(host); err != nil {
			s.failErr(c, err)
			return false
		}
	}
	return true
}
