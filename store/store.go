// Package store keeps what nodeexec knows in MongoDB (or the embedded FerretDB): one document per node,
// keyed "<service>/<host>" so hot lookups hit _id. No transactions, which the embedded server does not
// have, and no conditional update that must be atomic, which FerretDB's are not: what replicas must never
// both do (hold a node, take a lease or an idempotency key) is an insert with a unique _id.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// Store is nodeexec's state in one MongoDB database.
type Store struct {
	client *mongo.Client
	nodes  *mongo.Collection
	// stripes serialize this process's writes of one node with the cache's fills, so a cached record is
	// always the stored one. They make no guarantee between writers: a node's claim ticket does (claims.go).
	stripes [64]sync.Mutex
	// cache holds node records for reads when this process is their only writer (nil otherwise).
	cache *nodeCache
}

// lockNode serializes this process's writes of one node while it caches records (nothing otherwise).
func (s *Store) lockNode(id string) func() {
	if s.cache == nil {
		return func() {}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	m := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	m.Lock()
	return m.Unlock
}

// Exclusive says whether this process is the database's only user (the embedded server): then no other
// replica can be running what the records say is in flight.
func (s *Store) Exclusive() bool { return s.cache != nil }

// Open connects to uri and checks the server answers.
func Open(ctx context.Context, uri, database string) (*Store, error) {
	client, err := mongo.Connect(options.Client().SetServerSelectionTimeout(5 * time.Second).ApplyURI(uri)) // the URI may set its own
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	s := &Store{client: client, nodes: client.Database(database).Collection("nodes")}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, prepare := range []func(context.Context) error{s.ensureIndexes, s.indexInFlight} {
		if err := prepare(ctx); err != nil {
			_ = client.Disconnect(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return s, nil
}

// ensureIndexes creates every collection and the indexes the listings use (node reads and events go
// by _id). Creating an existing index is a no-op, so every start may call it.
func (s *Store) ensureIndexes(ctx context.Context) error {
	db := s.nodes.Database()
	for coll, keys := range map[string][]bson.D{
		"nodes": {{{Key: "service", Value: 1}}},
		"deployments": {{{Key: "service", Value: 1}, {Key: "created_at", Value: -1}}, {{Key: "created_at", Value: -1}}, {{Key: "state", Value: 1}},
			{{Key: "nodes.host", Value: 1}, {Key: "created_at", Value: -1}}},
		"events":               {{{Key: "deployment_id", Value: 1}}},
		"idempotency":          {{{Key: "deployment_id", Value: 1}}},
		"cleanups":             {{{Key: "started_at", Value: -1}}, {{Key: "state", Value: 1}}},
		"drift":                {{{Key: "started_at", Value: -1}}, {{Key: "state", Value: 1}}},
		"leases":               {{{Key: "name", Value: 1}, {Key: "generation", Value: -1}}},
		"key_takeovers":        {{{Key: "at", Value: 1}}},
		"claims":               {{{Key: "node", Value: 1}, {Key: "generation", Value: -1}}},
		"replicas":             {{{Key: "heartbeat_at", Value: 1}}},
		"deployment_takeovers": {{{Key: "at", Value: 1}}},
		"in_flight":            {{{Key: "service", Value: 1}}},
	} {
		for _, k := range keys {
			if _, err := db.Collection(coll).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: k}); err != nil {
				return fmt.Errorf("create index on %s: %w", coll, err)
			}
		}
	}
	return nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("the database does not answer: %w", err)
	}
	return nil
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// Node is one node's record: its status as the Plan Layer sees it, and which deployment last held it.
// DeployingVersion is set by Claim and cleared by Finish and Release (see executor.NodeStatus).
type Node struct {
	ID               string            `bson:"_id" json:"id"`
	Host             string            `bson:"host" json:"host"`
	Service          string            `bson:"service" json:"service"`
	Platform         executor.Platform `bson:"platform" json:"platform"`
	CurrentVersion   string            `bson:"current_version" json:"current_version"`
	PrevVersion      string            `bson:"prev_version" json:"prev_version"`
	DeployingVersion string            `bson:"deploying_version,omitempty" json:"deploying_version,omitempty"`
	State            executor.State    `bson:"state" json:"state"`
	LastError        string            `bson:"last_error,omitempty" json:"last_error,omitempty"`
	DeploymentID     string            `bson:"deployment_id,omitempty" json:"deployment_id,omitempty"`
	// Drift is how the node differs from this record, as the last drift pass found it (nil: it does not).
	Drift     *Drift    `bson:"drift,omitempty" json:"drift,omitempty"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
	UpdatedAt time.Time `bson:"updated_at" json:"updated_at"`
}

// Status is the record as the executor's NodeStatus.
func (n *Node) Status() executor.NodeStatus {
	return executor.NodeStatus{Host: n.Host, Service: n.Service, Platform: n.Platform, CurrentVersion: n.CurrentVersion,
		PrevVersion: n.PrevVersion, DeployingVersion: n.DeployingVersion, State: n.State, LastError: n.LastError}
}

// NodeID is a node's key: deterministic, so reads and conditional updates go straight to _id.
func NodeID(service, host string) string { return service + "/" + host }

// ErrNotFound means there is no such record. The reads return it as a *NotFoundError naming the
// record; errors.Is(err, ErrNotFound) holds for both.
var ErrNotFound = errors.New("not found")

// NotFoundError names the record that is not there ("deployment d-1 not found"), so an answer built
// from it says what was looked for.
type NotFoundError struct {
	What string // "deployment d-1", "node h1 of service demo", "cleanup pass c-1"
}

func (e *NotFoundError) Error() string { return e.What + " not found" }

// Is makes a NotFoundError match ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(format string, args ...any) error {
	return &NotFoundError{What: fmt.Sprintf(format, args...)}
}

// ErrNotHeld means the deployment does not hold the node (any more): nothing to finish.
var ErrNotHeld = errors.New("does not hold this node")

// IsTransient says whether a failed write may succeed if tried again: anything but a record that is
// not there or not held, and bad input.
func IsTransient(err error) bool {
	return err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotHeld) && !executor.IsValidation(err)
}

// BusyError means another deployment holds the node.
type BusyError struct {
	Node         string
	DeploymentID string
}

func (e *BusyError) Error() string {
	if IsDriftID(e.DeploymentID) {
		return fmt.Sprintf("node %s is held by drift pass %s while it reads what the node runs; retry when it ends (GET /api/v1/drift/%s)", e.Node, e.DeploymentID, e.DeploymentID)
	}
	if IsCleanupID(e.DeploymentID) {
		return fmt.Sprintf("node %s is held by cleanup pass %s while it removes old releases; retry when it ends (GET /api/v1/cleanups/%s)", e.Node, e.DeploymentID, e.DeploymentID)
	}
	if strings.HasPrefix(e.DeploymentID, briefPrefix) {
		return fmt.Sprintf("node %s is held for a moment while its record is written (%s); retry", e.Node, e.DeploymentID)
	}
	return fmt.Sprintf("node %s is being deployed by deployment %s", e.Node, e.DeploymentID)
}

// Claim marks a node deploying for deploymentID: it takes the node's claim ticket (claims.go), which one
// claimer gets when several claim a free node at once, in this process or another replica, and then
// writes the node's record. Claiming again by the same deployment succeeds (a retry). It returns the
// record as it was before the claim (State "" when the claim created it), which Release restores if the
// deployment never runs. A node held by another is a *BusyError naming the holder.
func (s *Store) Claim(ctx context.Context, service, host string, platform executor.Platform, deploymentID, version string) (*Node, error) {
	id := NodeID(service, host)
	now := time.Now().UTC()
	fresh, over, err := s.take(ctx, id, deploymentID, func(c *claimTicket) bool { return s.orphaned(ctx, c, now) })
	if err != nil {
		return nil, err
	}
	before, err := s.markDeploying(ctx, id, bson.M{
		"$set": bson.M{"service": service, "host": host, "platform": platform, "state": executor.StateDeploying,
			"deploying_version": version, "deployment_id": deploymentID, "last_error": "", "updated_at": now},
		"$setOnInsert": bson.M{"created_at": now, "current_version": "", "prev_version": ""},
	})
	if err != nil {
		if fresh { // the record was not written: the claim leaves nothing behind
			_ = s.giveBack(context.WithoutCancel(ctx), id, deploymentID)
		}
		return nil, fmt.Errorf("claim %s: %w", id, err)
	}
	if before == nil {
		return &Node{ID: id, Service: service, Host: host, Platform: platform}, nil // created by this claim
	}
	if over != nil && before.State == executor.StateDeploying && before.DeploymentID != deploymentID {
		orphanedBefore(before, over)
	}
	return before, nil
}

// markDeploying writes a claimed node's record (its claim's holder is its only writer) and returns it
// as it was (nil: the write created it).
func (s *Store) markDeploying(ctx context.Context, id string, update bson.M) (*Node, error) {
	defer s.lockNode(id)()
	defer s.writing(id)
	var before Node
	err := s.nodes.FindOneAndUpdate(ctx, bson.M{"_id": id}, update,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before)).Decode(&before)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &before, nil
}

// OrphanGrace is how long a claim may wait for its deployment's record: a request claims its nodes and
// records the deployment within milliseconds, so a claim older than this whose deployment was never
// recorded was left by a request that failed half-way (the database and nodeexec both failed before the
// claim could be given back). Such a claim is taken over. So is one of a cleanup pass that no longer
// runs (its nodeexec stopped, and with it the renewal of the pass's lease).
const OrphanGrace = time.Minute

// Finish records how a node's deployment ended and gives the node back. Only the deployment that holds
// the node may finish it, and only into a state the state machine allows from deploying. Finishing
// again after a failure to give the node back (a retry) finishes what is left.
func (s *Store) Finish(ctx context.Context, deploymentID string, st executor.NodeStatus) (*Node, error) {
	if err := executor.CheckTransition(executor.StateDeploying, st.State); err != nil {
		return nil, err
	}
	id := NodeID(st.Service, st.Host)
	if held, err := s.holds(ctx, id, deploymentID); err != nil {
		return nil, fmt.Errorf("finish %s: %w", id, err)
	} else if !held {
		return nil, fmt.Errorf("finish %s: deployment %s: %w", id, deploymentID, ErrNotHeld)
	}
	n, err := s.writeFinish(ctx, id, deploymentID, st)
	if err != nil {
		return nil, err
	}
	if err := s.giveBack(ctx, id, deploymentID); err != nil && !errors.Is(err, ErrNotHeld) {
		return nil, fmt.Errorf("finish %s: %w", id, err)
	}
	return n, nil
}

// writeFinish writes a finished node's record, or finds it written by an earlier try.
func (s *Store) writeFinish(ctx context.Context, id, deploymentID string, st executor.NodeStatus) (*Node, error) {
	defer s.lockNode(id)()
	defer s.writing(id)
	filter := bson.M{"_id": id, "deployment_id": deploymentID, "state": executor.StateDeploying}
	update := bson.M{"$set": bson.M{"state": st.State, "current_version": st.CurrentVersion, "prev_version": st.PrevVersion,
		"deploying_version": "", "last_error": st.LastError, "updated_at": time.Now().UTC()}}
	if st.State == executor.StateSuccess {
		// The node now runs what this record says: whatever drift a pass saw before is gone.
		update["$unset"] = bson.M{"drift": ""}
	}
	var n Node
	err := s.nodes.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&n)
	if errors.Is(err, mongo.ErrNoDocuments) {
		prev, readErr := s.readNode(ctx, id)
		if readErr == nil && prev.DeploymentID == deploymentID && prev.State == st.State {
			return prev, nil // an earlier try wrote it, and failed to give the node back
		}
		return nil, fmt.Errorf("finish %s: deployment %s: %w", id, deploymentID, ErrNotHeld)
	}
	if err != nil {
		return nil, fmt.Errorf("finish %s: %w", id, err)
	}
	return &n, nil
}

// Node reads one node's record.
func (s *Store) Node(ctx context.Context, service, host string) (*Node, error) {
	id := NodeID(service, host)
	if n, ok := s.cache.get(id); ok {
		return &n, nil
	}
	if s.cache == nil {
		return s.readNode(ctx, id)
	}
	// Fill under the node's lock, so no write can slip between the read and the fill.
	defer s.lockNode(id)()
	if n, ok := s.cache.get(id); ok {
		return &n, nil
	}
	n, err := s.readNode(ctx, id)
	if err == nil {
		s.cache.put(*n)
	}
	return n, err
}

// readNode reads a node's record from the database.
func (s *Store) readNode(ctx context.Context, id string) (*Node, error) {
	var n Node
	err := s.nodes.FindOne(ctx, bson.M{"_id": id}).Decode(&n)
	if errors.Is(err, mongo.ErrNoDocuments) {
		service, host, _ := strings.Cut(id, "/")
		return nil, notFound("node %s of service %s", host, service)
	}
	if err != nil {
		return nil, fmt.Errorf("read node %s: %w", id, err)
	}
	return &n, nil
}

// writing is deferred by every write of a node, while it holds the node's lock: the cached record
// is forgotten before another reader can fill it again.
func (s *Store) writing(id string) { s.cache.forget(id) }
