package api

import "time"

// RestartRequest is POST /api/v1/restart.
type RestartRequest struct {
	Service        string       `json:"service"`
	Nodes          []string     `json:"nodes"`
	Health         *HealthCheck `json:"health,omitempty"`
	BatchSize      int          `json:"batch_size,omitempty"`
	StopOnFailure  bool         `json:"stop_on_failure,omitempty"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	RequestedBy    string       `json:"requested_by,omitempty"`
}

// ServiceStatuses is GET /api/v1/services/{service}/status.
type ServiceStatuses struct {
	Service string          `json:"service"`
	Nodes   []ServiceStatus `json:"nodes"`
}

// ServiceStatus is a service's unit on one node, as systemd sees it now, and the node's own record
// (GET /api/v1/nodes/{service}/{host}/service answers with one).
type ServiceStatus struct {
	Host    string `json:"host"`
	Service string `json:"service"`
	// Running is true when the unit is active; ActiveState is systemd's word for it.
	Running     bool   `json:"running"`
	ActiveState string `json:"active_state"`
	MainPID     int    `json:"main_pid"`
	// Since is when the unit last became active, and UptimeSeconds how long ago that was.
	Since         *time.Time `json:"since,omitempty"`
	UptimeSeconds int64      `json:"uptime_seconds"`
	// CurrentVersion and PrevVersion are the node's own record; RunningVersion is the release the main
	// process runs.
	CurrentVersion string `json:"current_version"`
	PrevVersion    string `json:"prev_version"`
	RunningVersion string `json:"running_version"`
	// State and LastError are the record's last operation ("" state: never deployed here).
	State     State      `json:"state"`
	LastError string     `json:"last_error,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
	// Error says why the node could not be read ("" when it was).
	Error string `json:"error,omitempty"`
}

// Resources is what a service's unit uses on a node, from systemd's accounting. Its fields are
// executor.Resources', in the same order, so the two convert into each other.
type Resources struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	Tasks       int64   `json:"tasks,omitempty"`
}

// AdhocRequest is POST /api/v1/adhoc: a name from the allow-list, never a command.
type AdhocRequest struct {
	Name    string   `json:"name"`
	Nodes   []string `json:"nodes"`
	Service string   `json:"service,omitempty"`
}

// AdhocRun answers an AdhocRequest: the command as it ran, and each node's exit status and output.
type AdhocRun struct {
	Name  string          `json:"name"`
	Argv  []string        `json:"argv"`
	Nodes []CommandResult `json:"nodes"`
}

// CommandResult is what one allow-listed command did on one node. Its fields are
// executor.CommandResult's, in the same order, so the two convert into each other.
type CommandResult struct {
	Host string `json:"host"`
	// RC is the command's exit status (-1 when it did not run: see Error).
	RC        int    `json:"rc"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated"`
	Error     string `json:"error,omitempty"`
}

// AllowedCommand is one entry of the allow-list.
type AllowedCommand struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// Service says the command needs a service (its argv has the {service} placeholder).
	Service bool `json:"service"`
}

// CommandList is GET /api/v1/adhoc.
type CommandList struct {
	Commands []AllowedCommand `json:"commands"`
}
