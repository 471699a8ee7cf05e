// Package notify tells the people responsible how a deployment ended: every configured webhook that
// wants that kind of event gets a JSON event, signed with its own secret, delivered in the background
// with retries, so a slow or dead receiver never holds up a deployment.
package notify

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Type is what happened to a deployment; one event per finished deployment.
type Type string

const (
	// Succeeded: the deployment reached its goal on every node (a deploy or a scale).
	Succeeded Type = "deployment.succeeded"
	// Failed: the deployment ended with at least one node failed and not put back (someone has to
	// look), or a requested rollback did not bring every node back.
	Failed Type = "deployment.failed"
	// RolledBack: nodes were put back to the version they ran before. Either automatically, a deploy
	// in which every node that did not succeed was rolled back by the deploy itself (Rollback
	// "automatic"), or a rollback requested through the API that brought every node back (Rollback
	// "requested").
	RolledBack Type = "deployment.rolled_back"
	// Drifted: a drift pass found a node that differs from its record (deployed by hand, unit stopped,
	// image changed with kubectl, unreachable); one event when it is found, none while it lasts.
	Drifted Type = "node.drifted"
)

// Types lists every event type.
var Types = []Type{Succeeded, Failed, RolledBack, Drifted}

// Name is the short name a webhook subscribes with: succeeded, failed, rolled_back, drifted.
func (t Type) Name() string {
	_, short, _ := strings.Cut(string(t), ".")
	return short
}

// ParseType reads a short name (succeeded, failed, rolled_back) or a full type.
func ParseType(name string) (Type, error) {
	for _, t := range Types {
		if name == t.Name() || name == string(t) {
			return t, nil
		}
	}
	return "", fmt.Errorf("%q is not an event: want drifted, failed, rolled_back or succeeded", name)
}

// Event is the JSON body a webhook receives.
type Event struct {
	// ID names this event; it stays the same on every retry of its delivery, so a receiver can drop
	// duplicates. It is made of the deployment's id and the type's short name, safe in a URL.
	ID           string `json:"id"`
	Type         Type   `json:"type"`
	DeploymentID string `json:"deployment_id"`
	// Kind is deploy, rollback or scale; RollbackOf names the deployment a rollback undid.
	Kind       string `json:"kind"`
	RollbackOf string `json:"rollback_of,omitempty"`
	// Rollback says who rolled back, for deployment.rolled_back: "automatic" or "requested".
	Rollback    string            `json:"rollback,omitempty"`
	Service     string            `json:"service"`
	Version     string            `json:"version"`
	Platform    executor.Platform `json:"platform"`
	State       executor.State    `json:"state"`
	Error       string            `json:"error,omitempty"`
	RequestedBy string            `json:"requested_by,omitempty"`
	Nodes       []Node            `json:"nodes"`
	CreatedAt   time.Time         `json:"created_at"`
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
	// DurationSeconds runs from start to finish (0 for a deployment that never started).
	DurationSeconds float64 `json:"duration_seconds"`
	// Links are the API paths that show this deployment, relative to nodeexec's own address.
	Links Links `json:"links"`
	// Drift is node.drifted's: the node, what its record said and what it runs (DeploymentID is then
	// empty; Links.Drift shows the pass).
	Drift *Drift `json:"drift,omitempty"`
}

// Drift is the node a drift pass found differing from its record.
type Drift struct {
	PassID   string    `json:"pass_id"`
	Host     string    `json:"host"`
	Kind     string    `json:"kind"`
	Recorded string    `json:"recorded"`
	Observed string    `json:"observed"`
	Since    time.Time `json:"since"`
	// Updated says the record took the node's versions (version, image_changed).
	Updated bool   `json:"updated"`
	Message string `json:"message,omitempty"`
}

// Node is one node's outcome.
type Node struct {
	Host           string         `json:"host"`
	State          executor.State `json:"state"`
	TargetVersion  string         `json:"target_version"`
	CurrentVersion string         `json:"current_version"`
	PrevVersion    string         `json:"prev_version"`
	LastError      string         `json:"last_error,omitempty"`
}

// Links are paths of nodeexec's API.
type Links struct {
	Deployment string `json:"deployment"`
	Events     string `json:"events"`
	Info       string `json:"info"`
	Logs       string `json:"logs"`
	Drift      string `json:"drift,omitempty"`
}

// Classify is the event a finished deployment gives.
func Classify(d *store.Deployment) (t Type, rollback string) {
	switch {
	case d.Kind == store.KindRollback && d.State == executor.StateRolledBack:
		return RolledBack, "requested"
	case d.Kind != store.KindRollback && d.State == executor.StateSuccess:
		return Succeeded, ""
	case d.Kind == store.KindDeploy && allPutBack(d):
		return RolledBack, "automatic"
	}
	return Failed, ""
}

// allPutBack: some node was rolled back, and every node that did not succeed was.
func allPutBack(d *store.Deployment) bool {
	rolled := false
	for _, n := range d.Nodes {
		switch n.State {
		case executor.StateRolledBack:
			rolled = true
		case executor.StateSuccess:
		default:
			return false
		}
	}
	return rolled
}

// NewEvent is the event of a finished deployment.
func NewEvent(d *store.Deployment) Event {
	t, rollback := Classify(d)
	id := url.PathEscape(d.ID)
	ev := Event{ID: d.ID + "." + t.Name(), Type: t, DeploymentID: d.ID, Kind: d.Kind, RollbackOf: d.RollbackOf, Rollback: rollback,
		Service: d.Service, Version: d.Version, Platform: d.Platform, State: d.State, Error: d.Error, RequestedBy: d.RequestedBy,
		Nodes: make([]Node, 0, len(d.Nodes)), CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
		Links: Links{Deployment: "/api/v1/deployments/" + id, Events: "/api/v1/deployments/" + id + "/events",
			Info: "/internal/v1/deploy/info/" + id, Logs: "/internal/v1/deploy/logs/" + id}}
	if d.StartedAt != nil && d.FinishedAt != nil {
		ev.DurationSeconds = d.FinishedAt.Sub(*d.StartedAt).Seconds()
	}
	for _, n := range d.Nodes {
		ev.Nodes = append(ev.Nodes, Node{Host: n.Host, State: n.State, TargetVersion: n.TargetVersion,
			CurrentVersion: n.CurrentVersion, PrevVersion: n.PrevVersion, LastError: n.LastError})
	}
	return ev
}

// NewDriftEvent is the event of a drift a pass found on node n.
func NewDriftEvent(passID string, n store.DriftNode) Event {
	d := n.Drift
	version := "" // the version the node runs, when that is what drifted
	if n.Updated != nil {
		version = n.Updated.Current
	}
	return Event{ID: passID + "." + url.PathEscape(n.Host) + "." + Drifted.Name(), Type: Drifted, Service: n.Service,
		Version: version, Platform: n.Platform, Nodes: []Node{}, CreatedAt: d.Since,
		Links: Links{Drift: "/api/v1/drift/" + url.PathEscape(passID)},
		Drift: &Drift{PassID: passID, Host: n.Host, Kind: d.Kind, Recorded: d.Recorded, Observed: d.Observed, Since: d.Since,
			Updated: n.Updated != nil, Message: n.Message}}
}
