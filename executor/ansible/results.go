package ansible

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

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

// nodeReport is the "report" a module result carries (docs/node-contract.md): the node's own record
// and what it really runs.
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

// runResults is one run's JSON report, read twice: go-ansible's types give Ansible's own keys and the
// stats; modules gives the keys the roles' modules add, which those types drop.
type runResults struct {
	*jsonresults.AnsiblePlaybookJSONResults
	modules moduleRun
}

// moduleRun is the run's report as far as the roles' modules extend it, task by task as in Plays.
type moduleRun struct {
	Plays []struct {
		Tasks []struct {
			Hosts map[string]moduleResult `json:"hosts"`
		} `json:"tasks"`
	} `json:"plays"`
}

// moduleResult is what a module of the roles adds to a host's result. Both are read only when used,
// so a foreign module's "steps" or "report" of another shape cannot spoil the run's results.
type moduleResult struct {
	Steps  json.RawMessage `json:"steps"`
	Report json.RawMessage `json:"report"`
}

// subStep is one entry of a module result's steps: what used to be one Ansible task.
type subStep struct {
	Name     string  `json:"name"`
	Status   string  `json:"status"`
	Start    string  `json:"start"`
	Duration float64 `json:"duration"`
	Msg      string  `json:"msg"`
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
}

// parseRun reads ansible-playbook's JSON stdout (the ansible.posix.json callback).
func parseRun(stdout []byte) (*runResults, error) {
	res, err := jsonresults.ParseJSONResultsStream(bytes.NewReader(stdout))
	if err != nil {
		return nil, err
	}
	out := &runResults{AnsiblePlaybookJSONResults: res}
	// The same stream again, decoded the same way (each value over the last).
	dec := json.NewDecoder(bytes.NewReader(stdout))
	for {
		err := dec.Decode(&out.modules)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the modules' results: %w", err)
		}
	}
}

// module is what the roles' modules added to host's result of task ti of play pi (zero when nothing).
func (r *runResults) module(pi, ti int, host string) moduleResult {
	if pi >= len(r.modules.Plays) || ti >= len(r.modules.Plays[pi].Tasks) {
		return moduleResult{}
	}
	return r.modules.Plays[pi].Tasks[ti].Hosts[host]
}

// subSteps are the module's own steps, none when it reports none (or not in the contract's shape).
func (m moduleResult) subSteps() []subStep {
	var steps []subStep
	if len(m.Steps) == 0 || json.Unmarshal(m.Steps, &steps) != nil {
		return nil
	}
	return steps
}

// nodeReport is the module's report of the node, nil when it sends none. An empty {} (a request
// refused before the node was read) is none: it must not hide a report an earlier task sent.
func (m moduleResult) nodeReport() *nodeReport {
	var keys map[string]json.RawMessage
	if len(m.Report) == 0 || json.Unmarshal(m.Report, &keys) != nil || len(keys) == 0 {
		return nil
	}
	var rep nodeReport
	if json.Unmarshal(m.Report, &rep) != nil {
		return nil
	}
	return &rep
}

// step is the sub-step as one of the node's steps, done by the module action.
func (s subStep) step(action string) executor.Step {
	st := executor.Step{Name: s.Name, Action: action, Message: s.Msg, Stdout: s.Stdout, Stderr: s.Stderr}
	setStatus(&st, s.Status)
	st.Started, st.Duration = stepTiming(s.Start, s.Duration)
	return st
}

// setStatus sets the flags a step's status (as the module and the progress callback say it) stands for.
func setStatus(st *executor.Step, status string) {
	switch status {
	case "changed":
		st.Changed = true
	case "failed", "unreachable":
		st.Failed = true
	case "skipped":
		st.Skipped = true
	}
}

// stepTiming reads a step's start (RFC 3339, UTC) and duration in seconds, to the microsecond (a float
// of seconds is not exact); a start that does not read stays zero.
func stepTiming(start string, seconds float64) (time.Time, time.Duration) {
	at, _ := time.Parse(time.RFC3339Nano, start)
	return at, time.Duration(math.Round(seconds*1e6)) * time.Microsecond
}

// isMeta says whether a result is of a meta task (end_host and the like): flow control, not a step.
func isMeta(action string) bool {
	return action == "meta" || strings.HasSuffix(action, ".meta")
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
