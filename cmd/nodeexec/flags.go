package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// errUsage means the flags were wrong; why has been said already, on standard error.
var errUsage = errors.New("usage")

// errHelp means a command's help was asked for and printed (exit status 0).
var errHelp = errors.New("help")

// collectFlags, when set, receives every command's flags instead of their being parsed: completion
// learns each command's flags from the flag sets the commands really parse.
var collectFlags func(*flag.FlagSet)

// parseFlags parses a command's flags. -h or --help prints the command's help on standard output
// (errHelp); a flag that is wrong is a usageError, which run reports with the help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if collectFlags != nil {
		collectFlags(fs)
		return errHelp
	}
	fs.SetOutput(io.Discard) // the flag package's own report would go to stderr even for -h
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		writeCommandHelp(os.Stdout, fs)
		return errHelp
	}
	return &usageError{msg: fmt.Sprintf("%s: %v", fs.Name(), err), fs: fs}
}

// writeCommandHelp writes a command's usage lines from the table of commands, and its flags. fs is named
// "nodeexec COMMAND [SUBCOMMAND]".
func writeCommandHelp(w io.Writer, fs *flag.FlagSet) {
	words := strings.Fields(strings.TrimPrefix(fs.Name(), "nodeexec "))
	fmt.Fprintln(w, "Usage:")
	if c, ok := lookup(words[0]); ok {
		for _, line := range strings.SplitAfter(c.usage, "\n") {
			// a command with subcommands: the line of the one asked for
			if len(words) == 1 || strings.HasPrefix(strings.TrimSpace(line), fs.Name()+" ") {
				fmt.Fprint(w, line)
			}
		}
		if c.about != "" {
			fmt.Fprint(w, "\n"+c.about)
		}
	}
	fmt.Fprintln(w, "\nOptions:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// deliveryFlag is how the package reaches the nodes.
func deliveryFlag(fs *flag.FlagSet, d *executor.Delivery) {
	fs.Func("delivery", "pull (default: each node downloads --package-url) or push (download and check it here, copy it to the nodes)", func(v string) error {
		*d = executor.Delivery(v)
		return executor.ValidateDelivery(*d)
	})
}

// healthFlags are the verification of a deploy, a rollback or a restart.
func healthFlags(fs *flag.FlagSet, h *executor.HealthCheck) {
	fs.IntVar(&h.HTTPPort, "health-port", 0, "HTTP health check port on the node (0: no HTTP check)")
	fs.StringVar(&h.HTTPPath, "health-path", "/health", "HTTP health check path")
	fs.IntVar(&h.HTTPStatus, "health-status", 200, "expected HTTP status")
	fs.IntVar(&h.TCPPort, "tcp-port", 0, "TCP port that must accept connections (0: no TCP check)")
	fs.IntVar(&h.Retries, "health-retries", 10, "verification may take health-retries × health-delay in all")
	fs.DurationVar(&h.Delay, "health-delay", time.Second, "see health-retries")
	fs.DurationVar(&h.Interval, "health-interval", 0, "how often the node looks at the unit and the checks while it verifies (0: 200ms)")
	fs.DurationVar(&h.Stable, "health-stable", 0, "how long the unit and every check must keep passing once all passed (e.g. 10s)")
}

// validLabels checks the free text a request carries beside its fields, as the server does, before
// anything is sent.
func validLabels(key, by string) error {
	if err := executor.ValidateLabel("idempotency_key", key); err != nil {
		return err
	}
	return executor.ValidateLabel("requested_by", by)
}
