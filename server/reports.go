package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
)

// createReport records a hand run's report (engine.Report) and answers 201 with its manual record; a
// report_id already recorded answers 200 with the first record.
func (s *Server) createReport(c *gin.Context) {
	var req api.HandRunReport
	if !s.decodeStrict(c, &req, bodyRequired) {
		return
	}
	d, created, err := s.engine.Report(c.Request.Context(), "d-"+randomID(), handRunOf(req), c.GetString("token_name"))
	var reused *engine.ReportReusedError
	switch {
	case errors.As(err, &reused):
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, api.Error{Error: err.Error(), Code: "key_reused", Field: "report_id", DeploymentID: reused.DeploymentID})
		return
	case err != nil:
		s.failErr(c, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	c.JSON(status, renderDeployment(*d))
}

func handRunOf(r api.HandRunReport) engine.HandRun {
	return engine.HandRun{ReportID: r.ReportID, Playbook: r.Playbook, Service: r.Service, Version: r.Version, User: r.User,
		Controller: r.Controller, Nodes: listOf(r.Nodes, func(n api.HandRunNode) engine.HandNode {
			return engine.HandNode{Host: n.Host, Failed: n.Failed, Unreachable: n.Unreachable, Changed: n.Changed, Msg: n.Msg,
				Report: pointerOf(n.Report, func(r api.HandRunNodeReport) engine.NodeReport { return engine.NodeReport(r) })}
		})}
}
