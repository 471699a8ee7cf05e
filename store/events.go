package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// Event is one thing that happened in a deployment: the deployment or a node changing state, or a task
// result on a node. Events are the live progress stream and the node's log.
type Event struct {
	// ID is "<deployment>/<seq, zero-padded>": reading a deployment's events is a range scan of _id.
	ID           string         `bson:"_id" json:"-"`
	DeploymentID string         `bson:"deployment_id" json:"deployment_id"`
	Seq          int64          `bson:"seq" json:"seq"`
	Time         time.Time      `bson:"time" json:"time"`
	Type         EventType      `bson:"type" json:"type"`
	Node         string         `bson:"node,omitempty" json:"node,omitempty"`
	State        executor.State `bson:"state,omitempty" json:"state,omitempty"`
	Message      string         `bson:"message,omitempty" json:"message,omitempty"`
	Step         *executor.Step `bson:"step,omitempty" json:"step,omitempty"`
}

// EventType says what an event is about.
type EventType string

const (
	EventDeployment EventType = "deployment" // the deployment's overall state changed
	EventNode       EventType = "node"       // a node's state changed
	EventStep       EventType = "step"       // a task ran on a node
)

// maxSeq bounds a deployment's event ids from above (12 digits).
const maxSeq = 999_999_999_999

func eventID(deploymentID string, seq int64) string {
	return fmt.Sprintf("%s/%012d", deploymentID, seq)
}

func (s *Store) events() *mongo.Collection { return s.nodes.Database().Collection("events") }

// AppendEvents records events; their Seq must be set by the deployment's one writer, in order.
func (s *Store) AppendEvents(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	docs := make([]any, len(events))
	for i := range events {
		events[i].ID = eventID(events[i].DeploymentID, events[i].Seq)
		docs[i] = events[i]
	}
	if _, err := s.events().InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	return nil
}

// Events returns a deployment's events after seq (0: from the start), oldest first, at most limit.
func (s *Store) Events(ctx context.Context, deploymentID string, after int64, limit int64) ([]Event, error) {
	filter := bson.M{"_id": bson.M{"$gt": eventID(deploymentID, after), "$lte": eventID(deploymentID, maxSeq)}}
	cur, err := s.events().Find(ctx, filter, options.Find().SetSort(bson.M{"_id": 1}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", deploymentID, err)
	}
	out := []Event{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read events of %s: %w", deploymentID, err)
	}
	return out, nil
}

// LastEventSeq is the newest event's seq of a deployment (0 if none), so a new writer carries on from it.
func (s *Store) LastEventSeq(ctx context.Context, deploymentID string) (int64, error) {
	filter := bson.M{"_id": bson.M{"$gt": eventID(deploymentID, 0), "$lte": eventID(deploymentID, maxSeq)}}
	cur, err := s.events().Find(ctx, filter, options.Find().SetSort(bson.M{"_id": -1}).SetLimit(1))
	if err != nil {
		return 0, fmt.Errorf("read events of %s: %w", deploymentID, err)
	}
	var last []Event
	if err := cur.All(ctx, &last); err != nil {
		return 0, fmt.Errorf("read events of %s: %w", deploymentID, err)
	}
	if len(last) == 0 {
		return 0, nil
	}
	return last[0].Seq, nil
}
