// Package server is the HTTP API the Plan Layer calls: it routes, authenticates, decodes and validates
// requests, hands operations to the engine (package engine runs them), and serves the state of every
// deployment and node from the store. Handlers stay thin: parse, validate, call, render.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/buildinfo"
	"github.com/nodeexec/nodeexec/metrics"
	"github.com/nodeexec/nodeexec/notify"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// Config wires the server to its executors and store.
type Config struct {
	// Executor deploys physical nodes; K8s (optional) deploys Kubernetes workloads.
	Executor executor.Executor
	K8s      executor.Executor
	Store    *store.Store
	// MaxConcurrent bounds the deployments that run at once; more wait their turn. Default 4.
	MaxConcurrent int
	// MaxBody bounds a request body in bytes; default 1 MiB.
	MaxBody int64
	Logger  logrus.FieldLogger
	// Tokens are the API's bearer tokens; none means no auth (serve allows that on loopback only).
	Tokens []Token
	// Retry is how nodes that failed on a transient fault (unreachable) are tried again; the zero
	// policy never retries.
	Retry retry.Policy
	// DeployTimeout bounds one executor call (a batch's ansible-playbook run, a rollout); 0: none.
	DeployTimeout time.Duration
	// Cleanups runs cleanup passes on request (POST /api/v1/cleanups); nil: this server runs none.
	Cleanups Cleanups
	// Drift runs drift passes on request (POST /api/v1/drift); nil: this server runs none.
	Drift Drifts
	// Notify is the webhooks told how each deployment ended (none: nobody); its Logger defaults to Logger.
	Notify notify.Config
	// Commands is the operator's allow-list of ad-hoc commands (POST /api/v1/adhoc, admin scope); none:
	// no ad-hoc commands. CommandMaxOutput bounds the stdout and the stderr kept per node (bytes; default
	// 64 KiB); CommandTimeout bounds the command on each node (default 60s).
	Commands         executor.AllowList
	CommandMaxOutput int
	CommandTimeout   time.Duration
	// Replica places this server among replicas sharing the database.
	Replica engine.ReplicaConfig
	// TuneEngine, when set, adjusts the engine's configuration before the engine is built: tests set
	// its hooks and waits there.
	TuneEngine func(*engine.Config)
}

// Server is the API in front of the engine that runs the deployments.
type Server struct {
	cfg    Config
	router *gin.Engine
	engine *engine.Engine
	// metrics are served at /metrics, from a registry of this server's own; the engine records into it.
	metrics *metrics.Metrics
	// notifier sends each finished deployment's event to the webhooks; its workers stop with Shutdown.
	notifier *notify.Notifier
	// inspections bounds the node runs a request waits for (service status, ad-hoc commands): a client
	// cannot start more ansible-playbook processes at once than MaxConcurrent.
	inspections chan struct{}
}

// New builds the API.
func New(cfg Config) *Server {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 4
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.Notify.Logger == nil {
		cfg.Notify.Logger = cfg.Logger
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, router: gin.New(), metrics: metrics.New(), notifier: notify.New(cfg.Notify),
		inspections: make(chan struct{}, cfg.MaxConcurrent)}
	ecfg := engine.Config{Executor: cfg.Executor, K8s: cfg.K8s, Store: cfg.Store, MaxConcurrent: cfg.MaxConcurrent, Logger: cfg.Logger,
		Retry: cfg.Retry, DeployTimeout: cfg.DeployTimeout, Metrics: s.metrics, Notifier: s.notifier, Replica: cfg.Replica}
	if cfg.TuneEngine != nil {
		cfg.TuneEngine(&ecfg)
	}
	s.engine = engine.New(ecfg)
	s.router.Use(s.recoverJSON(), s.limitBody())
	s.router.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "not_found", "no such route: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	s.router.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed") })
	s.router.HandleMethodNotAllowed = true
	// A Kubernetes workload's node name is "namespace/name": clients escape the slash (%2F), and the
	// router matches on the escaped path so it stays one segment.
	s.router.UseRawPath = true
	s.router.UnescapePathValues = true

	s.router.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, api.Status{Status: "ok"}) })
	s.router.GET("/readyz", s.ready)
	auth := newAuthorizer(cfg.Tokens)
	read, deploy, admin := auth.require(ScopeRead), auth.require(ScopeDeploy), auth.require(ScopeAdmin)
	// Under the read scope like every other read: Prometheus sends the token (docs/metrics.md).
	s.router.GET("/metrics", read, gin.WrapH(s.metrics.Handler()))
	api := s.router.Group("/api/v1")
	api.GET("/whoami", read, whoami)
	api.POST("/deployments", deploy, s.takingNew, s.createDeployment)
	api.GET("/deployments", read, s.listDeployments)
	api.GET("/deployments/:id", read, s.getDeployment)
	api.GET("/deployments/:id/events", read, s.streamEvents)
	api.POST("/deployments/:id/rollback", deploy, s.takingNew, s.rollbackDeployment)
	api.POST("/deployments/:id/cancel", deploy, s.cancelDeployment)
	api.POST("/scale", deploy, s.takingNew, s.createScale)
	api.POST("/restart", deploy, s.takingNew, s.createRestart)
	api.POST("/apply", deploy, s.takingNew, s.createApply)
	api.POST("/delete", deploy, s.takingNew, s.createDelete)
	api.GET("/pods", read, s.listPods)
	api.GET("/workloads/:namespace/:kind/:name/revisions", read, s.listRevisions)
	api.POST("/workloads/:namespace/:kind/:name/rollback", deploy, s.takingNew, s.rollbackWorkload)
	api.GET("/services/:service/status", read, s.serviceStatus)
	api.GET("/adhoc", admin, s.listCommands)
	api.POST("/adhoc", admin, s.takingNew, s.runCommand)
	api.GET("/nodes", read, s.listNodes)
	api.GET("/services", read, s.listServices)
	api.GET("/version", read, func(c *gin.Context) { c.JSON(http.StatusOK, buildinfo.Read()) })
	api.GET("/replicas", read, s.listReplicas)
	api.DELETE("/nodes/:service/:host", deploy, s.forgetNode)
	api.POST("/reports", deploy, s.createReport)
	mgmt := s.router.Group("/internal/v1/deploy", read)
	mgmt.GET("/info/:deployment_id", s.deployInfo)
	mgmt.GET("/health/:deployment_id", s.deployHealth)
	mgmt.GET("/logs/:deployment_id", s.deployLogs)
	api.GET("/nodes/:service/:host", read, s.getNode)
	api.GET("/nodes/:service/:host/service", read, s.nodeService)
	api.POST("/cleanups", deploy, s.takingNew, s.createCleanup)
	api.GET("/cleanups", read, s.listCleanups)
	api.GET("/cleanups/:id", read, s.getCleanup)
	api.POST("/drift", deploy, s.takingNew, s.createDriftPass)
	api.GET("/drift", read, s.listDriftPasses)
	api.GET("/drift/:id", read, s.getDriftPass)
	return s
}

// executorFor is the executor of a platform.
func (s *Server) executorFor(p executor.Platform) (executor.Executor, error) {
	return s.engine.Executor(p)
}

// Handler is the HTTP handler.
func (s *Server) Handler() http.Handler { return s.router }

// Reconcile finishes the deployments a previous process left in flight (engine.Reconcile). Call it at
// start, before serving.
func (s *Server) Reconcile(ctx context.Context) error { return s.engine.Reconcile(ctx) }

// WatchReplicas heartbeats for this replica and takes over what dead replicas left in flight, until
// Shutdown (engine.WatchReplicas). Call it after Reconcile.
func (s *Server) WatchReplicas() { s.engine.WatchReplicas() }

// Shutdown cancels running deployments and waits for them to record their end.
func (s *Server) Shutdown() {
	s.engine.Shutdown()
	s.notifier.Stop() // after the runs: their events are queued, and get a last chance to go out
}

// Drain is a graceful Shutdown: the server stops taking new deployments (503 shutting_down, and
// /readyz 503 so a load balancer sends them elsewhere), ends those still waiting for a slot as not
// started, and gives the running ones up to grace to finish on their own; then it cancels the rest
// (each node reports what it really runs, and the deployment says why it ended) and waits for their
// records. Reads, cancels and event streams are served all along. ctx ending cuts the grace short.
func (s *Server) Drain(ctx context.Context, grace time.Duration) { s.engine.Drain(ctx, grace) }

func (s *Server) stopTaking() { s.engine.StopTaking() }

func (s *Server) draining() bool { return s.engine.Draining() }

// takingNew refuses requests that would start a deployment while the server drains.
func (s *Server) takingNew(c *gin.Context) {
	if s.draining() {
		fail(c, http.StatusServiceUnavailable, "shutting_down", "nodeexec is shutting down and takes no new deployments: send it to another instance, or retry once it is back")
		return
	}
	c.Next()
}

func fail(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, api.Error{Error: msg, Code: code})
}

// failField answers 400 about one field of the request, the way failErr answers a ValidationError.
func failField(c *gin.Context, field, reason string) {
	c.AbortWithStatusJSON(http.StatusBadRequest, api.Error{Error: field + ": " + reason, Code: "invalid", Field: field})
}

// failErr renders an error from below with the status it deserves; a store that does not answer is 503.
func (s *Server) failErr(c *gin.Context, err error) {
	var v *executor.ValidationError
	var busy *store.BusyError
	var inFlight *engine.KeyInFlightError
	var missing *store.NotFoundError
	var reused *store.KeyReusedError
	var unavailable *engine.UnavailableError
	switch {
	case errors.As(err, &unavailable):
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: err.Error(), Code: "max_unavailable", Field: "max_unavailable", DeploymentID: unavailable.First})
	case errors.As(err, &reused):
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, api.Error{Error: err.Error(), Code: "key_reused", Field: "idempotency_key", DeploymentID: reused.DeploymentID})
	case errors.As(err, &inFlight):
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: err.Error(), Code: "key_in_flight", DeploymentID: inFlight.Owner})
	case errors.As(err, &v):
		c.AbortWithStatusJSON(http.StatusBadRequest, api.Error{Error: err.Error(), Code: "invalid", Field: v.Field})
	case errors.As(err, &busy):
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: err.Error(), Code: "node_busy", DeploymentID: busy.DeploymentID})
	case errors.Is(err, store.ErrBadCursor):
		failField(c, "cursor", "not a cursor this server gave out")
	case errors.As(err, &missing):
		fail(c, http.StatusNotFound, "not_found", missing.Error())
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "not_found", "not found: "+c.Request.URL.Path)
	default:
		s.cfg.Logger.WithError(err).Error("request failed")
		if s.cfg.Store.Ping(c.Request.Context()) != nil {
			fail(c, http.StatusServiceUnavailable, "database_unavailable", "the database does not answer; try again shortly")
			return
		}
		fail(c, http.StatusInternalServerError, "internal", "internal error")
	}
}

// emptyBody says whether a request's body may be empty.
type emptyBody bool

const (
	bodyRequired emptyBody = false
	bodyOptional emptyBody = true // an empty body leaves v as it was
)

// decodeStrict reads the request's JSON body into v. A field v does not have is refused, so that a
// misspelt option is an error rather than silently ignored. false after answering 413 for a body over
// the limit, 400 for any other that does not decode.
func (s *Server) decodeStrict(c *gin.Context, v any, empty emptyBody) bool {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil || empty == bodyOptional && errors.Is(err, io.EOF):
		return true
	case errors.As(err, &tooBig):
		fail(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over the limit of %d bytes", s.cfg.MaxBody))
	default:
		fail(c, http.StatusBadRequest, "bad_json", "request body is not valid JSON for this request: "+err.Error())
	}
	return false
}

// queryInt is the query parameter name as a number from lo to hi, def when it is absent; false after
// answering 400.
func queryInt(c *gin.Context, name string, def, lo, hi int) (int, bool) {
	v := c.Query(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		failField(c, name, fmt.Sprintf("want a number from %d to %d", lo, hi))
		return 0, false
	}
	return n, true
}

// recoverJSON turns a handler's panic into a 500 with a JSON body; the server keeps serving.
func (s *Server) recoverJSON() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				s.cfg.Logger.WithField("panic", fmt.Sprint(r)).WithField("path", c.FullPath()).Error("handler panicked")
				fail(c, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		c.Next()
	}
}

// limitBody caps request bodies; reading past the cap fails, and the handler answers 413.
func (s *Server) limitBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody)
		c.Next()
	}
}

func (s *Server) ready(c *gin.Context) {
	if s.draining() {
		fail(c, http.StatusServiceUnavailable, "shutting_down", "nodeexec is shutting down")
		return
	}
	if err := s.cfg.Store.Ping(c.Request.Context()); err != nil {
		fail(c, http.StatusServiceUnavailable, "database_unavailable", "the database does not answer")
		return
	}
	c.JSON(http.StatusOK, api.Status{Status: "ready"})
}
