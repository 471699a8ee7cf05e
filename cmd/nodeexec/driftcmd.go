package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
)

// driftCmd: `nodeexec drift [--service S]` runs one drift pass on the server now and follows it to its
// end, printing each node as it is read; --follow ID follows (or shows) a pass already started. Exit 0
// when the pass succeeded (drift found is not a failure: the table shows it).
func driftCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("drift", &o)
	service := fs.String("service", "", "read only this service's nodes (default: every service's)")
	detach := fs.Bool("detach", false, "print the pass's id and return; do not follow it")
	follow := fs.String("follow", "", "follow the drift pass with this id (r-…) instead of starting one")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	id, detached, err := o.passToFollow(*follow, "drift pass", *detach, func() (string, any, error) {
		started, err := c.StartDrift(ctx, *service)
		if err != nil {
			return "", nil, err
		}
		return started.ID, started, nil
	})
	if err != nil || detached {
		return err == nil, err
	}
	pass, err := o.followDrift(ctx, c, id)
	if err != nil {
		return false, err
	}
	return pass.State == api.CleanupSuccess, o.printDrift(pass)
}

// followDrift reads a pass until it ends, printing each node when it is read (not with --json).
func (o *clientOpts) followDrift(ctx context.Context, c *client.Client, id string) (*api.DriftPass, error) {
	shown := map[string]bool{}
	for {
		pass, err := c.DriftPass(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, stoppedFollowingDrift(id)
			}
			return nil, err
		}
		for _, n := range pass.Nodes {
			key := n.Service + "/" + n.Host
			if o.json() || shown[key] || n.State == "pending" || n.State == "reading" {
				continue
			}
			shown[key] = true
			fmt.Fprintln(o.out, driftLine(n))
		}
		if pass.State != api.CleanupRunning {
			return pass, nil
		}
		select {
		case <-ctx.Done():
			return nil, stoppedFollowingDrift(id)
		case <-time.After(cleanupPoll):
		}
	}
}

func stoppedFollowingDrift(id string) error {
	fmt.Fprintf(os.Stderr, "\nstopped following; drift pass %s goes on. Follow it: nodeexec drift --follow %s\n", id, id)
	return errors.New("interrupted")
}

// driftLine is one node's outcome in a line.
func driftLine(n api.DriftNode) string {
	line := fmt.Sprintf("%s %s %s", n.Service, n.Host, n.State)
	switch {
	case n.Drift != nil:
		line += fmt.Sprintf(": %s drift (%s) %s: %s", n.Drift.Kind, n.Change, n.Drift.Recorded+" -> "+n.Drift.Observed, n.Message)
	case n.Change != "":
		line += ": " + n.Message
	case n.State == "read":
		line += ": no drift"
	}
	if n.Error != "" {
		line += ": " + n.Error
	}
	return line
}

func (o *clientOpts) printDrift(p *api.DriftPass) error {
	if o.json() {
		return writeJSON(o.out, p)
	}
	fmt.Fprintf(o.out, "\ndrift pass %s (%s, on %s): %s", p.ID, p.Trigger, p.Runner, p.State)
	if p.Error != "" {
		fmt.Fprintf(o.out, " (%s)", p.Error)
	}
	fmt.Fprintln(o.out)
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tNODE\tSTATE\tDRIFT\tRECORDED\tOBSERVED\tSINCE\tCHANGE\tERROR")
	for _, n := range p.Nodes {
		kind, rec, obs, since := "-", "-", "-", "-"
		if d := n.Drift; d != nil {
			kind, rec, obs, since = d.Kind, dash(d.Recorded), dash(d.Observed), d.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Service, n.Host, n.State, kind, rec, obs, since, dash(n.Change), n.Error)
	}
	return tw.Flush()
}
