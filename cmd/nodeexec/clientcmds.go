package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// clientOpts are the flags every API command shares.
type clientOpts struct {
	server    string
	tokenFile string
	asJSON    bool
	out       io.Writer
}

func clientFlags(name string, o *clientOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("nodeexec "+name, flag.ContinueOnError)
	fs.StringVar(&o.server, "server", envOr("NODEEXEC_SERVER", "http://127.0.0.1:8080"), "nodeexec server URL")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the API token (default: $NODEEXEC_TOKEN)")
	fs.BoolVar(&o.asJSON, "json", false, "print JSON (events as NDJSON while following)")
	o.out = os.Stdout
	return fs
}

// parseArgs parses flags that may come before or after the positional arguments (`status d-1 --watch`)
// and returns the positional ones; want is how many there must be.
func parseArgs(fs *flag.FlagSet, args []string, want int, what string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != want {
		if want == 0 {
			fmt.Fprintf(os.Stderr, "%s: unexpected arguments %q\n", fs.Name(), pos)
		} else {
			fmt.Fprintf(os.Stderr, "%s: want %s\n", fs.Name(), what)
		}
		return nil, errUsage
	}
	return pos, nil
}

func (o *clientOpts) client() (*apiClient, error) { return newAPIClient(o.server, o.tokenFile) }

// deployCmd asks the server for a deployment and follows it to its end: nodes with a package, or
// Kubernetes workloads with an image.
func deployCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("deploy", &o)
	var req executor.DeployRequest
	nodes := fs.String("nodes", "", "comma-separated hosts (DNS names or IPs)")
	fs.StringVar(&req.Service, "service", "", "service name (also the systemd unit name)")
	fs.StringVar(&req.Version, "version", "", "version to deploy")
	fs.StringVar(&req.Package.URL, "package-url", "", "http(s) URL of the release tarball")
	fs.StringVar(&req.Package.SHA256, "sha256", "", "SHA256 of the tarball (64 hex characters)")
	deliveryFlag(fs, &req.Delivery)
	fs.StringVar(&req.Unit.Args, "exec-args", "", "arguments for the service's binary in the default unit")
	fs.StringVar(&req.Unit.Exec, "exec", "", "binary inside the release (default bin/<service>)")
	healthFlags(fs, &req.Health)
	workloads := fs.String("workloads", "", "Kubernetes: comma-separated namespace/Kind/name[:container] (Kind Deployment or StatefulSet), instead of --nodes")
	fs.StringVar(&req.Image, "image", "", "Kubernetes: the image the workloads' container gets")
	strategyFlags(fs, &req.Strategy)
	key := fs.String("idempotency-key", "", "the same key again returns the same deployment instead of a second run")
	by := fs.String("requested-by", envOr("USER", ""), "who asks (recorded with the deployment)")
	detach := fs.Bool("detach", false, "print the deployment id and return; do not follow it")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	for _, h := range strings.Split(*nodes, ",") {
		if h = strings.TrimSpace(h); h != "" {
			req.Nodes = append(req.Nodes, executor.Node{Host: h})
		}
	}
	var err error
	if req.Workloads, err = parseWorkloads(*workloads); err != nil {
		return false, err
	}
	// The same checks the server makes, before anything is sent.
	if err := req.Validate(); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	body := api.DeployRequest{Service: req.Service, Version: req.Version, IdempotencyKey: *key, RequestedBy: *by}
	if len(req.Workloads) > 0 {
		body.Platform, body.Workloads, body.Image = api.PlatformK8s, wireWorkloads(req.Workloads), req.Image
		if req.Strategy != (executor.Strategy{}) {
			strategy := api.Strategy(req.Strategy)
			body.Strategy = &strategy
		}
		return o.start(ctx, c, "/api/v1/deployments", body, *detach, api.StateSuccess)
	}
	body.Nodes, body.PackageURL, body.SHA256 = hostsOf(req.Nodes), req.Package.URL, req.Package.SHA256
	body.Delivery = api.Delivery(req.Delivery)
	body.Unit = api.Unit{Exec: req.Unit.Exec, Args: req.Unit.Args}
	body.Health = wireHealth(req.Health)
	return o.start(ctx, c, "/api/v1/deployments", body, *detach, api.StateSuccess)
}

// wireWorkloads are workloads as the API takes them.
func wireWorkloads(ws []executor.Workload) []api.Workload {
	out := make([]api.Workload, len(ws))
	for i, w := range ws {
		out[i] = api.Workload(w)
	}
	return out
}

// strategyFlags are how Kubernetes workloads move to a new image.
func strategyFlags(fs *flag.FlagSet, s *executor.Strategy) {
	fs.StringVar(&s.Type, "strategy", "", "Kubernetes: rolling (default) or blue-green")
	fs.StringVar(&s.MaxSurge, "max-surge", "", "rolling: extra pods during the rollout, a count or a percentage (\"25%\")")
	fs.StringVar(&s.MaxUnavailable, "max-unavailable", "", "rolling: pods that may be unavailable during the rollout")
	fs.Func("min-ready-seconds", "rolling: seconds a new pod must be ready before it counts as available", int32Flag(&s.MinReadySeconds))
	fs.Func("progress-deadline-seconds", "rolling: seconds without progress before the rollout fails and is rolled back", int32Flag(&s.ProgressDeadlineSeconds))
	fs.StringVar(&s.Service, "switch-service", "", "blue-green: the Service whose selector switches (default: the workload's name)")
	fs.Func("verify-seconds", "blue-green: seconds the new color must hold steady before the switch (default 10)", func(v string) error {
		var n *int32
		if err := int32Flag(&n)(v); err != nil {
			return err
		}
		s.VerifySeconds = *n
		return nil
	})
}

// int32Flag parses a flag into an optional int32.
func int32Flag(dst **int32) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return fmt.Errorf("want a whole number, not %q", v)
		}
		n32 := int32(n)
		*dst = &n32
		return nil
	}
}

// parseWorkloads reads "namespace/Kind/name[:container]" items, comma-separated.
func parseWorkloads(s string) ([]executor.Workload, error) {
	var out []executor.Workload
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		ref, container, _ := strings.Cut(item, ":")
		parts := strings.Split(ref, "/")
		if len(parts) != 3 {
			return nil, &executor.ValidationError{Field: "workloads", Reason: fmt.Sprintf("%q is not namespace/Kind/name[:container] (e.g. prod/Deployment/web:app)", item)}
		}
		out = append(out, executor.Workload{Namespace: parts[0], Kind: parts[1], Name: parts[2], Container: container})
	}
	return out, nil
}

// scaleCmd asks the server to scale Kubernetes workloads and follows it to its end.
func scaleCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("scale", &o)
	service := fs.String("service", "", "the service the workloads belong to")
	workloads := fs.String("workloads", "", "comma-separated namespace/Kind/name (Kind Deployment or StatefulSet)")
	replicas := fs.Int("replicas", -1, fmt.Sprintf("pods each workload should have (0 to %d)", executor.MaxReplicas))
	key := fs.String("idempotency-key", "", "the same key again returns the same scale instead of a second run")
	detach := fs.Bool("detach", false, "print the scale's id and return; do not follow it")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	ws, err := parseWorkloads(*workloads)
	if err != nil {
		return false, err
	}
	for _, err := range []error{executor.ValidateService(*service), executor.ValidateWorkloads(ws)} {
		if err != nil {
			return false, err
		}
	}
	if *replicas < 0 || *replicas > executor.MaxReplicas {
		return false, &executor.ValidationError{Field: "replicas", Reason: fmt.Sprintf("give --replicas from 0 to %d", executor.MaxReplicas)}
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	n := int32(*replicas)
	body := api.ScaleRequest{Service: *service, Workloads: wireWorkloads(ws), Replicas: &n, IdempotencyKey: *key, RequestedBy: envOr("USER", "")}
	return o.start(ctx, c, "/api/v1/scale", body, *detach, api.StateSuccess)
}

func hostsOf(nodes []executor.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Host
	}
	return out
}

// rollbackCmd rolls back what a deployment changed, and follows the rollback.
func rollbackCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("rollback", &o)
	key := fs.String("idempotency-key", "", "the same key again returns the same rollback")
	detach := fs.Bool("detach", false, "print the rollback's id and return; do not follow it")
	pos, err := parseArgs(fs, args, 1, "one deployment id: nodeexec rollback <deployment-id>")
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	body := api.RollbackRequest{IdempotencyKey: *key, RequestedBy: envOr("USER", "")}
	return o.start(ctx, c, "/api/v1/deployments/"+url.PathEscape(pos[0])+"/rollback", body, *detach, api.StateRolledBack)
}

// start posts a deployment (or rollback) and, unless detached, follows it; ok means it reached want.
func (o *clientOpts) start(ctx context.Context, c *apiClient, path string, body any, detach bool, want api.State) (bool, error) {
	var accepted api.Accepted
	if err := c.call(ctx, http.MethodPost, path, body, &accepted); err != nil {
		return false, err
	}
	if detach {
		if o.asJSON {
			return true, json.NewEncoder(o.out).Encode(accepted)
		}
		fmt.Fprintln(o.out, accepted.ID)
		return true, nil
	}
	if !o.asJSON {
		fmt.Fprintf(os.Stderr, "deployment %s accepted; following it (Ctrl-C stops following, not the deployment)\n", accepted.ID)
	}
	d, err := o.watch(ctx, c, accepted.ID)
	if err != nil {
		return false, err
	}
	return d.State == want, nil
}

// watch follows a deployment live and prints its final state.
func (o *clientOpts) watch(ctx context.Context, c *apiClient, id string) (*api.Deployment, error) {
	var d api.Deployment
	if err := c.call(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id), nil, &d); err != nil {
		return nil, err
	}
	v := newView(o.out, o.asJSON, &d)
	final, err := c.follow(ctx, id, v.event)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "\nstopped following; deployment %s goes on. Follow it: nodeexec status %s --watch; cancel it: nodeexec cancel %s\n", id, id, id)
			return nil, errors.New("interrupted")
		}
		return nil, err
	}
	return final, o.printDeployment(final)
}

func (o *clientOpts) printDeployment(d *api.Deployment) error {
	if o.asJSON {
		enc := json.NewEncoder(o.out)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(o.out, "\n%s %s of %s: %s", d.ID, d.Kind, strings.TrimSpace(d.Service+" "+d.Version), d.State)
	if d.Error != "" {
		fmt.Fprintf(o.out, " (%s)", d.Error)
	}
	fmt.Fprintln(o.out)
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tFROM\tCURRENT\tPREVIOUS\tCHANGED\tERROR")
	for _, n := range d.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", n.Host, n.State, dash(n.FromVersion), dash(n.CurrentVersion), dash(n.PrevVersion), n.Changed, n.LastError)
	}
	return tw.Flush()
}

// statusCmd shows a deployment; --watch follows it to its end.
func statusCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("status", &o)
	watch := fs.Bool("watch", false, "follow the deployment live until it ends")
	pos, err := parseArgs(fs, args, 1, "one deployment id: nodeexec status <deployment-id>")
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	var d *api.Deployment
	if *watch {
		if d, err = o.watch(ctx, c, pos[0]); err != nil {
			return false, err
		}
	} else {
		d = &api.Deployment{}
		if err := c.call(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(pos[0]), nil, d); err != nil {
			return false, err
		}
		if err := o.printDeployment(d); err != nil {
			return false, err
		}
	}
	return d.State != api.StateFailed, nil
}

func cancelCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("cancel", &o)
	pos, err := parseArgs(fs, args, 1, "one deployment id: nodeexec cancel <deployment-id>")
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	var out api.Accepted
	if err := c.call(ctx, http.MethodPost, "/api/v1/deployments/"+url.PathEscape(pos[0])+"/cancel", nil, &out); err != nil {
		return false, err
	}
	if o.asJSON {
		return true, json.NewEncoder(o.out).Encode(out)
	}
	fmt.Fprintf(o.out, "cancelling %s; follow it: nodeexec status %s --watch\n", pos[0], pos[0])
	return true, nil
}

func listCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("list", &o)
	q := url.Values{}
	service := fs.String("service", "", "only this service")
	state := fs.String("state", "", "only deployments in this state")
	limit := fs.Int("limit", 20, "how many (1-200)")
	cursor := fs.String("cursor", "", "the next page, as a previous list printed")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	for k, v := range map[string]string{"service": *service, "state": *state, "cursor": *cursor, "limit": strconv.Itoa(*limit)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	var page api.DeploymentList
	if err := c.call(ctx, http.MethodGet, "/api/v1/deployments?"+q.Encode(), nil, &page); err != nil {
		return false, err
	}
	if o.asJSON {
		return true, json.NewEncoder(o.out).Encode(page)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSERVICE\tVERSION\tSTATE\tNODES\tCREATED")
	for _, d := range page.Deployments {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Kind, d.Service, d.Version, d.State, len(d.Nodes), d.CreatedAt.Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
	if page.NextCursor != "" {
		fmt.Fprintf(o.out, "more: nodeexec list --cursor %s\n", page.NextCursor)
	}
	return true, nil
}

func nodesCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("nodes", &o)
	service := fs.String("service", "", "the service whose nodes to show")
	host := fs.String("host", "", "only this node")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if err := executor.ValidateService(*service); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	var nodes []api.Node
	if *host != "" {
		if err := executor.ValidateHost(*host); err != nil {
			return false, err
		}
		var n api.Node
		if err := c.call(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(*service)+"/"+url.PathEscape(*host), nil, &n); err != nil {
			return false, err
		}
		nodes = append(nodes, n)
	} else {
		var list api.NodeList
		if err := c.call(ctx, http.MethodGet, "/api/v1/nodes?service="+url.QueryEscape(*service), nil, &list); err != nil {
			return false, err
		}
		nodes = list.Nodes
	}
	if o.asJSON {
		return true, json.NewEncoder(o.out).Encode(nodes)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tCURRENT\tPREVIOUS\tDEPLOYMENT\tUPDATED\tERROR")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Host, n.State, dash(n.CurrentVersion), dash(n.PrevVersion), dash(n.DeploymentID), n.UpdatedAt.Format("2006-01-02 15:04:05"), n.LastError)
	}
	return true, tw.Flush()
}

func logsCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("logs", &o)
	lines := fs.Int("lines", 100, "newest lines per node")
	node := fs.String("node", "", "only this node")
	pos, err := parseArgs(fs, args, 1, "one deployment id: nodeexec logs <deployment-id>")
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	q := url.Values{"lines": {strconv.Itoa(*lines)}}
	if *node != "" {
		q.Set("pod_name", *node)
	}
	var out api.Logs
	if err := c.call(ctx, http.MethodGet, "/internal/v1/deploy/logs/"+url.PathEscape(pos[0])+"?"+q.Encode(), nil, &out); err != nil {
		return false, err
	}
	if o.asJSON {
		// logs --json prints each log's name and lines, as it always has.
		type nameLines struct {
			Name  string   `json:"name"`
			Lines []string `json:"lines"`
		}
		var printed struct {
			Logs []nameLines `json:"logs"`
		}
		if out.Logs != nil {
			printed.Logs = make([]nameLines, 0, len(out.Logs))
		}
		for _, l := range out.Logs {
			printed.Logs = append(printed.Logs, nameLines{Name: l.Name, Lines: l.Lines})
		}
		return true, json.NewEncoder(o.out).Encode(printed)
	}
	for _, l := range out.Logs {
		fmt.Fprintf(o.out, "== %s\n", l.Name)
		for _, line := range l.Lines {
			fmt.Fprintln(o.out, line)
		}
	}
	return true, nil
}
