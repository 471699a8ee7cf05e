package ansible

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	jsonresults "github.com/apenella/go-ansible/v2/pkg/execute/result/json"

	"github.com/nodeexec/nodeexec/executor"
)

// reportTask is the name of the last task of every bundled play (docs/node-contract.md); commandTask is
// the report of adhoc.yml, the one play that is about a command, not a release.
const (
	reportTask  = "nodeexec report"
	commandTask = "nodeexec command report"
)

// operation is what a run did; it decides what a clean finish means for a node.
type operation string

const (
	opDeploy   operation = "deploy"
	opRollback operation = "rollback"
	opStatus   operation = "status"
	opRestart  operation = "restart"
)

// nodeReport is the msg of the "nodeexec report" task: the node's own record and what it really runs.
type nodeReport struct {
	Service        string   `json:"service"`
	Current        string   `json:"current"`
	Previous       string   `json:"previous"`
	State          string   `json:"state"`
	LastError      string   `json:"last_error"`
	RunningVersion string   `json:"running_version"`
	Active         bool     `json:"active"`
	Releases       []string `json:"releases"`
	Removed        []string `json:"removed"`
	LockedBy       string   `json:"locked_by"`
	// The unit as systemd has it: its ActiveState, main process, and since when it is active (UTC, "" when
	// it is not) and for how many seconds.
	ActiveState   string          `json:"active_state"`
	MainPID       jsonInt         `json:"main_pid"`
	ActiveSince   string          `json:"active_since"`
	UptimeSeconds jsonInt         `json:"uptime_seconds"`
	Resources     resourcesReport `json:"resources"`
	// Failed is the node's newest failed release kept for inspection; Evidence what this run kept of
	// its own failure (with the journal excerpt). Both are {} when there is none.
	Failed   executor.FailedRelease `json:"failed"`
	Evidence executor.FailedRelease `json:"evidence"`
}

// resourcesReport is what the unit uses, as the node reads it from systemd ({} when not running).
type resourcesReport struct {
	MemoryBytes jsonInt `json:"memory_bytes"`
	CPUNSec     jsonInt `json:"cpu_nsec"`
	Tasks       jsonInt `json:"tasks"`
}

// resources is the report's figures, nil when there are none.
func (u resourcesReport) resources() *executor.Resources {
	if u == (resourcesReport{}) {
		return nil
	}
	return &executor.Resources{MemoryBytes: int64(u.MemoryBytes), CPUSeconds: float64(u.CPUNSec) / 1e9, Tasks: int64(u.Tasks)}
}

// commandReport is the msg of adhoc.yml's "nodeexec command report" task.
type commandReport struct {
	RC        jsonInt `json:"rc"`
	Stdout    string  `json:"stdout"`
	Stderr    string  `json:"stderr"`
	Truncated bool    `json:"truncated"`
	Error     string  `json:"error"`
}

// jsonInt is a number Ansible may print as a number or, from an expression, as a string of one.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	text := strings.Trim(string(b), `"`)
	if text == "" || text == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", b)
	}
	*n = jsonInt(v)
	return nil
}

// nodeOutcome is everything one run said about one host.
type nodeOutcome struct {
	steps       []executor.Step
	report      *nodeReport
	command     *commandReport
	lastFailure *executor.Step
	unreachable bool
	failed      bool
	changed     bool
	seen        bool
}

// collect walks the run's plays and tasks once and groups the per-host results.
func collect(res *jsonresults.AnsiblePlaybookJSONResults) map[string]*nodeOutcome {
	out := map[string]*nodeOutcome{}
	get := func(host string) *nodeOutcome {
		o, ok := out[host]
		if !ok {
			o = &nodeOutcome{}
			out[host] = o
		}
		return o
	}
	if res == nil {
		return out
	}
	for _, play := range res.Plays {
		for _, task := range play.Tasks {
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
				if name == reportTask {
					if rep, err := parseReport(r.Msg); err == nil {
						o.report = rep
					}
					continue
				}
				if name == commandTask {
					var rep commandReport
					if parseMsg(r.Msg, &rep) == nil {
						o.command = &rep
					}
					continue
				}
				step := executor.Step{
					Name: name, Action: r.Action, Changed: r.Changed, Skipped: r.Skipped,
					Failed:  r.Failed || r.Unreachable,
					Message: text(r.Msg), Stdout: text(r.Stdout), Stderr: text(r.Stderr),
				}
				o.steps = append(o.steps, step)
				if step.Failed {
					last := step
					o.lastFailure = &last
				}
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

// taskName drops the "<role> : " prefix Ansible puts on a role's task names: the plain task name is
// what a person reads in an error.
func taskName(name string) string {
	if _, plain, ok := strings.Cut(name, " : "); ok {
		return plain
	}
	return name
}

func parseReport(msg any) (*nodeReport, error) {
	var rep nodeReport
	if err := parseMsg(msg, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
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
func nodeResults(res *jsonresults.AnsiblePlaybookJSONResults, op operation, service string, nodes []executor.Node, stderr string) []executor.NodeResult {
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
func cleanupResults(res *jsonresults.AnsiblePlaybookJSONResults, service string, nodes []executor.Node, stderr string) []CleanupResult {
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

func failureMessage(o *nodeOutcome) string {
	if o.lastFailure == nil {
		return "failed without a task result"
	}
	msg := o.lastFailure.Message
	if msg == "" {
		msg = firstLine(o.lastFailure.Stderr)
	}
	// The roles' own fail tasks are written for people and already name the task that failed first.
	if o.lastFailure.Action == "fail" || o.lastFailure.Action == "ansible.builtin.fail" {
		return msg
	}
	return fmt.Sprintf("task %q: %s", o.lastFailure.Name, msg)
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
