package api

import "time"

// The management endpoints (/internal/v1/deploy/...) answer an operator's three questions about a
// deployment: what is it (Info), is it healthy now (Health), and what happened (Logs).

// Info is GET /internal/v1/deploy/info/{deployment_id}.
type Info struct {
	DeploymentID    string     `json:"deployment_id"`
	Service         string     `json:"service"`
	Version         string     `json:"version"`
	Platform        Platform   `json:"platform"`
	Kind            string     `json:"kind"`
	Status          State      `json:"status"`
	Error           string     `json:"error,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	DurationSeconds float64    `json:"duration_seconds"`
	// Summary counts the nodes by state, and "total".
	Summary map[string]int `json:"summary"`
	Nodes   []NodeInfo     `json:"nodes"`
}

// NodeInfo is one node of an Info.
type NodeInfo struct {
	Name            string `json:"name"`
	Status          State  `json:"status"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previous_version"`
	Error           string `json:"error,omitempty"`
	// Pods are a Kubernetes workload's pods as they are now; PodsError says why they could not be read.
	Pods      []Pod  `json:"pods,omitempty"`
	PodsError string `json:"pods_error,omitempty"`
}

// Pod is one pod of a workload. Its fields are executor.Pod's, in the same order, so the two convert
// into each other.
type Pod struct {
	Name     string    `json:"name"`
	Phase    string    `json:"phase"`
	Ready    bool      `json:"ready"`
	Restarts int32     `json:"restarts"`
	Node     string    `json:"node,omitempty"`
	Image    string    `json:"image,omitempty"`
	Created  time.Time `json:"created"`
	// Color is the pod's blue-green color, when it has one.
	Color string `json:"color,omitempty"`
}

// Health is GET /internal/v1/deploy/health/{deployment_id}: healthy when every check passes.
type Health struct {
	DeploymentID string    `json:"deployment_id"`
	Healthy      bool      `json:"healthy"`
	CheckedAt    time.Time `json:"checked_at"`
	Checks       []Check   `json:"checks"`
}

// Check is one check of a Health.
type Check struct {
	Name    string `json:"name"`
	Type    string `json:"type"`   // node_status | service | http | pod
	Status  string `json:"status"` // pass | fail | unknown
	Message string `json:"message,omitempty"`
	// Resources is what the node's unit uses now (service checks), where systemd accounts it.
	Resources *Resources `json:"resources,omitempty"`
}

// Logs is GET /internal/v1/deploy/logs/{deployment_id}: each node's lines, then each pod's.
type Logs struct {
	DeploymentID string    `json:"deployment_id"`
	Lines        int       `json:"lines"`
	Logs         []NodeLog `json:"logs"`
}

// NodeLog is one node's (or one pod's) newest lines.
type NodeLog struct {
	Name  string   `json:"name"`
	Lines []string `json:"lines"`
	// Node is the workload a pod's log belongs to; Error says why a pod's log could not be read.
	Node  string `json:"node,omitempty"`
	Error string `json:"error,omitempty"`
	// Failure is the evidence of a node that failed (or was rolled back): set apart from the lines so
	// it is never crowded out by them.
	Failure *NodeFailure `json:"failure,omitempty"`
}

// NodeFailure is what the deployment's records hold of why a node failed: the failed tasks' own
// output, and what the node kept (the failed release, the unit's journal excerpt and status).
type NodeFailure struct {
	State State  `json:"state"`
	Error string `json:"error,omitempty"`
	// FailedTasks are the node's newest failed task results, oldest first.
	FailedTasks []FailedTask `json:"failed_tasks"`
	// Evidence is what the node kept on itself, with the journal excerpt captured before the rollback.
	Evidence *FailedRelease `json:"evidence,omitempty"`
}

// FailedTask is one failed task result of a node.
type FailedTask struct {
	Time    time.Time `json:"time"`
	Name    string    `json:"name"`
	Action  string    `json:"action,omitempty"`
	Message string    `json:"message,omitempty"`
	Stdout  string    `json:"stdout,omitempty"`
	Stderr  string    `json:"stderr,omitempty"`
}
