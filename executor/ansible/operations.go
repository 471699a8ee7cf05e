package ansible

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
)

var (
	_ executor.Restarter        = (*Executor)(nil)
	_ executor.ServiceInspector = (*Executor)(nil)
	_ executor.CommandRunner    = (*Executor)(nil)
)

// Restart restarts req.Service on every node under the node lock (restart.yml) and verifies it as a
// deploy does: the unit active, then the health checks. No version changes; each node reports the
// versions of its own record and, when it failed, which check.
func (e *Executor) Restart(ctx context.Context, req executor.RestartRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	vars := e.commonVars(req.Service, req.DeploymentID)
	healthVars(vars, req.Health)
	log := e.log.WithFields(logrus.Fields{"deployment_id": req.DeploymentID, "service": req.Service, "operation": "restart"})
	return e.write(ctx, log, opRestart, "restart.yml", vars, req.Service, req.Nodes, req.Progress)
}

// ServiceStatus reads each node's unit (running, main PID, since when) and its own release record, with
// status.yml: read-only, no lock.
func (e *Executor) ServiceStatus(ctx context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	res, stderr, err := e.run(ctx, []string{"status.yml"}, e.nodeVars(req.Service), req.Nodes, nil)
	if res == nil && err != nil {
		return nil, err
	}
	return serviceStatuses(res, req.Service, req.Nodes, stderr), nil
}

// defaultMaxOutput bounds a command's stdout and stderr per node when the request does not.
const defaultMaxOutput = 64 << 10

// RunCommand runs req.Argv on every node with adhoc.yml (Ansible's command module with argv: no shell),
// without a lock, and returns each node's exit status and output, cut to req.MaxOutput bytes each.
func (e *Executor) RunCommand(ctx context.Context, req executor.CommandRequest) ([]executor.CommandResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	limit := req.MaxOutput
	if limit == 0 {
		limit = defaultMaxOutput
	}
	vars := map[string]any{
		"nodeexec_command":            req.Argv,
		"nodeexec_command_max_output": limit,
		"nodeexec_become":             e.cfg.Become,
	}
	if req.Timeout > 0 {
		vars["nodeexec_command_timeout"] = seconds(req.Timeout)
	}
	e.log.WithFields(logrus.Fields{"command": req.Name, "argv": req.Argv, "nodes": len(req.Nodes)}).Info("running adhoc.yml")
	res, stderr, err := e.run(ctx, []string{"adhoc.yml"}, vars, req.Nodes, nil)
	if res == nil && err != nil {
		return nil, err
	}
	return commandResults(res, req.Nodes, stderr, limit), nil
}

// serviceStatuses maps a status.yml run to each node's unit and record. Pure, like nodeResults.
func serviceStatuses(res *runResults, service string, nodes []executor.Node, stderr string) []executor.ServiceStatus {
	outcomes := collect(res)
	statuses := nodeResults(res, opStatus, service, nodes, stderr)
	out := make([]executor.ServiceStatus, len(statuses))
	for i, r := range statuses {
		s := executor.ServiceStatus{Host: r.Host, Service: service}
		o := outcomes[r.Host]
		switch {
		case o == nil || !o.seen || o.unreachable || o.failed || o.lastFailure != nil:
			s.Error = r.LastError
		case o.report == nil:
			s.Error = "the node sent no report"
		default:
			rep := o.report
			s.Running, s.ActiveState, s.MainPID = rep.Active, rep.ActiveState, int(rep.MainPID)
			s.CurrentVersion, s.PrevVersion, s.RunningVersion = rep.Current, rep.Previous, rep.RunningVersion
			s.State, s.LastError = executor.State(rep.State), rep.LastError
			if at, err := time.Parse(time.RFC3339, rep.ActiveSince); err == nil && rep.Active {
				s.Since, s.UptimeSeconds = &at, int64(rep.UptimeSeconds)
			}
			s.Resources = rep.Resources.resources()
		}
		out[i] = s
	}
	return out
}

// commandResults maps an adhoc.yml run to each node's command result, each stream cut to limit bytes.
func commandResults(res *runResults, nodes []executor.Node, stderr string, limit int) []executor.CommandResult {
	outcomes := collect(res)
	out := make([]executor.CommandResult, len(nodes))
	for i, n := range nodes {
		r := executor.CommandResult{Host: n.Host, RC: -1}
		o := outcomes[n.Host]
		switch {
		case o == nil || !o.seen:
			r.Error = "ansible-playbook reported nothing for this node" + stderrHint(stderr)
		case o.unreachable:
			r.Error = unreachable(failureMessage(o), res.ssh, n)
		case o.command == nil:
			r.Error = failureMessage(o)
		default:
			c := o.command
			r.RC, r.Error = int(c.RC), c.Error
			var cutOut, cutErr bool
			r.Stdout, cutOut = executor.Cut(c.Stdout, limit)
			r.Stderr, cutErr = executor.Cut(c.Stderr, limit)
			r.Truncated = c.Truncated || cutOut || cutErr
			if r.Error != "" {
				r.RC = -1
			}
		}
		out[i] = r
	}
	return out
}
