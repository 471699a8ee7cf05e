package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/store"
)

// Cleanups runs cleanup passes on request (package cleanup's Runner): Start records one and runs it in
// the background, or refuses with a *store.LeaseHeldError while another pass runs.
type Cleanups interface {
	Start(ctx context.Context, token string) (*store.Cleanup, error)
}

// createCleanup runs one cleanup pass now: 202 with the pass as it starts; follow it with getCleanup.
func (s *Server) createCleanup(c *gin.Context) {
	if s.cfg.Cleanups == nil {
		fail(c, http.StatusNotFound, "not_found", "this server runs no cleanup passes")
		return
	}
	pass, err := s.cfg.Cleanups.Start(c.Request.Context(), c.GetString("token_name"))
	var held *store.LeaseHeldError
	if errors.As(err, &held) {
		id := held.Lease.Pass
		fail(c, http.StatusConflict, "cleanup_running", "cleanup pass "+id+" is running (on "+held.Lease.Holder+
			"); one runs at a time: follow it with nodeexec cleanup "+id+" or GET /api/v1/cleanups/"+id)
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, renderCleanup(*pass))
}

// listCleanups pages through the recorded passes, newest first.
func (s *Server) listCleanups(c *gin.Context) {
	limit, ok := queryInt(c, "limit", defaultPageSize, 1, maxPageSize)
	if !ok {
		return
	}
	page, next, err := s.cfg.Store.ListCleanups(c.Request.Context(), limit, c.Query("cursor"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, api.CleanupList{Cleanups: listOf(page, renderCleanup), NextCursor: next})
}

func (s *Server) getCleanup(c *gin.Context) {
	pass, err := s.cfg.Store.Cleanup(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, renderCleanup(*pass))
}
