package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

func (s *Server) createDeployment(c *gin.Context) {
	var body api.DeployRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	platform, err := s.platformOf(body.Platform)
	if err != nil {
		s.failErr(c, err)
		return
	}
	dry, err := dryRunOf(c)
	if err == nil && dry && len(body.Applications) > 0 {
		err = &executor.ValidationError{Field: "dry_run", Reason: "a dry run reads one service's nodes; ask for each application on its own"}
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	if len(body.Applications) > 0 {
		s.createApplications(c, body, platform)
		return
	}
	// Validated before anything is written: bad input leaves no trace.
	d, err := deploymentOf(body, platform, "d-"+randomID())
	switch {
	case err != nil:
		s.failErr(c, err)
	case dry:
		s.dryRun(c, d)
	default:
		s.submit(c, d)
	}
}

// platformOf is the platform a deploy names (physical when none), if this server has its executor.
func (s *Server) platformOf(p api.Platform) (executor.Platform, error) {
	platform := executor.Platform(p)
	if platform == "" {
		platform = executor.PlatformPhysical
	}
	if platform != executor.PlatformPhysical && platform != executor.PlatformK8s {
		return "", &executor.ValidationError{Field: "platform", Reason: quote(string(p)) + " is not physical or k8s"}
	}
	if _, err := s.executorFor(platform); err != nil {
		return "", &executor.ValidationError{Field: "platform", Reason: string(platform) + " is not configured on this server"}
	}
	return platform, nil
}

// deploymentOf is the deployment, id, a deploy request asks for on platform, validated.
func deploymentOf(body api.DeployRequest, platform executor.Platform, id string) (*store.Deployment, error) {
	invalid := func(field, reason string) error { return &executor.ValidationError{Field: field, Reason: reason} }
	if platform == executor.PlatformK8s && (len(body.Nodes) > 0 || body.PackageURL != "" || body.SHA256 != "") {
		return nil, invalid("nodes", "platform k8s deploys workloads with an image, not nodes with a package")
	}
	if platform == executor.PlatformPhysical && (len(body.Workloads) > 0 || body.Image != "" || body.Strategy != nil) {
		return nil, invalid("workloads", "platform physical deploys nodes with a package, not workloads with an image and a strategy")
	}
	if err := firstErr(batchError(body.BatchSize), unavailableError(platform, body)); err != nil {
		return nil, err
	}
	env, err := environmentOf(body, platform)
	if err != nil {
		return nil, err
	}
	req := executor.DeployRequest{
		DeploymentID: id,
		Service:      body.Service,
		Version:      body.Version,
		PhysicalDeploy: executor.PhysicalDeploy{
			Package:  executor.Package{URL: body.PackageURL, SHA256: strings.ToLower(body.SHA256)},
			Unit:     executor.Unit(body.Unit),
			Delivery: executor.Delivery(body.Delivery),
		},
	}
	for _, h := range body.Nodes {
		req.Nodes = append(req.Nodes, executor.Node{Host: h})
	}
	req.Workloads, req.Image = workloadsOf(body.Workloads), body.Image
	if body.Strategy != nil {
		req.Strategy = executor.Strategy(*body.Strategy)
	}
	if h := body.Health; h != nil {
		req.Health = healthOf(h)
	}
	if platform == executor.PlatformK8s {
		req.Env = env
	} else {
		req.Unit.Env = env
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	d := engine.Deploy(req, platform, store.Batch{Size: body.BatchSize, StopOnFailure: body.StopOnFailure, MaxUnavailable: body.MaxUnavailable})
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	return d, nil
}

// environmentOf is the environment a deploy gives the service: environment and config, and on physical
// nodes unit.env, in one map. A name given twice is refused: which one would win is not for us to guess.
func environmentOf(body api.DeployRequest, platform executor.Platform) (map[string]string, error) {
	sources := []struct {
		field string
		env   map[string]string
	}{{"unit.env", body.Unit.Env}, {"environment", body.Environment}, {"config", body.Config}}
	var env map[string]string
	from := map[string]string{}
	for _, src := range sources {
		for k, v := range src.env {
			if first, dup := from[k]; dup {
				return nil, &executor.ValidationError{Field: src.field, Reason: fmt.Sprintf("%s is also given in %s: give each variable once", k, first)}
			}
			if env == nil {
				env = map[string]string{}
			}
			from[k], env[k] = src.field, v
		}
	}
	if platform == executor.PlatformK8s && len(body.Unit.Env) > 0 {
		return nil, &executor.ValidationError{Field: "unit.env", Reason: "platform k8s has no unit: give the container's variables in environment"}
	}
	for _, src := range sources {
		if err := executor.ValidateEnv(src.field, src.env); err != nil {
			return nil, err
		}
	}
	if err := executor.ValidateEnv("environment", env); err != nil {
		return nil, err
	}
	return env, nil
}

// firstErr is the first of errs that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// unavailableError refuses a max_unavailable that is out of range, not for physical nodes, or that the
// deployment's own batch exceeds (that could never run).
func unavailableError(platform executor.Platform, body api.DeployRequest) error {
	k := body.MaxUnavailable
	invalid := func(field, reason string) error { return &executor.ValidationError{Field: field, Reason: reason} }
	switch {
	case k < 0 || k > maxBatchSize:
		return invalid("max_unavailable", fmt.Sprintf("want 0 (no bound) to %d", maxBatchSize))
	case k > 0 && platform != executor.PlatformPhysical:
		return invalid("max_unavailable", "bounds physical nodes only; a Kubernetes rollout has its own (the strategy's max_unavailable)")
	case k > 0 && (store.Batch{Size: body.BatchSize}).Width(len(body.Nodes)) > k:
		return invalid("batch_size", fmt.Sprintf("%d nodes at once is more than max_unavailable %d: send a batch_size of at most %d",
			(store.Batch{Size: body.BatchSize}).Width(len(body.Nodes)), k, k))
	}
	return nil
}

// maxBatchSize bounds the nodes of one ansible-playbook run (its forks).
const maxBatchSize = 500

// batchFits answers 400 for a batch_size that is not 0 (all nodes in one run) to maxBatchSize.
func batchFits(c *gin.Context, size int) bool {
	if err := batchError(size); err != nil {
		failField(c, "batch_size", err.(*executor.ValidationError).Reason)
		return false
	}
	return true
}

func batchError(size int) error {
	if size < 0 || size > maxBatchSize {
		return &executor.ValidationError{Field: "batch_size", Reason: fmt.Sprintf("want 0 (all nodes in one run) to %d", maxBatchSize)}
	}
	return nil
}

// nodesFit answers 400 for more nodes than one ansible-playbook run takes.
func nodesFit(c *gin.Context, nodes []executor.Node) bool {
	if len(nodes) > maxBatchSize {
		failField(c, "nodes", fmt.Sprintf("at most %d at once", maxBatchSize))
		return false
	}
	return true
}

// maxTargets bounds the nodes (or workloads) of one deployment, batches or not.
const maxTargets = 10000

// targetsFit answers 400 for a deployment with more nodes than it can run: more than one
// ansible-playbook run takes when they are to run in one (batch_size 0), or more than maxTargets.
func targetsFit(c *gin.Context, d *store.Deployment) bool {
	n := len(d.Nodes)
	switch {
	case n > maxTargets:
		failField(c, "nodes", fmt.Sprintf("at most %d in one deployment, not %d", maxTargets, n))
		return false
	case d.Platform == executor.PlatformPhysical && d.Batch.Size == 0 && n > maxBatchSize:
		failField(c, "nodes", fmt.Sprintf("at most %d in one run, not %d: set batch_size to run them in batches", maxBatchSize, n))
		return false
	}
	return true
}

// A listing's page: this many records unless ?limit= asks for another number up to the most.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// submit hands the deployment to the engine, which claims its nodes, records it, and starts it: 202
// with its id. A request that cannot have all its nodes records nothing (409 naming the holder); a retry
// with a known idempotency key answers with the deployment the key created, even while that one is
// being recorded.
func (s *Server) submit(c *gin.Context, d *store.Deployment) {
	d.Token = c.GetString("token_name")
	if !targetsFit(c, d) {
		return
	}
	for _, err := range []error{executor.ValidateLabel("idempotency_key", d.IdempotencyKey), executor.ValidateLabel("requested_by", d.RequestedBy)} {
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	accepted, err := s.engine.Submit(c.Request.Context(), d)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, api.Accepted{ID: accepted.ID, State: api.State(accepted.State)})
}

// rollbackDeployment starts a rollback of what a deployment changed: each node it switched goes back to
// the version it ran before. Nodes it did not change are left alone. With a target_deployment_id, each
// of its nodes goes back to the version that deployment left it on instead (rollbackTo).
func (s *Server) rollbackDeployment(c *gin.Context) {
	var body api.RollbackRequest
	if !s.decodeStrict(c, &body, bodyOptional) {
		return
	}
	if err := executor.ValidateLabel("target_deployment_id", body.TargetDeploymentID); err != nil {
		s.failErr(c, err)
		return
	}
	orig, err := s.cfg.Store.Deployment(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !orig.State.Terminal() {
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: "deployment " + orig.ID + " is still running; cancel it or wait for it to end", Code: "not_finished"})
		return
	}
	if orig.HasApplications() && body.TargetDeploymentID == "" {
		s.rollbackApplications(c, orig, body)
		return
	}
	if s.answeredByKey(c, orig, body) {
		return
	}
	id := "d-" + randomID()
	var d *store.Deployment
	if body.TargetDeploymentID != "" {
		d, err = s.rollbackTo(c, orig, body.TargetDeploymentID, id)
	} else {
		d, err = engine.RollbackOf(orig, id)
	}
	var nothing *engine.NothingToRollBackError
	var refused *engine.TargetRefusedError
	switch {
	case errors.As(err, &nothing):
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: nothing.Error(), Code: "nothing_to_roll_back"})
		return
	case body.TargetDeploymentID != "" && errors.Is(err, store.ErrNotFound): // orig was found: the target is missing
		c.AbortWithStatusJSON(http.StatusNotFound, api.Error{Error: err.Error(), Code: "target_not_found", Field: "target_deployment_id"})
		return
	case errors.As(err, &refused):
		status := http.StatusConflict
		if refused.Code == engine.TargetMismatch {
			status = http.StatusUnprocessableEntity
		}
		c.AbortWithStatusJSON(status, api.Error{Error: refused.Error(), Code: refused.Code, Field: "target_deployment_id"})
		return
	case err != nil:
		s.failErr(c, err)
		return
	}
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	s.submit(c, d)
}

// answeredByKey answers a retry of a rollback to a target with the rollback its idempotency key
// recorded (202), or 422 key_reused when the key recorded another request. Which nodes a rollback-to
// takes depends on what they run now, which the first try changes: computed again, a retry would
// select others (or none). Before its record, the engine's own key check answers it.
func (s *Server) answeredByKey(c *gin.Context, orig *store.Deployment, body api.RollbackRequest) bool {
	if body.IdempotencyKey == "" || body.TargetDeploymentID == "" {
		return false
	}
	prior, err := s.cfg.Store.DeploymentByKey(c.Request.Context(), body.IdempotencyKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		s.failErr(c, err)
	case prior.RollbackOf != orig.ID || prior.TargetDeploymentID != body.TargetDeploymentID:
		s.failErr(c, &store.KeyReusedError{Key: body.IdempotencyKey, DeploymentID: prior.ID})
	default:
		c.JSON(http.StatusAccepted, api.Accepted{ID: prior.ID, State: api.State(prior.State)})
	}
	return true
}

// rollbackTo is the rollback of orig to the versions the target deployment left its nodes on, leaving
// alone those whose record says they run it already (engine.RollbackTo).
func (s *Server) rollbackTo(c *gin.Context, orig *store.Deployment, targetID, id string) (*store.Deployment, error) {
	ctx := c.Request.Context()
	target, err := s.cfg.Store.Deployment(ctx, targetID)
	if err != nil {
		return nil, err
	}
	nodes, err := s.cfg.Store.Nodes(ctx, orig.Service)
	if err != nil {
		return nil, err
	}
	current := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if n.Platform == orig.Platform {
			current[n.Host] = n.CurrentVersion
		}
	}
	return engine.RollbackTo(orig, target, current, id)
}

// cancelDeployment stops a deployment: at once when this process runs it, else through the database,
// by the replica that runs it.
func (s *Server) cancelDeployment(c *gin.Context) {
	id := c.Param("id")
	running := s.engine.Cancel(id)
	d, err := s.cfg.Store.Deployment(c.Request.Context(), id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	for _, app := range d.Applications {
		running = s.engine.Cancel(app.DeploymentID) || running
	}
	if running {
		c.JSON(http.StatusAccepted, api.Accepted{ID: id, State: api.State(d.State)})
		return
	}
	if d.State.Terminal() {
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: "deployment " + id + " already ended " + string(d.State), Code: "finished"})
		return
	}
	if s.cfg.Store.Exclusive() {
		c.AbortWithStatusJSON(http.StatusConflict, api.Error{Error: "deployment " + id + " is not run by this nodeexec (it is being recorded, or reconciled at start)", Code: "not_running_here"})
		return
	}
	// Another replica runs it (or took it over from one that died): it cancels it at its next heartbeat.
	for _, cid := range append([]string{id}, d.ApplicationIDs()...) {
		if err := s.cfg.Store.RequestCancel(c.Request.Context(), cid); err != nil {
			s.failErr(c, err)
			return
		}
	}
	c.JSON(http.StatusAccepted, api.Accepted{ID: id, State: api.State(d.State)})
}

func (s *Server) listDeployments(c *gin.Context) {
	f := store.DeploymentFilter{Service: c.Query("service"), Node: c.Query("node"), State: executor.State(c.Query("state")), Cursor: c.Query("cursor")}
	var ok bool
	if f.Limit, ok = s.listing(c, f.Service, f.State, defaultPageSize); !ok {
		return
	}
	if len(f.Node) > maxNodeName || strings.ContainsFunc(f.Node, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		failField(c, "node", "want a node's host, or a workload's namespace/name")
		return
	}
	page, next, err := s.cfg.Store.ListDeployments(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, api.DeploymentList{Deployments: listOf(page, renderDeployment), NextCursor: next})
}

// maxNodeName bounds ?node=: a DNS name (253), or a namespace/name (63 + 1 + 253).
const maxNodeName = 317

// listing checks a listing's optional service and state filters and reads its page size (def unless
// ?limit= says); false after answering 400.
func (s *Server) listing(c *gin.Context, service string, state executor.State, def int) (int, bool) {
	if service != "" {
		if err := executor.ValidateService(service); err != nil {
			s.failErr(c, err)
			return 0, false
		}
	}
	if state != "" && !state.Valid() {
		failField(c, "state", quote(string(state))+" is not a state")
		return 0, false
	}
	return queryInt(c, "limit", def, 1, maxPageSize)
}

func (s *Server) getDeployment(c *gin.Context) {
	d, err := s.cfg.Store.Deployment(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, renderDeployment(*d))
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
