package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
)

// logsCmd prints a deployment's log: the service's (its journal, its pods' logs) or the deployment's
// own events; and after it the failure of each node that failed or was rolled back, as the API keeps it
// (its failed tasks with their output, the evidence the node kept, the journal excerpt).
func logsCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("logs", &o)
	lines := fs.Int("lines", 100, "the newest lines, in all")
	node := fs.String("node", "", "only this node, workload or pod")
	source := fs.String("source", api.LogSourceService, "service (the service's own log: the unit's journal, the pods' logs) or events (the deployment's own)")
	pos, err := parseArgs(fs, args, 1, "one deployment id: nodeexec logs <deployment-id>")
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	if *lines < 1 {
		return false, &executor.ValidationError{Field: "lines", Reason: fmt.Sprintf("want a number from 1 to %d", executor.MaxLogLines)}
	}
	out, err := c.Logs(ctx, pos[0], client.LogsOptions{Lines: *lines, PodName: *node, Source: *source})
	if err != nil {
		return false, err
	}
	if o.json() { // the API's answer for the source asked, as it is
		return true, writeJSON(o.out, out)
	}
	// The API keeps the failures with the events: the service's log gets them from there.
	if *source == api.LogSourceService {
		events, err := c.Logs(ctx, pos[0], client.LogsOptions{Lines: 1, PodName: *node, Source: api.LogSourceEvents})
		if err != nil {
			return false, err
		}
		out.Failures = events.Failures
	}
	printLogs(o.out, out)
	return true, nil
}

// printLogs writes the lines, one block a node or pod in the order their lines come ("== <node or pod>
// (<container>)"), what could not be read, and each node's failure.
func printLogs(w io.Writer, out *api.Logs) {
	last := ""
	for _, l := range out.Logs {
		if head := l.PodName + " (" + l.Container + ")"; head != last {
			fmt.Fprintf(w, "== %s\n", head)
			last = head
		}
		fmt.Fprintf(w, "%s %s\n", l.Timestamp.Format(time.RFC3339), l.Message)
	}
	for _, e := range out.Errors {
		fmt.Fprintf(w, "!! %s: %s\n", e.PodName, e.Error)
	}
	if out.Error != "" {
		fmt.Fprintf(w, "!! %s\n", out.Error)
	}
	for _, f := range out.Failures {
		printFailure(w, f)
	}
}

// printFailure is one node's failure block.
func printFailure(w io.Writer, f api.NodeFailure) {
	fmt.Fprintf(w, "\n!! %s %s: %s\n", f.PodName, f.State, dash(f.Error))
	for _, t := range f.FailedTasks {
		action := ""
		if t.Action != "" {
			action = " (" + t.Action + ")"
		}
		fmt.Fprintf(w, "   failed task %q%s at %s: %s\n", t.Name, action, t.Time.Format(time.RFC3339), dash(t.Message))
		indented(w, "stdout", strings.Split(strings.TrimRight(t.Stdout, "\n"), "\n"))
		indented(w, "stderr", strings.Split(strings.TrimRight(t.Stderr, "\n"), "\n"))
	}
	if ev := f.Evidence; ev != nil {
		fmt.Fprintf(w, "   evidence of %s", ev.Version)
		if ev.At != "" {
			fmt.Fprintf(w, ", failed at %s", ev.At)
		}
		if ev.Reason != "" {
			fmt.Fprintf(w, ": %s", ev.Reason)
		}
		if ev.Dir != "" {
			fmt.Fprintf(w, " (kept on the node in %s)", ev.Dir)
		}
		fmt.Fprintln(w)
		indented(w, "journal", ev.Journal)
		indented(w, "unit status", ev.UnitStatus)
	}
}

// indented writes lines under a heading, indented; nothing when there are none.
func indented(w io.Writer, heading string, lines []string) {
	if len(lines) == 0 || (len(lines) == 1 && lines[0] == "") {
		return
	}
	fmt.Fprintf(w, "     %s:\n", heading)
	for _, l := range lines {
		fmt.Fprintf(w, "       %s\n", l)
	}
}
