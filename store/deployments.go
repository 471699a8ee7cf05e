package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// Deployment is one request of the Plan Layer and how it went, node by node.
type Deployment struct {
	ID             string                 `bson:"_id" json:"id"`
	Service        string                 `bson:"service" json:"service"`
	Version        string                 `bson:"version" json:"version"`
	Platform       executor.Platform      `bson:"platform" json:"platform"`
	Request        executor.DeployRequest `bson:"request" json:"-"`
	RequestedBy    string                 `bson:"requested_by,omitempty" json:"requested_by,omitempty"`
	IdempotencyKey string                 `bson:"idempotency_key,omitempty" json:"idempotency_key,omitempty"`
	State          executor.State         `bson:"state" json:"state"`
	Error          string                 `bson:"error,omitempty" json:"error,omitempty"`
	// Nodes is a list, not a map keyed by host: hosts hold dots, which MongoDB field names may not.
	Nodes      []DeploymentNode `bson:"nodes" json:"nodes"`
	CreatedAt  time.Time        `bson:"created_at" json:"created_at"`
	StartedAt  *time.Time       `bson:"started_at,omitempty" json:"started_at,omitempty"`
	FinishedAt *time.Time       `bson:"finished_at,omitempty" json:"finished_at,omitempty"`
}

// DeploymentNode is one node's outcome within a deployment.
type DeploymentNode struct {
	Host           string         `bson:"host" json:"host"`
	State          executor.State `bson:"state" json:"state"`
	FromVersion    string         `bson:"from_version,omitempty" json:"from_version,omitempty"`
	CurrentVersion string         `bson:"current_version,omitempty" json:"current_version,omitempty"`
	PrevVersion    string         `bson:"prev_version,omitempty" json:"prev_version,omitempty"`
	Changed        bool           `bson:"changed" json:"changed"`
	LastError      string         `bson:"last_error,omitempty" json:"last_error,omitempty"`
}

// Node finds a node of the deployment by host; nil if the deployment does not touch it.
func (d *Deployment) Node(host string) *DeploymentNode {
	for i := range d.Nodes {
		if d.Nodes[i].Host == host {
			return &d.Nodes[i]
		}
	}
	return nil
}

func (s *Store) deployments() *mongo.Collection { return s.nodes.Database().Collection("deployments") }
func (s *Store) idempotency() *mongo.Collection { return s.nodes.Database().Collection("idempotency") }

// CreateDeployment records a new deployment. With an idempotency key, the first request with that key
// wins: a later one gets the deployment the first created, and created=false.
func (s *Store) CreateDeployment(ctx context.Context, d *Deployment) (got *Deployment, created bool, err error) {
	if d.IdempotencyKey != "" {
		// The key's own document, inserted first: _id uniqueness makes this atomic on every backend.
		_, err := s.idempotency().InsertOne(ctx, bson.M{"_id": d.IdempotencyKey, "deployment_id": d.ID, "created_at": d.CreatedAt})
		if mongo.IsDuplicateKeyError(err) {
			var m struct {
				DeploymentID string `bson:"deployment_id"`
			}
			if err := s.idempotency().FindOne(ctx, bson.M{"_id": d.IdempotencyKey}).Decode(&m); err != nil {
				return nil, false, fmt.Errorf("read idempotency key: %w", err)
			}
			existing, err := s.Deployment(ctx, m.DeploymentID)
			return existing, false, err
		}
		if err != nil {
			return nil, false, fmt.Errorf("record idempotency key: %w", err)
		}
	}
	if _, err := s.deployments().InsertOne(ctx, d); err != nil {
		return nil, false, fmt.Errorf("record deployment: %w", err)
	}
	return d, true, nil
}

// Deployment reads one deployment.
func (s *Store) Deployment(ctx context.Context, id string) (*Deployment, error) {
	var d Deployment
	err := s.deployments().FindOne(ctx, bson.M{"_id": id}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read deployment %s: %w", id, err)
	}
	return &d, nil
}

// UpdateDeployment writes a deployment's state and node outcomes (only its runner writes them).
func (s *Store) UpdateDeployment(ctx context.Context, d *Deployment) error {
	_, err := s.deployments().UpdateOne(ctx, bson.M{"_id": d.ID}, bson.M{"$set": bson.M{
		"state": d.State, "error": d.Error, "nodes": d.Nodes, "started_at": d.StartedAt, "finished_at": d.FinishedAt,
	}})
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", d.ID, err)
	}
	return nil
}

// Release gives a claimed node back as it was before the claim, when its deployment never ran on it.
func (s *Store) Release(ctx context.Context, deploymentID string, before *Node) error {
	id := before.ID
	defer s.lockNode(id)()
	set := bson.M{"state": before.State, "deploying_version": "", "deployment_id": before.DeploymentID, "last_error": before.LastError}
	if before.State == "" {
		// The claim created the record: remove it again.
		_, err := s.nodes.DeleteOne(ctx, bson.M{"_id": id, "deployment_id": deploymentID, "state": executor.StateDeploying})
		return err
	}
	_, err := s.nodes.UpdateOne(ctx, bson.M{"_id": id, "deployment_id": deploymentID, "state": executor.StateDeploying}, bson.M{"$set": set})
	return err
}

// ClaimAll claims every node for a deployment, or none: on the first node held by someone else, the
// nodes already claimed are released and the BusyError says who holds it. It returns each node as it was.
func (s *Store) ClaimAll(ctx context.Context, service string, hosts []string, platform executor.Platform, deploymentID, version string) (map[string]*Node, error) {
	before := make(map[string]*Node, len(hosts))
	for _, h := range hosts {
		prior, err := s.Claim(ctx, service, h, platform, deploymentID, version)
		if err != nil {
			s.releaseAll(ctx, deploymentID, before)
			return nil, err
		}
		before[h] = prior
	}
	return before, nil
}

func (s *Store) releaseAll(ctx context.Context, deploymentID string, claimed map[string]*Node) {
	for _, prior := range claimed {
		_ = s.Release(context.WithoutCancel(ctx), deploymentID, prior)
	}
}

// Nodes lists a service's node records (a scan: keep it off hot paths).
func (s *Store) Nodes(ctx context.Context, service string) ([]Node, error) {
	cur, err := s.nodes.Find(ctx, bson.M{"service": service}, options.Find().SetSort(bson.M{"_id": 1}))
	if err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", service, err)
	}
	var out []Node
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", service, err)
	}
	return out, nil
}

// DeploymentByKey finds the deployment an idempotency key created.
func (s *Store) DeploymentByKey(ctx context.Context, key string) (*Deployment, error) {
	var m struct {
		DeploymentID string `bson:"deployment_id"`
	}
	err := s.idempotency().FindOne(ctx, bson.M{"_id": key}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	return s.Deployment(ctx, m.DeploymentID)
}
