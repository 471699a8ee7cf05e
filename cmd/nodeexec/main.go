// Command nodeexec deploys services to nodes: it serves the HTTP API the Plan Layer calls, is a client of
// that API, and can run the executor directly without a server.
//
//	nodeexec serve                                   the API, with the embedded database by default
//	nodeexec deploy --service S --version V ...      ask the server, follow the deployment live
//	nodeexec status|rollback|cancel|logs <deployment-id>
//	nodeexec list | nodes --service S
//	nodeexec cleanup                                 run a cleanup pass on the server now, follow it
//	nodeexec drift [--service S]                     run a drift pass on the server now, follow it
//	nodeexec restart|service-status|adhoc            restart a service, read its unit, run an allow-listed command
//	nodeexec apply|delete|pods                       Kubernetes objects by manifest or label, and their pods
//	nodeexec direct deploy|rollback|status|cleanup   no server: run the executor from here
//	nodeexec database --postgresql-url-file F        a shared database for several replicas (FerretDB over PostgreSQL)
//
// Exit status: 0 when the operation reached its goal, 1 when it did not (or failed), 2 for bad input.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nodeexec/nodeexec"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
)

const usage = `nodeexec: deploy services to nodes with the bundled Ansible playbooks

The server:
  nodeexec serve [--config FILE] [--listen 127.0.0.1:8080] [--mongo-uri URI | --data-dir DIR] [--tokens-file F] [ssh options]
  nodeexec database --postgresql-url-file FILE [--listen 127.0.0.1:27018]   a database several serve replicas share
                                                    (FerretDB over PostgreSQL; docs/shared-database.md)

Client of a running server (--server URL, default $NODEEXEC_SERVER or http://127.0.0.1:8080):
  nodeexec deploy   --service S --version V --package-url URL --sha256 HEX --nodes H1,H2 [options]
  nodeexec deploy   --service S --version V --image IMG --workloads NS/Deployment/NAME[:CONTAINER] [--strategy blue-green] [options]
  nodeexec deploy   --applications FILE.json [options]   several services as one deployment ([--env|--config NAME=VALUE] for one)
  nodeexec scale    --service S --workloads NS/Kind/NAME --replicas N
  nodeexec status   <deployment-id> [--watch]
  nodeexec rollback <deployment-id> [--to <target-deployment-id>]   back to what each node ran before, or to what the target left it on
  nodeexec rollback --workload NS/Kind/NAME --to-revision N --service S   a Kubernetes workload back to a revision (see history)
  nodeexec cancel   <deployment-id>
  nodeexec logs     <deployment-id> [--lines N] [--node H] [--source service|events]
  nodeexec list     [--service S] [--state X]
  nodeexec nodes    [--service S [--host H]] [--version V] [--state X]   node records, every service's or one's
  nodeexec services                                  each service: its nodes, which versions run where
  nodeexec forget   --service S --host H             forget a node (a decommissioned host); recorded
  nodeexec cleanup  [--follow CLEANUP-ID] [--detach]   run a cleanup pass now (old releases, old records) and follow it
  nodeexec drift    [--service S] [--follow DRIFT-ID] [--detach]   read every node, compare it with its record, and follow it
  nodeexec restart  --service S --nodes H1,H2 [--health-port P ...] [--batch-size N]   restart and verify, follow it
  nodeexec service-status --service S --nodes H1,H2   running, main PID, since when, and the node's recorded version
  nodeexec adhoc    --name NAME --nodes H1,H2 [--service S]   run a command of the server's allow-list (admin token)
  nodeexec adhoc    --list                            the allow-list
  nodeexec apply    -n NS -f FILE [--dry-run]         server-side apply a manifest (- reads stdin), recorded; each object's outcome
  nodeexec delete   -n NS -l SELECTOR [--dry-run]     delete the Deployments, StatefulSets, Services, ConfigMaps, Secrets it picks
  nodeexec pods     -n NS [-l SELECTOR]               the pods now: phase, ready, restarts, node
  nodeexec history  -w NS/Kind/NAME[:CONTAINER]       a workload's revisions (rollout history)

Without a server (the executor, straight from this machine):
  nodeexec direct deploy   --service S --version V --package-url URL --sha256 HEX --nodes H1,H2 [options]
  nodeexec direct rollback --service S [--to V] --nodes H1,H2 [options]
  nodeexec direct status   --service S --nodes H1,H2 [options]
  nodeexec direct cleanup  --service S --keep N --nodes H1,H2 [options]
  nodeexec playbooks [--dir DIR]    write the bundled playbooks and roles out, print where
  nodeexec config check [--config FILE] [serve's flags]   check the configuration serve would use, print it (secrets masked)
  nodeexec version [--remote]       this build (--version too); --remote: the server's too

Run 'nodeexec COMMAND -h' for a command's options.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	if cmd == "--version" {
		cmd = "version"
	}
	var err error
	var ok bool
	switch cmd {
	case "deploy":
		ok, err = deployCmd(ctx, rest)
	case "rollback":
		ok, err = rollbackCmd(ctx, rest)
	case "scale":
		ok, err = scaleCmd(ctx, rest)
	case "status":
		ok, err = statusCmd(ctx, rest)
	case "cancel":
		ok, err = cancelCmd(ctx, rest)
	case "list":
		ok, err = listCmd(ctx, rest)
	case "nodes":
		ok, err = nodesCmd(ctx, rest)
	case "logs":
		ok, err = logsCmd(ctx, rest)
	case "cleanup":
		ok, err = cleanupCmd(ctx, rest)
	case "drift":
		ok, err = driftCmd(ctx, rest)
	case "restart":
		ok, err = restartCmd(ctx, rest)
	case "service-status":
		ok, err = serviceStatusCmd(ctx, rest)
	case "services":
		ok, err = servicesCmd(ctx, rest)
	case "forget":
		ok, err = forgetCmd(ctx, rest)
	case "adhoc":
		ok, err = adhocCmd(ctx, rest)
	case "apply":
		ok, err = applyCmd(ctx, rest)
	case "delete":
		ok, err = deleteCmd(ctx, rest)
	case "pods":
		ok, err = podsCmd(ctx, rest)
	case "history":
		ok, err = historyCmd(ctx, rest)
	case "direct":
		ok, err = directCmd(ctx, rest)
	case "serve":
		ok, err = serveCmd(ctx, rest)
	case "database":
		ok, err = databaseCmd(ctx, rest)
	case "playbooks":
		ok, err = playbooksCmd(rest)
	case "config":
		ok, err = configCmd(rest)
	case "version":
		ok, err = versionCmd(ctx, rest)
	default:
		fmt.Fprintf(os.Stderr, "nodeexec: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, errUsage):
		return 2
	case executor.IsValidation(err), isBadRequest(err), isFlagError(err):
		fmt.Fprintf(os.Stderr, "nodeexec %s: invalid input: %v\n", cmd, err)
		return 2
	case err != nil:
		fmt.Fprintf(os.Stderr, "nodeexec %s: %v\n", cmd, withHint(err))
		return 1
	case !ok:
		return 1
	}
	return 0
}

// isBadRequest reports whether the server refused the input (HTTP 400): bad input, exit status 2.
func isBadRequest(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status == http.StatusBadRequest
}

// playbooksCmd writes the bundled playbooks and roles out, for operators to run by hand.
func playbooksCmd(args []string) (bool, error) {
	fs := flag.NewFlagSet("nodeexec playbooks", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write into (default: the user cache dir)")
	if err := fs.Parse(args); err != nil {
		return false, errUsage
	}
	root := *dir
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return false, err
		}
		root = filepath.Join(cache, "nodeexec")
	}
	out, err := ansible.ExtractBundle(nodeexec.Bundle, root)
	if err != nil {
		return false, err
	}
	fmt.Println(out)
	return true, nil
}
