package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

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
