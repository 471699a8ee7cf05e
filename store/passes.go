package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Cleanup and drift passes are kept alike: one document a pass, read by id, listed newest first by
// when it started, and found by their running state. what names the kind ("cleanup pass").

func readPass[T any](ctx context.Context, coll *mongo.Collection, what, id string) (*T, error) {
	var p T
	err := coll.FindOne(ctx, bson.M{"_id": id}).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("%s %s", what, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, id, err)
	}
	return &p, nil
}

// listPasses returns passes newest first, a page at a time (cursor: as ListDeployments, made from the
// last one's start and id); next is "" on the last page.
func listPasses[T any](ctx context.Context, coll *mongo.Collection, what string, limit int, cursor string, key func(T) (time.Time, string)) (page []T, next string, err error) {
	filter := bson.M{}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		filter["$or"] = bson.A{
			bson.M{"started_at": bson.M{"$lt": at}},
			bson.M{"started_at": at, "_id": bson.M{"$lt": id}},
		}
	}
	opts := options.Find().SetSort(bson.D{{Key: "started_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit) + 1)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, "", fmt.Errorf("list %ses: %w", what, err)
	}
	page = []T{}
	if err := cur.All(ctx, &page); err != nil {
		return nil, "", fmt.Errorf("list %ses: %w", what, err)
	}
	if len(page) > limit {
		page = page[:limit]
		next = encodeCursor(key(page[len(page)-1]))
	}
	return page, next, nil
}

// runningPasses lists the passes whose record says running.
func runningPasses[T any](ctx context.Context, coll *mongo.Collection, what, running string) ([]T, error) {
	cur, err := coll.Find(ctx, bson.M{"state": running})
	if err != nil {
		return nil, fmt.Errorf("list running %ses: %w", what, err)
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list running %ses: %w", what, err)
	}
	return out, nil
}

// savePass writes a running pass's progress, or its end (set), only while its record still says
// running; ended is the error when it no longer does (the pass that found it abandoned ended it).
func savePass(ctx context.Context, coll *mongo.Collection, what, id, running string, set bson.M, ended error) error {
	res, err := coll.UpdateOne(ctx, bson.M{"_id": id, "state": running}, bson.M{"$set": set})
	if err != nil {
		return fmt.Errorf("record %s %s: %w", what, id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("record %s %s: %w", what, id, ended)
	}
	return nil
}

// passAlive reports whether a pass still runs: its record says so (running) and its runner still
// holds the pass's lease for it (a runner that died stops renewing it).
func (s *Store) passAlive(ctx context.Context, leaseName, id, runner string, running bool, now time.Time) bool {
	if !running {
		return false
	}
	l, err := s.Lease(ctx, leaseName)
	return err == nil && l.Pass == id && l.Holder == runner && l.Expires.After(now)
}

// nodesWhere lists the node records filter picks, by service then host (a scan: for the passes, never
// a request's hot path).
func (s *Store) nodesWhere(ctx context.Context, filter bson.M) ([]Node, error) {
	cur, err := s.nodes.Find(ctx, filter, options.Find().SetSort(bson.M{"_id": 1}))
	if err != nil {
		return nil, err
	}
	out := []Node{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}
