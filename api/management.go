package api

import "time"

// The management endpoints (/internal/v1/deploy/...) answer an operator's three questions about a
// deployment: what is it (Info), is it healthy now (Health), and what happened (Logs). Their shapes are
// a superset of the Plan Layer's specification (docs/contract/*.schema.json): the specified fields
// with the specified names, types and words, and nodeexec's own detail beside them.

// DeploymentStatus is a deployment's state in the specification's words, for Info.Status. The words
// are stable: a Plan Layer may switch on them.
type DeploymentStatus string

const (
	StatusPending    DeploymentStatus = "pending"     // accepted, not started (state pending)
	StatusRunning    DeploymentStatus = "running"     // in progress (state deploying)
	StatusSucceeded  DeploymentStatus = "succeeded"   // every node ended on its target (state success)
	StatusFailed     DeploymentStatus = "failed"      // ended with a node failed, or cancelled (state failed)
	StatusRolledBack DeploymentStatus = "rolled_back" // ended rolled back (state rolled_back)
	StatusUnknown    DeploymentStatus = "unknown"     // a state this build does not know
)

// Info is GET /internal/v1/deploy/info/{deployment_id}.
type Info struct {
	DeploymentID string `json:"deployment_id"`
	// Status is the deployment's state in the specification's words; State is nodeexec's own.
	Status DeploymentStatus `json:"status"`
	State  State            `json:"state"`
	// Replicas counts the deployment's nodes (physical) or its workloads' live pods (Kubernetes);
	// ReadyReplicas those of them that are ready (Details.Pods).
	Replicas      int `json:"replicas"`
	ReadyReplicas int `json:"ready_replicas"`
	// UpdatedAt is the last time the deployment's record changed: its end, else its start, else its
	// creation.
	UpdatedAt       time.Time   `json:"updated_at"`
	Details         InfoDetails `json:"details"`
	Service         string      `json:"service"`
	Version         string      `json:"version"`
	Platform        Platform    `json:"platform"`
	Kind            string      `json:"kind"`
	Error           string      `json:"error,omitempty"`
	CreatedAt       time.Time   `json:"created_at"`
	StartedAt       *time.Time  `json:"started_at,omitempty"`
	FinishedAt      *time.Time  `json:"finished_at,omitempty"`
	DurationSeconds float64     `json:"duration_seconds"`
	// Summary counts the nodes by state, and "total".
	Summary map[string]int `json:"summary"`
	Nodes   []NodeInfo     `json:"nodes"`
}

// InfoDetails is the specification's details object of an Info.
type InfoDetails struct {
	// Pods are the replicas: a Kubernetes workload's pods, or a physical deployment's nodes.
	Pods []Replica `json:"pods"`
}

// Replica is one pod of a Kubernetes deployment, or one node of a physical one (Name its host).
type Replica struct {
	Name string `json:"name"`
	// Phase is Running, Pending, Failed or Unknown (a pod's own phase, or Terminating, on Kubernetes).
	Phase string `json:"phase"`
	// Ready: a pod running and ready; a node whose unit is active and runs the deployment's version.
	Ready bool `json:"ready"`
	// Node is the deployment's node the replica belongs to: the workload ("namespace/name") of a pod,
	// the host itself for a physical node.
	Node string `json:"node"`
	// PhaseSource says where Phase and Ready come from: "live" (the cluster, or the node's unit read
	// now) or "record" (the node's record, when its unit could not be read).
	PhaseSource string `json:"phase_source"`
	// Version is what the replica runs, when known.
	Version string `json:"version,omitempty"`
	// Message says why a replica is not ready, or why its unit could not be read.
	Message string `json:"message,omitempty"`
	// Application is the service the replica is of, in a deployment of several applications.
	Application string `json:"application,omitempty"`
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
	// Application is the service the node is of, in a deployment of several applications.
	Application string `json:"application,omitempty"`
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

// The words of an AggregateCheck's Status.
const (
	CheckHealthy   = "healthy"
	CheckUnhealthy = "unhealthy"
	CheckUnknown   = "unknown"
)

// The names of the aggregate checks: the specification's three, and the physical unit's.
const (
	CheckPodStatus     = "pod_status"
	CheckHTTPEndpoint  = "http_endpoint"
	CheckResourceUsage = "resource_usage"
	CheckProcess       = "process"
)

// Health is GET /internal/v1/deploy/health/{deployment_id}. Healthy when pod_status is healthy, no
// check is unhealthy, and no check is unknown because a read failed (a check that does not apply, such
// as an HTTP check none was configured for, is unknown without making the deployment unhealthy).
type Health struct {
	DeploymentID string `json:"deployment_id"`
	Healthy      bool   `json:"healthy"`
	// Message says in a sentence why, for a person.
	Message   string    `json:"message"`
	CheckedAt time.Time `json:"checked_at"`
	// Checks are the aggregate checks over every node or pod; Details the per-node checks they come from.
	Checks  []AggregateCheck `json:"checks"`
	Details []Check          `json:"details"`
}

// AggregateCheck is one check over all of a deployment's nodes or pods.
type AggregateCheck struct {
	Name    string `json:"name"`    // pod_status | http_endpoint | resource_usage | process
	Status  string `json:"status"`  // healthy | unhealthy | unknown
	Message string `json:"message"` // e.g. "2/3 nodes running v2: 10.0.0.12 unit failed"
}

// Check is one per-node check of a Health's details.
type Check struct {
	Name    string `json:"name"`
	Type    string `json:"type"`   // node_status | service | http | pod
	Status  string `json:"status"` // pass | fail | unknown
	Message string `json:"message,omitempty"`
	// Resources is what the node's unit uses now (service checks), where systemd accounts it.
	Resources *Resources `json:"resources,omitempty"`
	// Application is the service the check is of, in a deployment of several applications.
	Application string `json:"application,omitempty"`
}

// The sources of a Logs.
const (
	LogSourceService = "service" // the service's own log: the unit's journal, or the pods' logs
	LogSourceEvents  = "events"  // the deployment's own events and failure evidence
)

// Logs is GET /internal/v1/deploy/logs/{deployment_id}: one entry a line, oldest first, the newest
// Lines of them in all.
type Logs struct {
	DeploymentID string     `json:"deployment_id"`
	Source       string     `json:"source"`
	Lines        int        `json:"lines"`
	Logs         []LogEntry `json:"logs"`
	// Error says why there are no lines at all (this server cannot read the service's journal, or has
	// no Kubernetes cluster); Errors
	// the nodes or pods that could not be read, the others' lines being there.
	Error  string         `json:"error,omitempty"`
	Errors []LogReadError `json:"errors,omitempty"`
	// Failures (source events) are the evidence of each node that failed or was rolled back: set
	// apart from the lines so it is never crowded out by them.
	Failures []NodeFailure `json:"failures,omitempty"`
}

// LogEntry is one line of a log.
type LogEntry struct {
	// Timestamp is when the line was logged: the node's journal, the kubelet's receipt of a pod's
	// line, or the event's time.
	Timestamp time.Time `json:"timestamp"`
	// PodName is the pod, or the physical node (its host), the line comes from.
	PodName string `json:"pod_name"`
	// Container is the pod's container, the unit (<service>.service) on a physical node, or
	// "nodeexec" for the deployment's own events.
	Container string `json:"container"`
	Message   string `json:"message"`
	// Application is the service the line is of, in a deployment of several applications.
	Application string `json:"application,omitempty"`
}

// LogReadError is a node or pod whose log could not be read.
type LogReadError struct {
	PodName string `json:"pod_name"`
	Error   string `json:"error"`
	// Application is the service the node or pod is of, in a deployment of several applications.
	Application string `json:"application,omitempty"`
}

// NodeFailure is what the deployment's records hold of why a node failed: the failed tasks' own
// output, and what the node kept (the failed release, the unit's journal excerpt and status).
type NodeFailure struct {
	PodName string `json:"pod_name"`
	State   State  `json:"state"`
	Error   string `json:"error,omitempty"`
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
