package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nodeexec/nodeexec/api"
)

// Info is what a deployment is: its status in the Plan Layer's words, its replicas (a Kubernetes
// workload's pods, or its physical nodes, each with its phase and readiness), and node by node what its
// record says (GET /internal/v1/deploy/info/{deployment_id}).
func (c *Client) Info(ctx context.Context, id string) (*api.Info, error) {
	return callFor[api.Info](ctx, c, http.MethodGet, "/internal/v1/deploy/info/"+escape(id), nil, retryable)
}

// Health is whether a deployment is healthy now, with a sentence saying why: the aggregate checks
// (pod_status, http_endpoint, resource_usage, and process on physical nodes) and the per-node checks
// they come from, looked at when asked (GET /internal/v1/deploy/health/{id}).
func (c *Client) Health(ctx context.Context, id string) (*api.Health, error) {
	return callFor[api.Health](ctx, c, http.MethodGet, "/internal/v1/deploy/health/"+escape(id), nil, retryable)
}

// LogsOptions pick a deployment's log lines: the newest Lines of them (0: the server's default, 100),
// PodName one node, workload or pod ("": every one), and Source the service's own log
// (api.LogSourceService, the default) or the deployment's events (api.LogSourceEvents).
type LogsOptions struct {
	Lines   int
	PodName string
	Source  string
}

// Logs are the newest lines of a deployment's log, one entry a line, oldest first (GET
// /internal/v1/deploy/logs/{deployment_id}).
func (c *Client) Logs(ctx context.Context, id string, o LogsOptions) (*api.Logs, error) {
	q := url.Values{}
	if o.Lines != 0 {
		q.Set("lines", strconv.Itoa(o.Lines))
	}
	if o.PodName != "" {
		q.Set("pod_name", o.PodName)
	}
	if o.Source != "" {
		q.Set("source", o.Source)
	}
	path := "/internal/v1/deploy/logs/" + escape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return callFor[api.Logs](ctx, c, http.MethodGet, path, nil, retryable)
}

// ServiceStatus reads a service's unit on physical nodes now (GET /api/v1/services/{service}/status).
func (c *Client) ServiceStatus(ctx context.Context, service string, hosts []string) (*api.ServiceStatuses, error) {
	path := "/api/v1/services/" + escape(service) + "/status?" + url.Values{"nodes": {strings.Join(hosts, ",")}}.Encode()
	return callFor[api.ServiceStatuses](ctx, c, http.MethodGet, path, nil, retryable)
}

// NodeService reads a service's unit on one physical node now (GET /api/v1/nodes/{service}/{host}/service).
func (c *Client) NodeService(ctx context.Context, service, host string) (*api.ServiceStatus, error) {
	return callFor[api.ServiceStatus](ctx, c, http.MethodGet, "/api/v1/nodes/"+escape(service)+"/"+escape(host)+"/service", nil, retryable)
}

// Commands is the server's allow-list of ad-hoc commands (GET /api/v1/adhoc; admin scope).
func (c *Client) Commands(ctx context.Context) (*api.CommandList, error) {
	return callFor[api.CommandList](ctx, c, http.MethodGet, "/api/v1/adhoc", nil, retryable)
}

// RunCommand runs one allow-listed command on nodes (POST /api/v1/adhoc; admin scope). It is sent once:
// a command is not known to be safe to run twice.
func (c *Client) RunCommand(ctx context.Context, req api.AdhocRequest) (*api.AdhocRun, error) {
	return callFor[api.AdhocRun](ctx, c, http.MethodPost, "/api/v1/adhoc", req, once)
}

// StartCleanup starts a cleanup pass now (POST /api/v1/cleanups): the pass as it starts. Another pass
// running is 409 cleanup_running.
func (c *Client) StartCleanup(ctx context.Context) (*api.Cleanup, error) {
	return callFor[api.Cleanup](ctx, c, http.MethodPost, "/api/v1/cleanups", nil, once)
}

// Cleanup is a cleanup pass as it stands (GET /api/v1/cleanups/{id}).
func (c *Client) Cleanup(ctx context.Context, id string) (*api.Cleanup, error) {
	return callFor[api.Cleanup](ctx, c, http.MethodGet, "/api/v1/cleanups/"+escape(id), nil, retryable)
}

// StartDrift starts a drift pass now over service's nodes ("": every service's) (POST /api/v1/drift):
// the pass as it starts. Another pass running is 409 drift_running.
func (c *Client) StartDrift(ctx context.Context, service string) (*api.DriftPass, error) {
	return callFor[api.DriftPass](ctx, c, http.MethodPost, "/api/v1/drift", api.DriftRequest{Service: service}, once)
}

// DriftPass is a drift pass as it stands (GET /api/v1/drift/{id}).
func (c *Client) DriftPass(ctx context.Context, id string) (*api.DriftPass, error) {
	return callFor[api.DriftPass](ctx, c, http.MethodGet, "/api/v1/drift/"+escape(id), nil, retryable)
}
