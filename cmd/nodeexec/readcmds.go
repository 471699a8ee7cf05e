package main

import (
	"context"
	"encoding/json"
	"fmt"
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
		n, err := c.Node(ctx, *service, *host)
		if err != nil {
			return false, err
		}
		nodes = append(nodes, *n)
	} else if nodes, err = c.Nodes(ctx, *service); err != nil {
		return false, err
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
	if *lines < 1 {
		return false, &executor.ValidationError{Field: "lines", Reason: fmt.Sprintf("want a number from 1 to %d", executor.MaxLogLines)}
	}
	out, err := c.Logs(ctx, pos[0], client.LogsOptions{Lines: *lines, PodName: *node})
	if err != nil {
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
