package server

import (
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// maxFailedTasks bounds the failed task results a node's failure lists.
const maxFailedTasks = 10

// defaultLogLines is how many of its newest lines a node shows unless ?lines= asks for another number.
const defaultLogLines = 100

// maxLogEvents bounds how many events one logs request reads.
const maxLogEvents = 20000

// foldLogs tells a deployment's nodes from its events (oldest first), in the order of the
// deployment's nodes: each node's newest lines, at most lines of them, one an event; and, apart, the
// failure of a node that failed or was rolled back, or kept the evidence of a failed release (a node
// that succeeded after a failed attempt, and kept nothing, shows none). only, unless empty, is the one
// node to tell. Pods' own logs are not in events: the caller adds them.
func foldLogs(d *store.Deployment, evs []store.Event, lines int, only string) api.Logs {
	byNode := map[string][]string{}
	failures := map[string]*api.NodeFailure{}
	failure := func(node string) *api.NodeFailure {
		if failures[node] == nil {
			failures[node] = &api.NodeFailure{FailedTasks: []api.FailedTask{}}
		}
		return failures[node]
	}
	for _, ev := range evs {
		if ev.Node == "" || (only != "" && ev.Node != only) {
			continue
		}
		switch {
		case ev.Type == store.EventEvidence && ev.Evidence != nil:
			failure(ev.Node).Evidence = renderEvidence(ev.Evidence)
		case ev.Type == store.EventStep && ev.Step != nil && ev.Step.Failed:
			f := failure(ev.Node)
			f.FailedTasks = append(f.FailedTasks, api.FailedTask{Time: ev.Time, Name: ev.Step.Name, Action: ev.Step.Action,
				Message: ev.Step.Message, Stdout: ev.Step.Stdout, Stderr: ev.Step.Stderr})
			if len(f.FailedTasks) > maxFailedTasks {
				f.FailedTasks = f.FailedTasks[1:]
			}
		}
		byNode[ev.Node] = append(byNode[ev.Node], logLine(ev))
	}
	out := api.Logs{DeploymentID: d.ID, Lines: lines, Logs: []api.NodeLog{}}
	for _, n := range d.Nodes {
		if only != "" && n.Host != only {
			continue
		}
		l := byNode[n.Host]
		if len(l) > lines {
			l = l[len(l)-lines:]
		}
		if l == nil {
			l = []string{}
		}
		nl := api.NodeLog{Name: n.Host, Lines: l}
		f := failures[n.Host]
		if n.State == executor.StateFailed || n.State == executor.StateRolledBack || (f != nil && f.Evidence != nil) {
			if f == nil {
				f = &api.NodeFailure{FailedTasks: []api.FailedTask{}}
			}
			f.State, f.Error = api.State(n.State), n.LastError
			nl.Failure = f
		}
		out.Logs = append(out.Logs, nl)
	}
	return out
}

// logLine is an event as a line of its node's log: "<time> <type>[ <state>][ <message>]".
func logLine(ev store.Event) string {
	line := ev.Time.Format(time.RFC3339) + " " + string(ev.Type)
	if ev.State != "" {
		line += " " + string(ev.State)
	}
	if ev.Message != "" {
		line += " " + ev.Message
	}
	return line
}
