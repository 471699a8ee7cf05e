package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
)

// serviceHistory is `nodeexec history --service S [--node H]`: the deployments (deploys, rollbacks,
// restarts, scales, hand runs) that touched a service, or one node of it, newest first, from the list API.
type serviceHistory struct {
	service, node, cursor string
	limit                 int
}

func (h serviceHistory) print(ctx context.Context, o *clientOpts) (bool, error) {
	if err := executor.ValidateService(h.service); err != nil {
		return false, err
	}
	if h.limit < 1 || h.limit > 200 {
		return false, &executor.ValidationError{Field: "limit", Reason: "want a number from 1 to 200"}
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	page, err := c.List(ctx, client.ListOptions{Service: h.service, Node: h.node, Limit: h.limit, Cursor: h.cursor})
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, page)
	}
	if h.node == "" {
		o.printDeployments(page.Deployments)
	} else {
		h.printNode(o, page.Deployments)
	}
	if page.NextCursor != "" {
		more := "nodeexec history --service " + h.service
		if h.node != "" {
			more += " --node " + h.node
		}
		fmt.Fprintf(o.out, "more: %s --cursor %s\n", more, page.NextCursor)
	}
	return true, nil
}

// printNode is one node's history: what each deployment did to it.
func (h serviceHistory) printNode(o *clientOpts, ds []api.Deployment) {
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tCREATED\tNODE STATE\tFROM\tTO\tCHANGED\tREQUESTED BY\tERROR")
	for _, d := range ds {
		for _, n := range d.Nodes {
			if n.Host != h.node {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", d.ID, d.Kind, d.CreatedAt.Format("2006-01-02 15:04:05"), n.State,
				dash(n.FromVersion), dash(n.TargetVersion), n.Changed, dash(d.RequestedBy), n.LastError)
		}
	}
	tw.Flush()
}
