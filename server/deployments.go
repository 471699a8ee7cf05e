package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// deployBody is POST /api/v1/deployments.
type deployBody struct {
	Service        string        `json:"service"`
	Version        string        `json:"version"`
	Platform       string        `json:"platform"`
	Nodes          []string      `json:"nodes"`
	PackageURL     string        `json:"package_url"`
	SHA256         string        `json:"sha256"`
	Health         *healthBody   `json:"health"`
	Unit           executor.Unit `json:"unit"`
	IdempotencyKey string        `json:"idempotency_key"`
	RequestedBy    string        `json:"requested_by"`
}

type healthBody struct {
	HTTPPort     int    `json:"http_port"`
	HTTPPath     string `json:"http_path"`
	HTTPStatus   int    `json:"http_status"`
	TCPPort      int    `json:"tcp_port"`
	Retries      int    `json:"retries"`
	DelaySeconds int    `json:"delay_seconds"`
}

func (s *Server) createDeployment(c *gin.Context) {
	var body deployBody
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(c, http.StatusRequestEntityTooLarge, "too_large", "request body over the limit")
			return
		}
		fail(c, http.StatusBadRequest, "bad_json", "request body is not valid JSON for a deployment: "+err.Error())
		return
	}
	if body.Platform == "" {
		body.Platform = string(executor.PlatformPhysical)
	}
	if body.Platform != string(executor.PlatformPhysical) {
		c.AbortWithStatusJSON(http.StatusBadRequest, apiError{Error: "platform: " + quote(body.Platform) + " is not supported (physical)", Code: "invalid", Field: "platform"})
		return
	}
	if len(body.IdempotencyKey) > 200 {
		c.AbortWithStatusJSON(http.StatusBadRequest, apiError{Error: "idempotency_key: longer than 200 characters", Code: "invalid", Field: "idempotency_key"})
		return
	}
	id := "d-" + randomID()
	req := executor.DeployRequest{
		DeploymentID: id, Service: body.Service, Version: body.Version,
		Package: executor.Package{URL: body.PackageURL, SHA256: strings.ToLower(body.SHA256)}, Unit: body.Unit,
	}
	for _, h := range body.Nodes {
		req.Nodes = append(req.Nodes, executor.Node{Host: h})
	}
	if h := body.Health; h != nil {
		req.Health = executor.HealthCheck{HTTPPort: h.HTTPPort, HTTPPath: h.HTTPPath, HTTPStatus: h.HTTPStatus,
			TCPPort: h.TCPPort, Retries: h.Retries, Delay: time.Duration(h.DelaySeconds) * time.Second}
	}
	// Validate before anything is written: bad input leaves no trace.
	if err := req.Validate(); err != nil {
		s.failErr(c, err)
		return
	}
	ctx := c.Request.Context()
	d := &store.Deployment{ID: id, Service: req.Service, Version: req.Version, Platform: executor.PlatformPhysical, Request: req,
		RequestedBy: body.RequestedBy, IdempotencyKey: body.IdempotencyKey, State: executor.StatePending,
		CreatedAt: time.Now().UTC()}
	for _, n := range req.Nodes {
		d.Nodes = append(d.Nodes, store.DeploymentNode{Host: n.Host, State: executor.StatePending})
	}
	// Claim the nodes first: a request that cannot have all of them records nothing.
	before, err := s.cfg.Store.ClaimAll(ctx, req.Service, body.Nodes, executor.PlatformPhysical, id, req.Version)
	var busy *store.BusyError
	if errors.As(err, &busy) && body.IdempotencyKey != "" {
		// A retry of a request that already runs holds its own nodes: answer with that deployment.
		if existing, lookupErr := s.cfg.Store.DeploymentByKey(ctx, body.IdempotencyKey); lookupErr == nil {
			c.JSON(http.StatusAccepted, gin.H{"id": existing.ID, "state": existing.State})
			return
		}
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	for host, prior := range before {
		d.Node(host).FromVersion = prior.CurrentVersion
	}
	got, created, err := s.cfg.Store.CreateDeployment(ctx, d)
	if err != nil || !created {
		for _, prior := range before {
			_ = s.cfg.Store.Release(context.WithoutCancel(ctx), id, prior)
		}
		if err != nil {
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"id": got.ID, "state": got.State})
		return
	}
	s.runs.Add(1)
	go s.run(d)
	c.JSON(http.StatusAccepted, gin.H{"id": d.ID, "state": d.State})
}

// run executes one deployment in the background, waiting for a slot first, and records every node's end.
func (s *Server) run(d *store.Deployment) {
	defer s.runs.Done()
	log := s.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "service": d.Service, "version": d.Version})
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-s.ctx.Done():
	}
	// Records are written even when the server is shutting down: they must not be lost.
	bg := context.WithoutCancel(s.ctx)
	now := time.Now().UTC()
	d.StartedAt = &now
	d.State = executor.StateDeploying
	for i := range d.Nodes {
		d.Nodes[i].State = executor.StateDeploying
	}
	if err := s.cfg.Store.UpdateDeployment(bg, d); err != nil {
		log.WithError(err).Error("could not record the start")
	}
	results, runErr := s.cfg.Executor.Deploy(s.ctx, d.Request)
	if runErr != nil && results == nil {
		// Nothing ran on any node: each is failed with the reason.
		for _, n := range d.Request.Nodes {
			results = append(results, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: d.Service,
				State: executor.StateFailed, LastError: runErr.Error()}})
		}
	}
	overall := executor.StateSuccess
	for _, r := range results {
		r.Service = d.Service
		if _, err := s.cfg.Store.Finish(bg, d.ID, r.NodeStatus); err != nil {
			log.WithField("node", r.Host).WithError(err).Error("could not record the node's end")
		}
		if n := d.Node(r.Host); n != nil {
			*n = store.DeploymentNode{Host: r.Host, State: r.State, FromVersion: n.FromVersion,
				CurrentVersion: r.CurrentVersion, PrevVersion: r.PrevVersion, Changed: r.Changed, LastError: r.LastError}
		}
		if r.State != executor.StateSuccess {
			overall = executor.StateFailed
		}
	}
	end := time.Now().UTC()
	d.FinishedAt = &end
	d.State = overall
	if runErr != nil {
		d.Error = runErr.Error()
	}
	if err := s.cfg.Store.UpdateDeployment(bg, d); err != nil {
		log.WithError(err).Error("could not record the end")
	}
	log.WithField("state", d.State).Info("deployment finished")
}

func (s *Server) getDeployment(c *gin.Context) {
	d, err := s.cfg.Store.Deployment(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

func (s *Server) getNode(c *gin.Context) {
	service, host := c.Param("service"), c.Param("host")
	if err := executor.ValidateService(service); err != nil {
		s.failErr(c, err)
		return
	}
	if err := executor.ValidateHost(host); err != nil {
		s.failErr(c, err)
		return
	}
	n, err := s.cfg.Store.Node(c.Request.Context(), service, host)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, n)
}

func (s *Server) listNodes(c *gin.Context) {
	service := c.Query("service")
	if err := executor.ValidateService(service); err != nil {
		s.failErr(c, err)
		return
	}
	nodes, err := s.cfg.Store.Nodes(c.Request.Context(), service)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if nodes == nil {
		nodes = []store.Node{}
	}
	c.JSON(http.StatusOK, gin.H{"nodes": nodes})
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
