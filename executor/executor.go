// Package executor defines what every deploy backend does for the Plan Layer: deploy a version of a
// service to a set of nodes, roll it back, and report each node's state. Backends live beside it
// (ansible for physical nodes, k8s for Kubernetes workloads); callers see only this interface.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"
)

// Executor deploys one service to a set of nodes. Each node is reported on its own: one node failing
// never fails the others. The error return is for the request as a whole (bad input, a backend that
// cannot start at all); per-node outcomes are in the results.
type Executor interface {
	Deploy(ctx context.Context, req DeployRequest) ([]NodeResult, error)
	Rollback(ctx context.Context, req RollbackRequest) ([]NodeResult, error)
	Status(ctx context.Context, req StatusRequest) ([]NodeResult, error)
}

// Recoverer is an Executor that can clean up after a run nodeexec lost (its process died mid-run): it
// releases what that deployment still holds on the nodes and reports what each node really runs.
type Recoverer interface {
	Recover(ctx context.Context, req RecoverRequest) ([]NodeResult, error)
}

// Scaler is an Executor whose nodes can change size without changing version (Kubernetes workloads).
type Scaler interface {
	Scale(ctx context.Context, req ScaleRequest) ([]NodeResult, error)
}

// MaxReplicas bounds a scale: a typo of a few zeros must not ask a cluster for a million pods.
const MaxReplicas = 10000

// ScaleRequest asks for Replicas of each workload, ready.
type ScaleRequest struct {
	DeploymentID string
	Service      string
	Workloads    []Workload
	Replicas     int32
	// Progress, when set, sees each step live (optional).
	Progress ProgressFunc `json:"-" bson:"-"`
}

// MaxLogLines bounds the lines one log read returns (of a pod, or of each node in a deployment's logs).
const MaxLogLines = 10000

// JournalReader is an Executor that can read a service's own log on its nodes: the unit's journal,
// newest last, at most Lines lines per node (and a bounded number of bytes).
type JournalReader interface {
	Journal(ctx context.Context, req JournalRequest) ([]NodeJournal, error)
}

// JournalRequest asks for the last Lines lines of Service's unit on each of Nodes.
type JournalRequest struct {
	Service string
	Nodes   []Node
	Lines   int
}

// JournalLine is one line of a unit's journal: when it was logged (the node's clock), by which unit.
type JournalLine struct {
	Time    time.Time
	Unit    string
	Message string
}

// NodeJournal is one node's lines, oldest first; Error says why the node could not be read.
type NodeJournal struct {
	Host  string
	Lines []JournalLine
	Error string
}

// PodInspector is an Executor that can show a workload's pods and their logs.
type PodInspector interface {
	WorkloadPods(ctx context.Context, w Workload) ([]Pod, error)
	// PodLogs returns the last lines of a pod's container log (container "": the pod's first).
	PodLogs(ctx context.Context, namespace, pod, container string, lines int) ([]string, error)
}

// PodLogTimer is a PodInspector that can also say when each line of a pod's log was logged (the
// kubelet's timestamp of it): the logs endpoint gives every line its time.
type PodLogTimer interface {
	// PodLogLines is PodLogs with each line's time; a line's Unit is the container it came from.
	PodLogLines(ctx context.Context, namespace, pod, container string, lines int) ([]JournalLine, error)
}

// RecoverRequest names the lost deployment and the nodes it held.
type RecoverRequest struct {
	DeploymentID string
	Service      string
	Nodes        []Node
	Workloads    []Workload
}

// Platform names the kind of node a status is about.
type Platform string

const (
	PlatformPhysical Platform = "physical"
	PlatformK8s      Platform = "k8s"
)

// NodeStatus is what the Plan Layer sees of one node (a physical host, or a Kubernetes workload whose
// Host is "namespace/name").
//
// DeployingVersion is the version a deployment that holds the node is putting there (a rollback's: the
// version it goes back to; none for a restart or a scale), and only while it holds the node. The
// server's store sets it when a deployment claims the node and clears it when the node's run ends or
// the node is given back (store.Claim, Finish, Release). An executor leaves it empty: its results
// describe a node after its run.
type NodeStatus struct {
	Host             string   `json:"host"`
	Service          string   `json:"service"`
	CurrentVersion   string   `json:"current_version"`
	DeployingVersion string   `json:"deploying_version,omitempty"`
	PrevVersion      string   `json:"prev_version"`
	Platform         Platform `json:"platform"`
	State            State    `json:"state"`
	LastError        string   `json:"last_error,omitempty"`
}

// NodeResult is a node's status after an operation, with the evidence of what ran on it.
type NodeResult struct {
	NodeStatus
	// RunningVersion is the version the node really runs, when the backend can tell ("" if stopped).
	RunningVersion string `json:"running_version,omitempty"`
	// Changed reports whether the operation changed anything on the node.
	Changed bool `json:"changed"`
	// Transient marks a failure that may pass on its own (the host could not be reached): the same
	// operation may be tried again. Every operation is safe to repeat on a node.
	Transient bool `json:"transient,omitempty"`
	// Steps are the node's task results, in order; the node's log.
	Steps []Step `json:"steps,omitempty"`
	// Stderr is the backend's own error output for the run this node was part of.
	Stderr string `json:"stderr,omitempty"`
	// Failed is the newest failed release the node keeps for inspection (its own record), until a later
	// successful deploy; nil when none (physical nodes).
	Failed *FailedRelease `json:"failed,omitempty"`
	// Evidence is what this run kept of a failed deploy on the node: the failed release, why, and the
	// unit's journal excerpt and status captured before any rollback (physical nodes).
	Evidence *FailedRelease `json:"evidence,omitempty"`
}

// FailedRelease is a failed deploy's evidence kept on a node (docs/node-contract.md): the release, why
// it failed, where the evidence lies on the node, and, from the run that failed, the unit's journal
// excerpt and status.
type FailedRelease struct {
	Version    string   `json:"version" bson:"version"`
	At         string   `json:"at,omitempty" bson:"at,omitempty"`
	Reason     string   `json:"reason,omitempty" bson:"reason,omitempty"`
	Dir        string   `json:"dir,omitempty" bson:"dir,omitempty"`
	Journal    []string `json:"journal,omitempty" bson:"journal,omitempty"`
	UnitStatus []string `json:"unit_status,omitempty" bson:"unit_status,omitempty"`
}

// Step is one task's outcome on one node (or one sub-step of a module that reports its own steps).
type Step struct {
	Name    string `json:"name"`
	Action  string `json:"action,omitempty"`
	Changed bool   `json:"changed,omitempty"`
	Failed  bool   `json:"failed,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	// Running marks the live notice that a task has started on the node (its steps come when it ends);
	// it is never part of a node's final steps.
	Running bool   `json:"running,omitempty" bson:"running,omitempty"`
	Message string `json:"message,omitempty"`
	Stdout  string `json:"stdout,omitempty"`
	Stderr  string `json:"stderr,omitempty"`
	// Started is when the step began on the node, and Duration how long it took; zero when the backend
	// did not say (records from before they existed, plain Ansible tasks). In JSON the duration is a
	// number of milliseconds, duration_ms (see MarshalJSON); in the store, nanoseconds.
	Started  time.Time     `json:"started,omitzero" bson:"started,omitempty"`
	Duration time.Duration `json:"duration_ms,omitempty" bson:"duration,omitempty"`
}

// stepFields is Step without its JSON methods, for them to build on.
type stepFields Step

// MarshalJSON writes Duration as milliseconds (a float, to the microsecond): a number people and
// scripts read without knowing Go's nanoseconds.
func (s Step) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		stepFields
		DurationMS float64 `json:"duration_ms,omitempty"`
	}{stepFields(s), s.Milliseconds()})
}

// Milliseconds is the step's Duration as JSON gives it: milliseconds, to the microsecond.
func (s Step) Milliseconds() float64 {
	return float64(s.Duration.Round(time.Microsecond)) / float64(time.Millisecond)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Step) UnmarshalJSON(data []byte) error {
	wire := struct {
		*stepFields
		DurationMS float64 `json:"duration_ms"`
	}{stepFields: (*stepFields)(s)}
	if err := json.Unmarshal(data, &wire); err != nil {
		return err
	}
	s.Duration = time.Duration(math.Round(wire.DurationMS * float64(time.Millisecond)))
	return nil
}

// Status is the step's outcome in one word: failed, skipped, changed, running or ok.
func (s Step) Status() string {
	switch {
	case s.Failed:
		return "failed"
	case s.Skipped:
		return "skipped"
	case s.Changed:
		return "changed"
	case s.Running:
		return "running"
	}
	return "ok"
}

// Node is one target. Address and Port are optional: Host is used to connect when Address is empty.
type Node struct {
	Host    string `json:"host"`
	Address string `json:"address,omitempty"`
	Port    int    `json:"port,omitempty"`
}

// Package is a release artifact and the checksum it must match before anything changes on a node.
type Package struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Delivery is how a package reaches a physical node.
type Delivery string

const (
	// DeliveryPull (the default): each node downloads the package from its URL and checks its SHA256.
	DeliveryPull Delivery = "pull"
	// DeliveryPush: nodeexec downloads the package and checks its SHA256 on its own machine, then copies
	// it to each node, which checks it again; for nodes that cannot reach the package server.
	DeliveryPush Delivery = "push"
)

// HealthCheck says how a node proves a release works. Zero ports disable that check.
type HealthCheck struct {
	HTTPPort   int           `json:"http_port,omitempty"`
	HTTPPath   string        `json:"http_path,omitempty"`
	HTTPStatus int           `json:"http_status,omitempty"`
	TCPPort    int           `json:"tcp_port,omitempty"`
	Retries    int           `json:"retries,omitempty"`
	Delay      time.Duration `json:"delay,omitempty"`
	// Interval is how often the node looks at the unit and the checks while it verifies (0: 200 ms).
	Interval time.Duration `json:"interval,omitempty" bson:",omitempty"`
	// Stable is how long the unit and every check must keep passing once all passed (0: not at all).
	Stable time.Duration `json:"stable,omitempty" bson:",omitempty"`
}

// Unit says how the service runs on a physical node, when the package ships no unit of its own.
type Unit struct {
	Exec string            `json:"exec,omitempty"` // relative to the release dir; default bin/<service>
	Args string            `json:"args,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
}

// ProgressFunc receives each task result on a node while an operation runs, as it happens. It is
// called from another goroutine than the caller's, one call at a time.
type ProgressFunc func(host string, step Step)

// DeployRequest asks for Version of Service on its targets: physical nodes (PhysicalDeploy) or Kubernetes
// workloads (K8sDeploy), one or the other. Each platform's part holds its own fields and checks; both
// are embedded, so their fields read as the request's own and are stored flat, as they always were.
type DeployRequest struct {
	DeploymentID   string
	Service        string
	Version        string
	PhysicalDeploy `bson:",inline"`
	K8sDeploy      `bson:",inline"`
	// Progress, when set, sees each task result live (optional).
	Progress ProgressFunc `json:"-" bson:"-"`
}

// PhysicalDeploy is a deploy's physical part: the nodes, the package and how it reaches them, the unit
// the service runs under and its health check.
type PhysicalDeploy struct {
	Nodes   []Node
	Package Package
	// Delivery says how the package reaches the nodes ("": pull).
	Delivery Delivery `json:",omitempty" bson:",omitempty"`
	Health   HealthCheck
	Unit     Unit
}

// K8sDeploy is a deploy's Kubernetes part: the image (its tag usually the version) goes into each
// workload's container.
type K8sDeploy struct {
	Workloads []Workload `json:",omitempty" bson:",omitempty"`
	Image     string     `json:",omitempty" bson:",omitempty"`
	// Strategy says how the workloads move to Image (default: their own rolling update).
	Strategy Strategy `json:",omitempty" bson:",omitempty"`
	// Env sets these variables in the container, with the image, in one rollout; the container's other
	// variables stay as they are.
	Env map[string]string `json:",omitempty" bson:",omitempty"`
}

// RollbackRequest asks for nodes (or workloads) to go back to their previous version, or to ToVersion
// when set; for workloads, to ToRevision when set (as `kubectl rollout undo --to-revision`).
type RollbackRequest struct {
	DeploymentID     string
	Service          string
	ToVersion        string `bson:",omitempty"`
	PhysicalRollback `bson:",inline"`
	K8sRollback      `bson:",inline"`
	// Progress, when set, sees each task result live (optional).
	Progress ProgressFunc `json:"-" bson:"-"`
}

// PhysicalRollback is a rollback's physical part: the nodes, and the health check they must pass.
type PhysicalRollback struct {
	Nodes  []Node
	Health HealthCheck
}

// K8sRollback is a rollback's Kubernetes part: the workloads, and the revision to go back to (0: the one
// before the current). ToImage, with ToVersion, is that version's exact image, when a deploy recorded it:
// it replaces the current image whole, where ToVersion alone only puts its tag on the current image.
type K8sRollback struct {
	Workloads  []Workload `bson:",omitempty"`
	ToRevision int64      `bson:",omitempty"`
	// omitempty in JSON too: a fingerprint (store.Deployment.Fingerprint) of a rollback without it stays
	// what it was before the field.
	ToImage string `bson:",omitempty" json:",omitempty"`
}

// StatusRequest asks what Nodes (or Workloads) run of Service.
type StatusRequest struct {
	Service   string
	Nodes     []Node
	Workloads []Workload
}

// RevisionLister is an Executor that can show a workload's rollout history, as `kubectl rollout
// history` does: what a rollback to a revision would bring back.
type RevisionLister interface {
	// Revisions are w's revisions, newest first. A workload that does not exist is ErrNoSuchWorkload;
	// a container it lacks, a *ValidationError on "container".
	Revisions(ctx context.Context, w Workload) ([]Revision, error)
}

// ErrNoSuchWorkload is a workload the cluster does not have.
var ErrNoSuchWorkload = errors.New("no such workload")

// Revision is one revision of a workload's pod template (a Deployment's ReplicaSet, a StatefulSet's
// ControllerRevision).
type Revision struct {
	Revision    int64
	Image       string // the workload's container's (or its first)
	Version     string // the image's version, as a deploy of it records it (its tag)
	ChangeCause string // the kubernetes.io/change-cause annotation; often empty
	Created     time.Time
	Current     bool
}
