package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
)

// What every API command shares (its flags, its client), following a deployment to its end, and the
// commands about one deployment: status, cancel.

// clientOpts are the flags every API command shares.
type clientOpts struct {
	server    string
	tokenFile string
	output    outputFormat
	out       io.Writer
}

func (o *clientOpts) json() bool { return o.output == outputJSON }
func (o *clientOpts) wide() bool { return o.output == outputWide }

func clientFlags(name string, o *clientOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("nodeexec "+name, flag.ContinueOnError)
	fs.StringVar(&o.server, "server", envOr("NODEEXEC_SERVER", "http://127.0.0.1:8080"), "nodeexec server URL")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the API token (default: $NODEEXEC_TOKEN)")
	outputFlags(fs, &o.output)
	o.out = os.Stdout
	return fs
}

// parseArgs parses flags that may come before or after the positional arguments (`status d-1 --watch`)
// and returns the positional ones; want is how many there must be.
func parseArgs(fs *flag.FlagSet, args []string, want int, what string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != want {
		if want == 0 {
			return nil, &usageError{msg: fmt.Sprintf("%s: unexpected arguments %q", fs.Name(), pos), fs: fs}
		}
		return nil, &usageError{msg: fmt.Sprintf("%s: want %s", fs.Name(), what), fs: fs}
	}
	return pos, nil
}

func (o *clientOpts) client() (*client.Client, error) { return newAPIClient(o.server, o.tokenFile) }

func hostsOf(nodes []executor.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Host
	}
	return out
}

// start starts a deployment (or rollback, scale, restart) with send and, unless detached, follows it;
// ok means it reached want.
func (o *clientOpts) start(ctx context.Context, c *client.Client, send func() (*api.Accepted, error), detach bool, want api.State) (bool, error) {
	accepted, err := send()
	if err != nil {
		return false, err
	}
	if detach {
		if o.json() {
			return true, writeJSON(o.out, accepted)
		}
		fmt.Fprintln(o.out, accepted.ID)
		return true, nil
	}
	if !o.json() {
		fmt.Fprintf(os.Stderr, "deployment %s accepted; following it (Ctrl-C stops following, not the deployment)\n", accepted.ID)
	}
	d, err := o.watch(ctx, c, accepted.ID)
	if err != nil {
		return false, err
	}
	return d.State == want, nil
}

// watch follows a deployment live and prints its final state.
func (o *clientOpts) watch(ctx context.Context, c *client.Client, id string) (*api.Deployment, error) {
	d, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	v := newView(o.out, o.json(), d)
	final, err := c.Follow(ctx, id, v.event)
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
	if o.json() {
		return writeJSON(o.out, d)
	}
	what := strings.TrimSpace(d.Service + " " + d.Version)
	if len(d.Applications) > 0 {
		what = fmt.Sprintf("%d applications", len(d.Applications))
	}
	fmt.Fprintf(o.out, "\n%s %s of %s: %s", d.ID, d.Kind, what, d.State)
	if d.Error != "" {
		fmt.Fprintf(o.out, " (%s)", d.Error)
	}
	fmt.Fprintln(o.out)
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	if d.Kind == api.KindApply || d.Kind == api.KindDelete {
		return printObjects(tw, d)
	}
	if len(d.Applications) > 0 {
		fmt.Fprintln(tw, "APPLICATION\tDEPLOYMENT\tNODE\tSTATE\tFROM\tCURRENT\tPREVIOUS\tCHANGED\tERROR")
		for _, a := range d.Applications {
			for _, n := range a.Nodes {
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", a.Service, a.Version, a.DeploymentID, n.Host, n.State,
					dash(n.FromVersion), dash(n.CurrentVersion), dash(n.PrevVersion), n.Changed, n.LastError)
			}
		}
		return tw.Flush()
	}
	if o.wide() { // the version each node is taken to, and what became of its own record
		fmt.Fprintln(tw, "NODE\tSTATE\tFROM\tTARGET\tCURRENT\tPREVIOUS\tCHANGED\tRECORD KEPT\tERROR")
		for _, n := range d.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", n.Host, n.State, dash(n.FromVersion), dash(n.TargetVersion), dash(n.CurrentVersion),
				dash(n.PrevVersion), n.Changed, dash(n.RecordKept), n.LastError)
		}
		return tw.Flush()
	}
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
		if d, err = c.Get(ctx, pos[0]); err != nil {
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
	out, err := c.Cancel(ctx, pos[0])
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, out)
	}
	fmt.Fprintf(o.out, "cancelling %s; follow it: nodeexec status %s --watch\n", pos[0], pos[0])
	return true, nil
}
