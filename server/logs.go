package server

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// A deployment's logs, one entry a line: by default the service's own log (the unit's journal on each
// physical node, each pod's log on Kubernetes); with source=events, the deployment's own events and
// the evidence of its failed nodes.

// maxFailedTasks bounds the failed task results a node's failure lists.
const maxFailedTasks = 10

// defaultLogLines is how many of the newest lines a logs answer holds unless ?lines= asks for another
// number.
const defaultLogLines = 100

// maxLogEvents bounds how many events one logs request reads.
const maxLogEvents = 20000

// eventsContainer is the container of the deployment's own events: they are nodeexec's, not a pod's.
const eventsContainer = "nodeexec"

// deployLogs serves the newest lines of a deployment's log. pod_name picks one node, one workload or
// one pod (404 when it names none of the deployment's); a node or pod that cannot be read is named in
// the answer's errors, beside the others' lines.
func (s *Server) deployLogs(c *gin.Context) {
	ctx := c.Request.Context()
	lines, ok := queryInt(c, "lines", defaultLogLines, 1, executor.MaxLogLines)
	if !ok {
		return
	}
	source := c.DefaultQuery("source", api.LogSourceService)
	if source != api.LogSourceService && source != api.LogSourceEvents {
		failField(c, "source", `want "service" (the service's own log, the default) or "events" (the deployment's events)`)
		return
	}
	d, err := s.cfg.Store.Deployment(ctx, c.Param("deployment_id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	q := logQuery{source: source, lines: lines, podName: c.Query("pod_name")}
	if d.HasApplications() {
		s.applicationsLogs(c, d, q)
		return
	}
	pods := s.livePods(ctx, d)
	sc, found := scopeOf(d, pods, q.podName)
	if !found {
		c.AbortWithStatusJSON(http.StatusNotFound, api.Error{Error: "pod_name: deployment " + d.ID + " has no node or pod " + quote(q.podName) +
			"; its nodes: " + strings.Join(d.Targets().Hosts(), ", "), Code: "not_found", Field: "pod_name"})
		return
	}
	if out, ok := s.logs(c, d, q, sc); ok {
		c.JSON(http.StatusOK, out)
	}
}

// logQuery is what a logs request asks for.
type logQuery struct {
	source  string
	lines   int
	podName string
}

// logs reads the newest lines of a deployment's log in scope sc; false after answering with an error.
func (s *Server) logs(c *gin.Context, d *store.Deployment, q logQuery, sc logScope) (api.Logs, bool) {
	ctx := c.Request.Context()
	out := api.Logs{DeploymentID: d.ID, Source: q.source, Lines: q.lines, Logs: []api.LogEntry{}}
	switch {
	case q.source == api.LogSourceEvents:
		evs, err := s.cfg.Store.Events(ctx, d.ID, 0, maxLogEvents)
		if err != nil {
			s.failErr(c, err)
			return out, false
		}
		out.Logs, out.Failures = foldLogs(d, evs, sc.node)
	case d.Platform == executor.PlatformK8s:
		if _, ok := s.cfg.K8s.(executor.PodInspector); !ok {
			out.Error = "this server has no Kubernetes cluster to read the pods' logs from; the deployment's own events are at ?source=events"
		}
		out.Logs, out.Errors = s.readPodLogs(ctx, sc.pods, q.lines)
	default:
		if !s.readJournals(c, d, sc.node, q.lines, &out) {
			return out, false
		}
	}
	out.Logs = newest(out.Logs, q.lines)
	return out, true
}

// logScope is what pod_name picks: a node (host or workload) of the deployment, and the pods to read.
type logScope struct {
	node string // "": every node
	pods []podRef
}

// scopeOf is the scope pod_name names: every node when empty; false when it names none of the
// deployment's nodes and none of its live pods.
func scopeOf(d *store.Deployment, pods map[string]workloadPods, podName string) (logScope, bool) {
	switch {
	case podName == "":
		return logScope{pods: allPods(d, pods)}, true
	case d.Node(podName) != nil:
		var refs []podRef
		for _, pod := range pods[podName].pods {
			refs = append(refs, podRef{w: pods[podName].w, pod: pod.Name})
		}
		return logScope{node: podName, pods: refs}, true
	}
	if p := findPod(pods, podName); p != nil {
		return logScope{node: p.w.Host(), pods: []podRef{*p}}, true
	}
	return logScope{}, false
}

// readJournals reads the unit's journal on the deployment's nodes (only one, unless only is empty) into
// out. A server whose executor cannot read journals answers with no lines and says why; a run that
// could not be made at all is 502. false after answering.
func (s *Server) readJournals(c *gin.Context, d *store.Deployment, only string, lines int, out *api.Logs) bool {
	exec, err := s.executorFor(executor.PlatformPhysical)
	reader, ok := exec.(executor.JournalReader)
	if err != nil || !ok {
		out.Error = "this server's executor cannot read the service's journal on its nodes; the deployment's own events are at ?source=events"
		return true
	}
	var nodes []executor.Node
	for _, n := range d.Targets().Nodes {
		if only == "" || n.Host == only {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return true
	}
	ctx, done, ok := s.inspection(c)
	if !ok {
		return false
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, serviceCheckTimeout)
	defer cancel()
	journals, err := reader.Journal(ctx, executor.JournalRequest{Service: d.Service, Nodes: nodes, Lines: lines})
	if err != nil {
		s.runFailed(c, "reading the journal of "+d.Service+".service", err)
		return false
	}
	out.Logs, out.Errors = journalEntries(d.Service, journals)
	return true
}

// journalEntries are the nodes' journal lines as log entries, and the nodes that could not be read.
func journalEntries(service string, journals []executor.NodeJournal) ([]api.LogEntry, []api.LogReadError) {
	entries := []api.LogEntry{}
	var errs []api.LogReadError
	for _, j := range journals {
		if j.Error != "" {
			errs = append(errs, api.LogReadError{PodName: j.Host, Error: j.Error})
		}
		for _, l := range j.Lines {
			unit := l.Unit
			if unit == "" {
				unit = service + ".service"
			}
			entries = append(entries, api.LogEntry{Timestamp: l.Time.UTC(), PodName: j.Host, Container: unit, Message: l.Message})
		}
	}
	return entries, errs
}

// newest orders entries by time (a node's or pod's own order kept among equal times) and keeps the
// newest lines of them.
func newest(entries []api.LogEntry, lines int) []api.LogEntry {
	slices.SortStableFunc(entries, func(a, b api.LogEntry) int { return a.Timestamp.Compare(b.Timestamp) })
	if len(entries) > lines {
		entries = entries[len(entries)-lines:]
	}
	return entries
}

// foldLogs tells a deployment's nodes from its events (oldest first): each event of a node a line;
// and, apart, the failure of a node that failed or was rolled back, or kept the evidence of a failed
// release (a node that succeeded after a failed attempt, and kept nothing, shows none), in the order
// of the deployment's nodes. only, unless empty, is the one node to tell.
func foldLogs(d *store.Deployment, evs []store.Event, only string) ([]api.LogEntry, []api.NodeFailure) {
	entries := []api.LogEntry{}
	failures := map[string]*api.NodeFailure{}
	failure := func(node string) *api.NodeFailure {
		if failures[node] == nil {
			failures[node] = &api.NodeFailure{PodName: node, FailedTasks: []api.FailedTask{}}
		}
		return failures[node]
	}
	for _, ev := range evs {
		if ev.Node == "" || (only != "" && ev.Node != only) || d.Node(ev.Node) == nil {
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
		entries = append(entries, api.LogEntry{Timestamp: ev.Time.UTC(), PodName: ev.Node, Container: eventsContainer, Message: eventMessage(ev)})
	}
	var out []api.NodeFailure
	for _, n := range d.Nodes {
		if only != "" && n.Host != only {
			continue
		}
		f := failures[n.Host]
		if n.State == executor.StateFailed || n.State == executor.StateRolledBack || (f != nil && f.Evidence != nil) {
			if f == nil {
				f = failure(n.Host)
			}
			f.State, f.Error = api.State(n.State), n.LastError
			out = append(out, *f)
		}
	}
	return entries, out
}

// eventMessage is an event as a line of its node's log: "<type>[ <state>][ <message>]".
func eventMessage(ev store.Event) string {
	line := string(ev.Type)
	if ev.State != "" {
		line += " " + string(ev.State)
	}
	if ev.Message != "" {
		line += " " + ev.Message
	}
	return line
}

// podLogLines reads one pod's newest lines with their times, where the executor can tell them.
func podLogLines(ctx context.Context, insp executor.PodInspector, r podRef, lines int) ([]executor.JournalLine, error) {
	if timer, ok := insp.(executor.PodLogTimer); ok {
		return timer.PodLogLines(ctx, r.w.Namespace, r.pod, r.w.Container, lines)
	}
	raw, err := insp.PodLogs(ctx, r.w.Namespace, r.pod, r.w.Container, lines)
	out := make([]executor.JournalLine, 0, len(raw))
	for _, l := range raw {
		out = append(out, executor.JournalLine{Unit: r.w.Container, Message: l}) // no time known: the zero time
	}
	return out, err
}

// podEntries are a pod's lines as log entries.
func podEntries(pod string, lines []executor.JournalLine) []api.LogEntry {
	out := make([]api.LogEntry, 0, len(lines))
	for _, l := range lines {
		out = append(out, api.LogEntry{Timestamp: l.Time.UTC(), PodName: pod, Container: l.Unit, Message: l.Message})
	}
	return out
}
