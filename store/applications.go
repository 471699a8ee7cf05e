package store

import "github.com/nodeexec/nodeexec/executor"

// A deployment of several applications is a record of its own that runs nothing: each application is
// carried out by a deployment of its own (ParentID naming the record), with its nodes, claims, events
// and rollback as any deployment has. The record keeps each application's state and nodes as last
// seen, so it reads (and renders) on its own; the engine refreshes it as its applications go.

// MaxApplications bounds the applications of one deployment.
const MaxApplications = 50

// Application is one application of a deployment of several, as its own deployment last was.
type Application struct {
	Service      string           `bson:"service" json:"service"`
	Version      string           `bson:"version" json:"version"`
	DeploymentID string           `bson:"deployment_id" json:"deployment_id"`
	State        executor.State   `bson:"state" json:"state"`
	Error        string           `bson:"error,omitempty" json:"error,omitempty"`
	Nodes        []DeploymentNode `bson:"nodes" json:"nodes"`
	// Request is the application's request while the deployment is submitted, for its fingerprint; it
	// is never stored (the application's own deployment keeps it).
	Request *Deployment `bson:"-" json:"-"`
}

// ApplicationOf is what a deployment of several keeps of one application's deployment now.
func ApplicationOf(app *Deployment) Application {
	return Application{Service: app.Service, Version: app.Version, DeploymentID: app.ID, State: app.State, Error: app.Error,
		Nodes: append([]DeploymentNode(nil), app.Nodes...)}
}

// HasApplications says whether d is a deployment of several applications.
func (d *Deployment) HasApplications() bool { return len(d.Applications) > 0 }

// Refresh keeps app's deployment as it is now in d (a deployment of several), and reports whether
// that changed anything.
func (d *Deployment) Refresh(app *Deployment) bool {
	for i := range d.Applications {
		if d.Applications[i].DeploymentID == app.ID {
			now := ApplicationOf(app)
			if sameApplication(d.Applications[i], now) {
				return false
			}
			d.Applications[i] = now
			return true
		}
	}
	return false
}

func sameApplication(a, b Application) bool {
	if a.State != b.State || a.Error != b.Error || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for i := range a.Nodes {
		if a.Nodes[i] != b.Nodes[i] {
			return false
		}
	}
	return true
}

// ApplicationsState is the state of a deployment of several from its applications': pending until
// one starts, deploying until all have ended, then goal when every one reached it and failed when
// any did not.
func (d *Deployment) ApplicationsState(goal executor.State) executor.State {
	started, ended, reached := false, 0, 0
	for _, a := range d.Applications {
		switch {
		case a.State.Terminal():
			ended++
			started = true
			if a.State == goal {
				reached++
			}
		case a.State != executor.StatePending:
			started = true
		}
	}
	switch {
	case ended == len(d.Applications) && reached == ended:
		return goal
	case ended == len(d.Applications):
		return executor.StateFailed
	case started:
		return executor.StateDeploying
	}
	return executor.StatePending
}

// ApplicationIDs are the ids of the deployments that carry out d's applications.
func (d *Deployment) ApplicationIDs() []string {
	ids := make([]string, 0, len(d.Applications))
	for _, a := range d.Applications {
		ids = append(ids, a.DeploymentID)
	}
	return ids
}
