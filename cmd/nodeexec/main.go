// Command nodeexec deploys services to physical nodes with the bundled Ansible playbooks.
//
// Until the HTTP server lands, every command drives the executor directly from this machine:
//
//	nodeexec deploy   --service demo --version v2 --package-url URL --sha256 HEX --nodes h1,h2,h3
//	nodeexec rollback --service demo [--to v1] --nodes h1,h2,h3
//	nodeexec status   --service demo --nodes h1,h2,h3
//	nodeexec cleanup  --service demo --keep 3 --nodes h1,h2,h3
//
// Exit status: 0 when every node succeeded, 1 when any node did not, 2 for bad input.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodeexec/nodeexec/executor"
)

const usage = `nodeexec: deploy services to nodes with the bundled Ansible playbooks

Usage:
  nodeexec deploy   --service S --version V --package-url URL --sha256 HEX --nodes H1,H2 [options]
  nodeexec rollback --service S [--to V] --nodes H1,H2 [options]
  nodeexec status   --service S --nodes H1,H2 [options]
  nodeexec cleanup  --service S --keep N --nodes H1,H2 [options]
  nodeexec playbooks [--dir DIR]    write the bundled playbooks and roles out, print where

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
	var err error
	var ok bool
	switch cmd {
	case "deploy":
		ok, err = deployCmd(ctx, rest)
	case "rollback":
		ok, err = rollbackCmd(ctx, rest)
	case "status":
		ok, err = statusCmd(ctx, rest)
	case "cleanup":
		ok, err = cleanupCmd(ctx, rest)
	case "direct":
		ok, err = directCmd(ctx, rest)
	case "serve":
		ok, err = serveCmd(ctx, rest)
	case "playbooks":
		ok, err = playbooksCmd(rest)
	default:
		fmt.Fprintf(os.Stderr, "nodeexec: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, errUsage):
		return 2
	case executor.IsValidation(err):
		fmt.Fprintf(os.Stderr, "nodeexec %s: invalid input: %v\n", cmd, err)
		return 2
	case err != nil:
		fmt.Fprintf(os.Stderr, "nodeexec %s: %v\n", cmd, err)
		return 1
	case !ok:
		return 1
	}
	return 0
}
