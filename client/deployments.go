package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/nodeexec/nodeexec/api"
)

// Deploy starts a deployment (POST /api/v1/deployments): nodes with a package, or Kubernetes workloads
// with an image. The answer is its id and first state; Wait follows it to its end. req.IdempotencyKey
// is set to a new key when empty, so the request is retried safely: sent twice, it still starts one
// deployment. A node held by another deployment is a 409 node_busy (Holder names the holder).
func (c *Client) Deploy(ctx context.Context, req api.DeployRequest) (*api.Accepted, error) {
	keyed(&req.IdempotencyKey)
	return c.start(ctx, "/api/v1/deployments", req)
}

// DryRun asks what a deploy would do to each node, from the node's own record read now (POST
// /api/v1/deployments?dry_run=true): which would change from which version, which are left alone,
// which are held and by whom, which cannot be reached. Nothing is claimed, recorded or changed.
func (c *Client) DryRun(ctx context.Context, req api.DeployRequest) (*api.DryRun, error) {
	return callFor[api.DryRun](ctx, c, http.MethodPost, "/api/v1/deployments?dry_run=true", req, retryable)
}

// Rollback starts the rollback of what a finished deployment changed (POST
// /api/v1/deployments/{id}/rollback): each node it switched goes back to the version it ran before. A
// deployment still running is 409 not_finished; one that changed nothing, 409 nothing_to_roll_back.
// req.IdempotencyKey is set to a new key when empty.
func (c *Client) Rollback(ctx context.Context, id string, req api.RollbackRequest) (*api.Accepted, error) {
	keyed(&req.IdempotencyKey)
	return c.start(ctx, "/api/v1/deployments/"+escape(id)+"/rollback", req)
}

// Scale starts a scale of Kubernetes workloads (POST /api/v1/scale). req.IdempotencyKey is set to a
// new key when empty.
func (c *Client) Scale(ctx context.Context, req api.ScaleRequest) (*api.Accepted, error) {
	keyed(&req.IdempotencyKey)
	return c.start(ctx, "/api/v1/scale", req)
}

// Restart starts a restart of a service on physical nodes (POST /api/v1/restart). req.IdempotencyKey is
// set to a new key when empty.
func (c *Client) Restart(ctx context.Context, req api.RestartRequest) (*api.Accepted, error) {
	keyed(&req.IdempotencyKey)
	return c.start(ctx, "/api/v1/restart", req)
}

func (c *Client) start(ctx context.Context, path string, body any) (*api.Accepted, error) {
	return callFor[api.Accepted](ctx, c, http.MethodPost, path, body, retryable)
}

// Cancel stops a running deployment (POST /api/v1/deployments/{id}/cancel); Wait sees how it ends. One
// that already ended is 409 finished; one another replica runs, 409 not_running_here.
func (c *Client) Cancel(ctx context.Context, id string) (*api.Accepted, error) {
	return callFor[api.Accepted](ctx, c, http.MethodPost, "/api/v1/deployments/"+escape(id)+"/cancel", nil, once)
}

// Get is a deployment as it stands (GET /api/v1/deployments/{id}).
func (c *Client) Get(ctx context.Context, id string) (*api.Deployment, error) {
	return callFor[api.Deployment](ctx, c, http.MethodGet, "/api/v1/deployments/"+escape(id), nil, retryable)
}

// ListOptions filter a page of deployments; zero values are left out (Limit 0: the server's default).
type ListOptions struct {
	Service string
	// Node lists only the deployments that had this node (GET /api/v1/deployments?node=).
	Node  string
	State api.State
	// Drifted lists only the nodes the last drift pass found differing from their record.
	Drifted bool
	Limit   int
	Cursor  string // NextCursor of the previous page
}

// List is a page of deployments, newest first (GET /api/v1/deployments).
func (c *Client) List(ctx context.Context, o ListOptions) (*api.DeploymentList, error) {
	q := pageQuery(map[string]string{"service": o.Service, "node": o.Node, "state": string(o.State), "cursor": o.Cursor}, o.Limit)
	return callFor[api.DeploymentList](ctx, c, http.MethodGet, "/api/v1/deployments?"+q.Encode(), nil, retryable)
}

// pageQuery is a listing's query: the filters that are set, and the page size unless 0 (the server's).
func pageQuery(filters map[string]string, limit int) url.Values {
	q := url.Values{}
	for k, v := range filters {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// Node is one node's record (GET /api/v1/nodes/{service}/{host}); a Kubernetes workload's host is
// "namespace/name".
func (c *Client) Node(ctx context.Context, service, host string) (*api.Node, error) {
	return callFor[api.Node](ctx, c, http.MethodGet, "/api/v1/nodes/"+escape(service)+"/"+escape(host), nil, retryable)
}

// Nodes are a service's node records, every page of them (GET /api/v1/nodes?service=).
func (c *Client) Nodes(ctx context.Context, service string) ([]api.Node, error) {
	return c.AllNodes(ctx, NodeListOptions{Service: service})
}

// AllNodes are the node records o picks, every page of them from o.Cursor on.
func (c *Client) AllNodes(ctx context.Context, o NodeListOptions) ([]api.Node, error) {
	var out []api.Node
	for {
		page, err := c.ListNodes(ctx, o)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Nodes...)
		if page.NextCursor == "" {
			return out, nil
		}
		o.Cursor = page.NextCursor
	}
}

// NodeListOptions filter a page of node records; zero values are left out (Limit 0: the server's
// default).
type NodeListOptions struct {
	Service string
	Version string
	State   api.State
	// Drifted lists only the nodes the last drift pass found differing from their record.
	Drifted bool
	Limit   int
	Cursor  string // NextCursor of the previous page
}

// ListNodes is a page of node records, every service's or one's, in key order (GET /api/v1/nodes).
func (c *Client) ListNodes(ctx context.Context, o NodeListOptions) (*api.NodeList, error) {
	q := pageQuery(map[string]string{"service": o.Service, "version": o.Version, "state": string(o.State), "cursor": o.Cursor}, o.Limit)
	if o.Drifted {
		q.Set("drifted", "true")
	}
	return callFor[api.NodeList](ctx, c, http.MethodGet, "/api/v1/nodes?"+q.Encode(), nil, retryable)
}

// Services summarizes every service nodeexec has a node of (GET /api/v1/services).
func (c *Client) Services(ctx context.Context) ([]api.ServiceSummary, error) {
	out, err := callFor[api.ServiceList](ctx, c, http.MethodGet, "/api/v1/services", nil, retryable)
	if err != nil {
		return nil, err
	}
	return out.Services, nil
}

// Forget removes a node's record (DELETE /api/v1/nodes/{service}/{host}) and returns the record of who
// forgot it; a node a deployment or a pass holds is a *Error with code node_busy naming the holder.
func (c *Client) Forget(ctx context.Context, service, host, requestedBy string) (*api.Deployment, error) {
	path := "/api/v1/nodes/" + escape(service) + "/" + escape(host)
	if requestedBy != "" {
		path += "?" + url.Values{"requested_by": {requestedBy}}.Encode()
	}
	return callFor[api.Deployment](ctx, c, http.MethodDelete, path, nil, once)
}

// Version is the server's build (GET /api/v1/version).
func (c *Client) Version(ctx context.Context) (*api.BuildInfo, error) {
	return callFor[api.BuildInfo](ctx, c, http.MethodGet, "/api/v1/version", nil, retryable)
}
