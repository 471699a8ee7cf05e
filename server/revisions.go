package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
)

// A Kubernetes workload's rollout history, and a rollback to one revision of it.

// revisionsTimeout bounds reading one workload's history.
const revisionsTimeout = 10 * time.Second

// pathWorkload is the workload the path names, with ?container=, validated; false after answering 400.
func (s *Server) pathWorkload(c *gin.Context) (executor.Workload, bool) {
	w := executor.Workload{Namespace: c.Param("namespace"), Kind: c.Param("kind"), Name: c.Param("name"), Container: c.Query("container")}
	if err := executor.ValidateWorkloads([]executor.Workload{w}); err != nil {
		s.failErr(c, err)
		return w, false
	}
	return w, true
}

// revisionsOf reads w's history; false after answering 404 for a workload that is gone, 400 for a
// container it lacks, 502 when the cluster does not answer.
func (s *Server) revisionsOf(c *gin.Context, lister executor.RevisionLister, w executor.Workload) ([]executor.Revision, bool) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), revisionsTimeout)
	defer cancel()
	revs, err := lister.Revisions(ctx, w)
	switch {
	case errors.Is(err, executor.ErrNoSuchWorkload):
		fail(c, http.StatusNotFound, "not_found", err.Error())
		return nil, false
	case err != nil:
		s.runFailed(c, "reading the revisions of "+w.Host(), err)
		return nil, false
	}
	return revs, true
}

// listRevisions answers a workload's revisions, newest first.
func (s *Server) listRevisions(c *gin.Context) {
	lister, ok := k8sAs[executor.RevisionLister](s, c, "list revisions")
	if !ok {
		return
	}
	w, ok := s.pathWorkload(c)
	if !ok {
		return
	}
	revs, ok := s.revisionsOf(c, lister, w)
	if !ok {
		return
	}
	out := api.RevisionList{Workload: api.Workload(w), Revisions: listOf(revs, func(r executor.Revision) api.Revision {
		return api.Revision{Revision: r.Revision, Image: r.Image, Version: r.Version, ChangeCause: r.ChangeCause, Created: r.Created, Current: r.Current}
	})}
	c.JSON(http.StatusOK, out)
}

// rollbackWorkload starts a rollback of one workload to an earlier revision, recorded and run like any
// rollback. The revision is looked up first: one that is not there (or is the current one) records
// nothing and changes nothing.
func (s *Server) rollbackWorkload(c *gin.Context) {
	var body api.WorkloadRollbackRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	lister, ok := k8sAs[executor.RevisionLister](s, c, "roll back to a revision")
	if !ok {
		return
	}
	w, ok := s.pathWorkload(c)
	if !ok {
		return
	}
	if err := executor.ValidateService(body.Service); err != nil {
		s.failErr(c, err)
		return
	}
	if body.ToRevision < 1 {
		failField(c, "to_revision", "is required: the revision to go back to (1 or more; see GET .../revisions)")
		return
	}
	revs, ok := s.revisionsOf(c, lister, w)
	if !ok {
		return
	}
	target, code, why := pickRevision(revs, body.ToRevision)
	if target == nil {
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: fmt.Sprintf("%s %s: %s", w.Kind, w.Host(), why), Code: code, Field: "to_revision"})
		return
	}
	d := engine.ToRevision("d-"+randomID(), body.Service, w, target.Revision, target.Version)
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	s.submit(c, d)
}

// pickRevision finds revision n among revs; nil with a code and a reason when it is not one to go back
// to (not there, or the one running).
func pickRevision(revs []executor.Revision, n int64) (*executor.Revision, string, string) {
	there := make([]int64, 0, len(revs))
	for i := range revs {
		there = append(there, revs[i].Revision)
		if revs[i].Revision != n {
			continue
		}
		if revs[i].Current {
			return nil, "current_revision", fmt.Sprintf("revision %d is the current one: nothing to roll back", n)
		}
		return &revs[i], "", ""
	}
	return nil, "no_such_revision", fmt.Sprintf("no revision %d (there are %v)", n, there)
}
