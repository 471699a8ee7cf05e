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

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		writeUsage(os.Stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "-help":
		cmd = "help"
	case "--version", "-version":
		cmd = "version"
	}
	c, found := lookup(cmd)
	if !found {
		unknownCommand(cmd)
		return 2
	}
	ok, err := c.run(ctx, rest)
	asJSON := wantsJSON(rest)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		var ue *usageError
		if errors.As(err, &ue) { // the others have said why already
			reportError(cmd, err, asJSON, true)
		}
		return 2
	case executor.IsValidation(err), isBadRequest(err), isFlagError(err):
		reportError(cmd, err, asJSON, true)
		return 2
	case err != nil:
		reportError(cmd, withHint(err), asJSON, false)
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
	if err := parseFlags(fs, args); err != nil {
		return false, err
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
