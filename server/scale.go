package server

import (
	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
)

// createScale starts a scale of Kubernetes workloads: recorded and run like a deployment (it holds the
// workloads, so it never runs beside a deploy to them), leaving their version as it is.
func (s *Server) createScale(c *gin.Context) {
	var body api.ScaleRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	if _, ok := k8sAs[executor.Scaler](s, c, "scale"); !ok {
		return
	}
	if body.Replicas == nil {
		failField(c, "replicas", "is required")
		return
	}
	workloads := workloadsOf(body.Workloads)
	for _, err := range []error{executor.ValidateReplicas(*body.Replicas), executor.ValidateService(body.Service), executor.ValidateWorkloads(workloads)} {
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	d := engine.Scale("d-"+randomID(), body.Service, workloads, *body.Replicas)
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	s.submit(c, d)
}
