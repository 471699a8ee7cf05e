package ansible

// What a run's results say beyond Ansible's own keys: the node report and the sub-steps the roles'
// modules return (docs/node-contract.md), and the command report of adhoc.yml.

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

// runResults is one run's JSON report, read twice: go-ansible's types give Ansible's own keys and the
// stats; modules gives the keys the roles' modules add, which those types drop.
type runResults struct {
	*jsonresults.AnsiblePlaybookJSONResults
	modules moduleRun
	// ssh is how the run connected to the nodes, for the error of one it could not reach; nil when it
	// did not go over SSH.
	ssh *SSH
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
	// Journal is the journal phase's lines.
	Journal []journalLine `json:"journal"`
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
