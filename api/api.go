// Package api is nodeexec's HTTP API on the wire: the request and response bodies, with the JSON each
// one is. The server (package server) renders its records into these types and decodes requests from
// them; the command line (cmd/nodeexec) sends and reads the same types. What is kept in the database, or
// run on the nodes, can change without the API changing: the server converts between them.
//
// It depends on the standard library only. docs/openapi.yaml documents every type here (its schemas
// carry the same names), and server's tests hold the two together.
package api

// Error is every error's body: a sentence for people and a code for programs.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Field names the request field that is wrong, for 400s about one field.
	Field string `json:"field,omitempty"`
	// DeploymentID names the deployment that holds a node, for 409s.
	DeploymentID string `json:"deployment_id,omitempty"`
}

// Status is the answer of /healthz and /readyz when they pass.
type Status struct {
	Status string `json:"status"`
}

// Whoami is GET /api/v1/whoami: what the asking token may do. Never the token itself.
type Whoami struct {
	// Name is the token's name in the tokens file; absent when the server runs without tokens.
	Name string `json:"name,omitempty"`
	// Scope is the widest of read and deploy the token has: "deploy" may also start, roll back and
	// cancel deployments.
	Scope string `json:"scope"`
	// Scopes are the token's scopes as the tokens file gives them.
	Scopes []string `json:"scopes"`
	// Auth is false when the server runs without tokens (loopback only): every request may do all.
	Auth bool `json:"auth"`
}

// DryRun answers POST /api/v1/deployments?dry_run=true: what the deploy would do to each node, from
// the node's own record read now. Nothing was claimed, recorded or changed.
type DryRun struct {
	DryRun   bool         `json:"dry_run"`
	Service  string       `json:"service"`
	Version  string       `json:"version"`
	Platform string       `json:"platform"`
	Nodes    []DryRunNode `json:"nodes"`
}

// DryRunNode is what a deploy would do to one node (a host, or a workload's namespace/name).
type DryRunNode struct {
	Host string `json:"host"`
	// Action is change (From -> To), unchanged (it already runs To: left alone), held (a deployment or a
	// pass holds it now: the deploy would be refused with 409, HeldBy names the holder), or unreachable
	// (the node could not be read: Error says why).
	Action string `json:"action"`
	From   string `json:"from,omitempty"`
	To     string `json:"to"`
	// Recorded is the version nodeexec's record says (which the node's own may differ from).
	Recorded string `json:"recorded,omitempty"`
	HeldBy   string `json:"held_by,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Accepted answers a request that starts a deployment (or cancels one): its id and state.
type Accepted struct {
	ID    string `json:"id"`
	State State  `json:"state"`
}

// State is where a node, or a deployment, stands.
type State string

// The states, as executor.States lists them.
const (
	StatePending    State = "pending"
	StateDeploying  State = "deploying"
	StateSuccess    State = "success"
	StateFailed     State = "failed"
	StateRolledBack State = "rolled_back"
)

// Platform is the kind of node: physical hosts deployed with Ansible, or Kubernetes workloads.
type Platform string

const (
	PlatformPhysical Platform = "physical"
	PlatformK8s      Platform = "k8s"
)

// Delivery is how a package reaches a physical node: pull (the default; each node downloads it) or
// push (nodeexec downloads it and copies it to each node).
type Delivery string

const (
	DeliveryPull Delivery = "pull"
	DeliveryPush Delivery = "push"
)

// BuildInfo is GET /api/v1/version and `nodeexec version`: which build of nodeexec this is.
type BuildInfo struct {
	// Version is the release (set at build time, or the module's version), "devel" for a build from
	// a work tree without one.
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from; empty when the build did not record one.
	Commit string `json:"commit"`
	// Modified says the work tree had changes not committed when it was built.
	Modified bool `json:"modified"`
	// BuildDate is the commit's time (RFC 3339) as the build recorded it; empty when it did not.
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
}
