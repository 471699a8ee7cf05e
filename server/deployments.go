package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

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
	BatchSize      int           `json:"batch_size"`
	StopOnFailure  bool          `json:"stop_on_failure"`
	// Delivery is how the package reaches the nodes: pull (default) or push.
	Delivery executor.Delivery `json:"delivery"`
	// Kubernetes (platform "k8s"): the workloads, the image their container gets, and how.
	Workloads []executor.Workload `json:"workloads"`
	Image     string              `json:"image"`
	Strategy  *executor.Strategy  `json:"strategy"`
}

type healthBody struct {
	HTTPPort     int    `json:"http_port"`
	HTTPPath     string `json:"http_path"`
	HTTPStatus   int    `json:"http_status"`
	TCPPort      int    `json:"tcp_port"`
	Retries      int    `json:"retries"`
	DelaySeconds int    `json:"delay_seconds"`
	// IntervalMS is how often the node looks at the unit and the checks; StableSeconds how long all must
	// keep passing once they passed.
	IntervalMS    int `json:"interval_ms"`
	StableSeconds int `json:"stable_seconds"`
}

func (s *Server) createDeployment(c *gin.Context) {
	var body deployBody
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	platform := executor.Platform(body.Platform)
	if platform == "" {
		platform = executor.PlatformPhysical
	}
	if platform != executor.PlatformPhysical && platform != executor.PlatformK8s {
		failField(c, "platform", quote(body.Platform)+" is not physical or k8s")
		return
	}
	if _, err := s.executorFor(platform); err != nil {
		failField(c, "platform", string(platform)+" is not configured on this server")
		return
	}
	if platform == executor.PlatformK8s && (len(body.Nodes) > 0 || body.PackageURL != "" || body.SHA256 != "") {
		failField(c, "nodes", "platform k8s deploys workloads with an image, not nodes with a package")
		return
	}
	if platform == executor.PlatformPhysical && (len(body.Workloads) > 0 || body.Image != "" || body.Strategy != nil) {
		failField(c, "workloads", "platform physical deploys nodes with a package, not workloads with an image and a strategy")
		return
	}
	if !batchFits(c, body.BatchSize) {
		return
	}
	if !keyFits(c, body.IdempotencyKey) {
		return
	}
	id := "d-" + randomID()
	req := executor.DeployRequest{
		DeploymentID: id, Service: body.Service, Version: body.Version,
		Package: executor.Package{URL: body.PackageURL, SHA256: strings.ToLower(body.SHA256)}, Unit: body.Unit,
		Delivery: body.Delivery,
	}
	for _, h := range body.Nodes {
		req.Nodes = append(req.Nodes, executor.Node{Host: h})
	}
	req.Workloads, req.Image = body.Workloads, body.Image
	if body.Strategy != nil {
		req.Strategy = *body.Strategy
	}
	if h := body.Health; h != nil {
		req.Health = healthOf(h)
	}
	// Validate before anything is written: bad input leaves no trace.
	if err := req.Validate(); err != nil {
		s.failErr(c, err)
		return
	}
	d := &store.Deployment{ID: id, Kind: store.KindDeploy, Service: req.Service, Version: req.Version,
		Platform: platform, Request: req, RequestedBy: body.RequestedBy, IdempotencyKey: body.IdempotencyKey,
		State: executor.StatePending, CreatedAt: time.Now().UTC(), Batch: store.Batch{Size: body.BatchSize, StopOnFailure: body.StopOnFailure}}
	for _, h := range hostsOf(req) {
		d.Nodes = append(d.Nodes, store.DeploymentNode{Host: h, State: executor.StatePending, TargetVersion: req.Version})
	}
	s.claimRecordStart(c, d)
}

// scaleBody is POST /api/v1/scale.
type scaleBody struct {
	Service        string              `json:"service"`
	Workloads      []executor.Workload `json:"workloads"`
	Replicas       *int32              `json:"replicas"`
	IdempotencyKey string              `json:"idempotency_key"`
	RequestedBy    string              `json:"requested_by"`
}

// createScale starts a scale of Kubernetes workloads: recorded and run like a deployment (it holds the
// workloads, so it never runs beside a deploy to them), leaving their version as it is.
func (s *Server) createScale(c *gin.Context) {
	var body scaleBody
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	exec, err := s.executorFor(executor.PlatformK8s)
	if err != nil {
		failField(c, "platform", "k8s is not configured on this server (nodeexec serve --kubeconfig)")
		return
	}
	if _, ok := exec.(executor.Scaler); !ok {
		failField(c, "platform", "this server's k8s executor cannot scale")
		return
	}
	if body.Replicas == nil {
		failField(c, "replicas", "is required")
		return
	}
	for _, err := range []error{executor.ValidateReplicas(*body.Replicas), executor.ValidateService(body.Service), executor.ValidateWorkloads(body.Workloads)} {
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	if !keyFits(c, body.IdempotencyKey) {
		return
	}
	id := "d-" + randomID()
	d := &store.Deployment{ID: id, Kind: store.KindScale, Service: body.Service, Platform: executor.PlatformK8s, Replicas: body.Replicas,
		Request: executor.DeployRequest{DeploymentID: id, Service: body.Service, Workloads: body.Workloads}, RequestedBy: body.RequestedBy,
		IdempotencyKey: body.IdempotencyKey, State: executor.StatePending, CreatedAt: time.Now().UTC()}
	for _, w := range body.Workloads {
		d.Nodes = append(d.Nodes, store.DeploymentNode{Host: w.Host(), State: executor.StatePending})
	}
	s.claimRecordStart(c, d)
}

// describe says what a deployment does, in a line: "deploy of web v2 to 3 nodes".
func describe(d *store.Deployment) string {
	targets := fmt.Sprintf("%d nodes", len(d.Nodes))
	if d.Platform == executor.PlatformK8s {
		targets = fmt.Sprintf("%d workloads", len(d.Nodes))
	}
	if d.Kind == store.KindScale && d.Replicas != nil {
		return fmt.Sprintf("scale of %s to %d replicas on %s", d.Service, *d.Replicas, targets)
	}
	if d.Kind == store.KindRestart {
		return fmt.Sprintf("restart of %s on %s", d.Service, targets)
	}
	return fmt.Sprintf("%s of %s %s to %s", d.Kind, d.Service, d.Version, targets)
}

// keyFits answers 400 for an idempotency key too long to store.
func keyFits(c *gin.Context, key string) bool {
	if len(key) > maxLabelLength {
		failField(c, "idempotency_key", fmt.Sprintf("longer than %d characters", maxLabelLength))
		return false
	}
	return true
}

// maxBatchSize bounds the nodes of one ansible-playbook run (its forks).
const maxBatchSize = 500

// batchFits answers 400 for a batch_size that is not 0 (all nodes in one run) to maxBatchSize.
func batchFits(c *gin.Context, size int) bool {
	if size < 0 || size > maxBatchSize {
		failField(c, "batch_size", fmt.Sprintf("want 0 (all nodes in one run) to %d", maxBatchSize))
		return false
	}
	return true
}

// nodesFit answers 400 for more nodes than one ansible-playbook run takes.
func nodesFit(c *gin.Context, nodes []executor.Node) bool {
	if len(nodes) > maxBatchSize {
		failField(c, "nodes", fmt.Sprintf("at most %d at once", maxBatchSize))
		return false
	}
	return true
}

// A listing's page: this many records unless ?limit= asks for another number up to the most.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// maxLabelLength bounds the free text a deployment keeps and shows back: idempotency_key, requested_by.
const maxLabelLength = 200

// claimRecordStart claims the deployment's nodes, records it, and starts it: 202 with its id. A request
// that cannot have all its nodes records nothing (409 naming the holder); a retry with a known
// idempotency key answers with the deployment the key created, even while that one is being recorded.
func (s *Server) claimRecordStart(c *gin.Context, d *store.Deployment) {
	ctx := c.Request.Context()
	d.Token = c.GetString("token_name")
	if len(d.RequestedBy) > maxLabelLength {
		failField(c, "requested_by", fmt.Sprintf("longer than %d characters", maxLabelLength))
		return
	}
	if d.IdempotencyKey != "" {
		existing, err := s.ownKey(ctx, d)
		if err != nil {
			s.failErr(c, err)
			return
		}
		if existing != nil {
			c.JSON(http.StatusAccepted, gin.H{"id": existing.ID, "state": existing.State})
			return
		}
	}
	before, err := s.cfg.Store.ClaimAll(ctx, d)
	var unreleased *store.UnreleasedError
	if errors.As(err, &unreleased) {
		s.releaseLater(d.ID, unreleased.Claimed)
	}
	if err == nil && s.hooks.afterClaim != nil {
		s.hooks.afterClaim()
	}
	if err != nil {
		s.forgetKey(ctx, d)
		s.failErr(c, err)
		return
	}
	for host, prior := range before {
		d.Node(host).FromVersion = prior.CurrentVersion
		if d.Kind == store.KindRestart {
			d.Node(host).TargetVersion = prior.CurrentVersion // a restart keeps the version a node runs
		}
	}
	got, created, err := s.cfg.Store.CreateDeployment(ctx, d)
	if err != nil || !created {
		if relErr := s.cfg.Store.ReleaseAll(ctx, d.ID, before); relErr != nil {
			s.releaseLater(d.ID, before)
		}
		if err != nil {
			s.forgetKey(ctx, d)
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"id": got.ID, "state": got.State})
		return
	}
	rec := s.recorder(d.ID, 0)
	rec.emit(context.WithoutCancel(ctx), store.Event{Type: store.EventDeployment, State: executor.StatePending,
		Message: describe(d) + " accepted"})
	id, state := d.ID, d.State // d belongs to its runner from here on
	s.start(d, before, rec)
	c.JSON(http.StatusAccepted, gin.H{"id": id, "state": state})
}

// defaultKeyWait bounds how long a retry waits for the request that holds its idempotency key to record
// its deployment (claims and a record take milliseconds); defaultKeyOrphanAfter is when a key whose
// request never recorded one (nodeexec and its database failed in between) goes to the next retry.
const (
	defaultKeyWait        = 5 * time.Second
	defaultKeyOrphanAfter = time.Minute
)

// errKeyInFlight is a retry that came while the request holding its key has not recorded a deployment.
type errKeyInFlight struct{ owner string }

func (e *errKeyInFlight) Error() string {
	return "a request with this idempotency_key is still being recorded (as " + e.owner + "); retry in a moment"
}

// ownKey reserves d's idempotency key for d (nil), or returns the deployment of the request that holds
// it. A holder still being recorded is waited for, briefly; one that never recorded anything and
// reserved the key over a minute ago loses it to d.
func (s *Server) ownKey(ctx context.Context, d *store.Deployment) (*store.Deployment, error) {
	deadline := time.Now().Add(s.keyWait)
	announced := false
	for {
		owner, err := s.cfg.Store.ReserveKey(ctx, d.IdempotencyKey, d.ID, d.CreatedAt)
		if err != nil || owner == d.ID {
			return nil, err
		}
		existing, err := s.cfg.Store.Deployment(ctx, owner)
		if !errors.Is(err, store.ErrNotFound) {
			return existing, err
		}
		at, err := s.cfg.Store.KeyReservedAt(ctx, d.IdempotencyKey)
		if errors.Is(err, store.ErrNotFound) {
			continue // given back meanwhile: try again
		}
		if err != nil {
			return nil, err
		}
		if now := time.Now().UTC(); now.Sub(at) > s.keyOrphanAfter {
			got, err := s.cfg.Store.TakeOverKey(ctx, d.IdempotencyKey, owner, d.ID, now.Add(-s.keyOrphanAfter), d.CreatedAt)
			if err != nil || got == d.ID {
				return nil, err
			}
			continue
		}
		if time.Now().After(deadline) {
			return nil, &errKeyInFlight{owner: owner}
		}
		if !announced && s.hooks.keyWaiting != nil {
			announced = true
			s.hooks.keyWaiting()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forgetKey gives back the key of a request that recorded no deployment, so its retry can run; if the
// database does not answer now, once it does.
func (s *Server) forgetKey(ctx context.Context, d *store.Deployment) {
	if d.IdempotencyKey == "" {
		return
	}
	if err := s.cfg.Store.ForgetKey(context.WithoutCancel(ctx), d.IdempotencyKey, d.ID); err == nil {
		return
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		// Until the server stops; then the first retry a minute later takes the key over.
		for n := 1; storeBackoff.Wait(s.ctx, n) == nil; n++ {
			if err := s.cfg.Store.ForgetKey(s.ctx, d.IdempotencyKey, d.ID); err == nil {
				if s.hooks.keyForgotten != nil {
					s.hooks.keyForgotten(d.IdempotencyKey)
				}
				return
			}
		}
	}()
}

// rollbackDeployment starts a rollback of what a deployment changed: each node it switched goes back to
// the version it ran before. Nodes it did not change are left alone.
func (s *Server) rollbackDeployment(c *gin.Context) {
	var body struct {
		IdempotencyKey string `json:"idempotency_key"`
		RequestedBy    string `json:"requested_by"`
	}
	if !s.decodeStrict(c, &body, bodyOptional) {
		return
	}
	orig, err := s.cfg.Store.Deployment(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !orig.State.Terminal() {
		c.AbortWithStatusJSON(http.StatusConflict, apiError{Error: "deployment " + orig.ID + " is still running; cancel it or wait for it to end", Code: "not_finished"})
		return
	}
	if orig.Kind == store.KindScale {
		c.AbortWithStatusJSON(http.StatusConflict, apiError{Error: "deployment " + orig.ID + " is a scale, which changed no version: scale again to undo it", Code: "nothing_to_roll_back"})
		return
	}
	if orig.Kind == store.KindRestart {
		c.AbortWithStatusJSON(http.StatusConflict, apiError{Error: "deployment " + orig.ID + " is a restart, which changed no version: there is nothing to roll back", Code: "nothing_to_roll_back"})
		return
	}
	d := &store.Deployment{ID: "d-" + randomID(), Kind: store.KindRollback, RollbackOf: orig.ID, Service: orig.Service,
		Version: orig.Version, Platform: orig.Platform, RequestedBy: body.RequestedBy, IdempotencyKey: body.IdempotencyKey,
		State: executor.StatePending, CreatedAt: time.Now().UTC()}
	d.Request = executor.DeployRequest{DeploymentID: d.ID, Service: orig.Service, Health: orig.Request.Health}
	var hosts []string
	for _, n := range orig.Nodes {
		// On the deployment's version, and on another before it: the deployment switched this node. A
		// node it failed on was switched back in the same run (current is not the target); one with no
		// earlier version has nothing to go back to. A node an interrupted run left on the target, even
		// unverified, is rolled back too.
		if n.CurrentVersion == n.TargetVersion && n.FromVersion != "" && n.FromVersion != n.TargetVersion {
			d.Nodes = append(d.Nodes, store.DeploymentNode{Host: n.Host, State: executor.StatePending, TargetVersion: n.FromVersion})
			hosts = append(hosts, n.Host)
		}
	}
	back := subset(orig.Request, hosts)
	d.Request.Nodes, d.Request.Workloads = back.Nodes, back.Workloads
	if len(d.Nodes) == 0 {
		c.AbortWithStatusJSON(http.StatusConflict, apiError{Error: "deployment " + orig.ID + " changed no node that has an earlier version to go back to", Code: "nothing_to_roll_back"})
		return
	}
	s.claimRecordStart(c, d)
}

// cancelDeployment stops a deployment this process is running.
func (s *Server) cancelDeployment(c *gin.Context) {
	id := c.Param("id")
	x := s.runs.get(id)
	if x != nil {
		x.cancel(errCancelRequested)
	}
	d, err := s.cfg.Store.Deployment(c.Request.Context(), id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if x != nil {
		c.JSON(http.StatusAccepted, gin.H{"id": id, "state": d.State})
		return
	}
	if d.State.Terminal() {
		c.AbortWithStatusJSON(http.StatusConflict, apiError{Error: "deployment " + id + " already ended " + string(d.State), Code: "finished"})
		return
	}
	c.AbortWithStatusJSON(http.StatusConflict, apiError{Error: "deployment " + id + " is not run by this nodeexec (another replica, or one that stopped; it is reconciled at start)", Code: "not_running_here"})
}

func (s *Server) listDeployments(c *gin.Context) {
	f := store.DeploymentFilter{Service: c.Query("service"), State: executor.State(c.Query("state")), Cursor: c.Query("cursor")}
	if f.Service != "" {
		if err := executor.ValidateService(f.Service); err != nil {
			s.failErr(c, err)
			return
		}
	}
	if f.State != "" && !f.State.Valid() {
		failField(c, "state", quote(string(f.State))+" is not a state")
		return
	}
	var ok bool
	if f.Limit, ok = queryInt(c, "limit", defaultPageSize, 1, maxPageSize); !ok {
		return
	}
	page, next, err := s.cfg.Store.ListDeployments(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"deployments": page, "next_cursor": next})
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
	if _, _, workload := executor.SplitWorkloadHost(host); !workload {
		if err := executor.ValidateHost(host); err != nil {
			s.failErr(c, err)
			return
		}
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
