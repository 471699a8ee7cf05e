package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec"
	"github.com/nodeexec/nodeexec/config"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
)

// The direct commands (nodeexec direct deploy|rollback|status|cleanup) run the executor from this
// machine, without a server or database: an operator's tool. Serve builds its executor for physical
// nodes from the same options.

// common holds the options of the commands that reach the nodes themselves (the direct ones, and
// serve): where the nodes are and how to reach them. Its configuration comes from the defaults, the
// file --config (or $NODEEXEC_CONFIG) names, the environment, and the flags, each over the one before.
type common struct {
	service string
	nodes   string
	output  outputFormat
	verbose bool
	cfg     config.Config
	// loadErr is why the configuration could not be read; parse reports it.
	loadErr error
}

// load reads the configuration the flags start from: --config is found before the flags are parsed,
// so that file and environment values become their defaults.
func (c *common) load(args []string) {
	path := os.Getenv("NODEEXEC_CONFIG")
	for i, a := range args {
		switch {
		case (a == "--config" || a == "-config") && i+1 < len(args):
			path = args[i+1]
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.Index(a, "=")+1:]
		}
	}
	c.cfg, c.loadErr = config.Load(path, os.Getenv)
}

func newFlags(name string, c *common, args []string) *flag.FlagSet {
	c.load(args)
	fs := flag.NewFlagSet("nodeexec "+name, flag.ContinueOnError)
	fs.StringVar(&c.service, "service", "", "service name (also the systemd unit name)")
	fs.StringVar(&c.nodes, "nodes", "", "comma-separated hosts (DNS names or IPs)")
	outputFlags(fs, &c.output)
	sshFlags(fs, c)
	return fs
}

// sshFlags are how the executor reaches nodes: shared by the direct commands and serve.
func sshFlags(fs *flag.FlagSet, c *common) {
	n := &c.cfg.Nodes
	fs.String("config", "", "YAML configuration file (default: $NODEEXEC_CONFIG); flags and NODEEXEC_* variables override it")
	fs.StringVar(&n.PlaybookDir, "playbook-dir", n.PlaybookDir, "use playbooks/ and roles/ from this directory instead of the bundled ones")
	fs.StringVar(&n.SSHUser, "ssh-user", n.SSHUser, "SSH user (default: Ansible's)")
	fs.StringVar(&n.SSHKey, "ssh-key", n.SSHKey, "SSH private key file")
	fs.IntVar(&n.SSHPort, "ssh-port", n.SSHPort, "SSH port (default 22)")
	fs.BoolVar(&n.InsecureHostKeys, "insecure-host-keys", n.InsecureHostKeys, "do not check SSH host keys (throwaway test hosts only)")
	fs.BoolVar(&n.Become, "become", n.Become, "run the tasks on the nodes as root with sudo (for an --ssh-user that is not root; needs passwordless sudo)")
	fs.StringVar(&n.BaseDir, "base-dir", n.BaseDir, "where services live on the nodes")
	fs.BoolVar(&c.verbose, "v", false, "log what runs")
}

func (c *common) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.loadErr != nil {
		return &executor.ValidationError{Field: "config", Reason: c.loadErr.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("%s: unexpected arguments %q", fs.Name(), fs.Args()), fs: fs}
	}
	return nil
}

func (c *common) nodeList() []executor.Node {
	var nodes []executor.Node
	for _, h := range strings.Split(c.nodes, ",") {
		if h = strings.TrimSpace(h); h != "" {
			nodes = append(nodes, executor.Node{Host: h})
		}
	}
	return nodes
}

func (c *common) executor() (*ansible.Executor, error) {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.WarnLevel)
	if c.verbose {
		log.SetLevel(logrus.InfoLevel)
	}
	return c.executorLogging(log)
}

// executorLogging builds the executor from the flags, logging to log.
func (c *common) executorLogging(log logrus.FieldLogger) (*ansible.Executor, error) {
	n := c.cfg.Nodes
	dir := n.PlaybookDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		if dir, err = ansible.ExtractBundle(nodeexec.Bundle, filepath.Join(cache, "nodeexec")); err != nil {
			return nil, err
		}
	}
	ssh := ansible.SSH{User: n.SSHUser, PrivateKeyFile: n.SSHKey, Port: n.SSHPort}
	if n.InsecureHostKeys {
		off := false
		ssh.HostKeyChecking = &off
	}
	return ansible.New(ansible.Config{PlaybookDir: dir, SSH: ssh, BaseDir: n.BaseDir, Become: n.Become, Logger: log,
		DownloadTimeout: time.Duration(c.cfg.Timeouts.Download), HealthTimeout: time.Duration(c.cfg.Timeouts.HealthCheck),
		PushMaxBytes: c.cfg.Push.MaxBytes})
}

// request is anything that can check itself before it runs.
type request interface{ Validate() error }

// execute parses the flags, checks the request (finish fills it from the flags), and only then builds the
// executor and runs op; it prints per-node results and says whether every node reached want.
func (c *common) execute(fs *flag.FlagSet, args []string, finish func() request, op func(*ansible.Executor) ([]executor.NodeResult, error), want executor.State) (bool, error) {
	if err := c.parse(fs, args); err != nil {
		return false, err
	}
	if err := finish().Validate(); err != nil {
		return false, err
	}
	e, err := c.executor()
	if err != nil {
		return false, err
	}
	results, err := op(e)
	return report(c.output == outputJSON, results, err, want)
}

// directCmd runs an operation straight from this machine, without a server or database: the executor
// alone, as an operator's tool.
func directCmd(ctx context.Context, args []string) (bool, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		return false, wantSubcommand("direct", args)
	}
	switch args[0] {
	case "deploy":
		return directDeploy(ctx, args[1:])
	case "rollback":
		return directRollback(ctx, args[1:])
	case "status":
		return directStatus(ctx, args[1:])
	case "cleanup":
		return directCleanup(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "nodeexec direct: unknown operation %q (deploy, rollback, status, cleanup)\n\n", args[0])
	return false, wantSubcommand("direct", nil)
}

func directDeploy(ctx context.Context, args []string) (bool, error) {
	var c common
	var req executor.DeployRequest
	fs := newFlags("direct deploy", &c, args)
	fs.StringVar(&req.Version, "version", "", "version to deploy")
	fs.StringVar(&req.Package.URL, "package-url", "", "http(s) URL of the release tarball")
	fs.StringVar(&req.Package.SHA256, "sha256", "", "SHA256 of the tarball (64 hex characters)")
	deliveryFlag(fs, &req.Delivery)
	fs.StringVar(&req.DeploymentID, "id", "", "deployment id, shown to anyone who finds a node locked")
	fs.StringVar(&req.Unit.Args, "exec-args", "", "arguments for the service's binary in the default unit")
	fs.StringVar(&req.Unit.Exec, "exec", "", "binary inside the release (default bin/<service>)")
	healthFlags(fs, &req.Health)
	return c.execute(fs, args,
		func() request { req.Service, req.Nodes = c.service, c.nodeList(); return req },
		func(e *ansible.Executor) ([]executor.NodeResult, error) { return e.Deploy(ctx, req) },
		executor.StateSuccess)
}

func directRollback(ctx context.Context, args []string) (bool, error) {
	var c common
	var req executor.RollbackRequest
	fs := newFlags("direct rollback", &c, args)
	fs.StringVar(&req.ToVersion, "to", "", "version to go back to (default: each node's previous version)")
	fs.StringVar(&req.DeploymentID, "id", "", "id shown to anyone who finds a node locked")
	healthFlags(fs, &req.Health)
	return c.execute(fs, args,
		func() request { req.Service, req.Nodes = c.service, c.nodeList(); return req },
		func(e *ansible.Executor) ([]executor.NodeResult, error) { return e.Rollback(ctx, req) },
		executor.StateRolledBack)
}

// Status succeeds when every node answered; their states are what they are.
func directStatus(ctx context.Context, args []string) (bool, error) {
	var c common
	var req executor.StatusRequest
	fs := newFlags("direct status", &c, args)
	return c.execute(fs, args,
		func() request { req.Service, req.Nodes = c.service, c.nodeList(); return req },
		func(e *ansible.Executor) ([]executor.NodeResult, error) { return e.Status(ctx, req) },
		"")
}

func directCleanup(ctx context.Context, args []string) (bool, error) {
	var c common
	var req ansible.CleanupRequest
	fs := newFlags("direct cleanup", &c, args)
	fs.IntVar(&req.Keep, "keep", 5, "releases to keep on each node (at least 2: current and previous)")
	return c.execute(fs, args,
		func() request { req.Service, req.Nodes = c.service, c.nodeList(); return req },
		func(e *ansible.Executor) ([]executor.NodeResult, error) {
			res, err := e.Cleanup(ctx, req)
			out := make([]executor.NodeResult, len(res))
			for i, r := range res {
				out[i] = r.NodeResult
			}
			return out, err
		},
		"")
}

// report prints per-node results and says whether every node reached want ("" = any answer counts).
func report(asJSON bool, results []executor.NodeResult, runErr error, want executor.State) (bool, error) {
	if results == nil && runErr != nil {
		return false, runErr
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return false, err
		}
	} else {
		printTable(os.Stdout, results)
	}
	ok := runErr == nil
	for _, r := range results {
		if (want != "" && r.State != want) || (want == "" && r.LastError != "" && r.State == executor.StateFailed) {
			ok = false
		}
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "nodeexec: %v\n", runErr)
	}
	return ok, nil
}

func printTable(w io.Writer, results []executor.NodeResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tCURRENT\tPREVIOUS\tRUNNING\tCHANGED\tERROR")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", r.Host, r.State, dash(r.CurrentVersion), dash(r.PrevVersion), dash(r.RunningVersion), r.Changed, r.LastError)
	}
	tw.Flush()
}
