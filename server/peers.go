package server

import (
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
)

// listReplicas answers GET /api/v1/replicas: the nodeexec replicas on this database, by their
// heartbeats (the pods of a workload are /pods).
func (s *Server) listReplicas(c *gin.Context) {
	all, err := s.cfg.Store.Replicas(c.Request.Context())
	if err != nil {
		s.failErr(c, err)
		return
	}
	lease := s.engine.ReplicaLease()
	now := time.Now()
	out := api.NodeexecReplicaList{LeaseSeconds: lease.Seconds(), Replicas: []api.NodeexecReplica{}}
	for _, r := range all {
		out.Replicas = append(out.Replicas, api.NodeexecReplica{Name: r.Name, Incarnation: r.Incarnation, StartedAt: r.StartedAt,
			HeartbeatAt: r.HeartbeatAt, Alive: now.Sub(r.HeartbeatAt) < lease, This: r.Owner() == s.engine.Owner()})
	}
	sort.Slice(out.Replicas, func(i, j int) bool { return out.Replicas[i].Name < out.Replicas[j].Name })
	c.JSON(http.StatusOK, out)
}
