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

// The deployments in flight have an index of their own, the in_flight collection: one small entry per
// deployment, written before the deployment and deleted once it has ended. FerretDB runs no filter but
// `_id` equality in SQLite (the embedded default), so asking the deployments collection for its
// unfinished ones reads and decodes every deployment ever recorded: 120 ms at 300 deployments, at every
// admission and every heartbeat. The index stays as small as what is in flight.
//
// An entry outlives its deployment's end only when the process died between the two writes (or the
// delete failed); a reader of full deployments (InFlight) deletes such entries as it finds them, and an
// entry whose deployment was never written once it is older than orphanAfter.

// FlightEntry is a deployment in flight as the in_flight index holds it: what an admission counts.
type FlightEntry struct {
	ID       string            `bson:"_id"`
	Service  string            `bson:"service"`
	Platform executor.Platform `bson:"platform"`
	// Width is how many of the service's nodes it takes out of service at once (Batch.Width).
	Width          int       `bson:"width"`
	MaxUnavailable int       `bson:"max_unavailable,omitempty"`
	At             time.Time `bson:"at"`
}

// orphanAfter is how old an entry without a deployment must be before it counts as left by a crash
// between its two writes (recording a deployment takes milliseconds).
const orphanAfter = 10 * time.Minute

// inFlightStates matches the states of a deployment that has not ended.
func inFlightStates() bson.M {
	return bson.M{"$in": bson.A{executor.StatePending, executor.StateDeploying}}
}

func (s *Store) inFlight() *mongo.Collection { return s.nodes.Database().Collection("in_flight") }

func flightEntry(d *Deployment) FlightEntry {
	return FlightEntry{ID: d.ID, Service: d.Service, Platform: d.Platform, Width: d.Batch.Width(len(d.Nodes)),
		MaxUnavailable: d.Batch.MaxUnavailable, At: d.CreatedAt}
}

// enterFlight indexes a deployment about to be recorded, unless it is recorded already ended.
func (s *Store) enterFlight(ctx context.Context, d *Deployment) error {
	if d.State.Terminal() {
		return nil
	}
	_, err := s.inFlight().InsertOne(ctx, flightEntry(d))
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("record deployment %s in flight: %w", d.ID, err)
	}
	return nil
}

// leaveFlight takes an ended (or never recorded) deployment off the index. A failure is left to the
// next InFlight to mend.
func (s *Store) leaveFlight(ctx context.Context, id string) {
	_, _ = s.inFlight().DeleteOne(context.WithoutCancel(ctx), bson.M{"_id": id})
}

// FlightOf lists the index's entries of one service's deployments in flight ("": every service's),
// oldest first. It may still hold a deployment that ended a moment ago (see above): an admission then
// counts one too many, never one too few.
func (s *Store) FlightOf(ctx context.Context, service string) ([]FlightEntry, error) {
	filter := bson.M{}
	if service != "" {
		filter["service"] = service
	}
	cur, err := s.inFlight().Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list deployments in flight: %w", err)
	}
	out := []FlightEntry{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list deployments in flight: %w", err)
	}
	return out, nil
}

// InFlight reads the deployments that have not ended (after a restart, and at each heartbeat, these are
// reconciled), each by its _id, and deletes the index entries of those that ended.
func (s *Store) InFlight(ctx context.Context) ([]Deployment, error) {
	entries, err := s.FlightOf(ctx, "")
	if err != nil {
		return nil, err
	}
	out := []Deployment{}
	for _, e := range entries {
		d, err := s.Deployment(ctx, e.ID)
		switch {
		case errors.Is(err, ErrNotFound):
			if time.Since(e.At) > orphanAfter {
				s.leaveFlight(ctx, e.ID)
			}
		case err != nil:
			return nil, err
		case d.State.Terminal():
			s.leaveFlight(ctx, e.ID)
		default:
			out = append(out, *d)
		}
	}
	return out, nil
}

// indexInFlight enters in the index every deployment in flight that it lacks: those recorded by a
// nodeexec from before the index. One scan of the deployments, at start.
func (s *Store) indexInFlight(ctx context.Context) error {
	cur, err := s.deployments().Find(ctx, bson.M{"state": inFlightStates()})
	if err != nil {
		return fmt.Errorf("index the deployments in flight: %w", err)
	}
	var flight []Deployment
	if err := cur.All(ctx, &flight); err != nil {
		return fmt.Errorf("index the deployments in flight: %w", err)
	}
	for i := range flight {
		if err := s.enterFlight(ctx, &flight[i]); err != nil {
			return err
		}
	}
	return nil
}
