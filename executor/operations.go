package executor

import (
	"context"
	"time"
)

// The physical operations beside deploy and rollback: restart a service where it runs, read its unit,
// and run one of the operator's allow-listed commands. Only the ansible executor has them; callers ask
// with a type assertion, as for Scaler.

// Restarter restarts a service on nodes and verifies it as a deploy does (unit active, then the health
// checks). No version changes: each node reports the versions its own record names.
type Restarter interface {
	Restart(ctx context.Context, req RestartRequest) ([]NodeResult, error)
}

// ServiceInspector reports what a service's unit is doing on each node now, with the node's own record.
type ServiceInspector interface {
	ServiceStatus(ctx context.Context, req StatusRequest) ([]ServiceStatus, error)
}

// CommandRunner runs one argv (never a shell string) on each node and returns what it printed.
type CommandRunner interface {
	RunCommand(ctx context.Context, req CommandRequest) ([]CommandResult, error)
}

// RestartRequest asks for Service to be restarted on Nodes, and verified with Health.
type RestartRequest struct {
	DeploymentID string
	Service      string
	Nodes        []Node
	Health       HealthCheck
	// Progress, when set, sees each task result live (optional).
	Progress ProgressFunc `json:"-" bson:"-"`
}

// Validate checks a restart request before anything runs.
func (r RestartRequest) Validate() error {
	return firstError(ValidateService(r.Service), ValidateNodes(r.Nodes), ValidateHealth(r.Health), validateID(r.DeploymentID))
}

// ServiceStatus is a service's unit on one node, as systemd sees it now, and the node's own record.
type ServiceStatus struct {
	Host    string `json:"host"`
	Service string `json:"service"`
	// Running is true when the unit is active; ActiveState is systemd's word for it (active, inactive,
	// failed, activating, ...; "" when the node could not be read).
	Running     bool   `json:"running"`
	ActiveState string `json:"active_state"`
	// MainPID is the unit's main process (0 when none).
	MainPID int `json:"main_pid"`
	// Since is when the unit last became active (systemd's ActiveEnterTimestamp), and UptimeSeconds how
	// long ago that was; absent and 0 when it is not running.
	Since         *time.Time `json:"since,omitempty"`
	UptimeSeconds int64      `json:"uptime_seconds"`
	// CurrentVersion and PrevVersion are the node's own record (.nodeexec/state.json); RunningVersion is
	// the release the main process runs.
	CurrentVersion string `json:"current_version"`
	PrevVersion    string `json:"prev_version"`
	RunningVersion string `json:"running_version"`
	// State and LastError are the record's last operation ("" state: never deployed here).
	State     State  `json:"state"`
	LastError string `json:"last_error,omitempty"`
	// Resources is what the unit uses now, as systemd accounts it; nil when it is not running or
	// systemd knows none of it.
	Resources *Resources `json:"resources,omitempty"`
	// Error says why the node could not be read ("" when it was).
	Error string `json:"error,omitempty"`
}

// Resources is what a service's unit uses on a node, from systemd's accounting (MemoryCurrent,
// CPUUsageNSec, TasksCurrent). A figure systemd does not account is absent.
type Resources struct {
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// CPUSeconds is the CPU time the unit used since it started.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	Tasks      int64   `json:"tasks,omitempty"`
}

// CommandRequest runs Argv on Nodes. Argv comes from the operator's allow-list (AllowList.Resolve),
// never from a request.
type CommandRequest struct {
	// Name is the allow-list entry, for logs and the nodes' lock holder text.
	Name  string
	Argv  []string
	Nodes []Node
	// MaxOutput bounds stdout and stderr kept per node, in bytes (default 64 KiB).
	MaxOutput int
	// Timeout bounds the command on each node (default 60s); then it is stopped and the node says so.
	Timeout time.Duration
}

// Validate checks a command request before anything runs.
func (r CommandRequest) Validate() error {
	if err := ValidateCommandName(r.Name); err != nil {
		return err
	}
	if err := validateArgv("argv", r.Argv, false); err != nil {
		return err
	}
	if r.MaxOutput < 0 {
		return invalid("max_output", "must not be negative")
	}
	if r.Timeout < 0 {
		return invalid("timeout", "must not be negative")
	}
	return ValidateNodes(r.Nodes)
}

// CommandResult is what one allow-listed command did on one node.
type CommandResult struct {
	Host string `json:"host"`
	// RC is the command's exit status (-1 when it did not run: see Error).
	RC     int    `json:"rc"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Truncated is true when stdout or stderr was longer than the bound and was cut.
	Truncated bool `json:"truncated"`
	// Error says why the command could not run (unreachable node, no such program); "" when it ran,
	// whatever its exit status.
	Error string `json:"error,omitempty"`
}
