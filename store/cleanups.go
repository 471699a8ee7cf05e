package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/nodeexec/nodeexec/executor"
)

// Cleanup is one cleanup pass: which nodes it cleaned and what each kept and removed, and which
// records it pruned. Only the pass's runner writes it while it runs.
type Cleanup struct {
	ID string `bson:"_id" json:"id"`
	// Trigger is TriggerSchedule (Tick is the time the schedule fired) or TriggerAPI (Token names the
	// API token that asked, when the server has tokens).
	Trigger string     `bson:"trigger" json:"trigger"`
	Tick    *time.Time `bson:"tick,omitempty" json:"tick,omitempty"`
	Token   string     `bson:"token,omitempty" json:"token,omitempty"`
	// Runner names the nodeexec replica that ran the pass.
	Runner string `bson:"runner" json:"runner"`
	State  string `bson:"state" json:"state"`
	Error  string `bson:"error,omitempty" json:"error,omitempty"`
	// Keep is how many releases a node keeps unless its service has its own number (each node says).
	Keep       int           `bson:"keep" json:"keep"`
	Nodes      []CleanupNode `bson:"nodes" json:"nodes"`
	Pruned     Pruned        `bson:"pruned" json:"pruned"`
	StartedAt  time.Time     `bson:"started_at" json:"started_at"`
	FinishedAt *time.Time    `bson:"finished_at,omitempty" json:"finished_at,omitempty"`
}

// What started a cleanup pass.
const (
	TriggerSchedule = "schedule"
	TriggerAPI      = "api"
)

// States of a cleanup pass: running, then success (every node cleaned or skipped, records pruned) or
// failed (the record says what failed).
const (
	CleanupRunning = "running"
	CleanupSuccess = "success"
	CleanupFailed  = "failed"
)

// States of a node within a cleanup pass.
const (
	NodePending  = "pending"  // not reached yet
	NodeCleaning = "cleaning" // held by the pass; cleanup.yml runs on it
	NodeCleaned  = "cleaned"  // cleanup.yml ran: Kept and Removed say what it did
	NodeSkipped  = "skipped"  // not touched (held by a deployment, or the pass stopped first): Error says why
	NodeFailed   = "failed"   // the cleanup failed on the node: Error says why
)

// CleanupNode is one node's outcome within a cleanup pass.
type CleanupNode struct {
	Service string `bson:"service" json:"service"`
	Host    string `bson:"host" json:"host"`
	State   string `bson:"state" json:"state"`
	// Keep is the number of releases the node was asked to keep.
	Keep int `bson:"keep" json:"keep"`
	// Kept are the releases on the node after the cleanup; Removed the ones it deleted.
	Kept    []string `bson:"kept,omitempty" json:"kept,omitempty"`
	Removed []string `bson:"removed,omitempty" json:"removed,omitempty"`
	Error   string   `bson:"error,omitempty" json:"error,omitempty"`
	// Prior is the node's record before the pass held it, given back when the cleanup ends there (or
	// by the next pass, if the nodeexec running this one stopped first).
	Prior *Node `bson:"prior,omitempty" json:"-"`
}

// Pruned counts the records a pass deleted because they finished before Before.
type Pruned struct {
	Before          *time.Time `bson:"before,omitempty" json:"before,omitempty"`
	Deployments     int64      `bson:"deployments" json:"deployments"`
	EventChunks     int64      `bson:"event_chunks" json:"event_chunks"`
	IdempotencyKeys int64      `bson:"idempotency_keys" json:"idempotency_keys"`
	Cleanups        int64      `bson:"cleanups" json:"cleanups"`
	DriftPasses     int64      `bson:"drift_passes" json:"drift_passes"`
}

// cleanupIDPrefix marks the ids of cleanup passes, which hold nodes as deployments do.
const cleanupIDPrefix = "c-"

// NewCleanupID is a new cleanup pass's id.
func NewCleanupID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return cleanupIDPrefix + hex.EncodeToString(b)
}

// IsCleanupID reports whether the holder of a node is a cleanup pass rather than a deployment.
func IsCleanupID(id string) bool { return strings.HasPrefix(id, cleanupIDPrefix) }

func (s *Store) cleanups() *mongo.Collection { return s.nodes.Database().Collection("cleanups") }

// CreateCleanup records a pass as it starts.
func (s *Store) CreateCleanup(ctx context.Context, c *Cleanup) error {
	if _, err := s.cleanups().InsertOne(ctx, c); err != nil {
		return fmt.Errorf("record cleanup pass: %w", err)
	}
	return nil
}

// ErrCleanupEnded means a pass's record was already ended (by the pass that found it abandoned).
var ErrCleanupEnded = errors.New("the cleanup pass was already ended")

// SaveCleanup writes a running pass's progress, or its end: only while the record still says running.
func (s *Store) SaveCleanup(ctx context.Context, c *Cleanup) error {
	return savePass(ctx, s.cleanups(), "cleanup pass", c.ID, CleanupRunning, bson.M{
		"state": c.State, "error": c.Error, "nodes": c.Nodes, "pruned": c.Pruned, "finished_at": c.FinishedAt,
	}, ErrCleanupEnded)
}

// Cleanup reads one pass.
func (s *Store) Cleanup(ctx context.Context, id string) (*Cleanup, error) {
	return readPass[Cleanup](ctx, s.cleanups(), "cleanup pass", id)
}

// ListCleanups returns passes newest first, a page at a time (cursor: as ListDeployments); next is ""
// on the last page.
func (s *Store) ListCleanups(ctx context.Context, limit int, cursor string) (page []Cleanup, next string, err error) {
	return listPasses(ctx, s.cleanups(), "cleanup pass", limit, cursor, func(c Cleanup) (time.Time, string) { return c.StartedAt, c.ID })
}

// RunningCleanups lists the passes whose record says running.
func (s *Store) RunningCleanups(ctx context.Context) ([]Cleanup, error) {
	return runningPasses[Cleanup](ctx, s.cleanups(), "cleanup pass", CleanupRunning)
}

// cleanupAlive reports whether a cleanup pass still runs: its record says so and its runner still
// holds the cleanup lease for it (a runner that died stops renewing it).
func (s *Store) cleanupAlive(ctx context.Context, id string, now time.Time) bool {
	c, err := s.Cleanup(ctx, id)
	return err == nil && s.passAlive(ctx, CleanupLease, id, c.Runner, c.State == CleanupRunning, now)
}

// PhysicalNodes lists every physical node record, by service then host (a scan: for cleanup passes,
// never a request's hot path).
func (s *Store) PhysicalNodes(ctx context.Context) ([]Node, error) {
	out, err := s.nodesWhere(ctx, bson.M{"platform": executor.PlatformPhysical})
	if err != nil {
		return nil, fmt.Errorf("list physical nodes: %w", err)
	}
	return out, nil
}
