package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/nodeexec/nodeexec/executor"
)

// Idempotency keys: a document of their own per key ("idempotency" collection, _id the key), naming
// the deployment it was reserved for and the fingerprint of that request. A retry with the same key
// and the same request gets that deployment back; the same key with another request is refused
// (KeyReusedError). A key reserved before fingerprints existed has none: any request with it gets its
// deployment back, as before.

// KeyReusedError is an idempotency key sent again with a request other than the one it was first
// sent with: the first request's deployment is DeploymentID.
type KeyReusedError struct {
	Key          string
	DeploymentID string
}

func (e *KeyReusedError) Error() string {
	return fmt.Sprintf("idempotency_key %q was first used for deployment %s, with another request; "+
		"use a new key for a new request, or send the first request again unchanged", e.Key, e.DeploymentID)
}

// Fingerprint is the canonical digest of what a deployment asks for: its kind, what it rolls back (and to which target),
// service, version, platform, batching, and the kind's request (nodes or workloads in their order,
// package, delivery, health, unit, image, strategy, replicas; an apply's namespace, manifest and dry
// run; a delete's namespace, selector and dry run), without its id. Who asked (token,
// requested_by) and when are not part of it. JSON of fixed structs, map keys sorted, SHA-256 in hex:
// the same request gives the same fingerprint on every replica and after a restart.
func (d *Deployment) Fingerprint() string {
	canon := struct {
		Kind, RollbackOf, Service, Version string
		// omitempty: every fingerprint but a rollback-to's stays what it was before the field.
		TargetDeploymentID               string `json:",omitempty"`
		Platform                         string
		Batch                            Batch
		Deploy, Rollback, Scale, Restart any
		// Applications are the fingerprints of a deployment of several's applications, in order.
		Applications []string `json:",omitempty"`
		// Left out when nil, so that the fingerprints of the other kinds stay what they were.
		Apply  *executor.ApplyRequest  `json:",omitempty"`
		Delete *executor.DeleteRequest `json:",omitempty"`
	}{Apply: d.Apply, Delete: d.Delete, Kind: d.Kind, RollbackOf: d.RollbackOf, TargetDeploymentID: d.TargetDeploymentID, Service: d.Service,
		Version: d.Version, Platform: string(d.Platform), Batch: d.Batch}
	for _, a := range d.Applications {
		if a.Request != nil {
			canon.Applications = append(canon.Applications, a.Request.Fingerprint())
		}
	}
	// The request's own id is the deployment's, new on every try: never part of what was asked.
	canon.Deploy = withoutID(d.Deploy, func(c *executor.DeployRequest) { c.DeploymentID = "" })
	canon.Rollback = withoutID(d.Rollback, func(c *executor.RollbackRequest) { c.DeploymentID = "" })
	canon.Scale = withoutID(d.Scale, func(c *executor.ScaleRequest) { c.DeploymentID = "" })
	canon.Restart = withoutID(d.Restart, func(c *executor.RestartRequest) { c.DeploymentID = "" })
	b, err := json.Marshal(canon)
	if err != nil { // plain data: cannot happen; an empty fingerprint only loses the reuse check
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// KeyHolder is who holds an idempotency key: the deployment it was reserved for, and the fingerprint
// of that request ("" for a key reserved before fingerprints).
type KeyHolder struct {
	DeploymentID string    `bson:"deployment_id"`
	Fingerprint  string    `bson:"fingerprint,omitempty"`
	CreatedAt    time.Time `bson:"created_at"`
}

// Reused says whether a request with fingerprint is another request than the one the key holds.
func (k KeyHolder) Reused(fingerprint string) bool {
	return k.Fingerprint != "" && fingerprint != "" && k.Fingerprint != fingerprint
}

// ReserveKey gives an idempotency key to deploymentID unless a deployment already has it, and returns
// the key's holder: deploymentID when this call (or an earlier one of the same deployment) got it. The
// key is a document of its own, so _id uniqueness makes the first request win on every backend. The
// holder keeps fingerprint (Deployment.Fingerprint), for a later request with the key to compare.
func (s *Store) ReserveKey(ctx context.Context, key, deploymentID, fingerprint string, at time.Time) (KeyHolder, error) {
	mine := KeyHolder{DeploymentID: deploymentID, Fingerprint: fingerprint, CreatedAt: at}
	_, err := s.idempotency().InsertOne(ctx, bson.M{"_id": key, "deployment_id": deploymentID, "fingerprint": fingerprint, "created_at": at})
	if err == nil {
		return mine, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return KeyHolder{}, fmt.Errorf("record idempotency key: %w", err)
	}
	return s.keyOwner(ctx, key)
}

func (s *Store) keyOwner(ctx context.Context, key string) (KeyHolder, error) {
	var k KeyHolder
	err := s.idempotency().FindOne(ctx, bson.M{"_id": key}).Decode(&k)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return k, notFound("idempotency key %q", key)
	}
	if err != nil {
		return k, fmt.Errorf("read idempotency key: %w", err)
	}
	return k, nil
}

// ForgetKey gives back a key deploymentID reserved but never recorded a deployment for (its request
// was refused, or failed), so a retry can run. A key another deployment holds is left alone.
func (s *Store) ForgetKey(ctx context.Context, key, deploymentID string) error {
	if _, err := s.idempotency().DeleteOne(ctx, bson.M{"_id": key, "deployment_id": deploymentID}); err != nil {
		return fmt.Errorf("forget idempotency key: %w", err)
	}
	return nil
}

// TakeOverKey moves a key whose owner never recorded a deployment to deploymentID, if the owner is
// still orphanOwner and reserved it before notAfter (a request whose database failed between the key
// and the record). It returns the key's owner afterwards.
//
// Of requests (on any replica) that take over one orphaned key at once, one wins: each inserts a ticket
// whose unique _id names the key and the orphan, and the database lets one in. Every taker then makes
// the move the ticket says, the same write each, so a winner that dies before it does is completed by
// the others.
func (s *Store) TakeOverKey(ctx context.Context, key, orphanOwner, deploymentID, fingerprint string, notAfter, at time.Time) (string, error) {
	k, err := s.keyOwner(ctx, key)
	if err != nil {
		return "", err
	}
	if k.DeploymentID != orphanOwner || !k.CreatedAt.Before(notAfter) {
		return k.DeploymentID, nil
	}
	t := keyTakeover{ID: orphanOwner + " " + key, Key: key, To: deploymentID, Fingerprint: fingerprint, At: at}
	if _, err := s.keyTakeovers().InsertOne(ctx, t); mongo.IsDuplicateKeyError(err) {
		if err := s.keyTakeovers().FindOne(ctx, bson.M{"_id": t.ID}).Decode(&t); err != nil {
			return "", fmt.Errorf("take over idempotency key: read the winner: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("take over idempotency key: %w", err)
	}
	if _, err := s.idempotency().UpdateOne(ctx, bson.M{"_id": key, "deployment_id": orphanOwner},
		bson.M{"$set": bson.M{"deployment_id": t.To, "fingerprint": t.Fingerprint, "created_at": t.At}}); err != nil {
		return "", fmt.Errorf("take over idempotency key: %w", err)
	}
	return t.To, nil
}

// keyTakeover is the ticket of one key's takeover from one orphaned owner.
type keyTakeover struct {
	ID          string    `bson:"_id"` // "<orphan owner> <key>"
	Key         string    `bson:"key"`
	To          string    `bson:"to"`
	Fingerprint string    `bson:"fingerprint"`
	At          time.Time `bson:"at"`
}

func (s *Store) keyTakeovers() *mongo.Collection {
	return s.nodes.Database().Collection("key_takeovers")
}

// KeyReservedAt is when a key's owner reserved it.
func (s *Store) KeyReservedAt(ctx context.Context, key string) (time.Time, error) {
	k, err := s.keyOwner(ctx, key)
	return k.CreatedAt, err
}

// DeploymentByKey finds the deployment an idempotency key created.
func (s *Store) DeploymentByKey(ctx context.Context, key string) (*Deployment, error) {
	k, err := s.keyOwner(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.Deployment(ctx, k.DeploymentID)
}

// withoutID is a copy of r with its deployment id cleared by clear (nil when r is).
func withoutID[T any](r *T, clear func(*T)) any {
	if r == nil {
		return nil
	}
	c := *r
	clear(&c)
	return c
}
