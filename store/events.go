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

// Event is one thing that happened in a deployment: the deployment or a node changing state, or a task
// result on a node. Events are the live progress stream and the node's log.
type Event struct {
	DeploymentID string         `bson:"deployment_id" json:"deployment_id"`
	Seq          int64          `bson:"seq" json:"seq"`
	Time         time.Time      `bson:"time" json:"time"`
	Type         EventType      `bson:"type" json:"type"`
	Node         string         `bson:"node,omitempty" json:"node,omitempty"`
	State        executor.State `bson:"state,omitempty" json:"state,omitempty"`
	Message      string         `bson:"message,omitempty" json:"message,omitempty"`
	Step         *executor.Step `bson:"step,omitempty" json:"step,omitempty"`
	// Evidence is what a failed deploy kept on the node (type evidence): the failed release, where it
	// lies on the node, and the unit's journal excerpt and status.
	Evidence *executor.FailedRelease `bson:"evidence,omitempty" json:"evidence,omitempty"`
}

// EventType says what an event is about.
type EventType string

const (
	EventDeployment EventType = "deployment" // the deployment's overall state changed
	EventNode       EventType = "node"       // a node's state changed
	EventStep       EventType = "step"       // a task ran on a node
	EventEvidence   EventType = "evidence"   // a failed deploy kept its evidence on a node
)

// Events are kept in chunks of eventsPerChunk consecutive events, one document per chunk, keyed
// "<deployment>/<chunk>": every read and append is a lookup by _id, the one query the embedded
// server (FerretDB) answers from an index; a range query over single-event documents would scan
// every event of every deployment.
const eventsPerChunk = 64

type eventChunk struct {
	ID           string  `bson:"_id"`
	DeploymentID string  `bson:"deployment_id"`
	Chunk        int64   `bson:"chunk"`
	Events       []Event `bson:"events"`
}

func chunkOf(seq int64) int64 { return (seq - 1) / eventsPerChunk }

func chunkID(deploymentID string, chunk int64) string {
	return fmt.Sprintf("%s/%06d", deploymentID, chunk)
}

func (s *Store) events() *mongo.Collection { return s.nodes.Database().Collection("events") }

// AppendEvents records events of one deployment; their Seq must be set by its one writer, in order.
func (s *Store) AppendEvents(ctx context.Context, events []Event) error {
	for start := 0; start < len(events); {
		chunk := chunkOf(events[start].Seq)
		end := start
		for end < len(events) && chunkOf(events[end].Seq) == chunk {
			end++
		}
		id := events[start].DeploymentID
		_, err := s.events().UpdateOne(ctx, bson.M{"_id": chunkID(id, chunk)}, bson.M{
			"$push":        bson.M{"events": bson.M{"$each": events[start:end]}},
			"$setOnInsert": bson.M{"deployment_id": id, "chunk": chunk},
		}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("record events of %s: %w", id, err)
		}
		start = end
	}
	return nil
}

// Events returns a deployment's events after seq (0: from the start), oldest first, at most limit.
func (s *Store) Events(ctx context.Context, deploymentID string, after int64, limit int64) ([]Event, error) {
	out := []Event{}
	for chunk := chunkOf(after + 1); int64(len(out)) < limit; chunk++ {
		c, err := s.eventChunk(ctx, deploymentID, chunk)
		if err != nil {
			return nil, err
		}
		if c == nil {
			break
		}
		for _, ev := range c.Events {
			if ev.Seq > after && int64(len(out)) < limit {
				out = append(out, ev)
			}
		}
		if len(c.Events) < eventsPerChunk {
			break // the newest chunk
		}
	}
	return out, nil
}

func (s *Store) eventChunk(ctx context.Context, deploymentID string, chunk int64) (*eventChunk, error) {
	var c eventChunk
	err := s.events().FindOne(ctx, bson.M{"_id": chunkID(deploymentID, chunk)}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", deploymentID, err)
	}
	return &c, nil
}

// LastEventSeq is the newest event's seq of a deployment (0 if none), so a new writer carries on from it.
func (s *Store) LastEventSeq(ctx context.Context, deploymentID string) (int64, error) {
	var last int64
	for chunk := int64(0); ; chunk++ {
		c, err := s.eventChunk(ctx, deploymentID, chunk)
		if err != nil {
			return 0, err
		}
		if c == nil || len(c.Events) == 0 {
			return last, nil
		}
		last = c.Events[len(c.Events)-1].Seq
		if len(c.Events) < eventsPerChunk {
			return last, nil
		}
	}
}
