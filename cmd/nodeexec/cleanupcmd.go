package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
)

// cleanupPoll is how often a followed cleanup pass is read again.
var cleanupPoll = time.Second

// cleanupCmd: `nodeexec cleanup` runs one cleanup pass on the server now and follows it to its end,
// printing each node as it is done; --follow ID follows (or shows) a pass already started. Exit 0 when
// the pass succeeded.
func cleanupCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("cleanup", &o)
	detach := fs.Bool("detach", false, "print the pass's id and return; do not follow it")
	follow := fs.String("follow", "", "follow the cleanup pass with this id (c-…) instead of starting one")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	id, detached, err := o.passToFollow(*follow, "cleanup pass", *detach, func() (string, any, error) {
		started, err := c.StartCleanup(ctx)
		if err != nil {
			return "", nil, err
		}
		return started.ID, started, nil
	})
	if err != nil || detached {
		return err == nil, err
	}
	pass, err := o.followCleanup(ctx, c, id)
	if err != nil {
		return false, err
	}
	return pass.State == api.CleanupSuccess, o.printCleanup(pass)
}

// passToFollow is the pass a pass command follows: the one --follow names, or one start starts (its id
// and its answer). With --detach the started pass is printed instead, and detached is true.
func (o *clientOpts) passToFollow(follow, what string, detach bool, start func() (string, any, error)) (id string, detached bool, err error) {
	if follow != "" {
		return follow, false, nil
	}
	id, started, err := start()
	if err != nil {
		return "", false, err
	}
	if detach {
		if o.json() {
			return id, true, writeJSON(o.out, started)
		}
		fmt.Fprintln(o.out, id)
		return id, true, nil
	}
	if !o.json() {
		fmt.Fprintf(os.Stderr, "%s %s started; following it (Ctrl-C stops following, not the pass)\n", what, id)
	}
	return id, false, nil
}

// followCleanup reads a pass until it ends, printing each node when it is done (not with --json).
func (o *clientOpts) followCleanup(ctx context.Context, c *client.Client, id string) (*api.Cleanup, error) {
	shown := map[string]bool{}
	for {
		pass, err := c.Cleanup(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, o.stoppedFollowing(id)
			}
			return nil, err
		}
		for _, n := range pass.Nodes {
			key := n.Service + "/" + n.Host
			if o.json() || shown[key] || n.State == api.NodePending || n.State == api.NodeCleaning {
				continue
			}
			shown[key] = true
			fmt.Fprintln(o.out, cleanupLine(n))
		}
		if pass.State != api.CleanupRunning {
			return pass, nil
		}
		select {
		case <-ctx.Done():
			return nil, o.stoppedFollowing(id)
		case <-time.After(cleanupPoll):
		}
	}
}

func (o *clientOpts) stoppedFollowing(id string) error {
	fmt.Fprintf(os.Stderr, "\nstopped following; cleanup pass %s goes on. Follow it: nodeexec cleanup --follow %s\n", id, id)
	return errors.New("interrupted")
}

// cleanupLine is one node's outcome in a line.
func cleanupLine(n api.CleanupNode) string {
	line := fmt.Sprintf("%s %s %s", n.Service, n.Host, n.State)
	if n.State == api.NodeCleaned {
		line += fmt.Sprintf(": removed %s; kept %s", listOrNone(n.Removed), listOrNone(n.Kept))
	}
	if n.Error != "" {
		line += ": " + n.Error
	}
	return line
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

func (o *clientOpts) printCleanup(p *api.Cleanup) error {
	if o.json() {
		return writeJSON(o.out, p)
	}
	fmt.Fprintf(o.out, "\ncleanup pass %s (%s, on %s): %s", p.ID, p.Trigger, p.Runner, p.State)
	if p.Error != "" {
		fmt.Fprintf(o.out, " (%s)", p.Error)
	}
	fmt.Fprintln(o.out)
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tNODE\tSTATE\tKEEP\tKEPT\tREMOVED\tERROR")
	for _, n := range p.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.Service, n.Host, n.State, n.Keep, dash(strings.Join(n.Kept, ",")), dash(strings.Join(n.Removed, ",")), n.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if pr := p.Pruned; pr.Before != nil {
		fmt.Fprintf(o.out, "pruned the records finished before %s: %d deployments, %d event chunks, %d idempotency keys, %d cleanup passes, %d drift passes\n",
			pr.Before.Format(time.RFC3339), pr.Deployments, pr.EventChunks, pr.IdempotencyKeys, pr.Cleanups, pr.DriftPasses)
	}
	return nil
}
