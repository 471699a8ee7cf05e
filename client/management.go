package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nodeexec/nodeexec/api"
)

// Info is what a deployment is, node by node, with a Kubernetes workload's pods as they are now (GET
// /internal/v1/deploy/info/{deployment_id}).
func (c *Client) Info(ctx context.Context, id string) (*api.Info, error) {
	var out api.Info
	if err := c.call(ctx, http.MethodGet, "/internal/v1/deploy/info/"+escape(id), nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health is whether a deployment is healthy now: each node's record, its unit (physical nodes), its
// pods (Kubernetes) and its HTTP check, looked at when asked (GET /internal/v1/deploy/health/{id}).
func (c *Client) Health(ctx context.Context, id string) (*api.Health, error) {
	var out api.Health
	if err := c.call(ctx, http.MethodGet, "/internal/v1/deploy/health/"+escape(id), nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}

// LogsOptions pick a deployment's log lines: Lines newest per node or pod (0: the server's default,
// 100), and PodName one node or one pod ("" every one).
type LogsOptions struct {
	Lines   int
	PodName string
}

// Logs are each node's newest lines of a deployment, then each pod's (GET
// /internal/v1/deploy/logs/{deployment_id}).
func (c *Client) Logs(ctx context.Context, id string, o LogsOptions) (*api.Logs, error) {
	q := url.Values{}
	if o.Lines != 0 {
		q.Set("lines", strconv.Itoa(o.Lines))
	}
	if o.PodName != "" {
		q.Set("pod_name", o.PodName)
	}
	path := "/internal/v1/deploy/logs/" + escape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out api.Logs
	if err := c.call(ctx, http.MethodGet, path, nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}

// ServiceStatus reads a service's unit on physical nodes now (GET /api/v1/services/{service}/status).
func (c *Client) ServiceStatus(ctx context.Context, service string, hosts []string) (*api.ServiceStatuses, error) {
	path := "/api/v1/services/" + escape(service) + "/status?" + url.Values{"nodes": {strings.Join(hosts, ",")}}.Encode()
	var out api.ServiceStatuses
	if err := c.call(ctx, http.MethodGet, path, nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}

// NodeService reads a service's unit on one physical node now (GET /api/v1/nodes/{service}/{host}/service).
func (c *Client) NodeService(ctx context.Context, service, host string) (*api.ServiceStatus, error) {
	var out api.ServiceStatus
	if err := c.call(ctx, http.MethodGet, "/api/v1/nodes/"+escape(service)+"/"+escape(host)+"/service", nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}

// Commands is the server's allow-list of ad-hoc commands (GET /api/v1/adhoc; admin scope).
func (c *Client) Commands(ctx context.Context) (*api.CommandList, error) {
	var out api.CommandList
	if err := c.call(ctx, http.MethodGet, "/api/v1/adhoc", nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}

// RunCommand runs one allow-listed command on nodes (POST /api/v1/adhoc; admin scope). It is sent once:
// a command is not known to be safe to run twice.
func (c *Client) RunCommand(ctx context.Context, req api.AdhocRequest) (*api.AdhocRun, error) {
	var out api.AdhocRun
	if err := c.call(ctx, http.MethodPost, "/api/v1/adhoc", req, &out, once); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartCleanup starts a cleanup pass now (POST /api/v1/cleanups): the pass as it starts. Another pass
// running is 409 cleanup_running.
func (c *Client) StartCleanup(ctx context.Context) (*api.Cleanup, error) {
	var out api.Cleanup
	if err := c.call(ctx, http.MethodPost, "/api/v1/cleanups", nil, &out, once); err != nil {
		return nil, err
	}
	return &out, nil
}

// Cleanup is a cleanup pass as it stands (GET /api/v1/cleanups/{id}).
func (c *Client) Cleanup(ctx context.Context, id string) (*api.Cleanup, error) {
	var out api.Cleanup
	if err := c.call(ctx, http.MethodGet, "/api/v1/cleanups/"+escape(id), nil, &out, retryable); err != nil {
		return nil, err
	}
	return &out, nil
}
