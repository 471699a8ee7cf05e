package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// pruneBatch bounds the deployments one round of Prune deletes (and the ids in its $in lists).
const pruneBatch = 500

// Prune deletes the records that finished before cutoff: deployments (never one pending or deploying,
// however old), their events and idempotency keys, keys whose request never recorded a deployment, and
// cleanup passes (never a running one). A deployment's events and keys go before the deployment
// itself, so a prune that stops half-way leaves records the next one finds, never orphans it cannot.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (Pruned, error) {
	p := Pruned{Before: &cutoff}
	finished := bson.M{"state": bson.M{"$nin": bson.A{executor.StatePending, executor.StateDeploying}}, "finished_at": bson.M{"$lt": cutoff}}
	for {
		cur, err := s.deployments().Find(ctx, finished, options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(pruneBatch))
		if err != nil {
			return p, fmt.Errorf("prune deployments: %w", err)
		}
		var docs []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return p, fmt.Errorf("prune deployments: %w", err)
		}
		if len(docs) == 0 {
			break
		}
		ids := make(bson.A, len(docs))
		for i, d := range docs {
			ids[i] = d.ID
		}
		res, err := s.events().DeleteMany(ctx, bson.M{"deployment_id": bson.M{"$in": ids}})
		if err != nil {
			return p, fmt.Errorf("prune events: %w", err)
		}
		p.EventChunks += res.DeletedCount
		if res, err = s.idempotency().DeleteMany(ctx, bson.M{"deployment_id": bson.M{"$in": ids}}); err != nil {
			return p, fmt.Errorf("prune idempotency keys: %w", err)
		}
		p.IdempotencyKeys += res.DeletedCount
		// The same conditions again: a deployment is deleted only as the one that was found.
		gone := bson.M{"_id": bson.M{"$in": ids}}
		for k, v := range finished {
			gone[k] = v
		}
		if res, err = s.deployments().DeleteMany(ctx, gone); err != nil {
			return p, fmt.Errorf("prune deployments: %w", err)
		}
		p.Deployments += res.DeletedCount
		if len(docs) < pruneBatch {
			break
		}
	}
	n, err := s.pruneOrphanKeys(ctx, cutoff)
	p.IdempotencyKeys += n
	if err != nil {
		return p, err
	}
	res, err := s.cleanups().DeleteMany(ctx, bson.M{"state": bson.M{"$ne": CleanupRunning}, "finished_at": bson.M{"$lt": cutoff}})
	if err != nil {
		return p, fmt.Errorf("prune cleanup passes: %w", err)
	}
	p.Cleanups = res.DeletedCount
	res, err = s.driftPasses().DeleteMany(ctx, bson.M{"state": bson.M{"$ne": DriftRunning}, "finished_at": bson.M{"$lt": cutoff}})
	if err != nil {
		return p, fmt.Errorf("prune drift passes: %w", err)
	}
	p.DriftPasses = res.DeletedCount
	// Takeover tickets matter only while their takeover runs (seconds, a lease).
	if _, err := s.keyTakeovers().DeleteMany(ctx, bson.M{"at": bson.M{"$lt": cutoff}}); err != nil {
		return p, fmt.Errorf("prune key takeovers: %w", err)
	}
	if _, err := s.deploymentTakeovers().DeleteMany(ctx, bson.M{"at": bson.M{"$lt": cutoff}}); err != nil {
		return p, fmt.Errorf("prune deployment takeovers: %w", err)
	}
	return p, nil
}

// pruneOrphanKeys deletes idempotency keys reserved before cutoff whose deployment does not exist: their
// request failed before recording one (a retry would have taken them over long ago).
func (s *Store) pruneOrphanKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	cur, err := s.idempotency().Find(ctx, bson.M{"created_at": bson.M{"$lt": cutoff}})
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	var keys []struct {
		Key          string `bson:"_id"`
		DeploymentID string `bson:"deployment_id"`
	}
	if err := cur.All(ctx, &keys); err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	var n int64
	for _, k := range keys {
		_, err := s.Deployment(ctx, k.DeploymentID)
		if !errors.Is(err, ErrNotFound) {
			if err != nil {
				return n, err
			}
			continue // its deployment is kept (still running, or finished after cutoff): so is the key
		}
		res, err := s.idempotency().DeleteOne(ctx, bson.M{"_id": k.Key, "deployment_id": k.DeploymentID, "created_at": bson.M{"$lt": cutoff}})
		if err != nil {
			return n, fmt.Errorf("prune idempotency keys: %w", err)
		}
		n += res.DeletedCount
	}
	return n, nil
}
