package api

import "time"

// DeployRequest is POST /api/v1/deployments: nodes with a package (platform physical, the default), or
// Kubernetes workloads with an image (platform k8s).
//
// In every request, what a client may leave out is omitempty, so a client sends only what it sets (the
// command line's requests name no field of the other platform); the server reads an absent field as
// its zero value and refuses a field it does not know.
type DeployRequest struct {
	Service        string       `json:"service"`
	Version        string       `json:"version"`
	Platform       Platform     `json:"platform,omitempty"`
	Nodes          []string     `json:"nodes,omitempty"`
	PackageURL     string       `json:"package_url,omitempty"`
	SHA256         string       `json:"sha256,omitempty"`
	Health         *HealthCheck `json:"health,omitempty"`
	Unit           Unit         `json:"unit,omitzero"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	RequestedBy    string       `json:"requested_by,omitempty"`
	BatchSize      int          `json:"batch_size,omitempty"`
	StopOnFailure  bool         `json:"stop_on_failure,omitempty"`
	// MaxUnavailable (physical) bounds how many nodes of the service may be out of service at once,
	// across deployments: this one's batch and the batches of the service's other deployments in
	// flight. A deployment that would exceed it, or the bound one of those was accepted with, is
	// refused (409 max_unavailable); 0: no bound of its own.
	MaxUnavailable int `json:"max_unavailable,omitempty"`
	// Delivery is how the package reaches the nodes: pull (default) or push.
	Delivery Delivery `json:"delivery,omitempty"`
	// Kubernetes (platform "k8s"): the workloads, the image their container gets, and how.
	Workloads []Workload `json:"workloads,omitempty"`
	Image     string     `json:"image,omitempty"`
	Strategy  *Strategy  `json:"strategy,omitempty"`
	// Environment and Config reach the service as environment variables: the unit's on physical nodes
	// (beside unit.env), the container's on Kubernetes. A name may be given once across the three.
	Environment map[string]string `json:"environment,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
	// Applications deploys several services as one deployment, each with its own version and nodes (or
	// workloads); the request's own service, version, targets, package and image are then left out, and
	// its platform, batch_size, stop_on_failure, max_unavailable, delivery and strategy apply to each.
	Applications []Application `json:"applications,omitempty"`
}

// Application is one service of a deployment of several: what DeployRequest says of one service.
type Application struct {
	Service     string            `json:"service"`
	Version     string            `json:"version"`
	Nodes       []string          `json:"nodes,omitempty"`
	PackageURL  string            `json:"package_url,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	Health      *HealthCheck      `json:"health,omitempty"`
	Unit        Unit              `json:"unit,omitzero"`
	Workloads   []Workload        `json:"workloads,omitempty"`
	Image       string            `json:"image,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
}

// HealthCheck is how a node proves a release works, as a request gives it. Zero ports check nothing
// beyond the unit being active.
type HealthCheck struct {
	HTTPPort     int    `json:"http_port"`
	HTTPPath     string `json:"http_path"`
	HTTPStatus   int    `json:"http_status"`
	TCPPort      int    `json:"tcp_port"`
	Retries      int    `json:"retries"`
	DelaySeconds int    `json:"delay_seconds"`
	// IntervalMS is how often the node looks at the unit and the checks; StableSeconds how long all must
	// keep passing once they passed.
	IntervalMS    int `json:"interval_ms"`
	StableSeconds int `json:"stable_seconds"`
}

// Unit says how the service runs on a physical node, when the package ships no unit of its own. Its
// fields are executor.Unit's, in the same order, so the two convert into each other.
type Unit struct {
	Exec string            `json:"exec,omitempty"` // relative to the release dir; default bin/<service>
	Args string            `json:"args,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
}

// Workload is a Kubernetes Deployment or StatefulSet, and the container whose image a deploy sets (as
// executor.Workload, which it converts into).
type Workload struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Container string `json:"container,omitempty"`
}

// Strategy says how Kubernetes workloads move to a new image (as executor.Strategy, which it converts
// into): rolling (the default) with its settings, or blue-green.
type Strategy struct {
	Type                    string `json:"type,omitempty"`
	MaxSurge                string `json:"max_surge,omitempty"`
	MaxUnavailable          string `json:"max_unavailable,omitempty"`
	MinReadySeconds         *int32 `json:"min_ready_seconds,omitempty"`
	ProgressDeadlineSeconds *int32 `json:"progress_deadline_seconds,omitempty"`
	Service                 string `json:"service,omitempty"`
	VerifySeconds           int32  `json:"verify_seconds,omitempty"`
}

// ScaleRequest is POST /api/v1/scale.
type ScaleRequest struct {
	Service        string     `json:"service"`
	Workloads      []Workload `json:"workloads"`
	Replicas       *int32     `json:"replicas"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	RequestedBy    string     `json:"requested_by,omitempty"`
}

// RollbackRequest is POST /api/v1/deployments/{id}/rollback; its body may be empty.
type RollbackRequest struct {
	// TargetDeploymentID, when set, takes each node of {id} back to the version that deployment left it
	// on (not to what it ran before {id}); nodes already on it are left alone, and are not the rollback's.
	TargetDeploymentID string `json:"target_deployment_id,omitempty"`
	IdempotencyKey     string `json:"idempotency_key,omitempty"`
	RequestedBy        string `json:"requested_by,omitempty"`
}

// Kinds of deployment.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
	KindScale    = "scale"
	KindRestart  = "restart"
	// KindForget records a node forgotten (DELETE /api/v1/nodes/{service}/{host}): who, and what it ran.
	KindForget = "forget"
	// KindManual records a hand run of a playbook (POST /api/v1/reports): who ran it, each node's outcome.
	KindManual = "manual"
	// KindApply and KindDelete work on Kubernetes objects (POST /api/v1/apply, /api/v1/delete): their
	// records have Objects and no nodes.
	KindApply  = "apply"
	KindDelete = "delete"
)

// Deployment is one request and how it went, node by node.
type Deployment struct {
	ID string `json:"id"`
	// Kind is KindDeploy, KindScale, KindRestart, KindApply, KindDelete, KindForget, KindManual, or
	// KindRollback of the deployment RollbackOf names.
	Kind       string `json:"kind"`
	RollbackOf string `json:"rollback_of,omitempty"`
	// ParentID names the deployment of several applications this one is an application of.
	ParentID string `json:"parent_id,omitempty"`
	// TargetDeploymentID is, on a rollback to a target deployment, that target.
	TargetDeploymentID string   `json:"target_deployment_id,omitempty"`
	Service            string   `json:"service"`
	Version            string   `json:"version"`
	Platform           Platform `json:"platform"`
	Batch              Batch    `json:"batch"`
	// Replicas is what a scale asks of each workload.
	Replicas *int32 `json:"replicas,omitempty"`
	// Namespace, Objects and DryRun are an apply's or a delete's: where, each object it touched with
	// its outcome, and whether it was to change nothing.
	Namespace   string   `json:"namespace,omitempty"`
	Objects     []Object `json:"objects,omitempty"`
	DryRun      bool     `json:"dry_run,omitempty"`
	RequestedBy string   `json:"requested_by,omitempty"`
	// Token is the name of the API token the request came with.
	Token          string `json:"token,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Replica is the nodeexec replica that runs it (ran it), "<name>@<incarnation>" (GET /api/v1/replicas).
	Replica string           `json:"replica,omitempty"`
	State   State            `json:"state"`
	Error   string           `json:"error,omitempty"`
	Nodes   []DeploymentNode `json:"nodes"`
	// Applications are the services of a deployment of several (its own service, version and nodes are
	// then empty): each one's deployment, state and nodes.
	Applications []ApplicationDeployment `json:"applications,omitempty"`
	CreatedAt    time.Time               `json:"created_at"`
	StartedAt    *time.Time              `json:"started_at,omitempty"`
	FinishedAt   *time.Time              `json:"finished_at,omitempty"`

	// Playbook and ReportID are a manual record's: the playbook the hand run ran, and its report's id.
	Playbook string `json:"playbook,omitempty"`
	ReportID string `json:"report_id,omitempty"`
}

// Batch says how a deployment's nodes are run: Size nodes per run (0: all in one), one batch after
// another; with StopOnFailure, no batch starts after one in which a node failed.
type Batch struct {
	Size          int  `json:"size"`
	StopOnFailure bool `json:"stop_on_failure"`
	// MaxUnavailable is the bound the deployment was accepted with (0: none of its own).
	MaxUnavailable int `json:"max_unavailable,omitempty"`
}

// ApplicationDeployment is one application of a deployment of several: the deployment that carries it
// out (a deployment of its own, ParentID naming this one), and how it went.
type ApplicationDeployment struct {
	Service      string           `json:"service"`
	Version      string           `json:"version"`
	DeploymentID string           `json:"deployment_id"`
	State        State            `json:"state"`
	Error        string           `json:"error,omitempty"`
	Nodes        []DeploymentNode `json:"nodes"`
}

// DeploymentNode is one node's outcome within a deployment.
type DeploymentNode struct {
	Host  string `json:"host"`
	State State  `json:"state"`
	// TargetVersion is what the deployment puts on the node; FromVersion what the node ran before it.
	TargetVersion  string `json:"target_version"`
	FromVersion    string `json:"from_version,omitempty"`
	CurrentVersion string `json:"current_version,omitempty"`
	PrevVersion    string `json:"prev_version,omitempty"`
	Changed        bool   `json:"changed"`
	LastError      string `json:"last_error,omitempty"`

	// RecordKept says, on a manual record, why the node's own record was not updated from it.
	RecordKept string `json:"record_kept,omitempty"`
}

// DeploymentList is GET /api/v1/deployments: a page, newest first, and the cursor of the next one
// ("" on the last).
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
	NextCursor  string       `json:"next_cursor"`
}

// Node is one node's record: its status, and which deployment last held it.
type Node struct {
	ID               string   `json:"id"`
	Host             string   `json:"host"`
	Service          string   `json:"service"`
	Platform         Platform `json:"platform"`
	CurrentVersion   string   `json:"current_version"`
	PrevVersion      string   `json:"prev_version"`
	DeployingVersion string   `json:"deploying_version,omitempty"`
	State            State    `json:"state"`
	LastError        string   `json:"last_error,omitempty"`
	DeploymentID     string   `json:"deployment_id,omitempty"`
	// Drift is how the node differs from this record, as the last drift pass found it (none: it does not);
	// for a workload, also as a read of the cluster finds it now (its since: now).
	Drift *Drift `json:"drift,omitempty"`
	// Live is a Kubernetes workload as the cluster has it now (GET of one node, with a cluster);
	// LiveError says why it could not be read.
	Live      *LiveWorkload `json:"live,omitempty"`
	LiveError string        `json:"live_error,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// LiveWorkload is a workload as the cluster has it now. Its fields are executor.LiveWorkload's, in the
// same order, so the two convert into each other.
type LiveWorkload struct {
	Kind          string `json:"kind"`
	Image         string `json:"image"`
	Version       string `json:"version"`
	Replicas      int32  `json:"replicas"`
	ReadyReplicas int32  `json:"ready_replicas"`
	RolloutDone   bool   `json:"rollout_done"`
}

// NodeList is GET /api/v1/nodes: a page of node records in key order (service, then host), and the
// cursor of the next one ("" on the last).
type NodeList struct {
	Nodes      []Node `json:"nodes"`
	NextCursor string `json:"next_cursor"`
}

// Event is one thing that happened in a deployment, as its event stream sends it (the SSE event's name
// is its Type). The stream ends with an "end" event whose data is the Deployment.
type Event struct {
	DeploymentID string    `json:"deployment_id"`
	Seq          int64     `json:"seq"`
	Time         time.Time `json:"time"`
	Type         EventType `json:"type"`
	Node         string    `json:"node,omitempty"`
	State        State     `json:"state,omitempty"`
	Message      string    `json:"message,omitempty"`
	Step         *Step     `json:"step,omitempty"`
	// Evidence is what a failed deploy kept on the node (type evidence).
	Evidence *FailedRelease `json:"evidence,omitempty"`
}

// EventType says what an event is about.
type EventType string

const (
	EventDeployment EventType = "deployment" // the deployment's overall state changed
	EventNode       EventType = "node"       // a node's state changed
	EventStep       EventType = "step"       // a task ran on a node
	EventEvidence   EventType = "evidence"   // a failed deploy kept its evidence on a node
)

// Step is one task's outcome on one node.
type Step struct {
	Name    string `json:"name"`
	Action  string `json:"action,omitempty"`
	Changed bool   `json:"changed,omitempty"`
	Failed  bool   `json:"failed,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	// Running marks the live notice that a task has started on the node.
	Running bool   `json:"running,omitempty"`
	Message string `json:"message,omitempty"`
	Stdout  string `json:"stdout,omitempty"`
	Stderr  string `json:"stderr,omitempty"`
	// Started is when the step began on the node, and DurationMS how long it took in milliseconds (to
	// the microsecond); absent when the backend did not say.
	Started    time.Time `json:"started,omitzero"`
	DurationMS float64   `json:"duration_ms,omitempty"`
}

// FailedRelease is a failed deploy's evidence kept on a node (docs/node-contract.md). Its fields are
// executor.FailedRelease's, in the same order, so the two convert into each other.
type FailedRelease struct {
	Version    string   `json:"version"`
	At         string   `json:"at,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Dir        string   `json:"dir,omitempty"`
	Journal    []string `json:"journal,omitempty"`
	UnitStatus []string `json:"unit_status,omitempty"`
}

// RevisionList is GET /api/v1/workloads/{namespace}/{kind}/{name}/revisions: the workload's rollout
// history, newest first, as `kubectl rollout history` shows it.
type RevisionList struct {
	Workload  Workload   `json:"workload"`
	Revisions []Revision `json:"revisions"`
}

// Revision is one revision of a workload's pod template.
type Revision struct {
	Revision    int64     `json:"revision"`
	Image       string    `json:"image"`
	Version     string    `json:"version"`
	ChangeCause string    `json:"change_cause"`
	Created     time.Time `json:"created"`
	Current     bool      `json:"current"`
}

// WorkloadRollbackRequest is POST /api/v1/workloads/{namespace}/{kind}/{name}/rollback: take the
// workload back to an earlier revision of its template, as `kubectl rollout undo --to-revision` does.
type WorkloadRollbackRequest struct {
	Service        string `json:"service"`
	ToRevision     int64  `json:"to_revision"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	RequestedBy    string `json:"requested_by,omitempty"`
}

// NodeexecReplica is one nodeexec replica on the database, as its heartbeats say (GET /api/v1/replicas).
type NodeexecReplica struct {
	Name        string    `json:"name"`
	Incarnation string    `json:"incarnation"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// Alive: its last heartbeat is within the lease; This: it is the replica that answers.
	Alive bool `json:"alive"`
	This  bool `json:"this"`
}

// NodeexecReplicaList is GET /api/v1/replicas: every replica that ever heartbeat on the database, by name.
type NodeexecReplicaList struct {
	// LeaseSeconds is the answering replica's lease: a replica silent longer is dead, and its
	// deployments in flight are taken over.
	LeaseSeconds float64           `json:"lease_seconds"`
	Replicas     []NodeexecReplica `json:"replicas"`
}
