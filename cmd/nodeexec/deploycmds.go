package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// The commands that start an operation on the server: deploy (nodes or Kubernetes workloads), scale,
// rollback. Each follows what it started (clientOpts.start) unless --detach.

// deployCmd asks the server for a deployment and follows it to its end: nodes with a package, or
// Kubernetes workloads with an image. Every field of the API's request has a flag; --from-file reads the
// request itself, and flags given beside it override its fields.
func deployCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("deploy", &o)
	var req executor.DeployRequest
	var extra deployExtras
	nodes := fs.String("nodes", "", "comma-separated hosts (DNS names or IPs)")
	fs.StringVar(&req.Service, "service", "", "service name (also the systemd unit name)")
	fs.StringVar(&req.Version, "version", "", "version to deploy")
	fs.StringVar(&req.Package.URL, "package-url", "", "http(s) URL of the release tarball")
	fs.StringVar(&req.Package.SHA256, "sha256", "", "SHA256 of the tarball (64 hex characters)")
	deliveryFlag(fs, &req.Delivery)
	fs.StringVar(&req.Unit.Args, "exec-args", "", "arguments for the service's binary in the default unit")
	fs.StringVar(&req.Unit.Exec, "exec", "", "binary inside the release (default bin/<service>)")
	req.Unit.Env = map[string]string{}
	fs.Func("unit-env", "NAME=VALUE in the default unit's environment (the request's unit.env); repeat for more", keyValue(req.Unit.Env))
	healthFlags(fs, &req.Health)
	fs.Func("stable-seconds", "same as --health-stable, in seconds (the request's health.stable_seconds)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a number of seconds, not %q", v)
		}
		req.Health.Stable = time.Duration(n) * time.Second
		return nil
	})
	fs.IntVar(&extra.batchSize, "batch-size", 0, "physical: deploy this many nodes at a time, one run each (default: all in one run)")
	fs.BoolVar(&extra.stopOnFailure, "stop-on-failure", false, "start no batch after one in which a node failed")
	fs.IntVar(&extra.maxUnavailable, "max-unavailable-nodes", 0, "physical: at most this many of the service's nodes out of service at once, "+
		"across its deployments in flight (the request's max_unavailable; 0: no bound)")
	workloads := fs.String("workloads", "", "Kubernetes: comma-separated namespace/Kind/name[:container] (Kind Deployment or StatefulSet), instead of --nodes")
	fs.StringVar(&req.Image, "image", "", "Kubernetes: the image the workloads' container gets")
	strategyFlags(fs, &req.Strategy)
	fs.StringVar(&extra.key, "idempotency-key", "", "the same key again returns the same deployment instead of a second run")
	fs.StringVar(&extra.by, "requested-by", envOr("USER", ""), "who asks (recorded with the deployment)")
	detach := fs.Bool("detach", false, "print the deployment id and return; do not follow it")
	dryRun := fs.Bool("dry-run", false, "read each node now and print what the deploy would do to it (change from which version, "+
		"left alone, held and by whom, unreachable); change nothing")
	extra.env, extra.config = map[string]string{}, map[string]string{}
	fs.Func("env", "NAME=VALUE the service gets in its environment (the unit's, or the container's); repeat for more", keyValue(extra.env))
	fs.Func("config", "NAME=VALUE of the service's configuration, given to it as --env is; repeat for more", keyValue(extra.config))
	appsFile := fs.String("applications", "", "a JSON file (- for stdin) with a list of applications to deploy as one deployment, each "+
		`{"service","version","nodes","package_url","sha256","health","unit","environment","config"} or with "workloads" and "image"; `+
		"instead of --service, --version, their targets and package")
	fromFile := fs.String("from-file", "", "a JSON file (- for stdin) holding the whole deploy request as POST /api/v1/deployments takes it "+
		"(docs/api.md); flags given beside it override its fields; the server checks it")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if *appsFile != "" && *fromFile != "" {
		return false, &executor.ValidationError{Field: "--from-file", Reason: "give the applications in the file's \"applications\", or --applications, not both"}
	}
	if *appsFile != "" && *dryRun {
		return false, &executor.ValidationError{Field: "--dry-run", Reason: "a dry run reads one service's nodes: run it for each application"}
	}
	if *appsFile != "" {
		shared := api.DeployRequest{IdempotencyKey: extra.key, RequestedBy: extra.by, Delivery: api.Delivery(req.Delivery),
			BatchSize: extra.batchSize, StopOnFailure: extra.stopOnFailure, MaxUnavailable: extra.maxUnavailable}
		if req.Strategy != (executor.Strategy{}) {
			strategy := api.Strategy(req.Strategy)
			shared.Strategy = &strategy
		}
		return deployApplications(ctx, o, fs, *appsFile, shared, *detach)
	}
	req.Nodes = splitNodes(*nodes)
	var err error
	if req.Workloads, err = parseWorkloads(*workloads); err != nil {
		return false, err
	}
	body := deployBody(req, extra)
	if *fromFile != "" {
		if body, err = overlayDeployFile(*fromFile, req, extra, fs); err != nil {
			return false, err
		}
	} else {
		// The same checks the server makes, before anything is sent.
		if err := req.Validate(); err != nil {
			return false, err
		}
		if err := validLabels(extra.key, extra.by); err != nil {
			return false, err
		}
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	if *dryRun {
		plan, err := c.DryRun(ctx, body)
		if err != nil {
			return false, err
		}
		return true, o.printDryRun(plan)
	}
	return o.start(ctx, c, func() (*api.Accepted, error) { return c.Deploy(ctx, body) }, *detach, api.StateSuccess)
}

// printDryRun shows what a deploy would do, a node a line.
func (o *clientOpts) printDryRun(p *api.DryRun) error {
	if o.json() { // as the API answers
		return writeJSON(o.out, p)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "dry run: %s %s (%s), nothing changed\n", p.Service, p.Version, p.Platform)
	fmt.Fprintln(tw, "NODE\tACTION\tFROM\tTO\tRECORDED\tDETAIL")
	for _, n := range p.Nodes {
		detail := n.Error
		if n.HeldBy != "" {
			detail = "held by " + n.HeldBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Host, n.Action, dash(n.From), n.To, dash(n.Recorded), detail)
	}
	return tw.Flush()
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
	return o.start(ctx, c, func() (*api.Accepted, error) { return c.Scale(ctx, body) }, *detach, api.StateSuccess)
}

// rollbackCmd rolls back what a deployment changed, and follows the rollback.
func rollbackCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("rollback", &o)
	key := fs.String("idempotency-key", "", "the same key again returns the same rollback")
	detach := fs.Bool("detach", false, "print the rollback's id and return; do not follow it")
	to := fs.String("to", "", "a deployment id: each node goes back to the version that deployment left it on (nodes already on it are left alone), not to what it ran before")
	workload := fs.String("workload", "", "instead of a deployment id, a Kubernetes workload namespace/Kind/name[:container] to take back to --to-revision")
	toRevision := fs.Int64("to-revision", 0, "with --workload: the revision to go back to (see nodeexec history)")
	service := fs.String("service", "", "with --workload: the service the workload belongs to")
	want, what := 1, "one deployment id: nodeexec rollback <deployment-id> [--to <target-deployment-id>]"
	if flagGiven(args, "workload") {
		want, what = 0, ""
	}
	pos, err := parseArgs(fs, args, want, what)
	if err != nil {
		return false, err
	}
	if err := validLabels(*key, ""); err != nil {
		return false, err
	}
	if *workload != "" {
		return rollbackWorkload(ctx, &o, *workload, api.WorkloadRollbackRequest{Service: *service, ToRevision: *toRevision, IdempotencyKey: *key, RequestedBy: envOr("USER", "")}, *detach)
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	body := api.RollbackRequest{IdempotencyKey: *key, RequestedBy: envOr("USER", ""), TargetDeploymentID: *to}
	return o.start(ctx, c, func() (*api.Accepted, error) { return c.Rollback(ctx, pos[0], body) }, *detach, api.StateRolledBack)
}

// rollbackWorkload asks the server to take one workload back to a revision and follows it to its end.
func rollbackWorkload(ctx context.Context, o *clientOpts, ref string, body api.WorkloadRollbackRequest, detach bool) (bool, error) {
	w, err := oneWorkload(ref)
	if err != nil {
		return false, err
	}
	if body.ToRevision < 1 {
		return false, &executor.ValidationError{Field: "to-revision", Reason: "is required with --workload: the revision to go back to (see nodeexec history)"}
	}
	if err := executor.ValidateService(body.Service); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	return o.start(ctx, c, func() (*api.Accepted, error) { return c.RollbackWorkload(ctx, api.Workload(w), body) }, detach, api.StateRolledBack)
}

// oneWorkload parses namespace/Kind/name[:container], validated.
func oneWorkload(ref string) (executor.Workload, error) {
	ws, err := parseWorkloads(ref)
	if err != nil {
		return executor.Workload{}, err
	}
	if len(ws) != 1 {
		return executor.Workload{}, &executor.ValidationError{Field: "workload", Reason: fmt.Sprintf("want one namespace/Kind/name[:container], not %q", ref)}
	}
	return ws[0], executor.ValidateWorkloads(ws)
}

// flagGiven reports whether args set the flag name (-name, --name, with or without =value): which
// positional arguments a command wants may depend on it.
func flagGiven(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if f, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && f == name {
			return true
		}
	}
	return false
}
