package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/nodeexec/nodeexec/api"
)

// Apply server-side-applies a manifest's Kubernetes objects (POST /api/v1/apply) and answers the ended
// record: each object with its outcome, state failed when the API server refused one (those before it
// went in, those after it did not). A manifest that does not parse, or names a kind the cluster lacks,
// is a 400 on field manifest naming the document, and changes nothing. req.IdempotencyKey is set to a
// new key when empty, so a retry never applies twice: it answers the first record.
func (c *Client) Apply(ctx context.Context, req api.ApplyRequest) (*api.Deployment, error) {
	keyed(&req.IdempotencyKey)
	return callFor[api.Deployment](ctx, c, http.MethodPost, "/api/v1/apply", req, retryable)
}

// DeleteResources deletes the objects a label selector picks in a namespace (POST /api/v1/delete) and
// answers the ended record; with req.DryRun it names them and deletes nothing. A selector that picks
// everything is a 400 on field selector. req.IdempotencyKey is set to a new key when empty.
func (c *Client) DeleteResources(ctx context.Context, req api.DeleteRequest) (*api.Deployment, error) {
	keyed(&req.IdempotencyKey)
	return callFor[api.Deployment](ctx, c, http.MethodPost, "/api/v1/delete", req, retryable)
}

// PodStatus lists the pods of a namespace that selector picks ("": all), oldest first, read live from
// the cluster (GET /api/v1/pods); Truncated says the server cut the list at its bound.
func (c *Client) PodStatus(ctx context.Context, namespace, selector string) (*api.PodList, error) {
	q := url.Values{"namespace": {namespace}}
	if selector != "" {
		q.Set("selector", selector)
	}
	return callFor[api.PodList](ctx, c, http.MethodGet, "/api/v1/pods?"+q.Encode(), nil, retryable)
}

// Revisions reads a Kubernetes workload's rollout history, newest first (GET
// /api/v1/workloads/{namespace}/{kind}/{name}/revisions); w.Container, when set, names the container
// whose image each revision shows.
func (c *Client) Revisions(ctx context.Context, w api.Workload) (*api.RevisionList, error) {
	return callFor[api.RevisionList](ctx, c, http.MethodGet, workloadPath(w, "revisions"), nil, retryable)
}

// RollbackWorkload starts a rollback of a Kubernetes workload to one of its revisions (POST
// /api/v1/workloads/{namespace}/{kind}/{name}/rollback). req.IdempotencyKey is set to a new key when
// empty.
func (c *Client) RollbackWorkload(ctx context.Context, w api.Workload, req api.WorkloadRollbackRequest) (*api.Accepted, error) {
	keyed(&req.IdempotencyKey)
	return c.start(ctx, workloadPath(w, "rollback"), req)
}

// workloadPath is the path of one of w's routes, with its container as ?container= when set.
func workloadPath(w api.Workload, route string) string {
	p := "/api/v1/workloads/" + escape(w.Namespace) + "/" + escape(w.Kind) + "/" + escape(w.Name) + "/" + route
	if w.Container != "" {
		p += "?" + url.Values{"container": {w.Container}}.Encode()
	}
	return p
}
