package ansible

import (
	"encoding/json"
	"fmt"
	"strings"

	jsonresults "github.com/apenella/go-ansible/v2/pkg/execute/result/json"

	"github.com/nodeexec/nodeexec/executor"
)

// commandTask is the report of adhoc.yml, the one play that is about a command, not a release.
const commandTask = "nodeexec command report"

// operation is what a run did; it decides what a clean finish means for a node.
type operation string

const (
	opDeploy   operation = "deploy"
	opRollback operation = "rollback"
	opStatus   operation = "status"
	opRestart  operation = "restart"
)

// nodeOutcome is everything one run said about one host.
type nodeOutcome struct {
	steps   []executor.Step
	report  *nodeReport
	command *commandReport
	// failedTask is the last failed task as Ansible reports it (its msg says why, for people);
	// lastFailure the step that failed in it: the failed sub-step when the module reports its steps.
	failedTask  *executor.Step
	lastFailure *executor.Step
	unreachable bool
	failed      bool
	changed     bool
	seen        bool
}

// collect walks the run's plays and tasks once and groups the per-host results.
func collect(res *runResults) map[string]*nodeOutcome {
	out := map[string]*nodeOutcome{}
	get := func(host string) *nodeOutcome {
		o, ok := out[host]
		if !ok {
			o = &nodeOutcome{}
			out[host] = o
		}
		return o
	}
	if res == nil || res.AnsiblePlaybookJSONResults == nil {
		return out
	}
	for pi, play := range res.Plays {
		for ti, task := range play.Tasks {
			name := ""
			if task.Task != nil {
				name = taskName(task.Task.Name)
			}
			for host, r := range task.Hosts {
				if r == nil {
					continue
				}
				o := get(host)
				o.seen = true
				if isMeta(r.Action) {
					continue
				}
				m := res.module(pi, ti, host)
				if rep := m.nodeReport(); rep != nil {
					o.report = rep
				}
				if name == commandTask {
					var rep commandReport
					if parseMsg(r.Msg, &rep) == nil {
						o.command = &rep
					}
					continue
				}
				o.addTask(name, r, m.subSteps())
			}
		}
	}
	for host, s := range res.Stats {
		if s == nil {
			continue
		}
		o := get(host)
		o.seen = true
		o.unreachable = s.Unreachable > 0
		o.failed = s.Failures > 0
		o.changed = s.Changed > 0
	}
	return out
}

// addTask adds one task's result on the host: the module's sub-steps when it reports them, else the
// task as one step. A failed task whose sub-steps show no failure adds itself as the failed step.
// A failed sub-step of a task that went through is shown, but does not fail the node.
func (o *nodeOutcome) addTask(name string, r *jsonresults.AnsiblePlaybookJSONResultsPlayTaskHostsItem, subs []subStep) {
	task := executor.Step{
		Name: name, Action: r.Action, Changed: r.Changed, Skipped: r.Skipped,
		Failed:  r.Failed || r.Unreachable,
		Message: text(r.Msg), Stdout: text(r.Stdout), Stderr: text(r.Stderr),
	}
	var failedSub *executor.Step
	for _, s := range subs {
		st := s.step(r.Action)
		o.steps = append(o.steps, st)
		if st.Failed {
			failedSub = &st
		}
	}
	if !task.Failed {
		if len(subs) == 0 {
			o.steps = append(o.steps, task)
		}
		return
	}
	o.failedTask = &task
	o.lastFailure = failedSub
	if failedSub == nil {
		o.steps = append(o.steps, task)
		o.lastFailure = &task
	}
}

// taskName drops the "<role> : " prefix Ansible puts on a role's task names: the plain task name is
// what a person reads in an error.
func taskName(name string) string {
	if _, plain, ok := strings.Cut(name, " : "); ok {
		return plain
	}
	return name
}

// parseMsg decodes a report task's msg into one of the report types.
func parseMsg(msg any, into any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("report is not the contract's shape: %w", err)
	}
	return nil
}

// text renders a result field (string, list of lines or structure) as one string.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		lines := make([]string, 0, len(x))
		for _, l := range x {
			lines = append(lines, text(l))
		}
		return strings.Join(lines, "\n")
	default:
		data, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(data)
	}
}

// nodeResults maps one run's results back to each requested node. It is pure: the decision of what a
// node's state is lives here and is table-tested.
func nodeResults(res *runResults, op operation, service string, nodes []executor.Node, stderr string) []executor.NodeResult {
	outcomes := collect(res)
	results := make([]executor.NodeResult, 0, len(nodes))
	for _, n := range nodes {
		r := executor.NodeResult{
			NodeStatus: executor.NodeStatus{Host: n.Host, Service: service, Platform: executor.PlatformPhysical},
			Stderr:     stderr,
		}
		o := outcomes[n.Host]
		if o == nil || !o.seen {
			r.State = executor.StateFailed
			r.LastError = "ansible-playbook reported nothing for this node" + stderrHint(stderr)
			results = append(results, r)
			continue
		}
		r.Steps = o.steps
		r.Changed = o.changed
		if o.report != nil {
			r.CurrentVersion = o.report.Current
			r.PrevVersion = o.report.Previous
			r.RunningVersion = o.report.RunningVersion
			r.Failed, r.Evidence = failedRelease(o.report.Failed), failedRelease(o.report.Evidence)
		}
		r.State, r.LastError = decide(op, o)
		r.Transient = o.unreachable
		if o.unreachable {
			r.LastError = unreachable(failureMessage(o), res.ssh, n)
		}
		results = append(results, r)
	}
	return results
}

func failedRelease(f executor.FailedRelease) *executor.FailedRelease {
	if f.Version == "" {
		return nil
	}
	return &f
}

// cleanupResults is nodeResults for a cleanup run, with the releases each node kept and removed; a
// node's Error is set only when the cleanup itself did not go through there.
func cleanupResults(res *runResults, service string, nodes []executor.Node, stderr string) []CleanupResult {
	outcomes := collect(res)
	statuses := nodeResults(res, opStatus, service, nodes, stderr)
	out := make([]CleanupResult, len(statuses))
	for i, r := range statuses {
		out[i] = CleanupResult{NodeResult: r}
		o := outcomes[r.Host]
		switch {
		case o == nil || !o.seen || o.unreachable || o.failed || o.lastFailure != nil:
			out[i].Error = r.LastError
		case o.report == nil:
			out[i].Error = "the node sent no report"
		default:
			out[i].Kept, out[i].Removed = o.report.Releases, o.report.Removed
		}
	}
	return out
}

// decide turns one node's outcome into its state and, when it failed, the reason a person can act on.
func decide(op operation, o *nodeOutcome) (executor.State, string) {
	switch {
	case o.unreachable:
		return executor.StateFailed, "host unreachable: " + failureMessage(o)
	case o.failed || o.lastFailure != nil:
		reason := failureMessage(o)
		if op == opDeploy && o.report != nil && o.report.State == string(executor.StateRolledBack) {
			return executor.StateRolledBack, reason
		}
		return executor.StateFailed, reason
	}
	switch op {
	case opDeploy, opRestart:
		return executor.StateSuccess, ""
	case opRollback:
		return executor.StateRolledBack, ""
	}
	if o.report == nil {
		return executor.StateFailed, "the node sent no report"
	}
	state := executor.State(o.report.State)
	if state == "" {
		return executor.StatePending, "" // never deployed here
	}
	if !state.Valid() {
		return executor.StateFailed, fmt.Sprintf("the node reports an unknown state %q", o.report.State)
	}
	return state, o.report.LastError
}

// failureMessage is why the node failed: the failed task's msg, after its name unless the task is
// one written for people (the roles' own modules and fail tasks), whose messages already name the step
// that failed.
func failureMessage(o *nodeOutcome) string {
	t := o.failedTask
	if t == nil {
		return "failed without a task result"
	}
	msg := t.Message
	if msg == "" {
		msg = firstLine(t.Stderr)
	}
	if writtenForPeople(t.Action) {
		return msg
	}
	return fmt.Sprintf("task %q: %s", t.Name, msg)
}

// peopleActions are the modules whose failure messages are complete sentences for people.
var peopleActions = map[string]bool{"fail": true, "nodeexec_release": true, "nodeexec_lock": true, "nodeexec_command": true}

// writtenForPeople says whether action (short or fully qualified) is one of peopleActions.
func writtenForPeople(action string) bool {
	return peopleActions[action[strings.LastIndexByte(action, '.')+1:]]
}

func stderrHint(stderr string) string {
	if line := lastLine(stderr); line != "" {
		return ": " + line
	}
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
