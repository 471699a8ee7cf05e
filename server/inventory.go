package server

import (
	"context"
	"errors"
	"fmt"
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

// getNode answers one node's record; for a workload, also as the cluster has it now.
func (s *Server) getNode(c *gin.Context) {
	service, host := c.Param("service"), c.Param("host")
	if !validNodeKey(c, s, service, host) {
		return
	}
	n, err := s.cfg.Store.Node(c.Request.Context(), service, host)
	ns, name, workload := executor.SplitWorkloadHost(host)
	reader, canRead := s.cfg.K8s.(executor.LiveReader)
	if !workload || !canRead || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		if err != nil {
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusOK, renderNode(*n))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), podsTimeout)
	defer cancel()
	live, liveErr := reader.Live(ctx, ns, name, c.Query("kind"))
	if executor.IsValidation(liveErr) {
		s.failErr(c, liveErr)
		return
	}
	if err != nil { // no record: the cluster's word, if it has the workload
		if liveErr != nil {
			fail(c, http.StatusNotFound, "not_found", fmt.Sprintf("node %s of service %s not found, and the cluster cannot show it: %v", host, service, liveErr))
			return
		}
		c.JSON(http.StatusOK, api.Node{ID: store.NodeID(service, host), Host: host, Service: service, Platform: api.PlatformK8s,
			CurrentVersion: live.Version, Live: ptr(api.LiveWorkload(live))})
		return
	}
	out := renderNode(*n)
	if liveErr != nil {
		out.LiveError = liveErr.Error()
	} else {
		out.Live = ptr(api.LiveWorkload(live))
		if out.Drift == nil && n.State != executor.StateDeploying && live.Version != n.CurrentVersion {
			// Changed behind nodeexec's back since its record: said now, in the drift pass's words.
			out.Drift = &api.Drift{Kind: store.DriftImageChanged, Recorded: n.CurrentVersion, Observed: live.Version, Since: time.Now().UTC()}
		}
	}
	c.JSON(http.StatusOK, out)
}

func ptr[T any](v T) *T { return &v }

// listNodes lists node records, every service's or one's, in pages, by version, state and drift.
func (s *Server) listNodes(c *gin.Context) {
	f := store.NodeFilter{Service: c.Query("service"), Version: c.Query("version"), State: executor.State(c.Query("state")), Cursor: c.Query("cursor")}
	if f.Version != "" {
		if err := executor.ValidateVersion(f.Version); err != nil {
			s.failErr(c, err)
			return
		}
	}
	switch c.Query("drifted") {
	case "", "false":
	case "true":
		f.Drifted = true
	default:
		failField(c, "drifted", quote(c.Query("drifted"))+" is not true or false")
		return
	}
	var ok bool
	if f.Limit, ok = s.listing(c, f.Service, f.State, maxPageSize); !ok {
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
	d, err := s.engine.Forget(c.Request.Context(), "d-"+randomID(), service, host, by, c.GetString("token_name"))
	if err != nil {
		s.failErr(c, err)
		return
	}
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
