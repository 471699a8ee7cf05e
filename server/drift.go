package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Drifts runs drift passes on request (package drift's Runner): Start records one over service's nodes
// ("": every service's) and runs it in the background, or refuses with a *store.LeaseHeldError while
// another pass runs.
type Drifts interface {
	Start(ctx context.Context, token, service string) (*store.DriftPass, error)
}

// createDriftPass runs one drift pass now: 202 with the pass as it starts; follow it with getDriftPass.
func (s *Server) createDriftPass(c *gin.Context) {
	if s.cfg.Drift == nil {
		fail(c, http.StatusNotFound, "not_found", "this server runs no drift passes")
		return
	}
	var body api.DriftRequest
	if !s.decodeStrict(c, &body, bodyOptional) {
		return
	}
	if body.Service != "" {
		if err := executor.ValidateService(body.Service); err != nil {
			s.failErr(c, err)
			return
		}
	}
	pass, err := s.cfg.Drift.Start(c.Request.Context(), c.GetString("token_name"), body.Service)
	var held *store.LeaseHeldError
	if errors.As(err, &held) {
		id := held.Lease.Pass
		fail(c, http.StatusConflict, "drift_running", "drift pass "+id+" is running (on "+held.Lease.Holder+
			"); one runs at a time: follow it with nodeexec drift --follow "+id+" or GET /api/v1/drift/"+id)
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, renderDriftPass(*pass))
}

// listDriftPasses pages through the recorded passes, newest first.
func (s *Server) listDriftPasses(c *gin.Context) {
	limit, ok := queryInt(c, "limit", defaultPageSize, 1, maxPageSize)
	if !ok {
		return
	}
	page, next, err := s.cfg.Store.ListDriftPasses(c.Request.Context(), limit, c.Query("cursor"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, api.DriftPassList{Passes: listOf(page, renderDriftPass), NextCursor: next})
}

func (s *Server) getDriftPass(c *gin.Context) {
	pass, err := s.cfg.Store.DriftPass(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, renderDriftPass(*pass))
}
