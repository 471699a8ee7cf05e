package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Kubernetes objects by manifest and by label, and the pods of a namespace. An apply or a delete runs
// in its request (the engine records it before the cluster is called and answers the ended record);
// pods are read live.

// createApply server-side-applies a manifest's objects (with dry_run: the API server's dry run): 201
// with the ended record, each object with its outcome; 200 with the record an idempotency key made.
func (s *Server) createApply(c *gin.Context) {
	var body api.ApplyRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	if _, ok := k8sAs[executor.ManifestApplier](s, c, "apply manifests"); !ok {
		return
	}
	if strings.TrimSpace(body.Manifest) == "" {
		failField(c, "manifest", "is required: the objects to apply, as multi-document YAML or JSON")
		return
	}
	service, ok := s.objectsService(c, body.Namespace, body.Service)
	if !ok {
		return
	}
	d := engine.Apply("d-"+randomID(), service, executor.ApplyRequest{Namespace: body.Namespace, Manifest: body.Manifest, DryRun: body.DryRun})
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	s.runObjects(c, d)
}

// createDelete deletes the objects a label selector picks in a namespace (with dry_run: names them and
// deletes nothing); answered as createApply.
func (s *Server) createDelete(c *gin.Context) {
	var body api.DeleteRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	if _, ok := k8sAs[executor.SelectorDeleter](s, c, "delete by selector"); !ok {
		return
	}
	service, ok := s.objectsService(c, body.Namespace, body.Service)
	if !ok {
		return
	}
	if err := executor.ValidateDeleteSelector(body.Selector); err != nil {
		s.failErr(c, err)
		return
	}
	d := engine.Delete("d-"+randomID(), service, executor.DeleteRequest{Namespace: body.Namespace, Selector: body.Selector, DryRun: body.DryRun})
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	s.runObjects(c, d)
}

// objectsService checks an apply's or a delete's namespace and the service that names its record (the
// namespace when none is given); false after answering 400.
func (s *Server) objectsService(c *gin.Context, namespace, service string) (string, bool) {
	if namespace == "" {
		failField(c, "namespace", "is required")
		return "", false
	}
	if service == "" {
		service = namespace
	}
	for _, err := range []error{executor.ValidateNamespace(namespace), executor.ValidateService(service)} {
		if err != nil {
			s.failErr(c, err)
			return "", false
		}
	}
	return service, true
}

// runObjects has the engine carry out an apply or a delete and answers its record.
func (s *Server) runObjects(c *gin.Context, d *store.Deployment) {
	d.Token = c.GetString("token_name")
	for _, err := range []error{executor.ValidateLabel("idempotency_key", d.IdempotencyKey), executor.ValidateLabel("requested_by", d.RequestedBy)} {
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	got, created, err := s.engine.RunObjects(c.Request.Context(), d)
	var cluster *engine.ClusterError
	switch {
	case errors.As(err, &cluster):
		s.cfg.Logger.WithError(err).WithField("kind", d.Kind).Warn("the cluster did not let an apply or a delete start")
		fail(c, http.StatusBadGateway, "run_failed", err.Error())
		return
	case err != nil:
		s.failErr(c, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	c.JSON(status, renderDeployment(*got))
}

// listPods shows the pods of a namespace that a label selector picks (all of them without one), read
// live, oldest first, at most api.MaxPods.
func (s *Server) listPods(c *gin.Context) {
	namespace, selector := c.Query("namespace"), c.Query("selector")
	if namespace == "" {
		failField(c, "namespace", "is required")
		return
	}
	for _, err := range []error{executor.ValidateNamespace(namespace), executor.ValidateSelector(selector)} {
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	lister, ok := k8sAs[executor.PodLister](s, c, "list pods")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), podsTimeout)
	defer cancel()
	pods, err := lister.Pods(ctx, namespace, selector)
	if err != nil {
		s.runFailed(c, "listing the pods", err)
		return
	}
	out := api.PodList{Namespace: namespace, Selector: selector, Pods: []api.PodStatus{}}
	if len(pods) > api.MaxPods {
		pods, out.Truncated = pods[:api.MaxPods], true
	}
	out.Pods = append(out.Pods, listOf(pods, renderPodStatus)...)
	c.JSON(http.StatusOK, out)
}

// k8sAs is this server's executor for Kubernetes as the operation's interface T; false after answering
// 400 naming what it cannot do (as physicalAs does for physical nodes).
func k8sAs[T any](s *Server, c *gin.Context, what string) (T, bool) {
	var none T
	exec, err := s.executorFor(executor.PlatformK8s)
	if err != nil {
		failField(c, "platform", "k8s is not configured on this server (nodeexec serve --kubeconfig)")
		return none, false
	}
	t, ok := exec.(T)
	if !ok {
		failField(c, "platform", "this server's k8s executor cannot "+what)
	}
	return t, ok
}
