package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// The one table of nodeexec's commands: `nodeexec -h` prints it, `nodeexec help NAME` and `NAME -h` print
// a command's part of it with its flags, run dispatches on it, and `nodeexec completion` completes from
// it. A command added here is in all four at once.

// command is one of nodeexec's commands.
type command struct {
	name    string
	section section
	// usage is the command's lines of `nodeexec -h`, as printed there.
	usage string
	// about says more, for the command's own help only.
	about string
	// subcommands are the words the command wants first (`direct deploy`), each with flags of its own.
	subcommands []string
	run         func(ctx context.Context, args []string) (bool, error)
}

type section int

const (
	sectionServer section = iota
	sectionClient
	sectionDirect
	sectionTool
)

var sectionTitles = []string{
	sectionServer: "The server:",
	sectionClient: "Client of a running server (--server URL, default $NODEEXEC_SERVER or http://127.0.0.1:8080;\n" +
		"token from --token-file FILE or $NODEEXEC_TOKEN; -o table|wide|json, --json for -o json):",
	sectionDirect: "Without a server (the executor, straight from this machine):",
	sectionTool:   "This tool:",
}

// commands is set in init: the help command reads it.
var commands []command

func init() {
	commands = []command{
		{name: "serve", section: sectionServer, run: serveCmd,
			usage: "  nodeexec serve [--config FILE] [--listen 127.0.0.1:8080] [--mongo-uri URI | --data-dir DIR] [--tokens-file F] [ssh options]\n"},
		{name: "database", section: sectionServer, run: databaseCmd,
			usage: "  nodeexec database --postgresql-url-file FILE [--listen 127.0.0.1:27018]   a database several serve replicas share\n" +
				"                                                    (FerretDB over PostgreSQL; docs/shared-database.md)\n",
			about: "Serves the MongoDB wire protocol (FerretDB) over a PostgreSQL database, for several nodeexec replicas to\n" +
				"share: start them with --mongo-uri mongodb://LISTEN/. Loopback only. Not yet safe for replicas that\n" +
				"deploy at once: see docs/shared-database.md.\n"},
		{name: "deploy", section: sectionClient, run: deployCmd,
			usage: "  nodeexec deploy   --service S --version V --package-url URL --sha256 HEX --nodes H1,H2 [options]\n" +
				"  nodeexec deploy   --service S --version V --image IMG --workloads NS/Deployment/NAME[:CONTAINER] [--strategy blue-green] [options]\n" +
				"  nodeexec deploy   --applications FILE.json [options]   several services as one deployment ([--env|--config NAME=VALUE] for one)\n" +
				"  nodeexec deploy   --from-file REQUEST.json [options]   the API's deploy request from a file; options given override its fields\n" +
				"  nodeexec deploy   ... --dry-run                      read each node now and say what the deploy would do; change nothing\n",
			about: "Every field of the API's deploy request (docs/api.md) has an option: --batch-size, --stop-on-failure,\n" +
				"--max-unavailable-nodes, --env, --config, --unit-env, --delivery, --health-*, --stable-seconds, the Kubernetes\n" +
				"--strategy options. With --from-file the file is the request and the options given beside it replace\n" +
				"their fields (the rest of the file stays); the server checks the result.\n"},
		{name: "scale", section: sectionClient, run: scaleCmd,
			usage: "  nodeexec scale    --service S --workloads NS/Kind/NAME --replicas N\n"},
		{name: "status", section: sectionClient, run: statusCmd,
			usage: "  nodeexec status   <deployment-id> [--watch]\n"},
		{name: "rollback", section: sectionClient, run: rollbackCmd,
			usage: "  nodeexec rollback <deployment-id> [--to <target-deployment-id>]   back to what each node ran before, or to what the target left it on\n" +
				"  nodeexec rollback --workload NS/Kind/NAME --to-revision N --service S   a Kubernetes workload back to a revision (see history)\n"},
		{name: "cancel", section: sectionClient, run: cancelCmd,
			usage: "  nodeexec cancel   <deployment-id>\n"},
		{name: "logs", section: sectionClient, run: logsCmd,
			usage: "  nodeexec logs     <deployment-id> [--lines N] [--node H] [--source service|events]   then each failed node's failure block\n"},
		{name: "list", section: sectionClient, run: listCmd,
			usage: "  nodeexec list     [--service S] [--state X]\n"},
		{name: "nodes", section: sectionClient, run: nodesCmd,
			usage: "  nodeexec nodes    [--service S [--host H]] [--version V] [--state X]   node records, every service's or one's\n"},
		{name: "services", section: sectionClient, run: servicesCmd,
			usage: "  nodeexec services                                  each service: its nodes, which versions run where\n"},
		{name: "forget", section: sectionClient, run: forgetCmd,
			usage: "  nodeexec forget   --service S --host H             forget a node (a decommissioned host); recorded\n"},
		{name: "cleanup", section: sectionClient, run: cleanupCmd,
			usage: "  nodeexec cleanup  [--follow CLEANUP-ID] [--detach]   run a cleanup pass now (old releases, old records) and follow it\n"},
		{name: "drift", section: sectionClient, run: driftCmd,
			usage: "  nodeexec drift    [--service S] [--follow DRIFT-ID] [--detach]   read every node, compare it with its record, and follow it\n"},
		{name: "restart", section: sectionClient, run: restartCmd,
			usage: "  nodeexec restart  --service S --nodes H1,H2 [--health-port P ...] [--batch-size N]   restart and verify, follow it\n"},
		{name: "service-status", section: sectionClient, run: serviceStatusCmd,
			usage: "  nodeexec service-status --service S --nodes H1,H2   running, main PID, since when, and the node's recorded version\n"},
		{name: "adhoc", section: sectionClient, run: adhocCmd,
			usage: "  nodeexec adhoc    --name NAME --nodes H1,H2 [--service S]   run a command of the server's allow-list (admin token)\n" +
				"  nodeexec adhoc    --list                            the allow-list\n"},
		{name: "apply", section: sectionClient, run: applyCmd,
			usage: "  nodeexec apply    -n NS -f FILE [--dry-run]         server-side apply a manifest (- reads stdin), recorded; each object's outcome\n"},
		{name: "delete", section: sectionClient, run: deleteCmd,
			usage: "  nodeexec delete   -n NS -l SELECTOR [--dry-run]     delete the Deployments, StatefulSets, Services, ConfigMaps, Secrets it picks\n"},
		{name: "pods", section: sectionClient, run: podsCmd,
			usage: "  nodeexec pods     -n NS [-l SELECTOR]               the pods now: phase, ready, restarts, node\n"},
		{name: "history", section: sectionClient, run: historyCmd,
			usage: "  nodeexec history  -w NS/Kind/NAME[:CONTAINER]       a workload's revisions (rollout history)\n" +
				"  nodeexec history  --service S [--node H]            the deployments that touched a service, or one node of it, newest first\n"},
		{name: "direct", section: sectionDirect, run: directCmd, subcommands: []string{"deploy", "rollback", "status", "cleanup"},
			usage: "  nodeexec direct deploy   --service S --version V --package-url URL --sha256 HEX --nodes H1,H2 [options]\n" +
				"  nodeexec direct rollback --service S [--to V] --nodes H1,H2 [options]\n" +
				"  nodeexec direct status   --service S --nodes H1,H2 [options]\n" +
				"  nodeexec direct cleanup  --service S --keep N --nodes H1,H2 [options]\n"},
		{name: "playbooks", section: sectionDirect, run: func(_ context.Context, args []string) (bool, error) { return playbooksCmd(args) },
			usage: "  nodeexec playbooks [--dir DIR]    write the bundled playbooks and roles out, print where\n"},
		{name: "config", section: sectionDirect, run: func(_ context.Context, args []string) (bool, error) { return configCmd(args) }, subcommands: []string{"check"},
			usage: "  nodeexec config check [--config FILE] [serve's flags]   check the configuration serve would use, print it (secrets masked)\n"},
		{name: "version", section: sectionTool, run: versionCmd,
			usage: "  nodeexec version [--remote]       this build (--version too); --remote: the server's too\n"},
		{name: "completion", section: sectionTool, run: completionCmd,
			usage: "  nodeexec completion bash|zsh|fish  a completion script: source <(nodeexec completion bash); nodeexec completion fish | source\n"},
		{name: "help", section: sectionTool, run: helpCmd,
			usage: "  nodeexec help [COMMAND]           this help, or a command's with its options (COMMAND -h too)\n"},
	}
}

// lookup is the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// writeUsage writes `nodeexec -h`: every command's usage, section by section.
func writeUsage(w io.Writer) {
	var sb strings.Builder
	sb.WriteString("nodeexec: deploy services to nodes with the bundled Ansible playbooks\n")
	for s, title := range sectionTitles {
		sb.WriteString("\n" + title + "\n")
		for _, c := range commands {
			if c.section == section(s) {
				sb.WriteString(c.usage)
			}
		}
	}
	sb.WriteString("\nRun 'nodeexec help COMMAND' or 'nodeexec COMMAND -h' for a command's options.\n" +
		"Exit status: 0 when the operation reached its goal, 1 when it did not (or failed), 2 for bad input.\n")
	_, _ = io.WriteString(w, sb.String())
}

// helpCmd prints the usage, or with a command's name that command's help, on standard output.
func helpCmd(ctx context.Context, args []string) (bool, error) {
	if len(args) == 0 {
		writeUsage(os.Stdout)
		return true, nil
	}
	c, ok := lookup(args[0])
	if !ok || c.name == "help" {
		return false, unknownCommand(args[0])
	}
	// The command prints its own help, with its flags, as `COMMAND -h` does.
	words := append(append([]string{}, args[1:min(2, len(args))]...), "-h")
	return c.run(ctx, words)
}

// unknownCommand says so, with the usage, on standard error: bad input.
func unknownCommand(name string) error {
	fmt.Fprintf(os.Stderr, "nodeexec: unknown command %q\n\n", name)
	writeUsage(os.Stderr)
	return errUsage
}

// wantSubcommand answers a command that wants a subcommand first and got none, or -h: its usage, on
// standard output for -h (exit status 0), else on standard error (bad input).
func wantSubcommand(name string, args []string) error {
	c, _ := lookup(name)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(os.Stdout, "Usage:\n%s\nRun 'nodeexec help %s %s' for its options.\n", c.usage, c.name, strings.Join(c.subcommands, "|"))
		return errHelp
	}
	fmt.Fprintf(os.Stderr, "nodeexec %s: want one of %s\n\nUsage:\n%s", name, strings.Join(c.subcommands, ", "), c.usage)
	return errUsage
}
