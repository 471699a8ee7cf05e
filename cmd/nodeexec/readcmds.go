package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
)

// The commands that read the server's records: deployments, nodes, a deployment's logs.

func listCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("list", &o)
	service := fs.String("service", "", "only this service")
	state := fs.String("state", "", "only deployments in this state")
	limit := fs.Int("limit", 20, "how many (1-200)")
	cursor := fs.String("cursor", "", "the next page, as a previous list printed")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	if *limit < 1 || *limit > 200 { // 0 would be the server's default: send no number it would refuse
		return false, &executor.ValidationError{Field: "limit", Reason: "want a number from 1 to 200"}
	}
	page, err := c.List(ctx, client.ListOptions{Service: *service, State: api.State(*state), Cursor: *cursor, Limit: *limit})
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, page)
	}
	o.printDeployments(page.Deployments)
	if page.NextCursor != "" {
		fmt.Fprintf(o.out, "more: nodeexec list --cursor %s\n", page.NextCursor)
	}
	return true, nil
}

func nodesCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("nodes", &o)
	service := fs.String("service", "", "only this service's nodes (default: every service's)")
	host := fs.String("host", "", "only this node (with --service)")
	version := fs.String("version", "", "only the nodes whose record runs this version")
	state := fs.String("state", "", "only the nodes in this state (pending, deploying, success, failed, rolled_back)")
	drifted := fs.Bool("drifted", false, "only the nodes the last drift pass found differing from their record")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if *service != "" {
		if err := executor.ValidateService(*service); err != nil {
			return false, err
		}
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	var nodes []api.Node
	var one bool
	switch {
	case *host != "":
		if *service == "" {
			return false, &executor.ValidationError{Field: "--host", Reason: "needs --service: a host may run several services"}
		}
		if err := executor.ValidateHost(*host); err != nil {
			return false, err
		}
		n, err := c.Node(ctx, *service, *host)
		if err != nil {
			return false, err
		}
		nodes, one = append(nodes, *n), true
	default:
		if nodes, err = c.AllNodes(ctx, client.NodeListOptions{Service: *service, Version: *version, State: api.State(*state), Drifted: *drifted}); err != nil {
			return false, err
		}
	}
	switch {
	case o.json() && one: // as GET /api/v1/nodes/{service}/{host} answers
		return true, writeJSON(o.out, nodes[0])
	case o.json(): // as GET /api/v1/nodes answers, every page in one
		return true, writeJSON(o.out, api.NodeList{Nodes: nodes})
	}
	return true, o.printNodes(nodes)
}

// printNodes is the table of node records; wide adds the platform, the version a deployment is putting
// there, and drift.
func (o *clientOpts) printNodes(nodes []api.Node) error {
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	head := "SERVICE\tNODE\tSTATE\tCURRENT\tPREVIOUS\tDEPLOYMENT\tUPDATED"
	if o.wide() {
		head += "\tPLATFORM\tDEPLOYING\tDRIFT"
	}
	fmt.Fprintln(tw, head+"\tERROR")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", n.Service, n.Host, n.State, dash(n.CurrentVersion), dash(n.PrevVersion), dash(n.DeploymentID), n.UpdatedAt.Format("2006-01-02 15:04:05"))
		if o.wide() {
			drift := "-"
			if n.Drift != nil {
				drift = n.Drift.Kind
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", n.Platform, dash(n.DeployingVersion), drift)
		}
		fmt.Fprintf(tw, "\t%s\n", n.LastError)
	}
	return tw.Flush()
}

// servicesCmd lists every service nodeexec has a node of: its nodes, which versions run where.
func servicesCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("services", &o)
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	services, err := c.Services(ctx)
	if err != nil {
		return false, err
	}
	if o.json() { // as GET /api/v1/services answers
		return true, writeJSON(o.out, api.ServiceList{Services: services})
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPLATFORM\tNODES\tFAILED\tHELD\tVERSIONS")
	for _, s := range services {
		var versions []string
		for _, v := range s.Versions {
			versions = append(versions, fmt.Sprintf("%s on %d", dash(v.Version), len(v.Hosts)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.Service, s.Platform, s.Nodes, s.Failed, s.Deploying, strings.Join(versions, ", "))
	}
	return true, tw.Flush()
}

// forgetCmd forgets a node: its record goes (a decommissioned host), who forgot it is recorded.
func forgetCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("forget", &o)
	service := fs.String("service", "", "the service the node is of")
	host := fs.String("host", "", "the node (a host, or a workload's namespace/name)")
	by := fs.String("requested-by", envOr("USER", ""), "who forgets it (recorded)")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if *service == "" || *host == "" {
		return false, &executor.ValidationError{Field: "forget", Reason: "give the node: nodeexec forget --service S --host H"}
	}
	if err := executor.ValidateService(*service); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	d, err := c.Forget(ctx, *service, *host, *by)
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, d)
	}
	fmt.Fprintf(o.out, "forgot node %s of %s (it ran %s); recorded as %s\n", *host, *service, dash(d.Version), d.ID)
	return true, nil
}

func logsCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("logs", &o)
	lines := fs.Int("lines", 100, "the newest lines, in all")
	node := fs.String("node", "", "only this node, workload or pod")
	source := fs.String("source", api.LogSourceService, "service (the service's own log: the unit's journal, the pods' logs) or events (the deployment's own)")
	pos, err := parseArgs(fs, args, 1, "one deployment id: nodeexec logs <deployment-id>")
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	if *lines < 1 {
		return false, &executor.ValidationError{Field: "lines", Reason: fmt.Sprintf("want a number from 1 to %d", executor.MaxLogLines)}
	}
	out, err := c.Logs(ctx, pos[0], client.LogsOptions{Lines: *lines, PodName: *node, Source: *source})
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, out)
	}
	// One block a node or pod, in the order their lines come: "== <node or pod> (<container>)".
	last := ""
	for _, l := range out.Logs {
		if head := l.PodName + " (" + l.Container + ")"; head != last {
			fmt.Fprintf(o.out, "== %s\n", head)
			last = head
		}
		fmt.Fprintf(o.out, "%s %s\n", l.Timestamp.Format(time.RFC3339), l.Message)
	}
	for _, e := range out.Errors {
		fmt.Fprintf(o.out, "!! %s: %s\n", e.PodName, e.Error)
	}
	for _, f := range out.Failures {
		fmt.Fprintf(o.out, "!! %s %s: %s (%d failed tasks; -o json shows them and the evidence)\n", f.PodName, f.State, f.Error, len(f.FailedTasks))
	}
	if out.Error != "" {
		fmt.Fprintf(o.out, "!! %s\n", out.Error)
	}
	return true, nil
}

// printDeployments is the table of deployments; wide adds who asked, when it ended, and why it failed.
func (o *clientOpts) printDeployments(ds []api.Deployment) {
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	head := "ID\tKIND\tSERVICE\tVERSION\tSTATE\tNODES\tCREATED"
	if o.wide() {
		head += "\tREQUESTED BY\tFINISHED\tERROR"
	}
	fmt.Fprintln(tw, head)
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s", d.ID, d.Kind, d.Service, d.Version, d.State, len(d.Nodes), d.CreatedAt.Format("2006-01-02 15:04:05"))
		if o.wide() {
			finished := "-"
			if d.FinishedAt != nil {
				finished = d.FinishedAt.Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", dash(d.RequestedBy), finished, d.Error)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
