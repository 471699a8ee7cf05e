package store

import (
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/nodeexec/nodeexec/executor"
)

// Deployments recorded before the tagged document kept one "request" (an executor.DeployRequest) for
// every kind, and a scale's replicas beside it in "replicas". They are read into the fields of their
// kind, so nothing past this file knows the old form; they are not rewritten (a finished deployment's
// record never changes, and one in flight keeps its "request" until it is pruned).

// deploymentFields is Deployment without its UnmarshalBSON, to decode into without calling it again.
type deploymentFields Deployment

// legacyRequest is what a document of the old form holds beside the fields Deployment still has.
type legacyRequest struct {
	Request  *executor.DeployRequest `bson:"request"`
	Replicas *int32                  `bson:"replicas"`
}

// UnmarshalBSON reads a deployment in either form: the tagged one, or the old one with "request".
func (d *Deployment) UnmarshalBSON(data []byte) error {
	*d = Deployment{}
	if err := bson.Unmarshal(data, (*deploymentFields)(d)); err != nil {
		return err
	}
	if bson.Raw(data).Lookup("request").IsZero() {
		return nil // the tagged form
	}
	var old legacyRequest
	if err := bson.Unmarshal(data, &old); err != nil {
		return fmt.Errorf("read deployment %s in its old form: %w", d.ID, err)
	}
	d.fromLegacy(old)
	return nil
}

// fromLegacy puts an old document's request into the field of its kind: the executor request that
// kind is run with, as the old code built it from the request at run time.
func (d *Deployment) fromLegacy(old legacyRequest) {
	if old.Request == nil {
		return
	}
	req := *old.Request
	switch d.Kind {
	case KindRollback:
		// The old form would have named a rollback's version in the request's Version; the old code
		// left it empty, as each node goes back to its own TargetVersion.
		d.Rollback = &executor.RollbackRequest{
			DeploymentID:     req.DeploymentID,
			Service:          req.Service,
			ToVersion:        req.Version,
			PhysicalRollback: executor.PhysicalRollback{Nodes: req.Nodes, Health: req.Health},
			K8sRollback:      executor.K8sRollback{Workloads: req.Workloads},
		}
	case KindScale:
		d.Scale = &executor.ScaleRequest{DeploymentID: req.DeploymentID, Service: req.Service, Workloads: req.Workloads}
		if old.Replicas != nil {
			d.Scale.Replicas = *old.Replicas
		}
	case KindRestart:
		d.Restart = &executor.RestartRequest{DeploymentID: req.DeploymentID, Service: req.Service, Nodes: req.Nodes, Health: req.Health}
	default:
		d.Deploy = &req
	}
}
