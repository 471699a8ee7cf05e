package server

import (
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// deploymentLogs is GET /internal/v1/deploy/logs: each node's lines, then each pod's.
type deploymentLogs struct {
	DeploymentID string    `json:"deployment_id"`
	Lines        int       `json:"lines"`
	Logs         []nodeLog `json:"logs"`
}

type nodeLog struct {
	Name  string   `json:"name"`
	Lines []string `json:"lines"`
	// Node is the workload a pod's log belongs to; Error says why a pod's log could not be read.
	Node  string `json:"node,omitempty"`
	Error string `json:"error,omitempty"`
	// Failure is the evidence of a node that failed (or was rolled back): set apart from the lines so
	// it is never crowded out by them.
	Failure *nodeFailure `json:"failure,omitempty"`
}

// nodeFailure is what the deployment's records hold of why a node failed: the failed tasks' own
// output, and what the node kept (the failed release, the unit's journal excerpt and status).
type nodeFailure struct {
	State executor.State `json:"state"`
	Error string         `json:"error,omitempty"`
	// FailedTasks are the node's newest failed task results, oldest first.
	FailedTasks []failedTask `json:"failed_tasks"`
	// Evidence is what the node kept on itself, with the journal excerpt captured before the rollback.
	Evidence *executor.FailedRelease `json:"evidence,omitempty"`
}

type failedTask struct {
	Time    time.Time `json:"time"`
	Name    string    `json:"name"`
	Action  string    `json:"action,omitempty"`
	Message string    `json:"message,omitempty"`
	Stdout  string    `json:"stdout,omitempty"`
	Stderr  string    `json:"stderr,omitempty"`
}

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
func foldLogs(d *store.Deployment, evs []store.Event, lines int, only string) deploymentLogs {
	byNode := map[string][]string{}
	failures := map[string]*nodeFailure{}
	failure := func(node string) *nodeFailure {
		if failures[node] == nil {
			failures[node] = &nodeFailure{FailedTasks: []failedTask{}}
		}
		return failures[node]
	}
	for _, ev := range evs {
		if ev.Node == "" || (only != "" && ev.Node != only) {
			continue
		}
		switch {
		case ev.Type == store.EventEvidence && ev.Evidence != nil:
			failure(ev.Node).Evidence = ev.Evidence
		case ev.Type == store.EventStep && ev.Step != nil && ev.Step.Failed:
			f := failure(ev.Node)
			f.FailedTasks = append(f.FailedTasks, failedTask{Time: ev.Time, Name: ev.Step.Name, Action: ev.Step.Action,
				Message: ev.Step.Message, Stdout: ev.Step.Stdout, Stderr: ev.Step.Stderr})
			if len(f.FailedTasks) > maxFailedTasks {
				f.FailedTasks = f.FailedTasks[1:]
			}
		}
		byNode[ev.Node] = append(byNode[ev.Node], logLine(ev))
	}
	out := deploymentLogs{DeploymentID: d.ID, Lines: lines, Logs: []nodeLog{}}
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
		nl := nodeLog{Name: n.Host, Lines: l}
		f := failures[n.Host]
		if n.State == executor.StateFailed || n.State == executor.StateRolledBack || (f != nil && f.Evidence != nil) {
			if f == nil {
				f = &nodeFailure{FailedTasks: []failedTask{}}
			}
			f.State, f.Error = n.State, n.LastError
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
