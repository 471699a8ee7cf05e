package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// restartCmd asks the server to restart a service on nodes and follows the restart to its end.
func restartCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("restart", &o)
	var req executor.RestartRequest
	fs.StringVar(&req.Service, "service", "", "service name (its systemd unit)")
	nodes := fs.String("nodes", "", "comma-separated hosts (DNS names or IPs)")
	healthFlags(fs, &req.Health)
	batch := fs.Int("batch-size", 0, "restart this many nodes at a time, one run each (default: all in one run)")
	stop := fs.Bool("stop-on-failure", false, "start no batch after one in which a node failed")
	key := fs.String("idempotency-key", "", "the same key again returns the same restart instead of a second one")
	detach := fs.Bool("detach", false, "print the restart's id and return; do not follow it")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	req.Nodes = splitNodes(*nodes)
	if err := req.Validate(); err != nil {
		return false, err
	}
	if err := validLabels(*key, ""); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	body := api.RestartRequest{Service: req.Service, Nodes: hostsOf(req.Nodes), Health: wireHealth(req.Health), BatchSize: *batch,
		StopOnFailure: *stop, IdempotencyKey: *key, RequestedBy: envOr("USER", "")}
	return o.start(ctx, c, func() (*api.Accepted, error) { return c.Restart(ctx, body) }, *detach, api.StateSuccess)
}

// serviceStatusCmd shows the service's unit on each node now: running or not, main PID, since when, and
// the version the node's own record names. It succeeds when every node was read and runs the service.
func serviceStatusCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("service-status", &o)
	var req executor.StatusRequest
	fs.StringVar(&req.Service, "service", "", "service name (its systemd unit)")
	nodes := fs.String("nodes", "", "comma-separated hosts (DNS names or IPs)")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	req.Nodes = splitNodes(*nodes)
	if err := req.Validate(); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	out, err := c.ServiceStatus(ctx, req.Service, hostsOf(req.Nodes))
	if err != nil {
		return false, err
	}
	ok := true
	for _, n := range out.Nodes {
		ok = ok && n.Error == "" && n.Running
	}
	if o.json() {
		return ok, writeJSON(o.out, out)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRUNNING\tUNIT\tPID\tSINCE\tUPTIME\tMEMORY\tCPU\tCURRENT\tPREVIOUS\tRUNS\tERROR")
	for _, n := range out.Nodes {
		since, uptime := "-", "-"
		if n.Since != nil {
			since = n.Since.Local().Format("2006-01-02 15:04:05")
			uptime = (time.Duration(n.UptimeSeconds) * time.Second).String()
		}
		pid := "-"
		if n.MainPID > 0 {
			pid = fmt.Sprint(n.MainPID)
		}
		msg := n.Error
		if msg == "" {
			msg = n.LastError
		}
		memory, cpu := "-", "-"
		if r := n.Resources; r != nil {
			if r.MemoryBytes > 0 {
				memory = fmt.Sprintf("%.1fMiB", float64(r.MemoryBytes)/(1<<20))
			}
			if r.CPUSeconds > 0 {
				cpu = fmt.Sprintf("%.2fs", r.CPUSeconds)
			}
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Host, n.Running, dash(n.ActiveState), pid, since, uptime,
			memory, cpu, dash(n.CurrentVersion), dash(n.PrevVersion), dash(n.RunningVersion), msg)
	}
	return ok, tw.Flush()
}

// adhocCmd runs one command of the server's allow-list on nodes, by its name, and prints each node's
// output. It succeeds when the command ran on every node and exited 0 there.
func adhocCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("adhoc", &o)
	name := fs.String("name", "", "the command's name on the server's allow-list (--list shows them)")
	nodes := fs.String("nodes", "", "comma-separated hosts (DNS names or IPs)")
	service := fs.String("service", "", "the service, for a command that runs with its name ({service})")
	list := fs.Bool("list", false, "show the allow-list and return")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if !*list {
		if err := executor.ValidateCommandName(*name); err != nil {
			return false, err
		}
		if err := executor.ValidateNodes(splitNodes(*nodes)); err != nil {
			return false, err
		}
		if *service != "" {
			if err := executor.ValidateService(*service); err != nil {
				return false, err
			}
		}
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	if *list {
		out, err := c.Commands(ctx)
		if err != nil {
			return false, err
		}
		if o.json() {
			return true, writeJSON(o.out, out)
		}
		tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSERVICE\tARGV")
		for _, cmd := range out.Commands {
			fmt.Fprintf(tw, "%s\t%v\t%q\n", cmd.Name, cmd.Service, cmd.Argv)
		}
		return true, tw.Flush()
	}
	body := api.AdhocRequest{Name: *name, Nodes: hostsOf(splitNodes(*nodes)), Service: *service}
	run, err := c.RunCommand(ctx, body)
	if err != nil {
		return false, err
	}
	ok := true
	for _, n := range run.Nodes {
		ok = ok && n.Error == "" && n.RC == 0
	}
	if o.json() {
		return ok, writeJSON(o.out, run)
	}
	for _, n := range run.Nodes {
		head := fmt.Sprintf("== %s: exit %d", n.Host, n.RC)
		if n.Error != "" {
			head = fmt.Sprintf("== %s: did not run: %s", n.Host, n.Error)
		}
		if n.Truncated {
			head += " (output cut to the server's limit)"
		}
		fmt.Fprintln(o.out, head)
		for _, part := range []struct{ prefix, text string }{{"", n.Stdout}, {"stderr: ", n.Stderr}} {
			if text := strings.TrimRight(part.text, "\n"); text != "" {
				for _, line := range strings.Split(text, "\n") {
					fmt.Fprintln(o.out, part.prefix+line)
				}
			}
		}
	}
	return ok, nil
}

// splitNodes reads comma-separated hosts.
func splitNodes(s string) []executor.Node {
	var out []executor.Node
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, executor.Node{Host: h})
		}
	}
	return out
}

// wireHealth is a health check as the API takes it; nil when it checks no port and asks nothing of the
// unit beyond being active (the server's default).
func wireHealth(h executor.HealthCheck) *api.HealthCheck {
	if h.HTTPPort == 0 && h.TCPPort == 0 && h.Stable == 0 && h.Interval == 0 {
		return nil
	}
	wire := fullHealth(h)
	return &wire
}
